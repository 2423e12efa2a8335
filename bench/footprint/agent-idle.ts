// A quick idle measurement of one or more agent builds side by side, for comparing changes to the agent's footprint
// without the full bench (docs/performance.md, "Footprint"):
//
//   node --conditions=ferry-source --import tsx bench/footprint/agent-idle.ts [ENTRY ...]
//
// Each ENTRY (default: installers/dist/ferry-agent.mjs) is an agent entry point (a bundle or agent/bin/ferry-agent.js).
// One control plane on a new PostgreSQL database (FERRY_TEST_DATABASE_URL, else the local test server); each entry is
// enrolled through its CLI and run with the systemd unit's node flags and allocator settings, the Docker driver on
// the project's engine, all at once; each is sampled every 5 s from 40 to 60 s after it started and its largest RSS
// is printed.
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { dockerEngine } from "../../test/helpers/docker.js";
import { createDatabase } from "../../test/helpers/postgres.js";
import { exited, ORPHAN_GUARD, spawnTracked, stopChild, superviseBench } from "../fleet/children.js";
import { FerryServer, ROOT } from "../fleet/ferry-server.js";
import { FerryApi } from "../deploy/ferry-api.js";
import { agentAllocatorEnv, agentNodeFlags } from "./agent-flags.js";
import { MEMORY_REPORTER, mib, window } from "./memory.js";

const log = (msg: string) => process.stderr.write(`[agent-idle ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

async function run(entries: string[], workDir: string, cleanups: Array<() => Promise<unknown>>): Promise<void> {
  const engine = await dockerEngine();
  if (!engine.available) throw new Error(engine.reason);
  const db = await createDatabase(process.env["FERRY_TEST_DATABASE_URL"] ?? "postgresql://postgres@127.0.0.1:5432/test");
  cleanups.push(() => db.drop());
  const dataDir = join(workDir, "cp");
  mkdirSync(dataDir, { mode: 0o700 });
  const server = await FerryServer.start({ dataDir, heartbeatIntervalMs: 15_000, args: ["--database-url", db.url], timeoutMs: 120_000 });
  cleanups.push(() => server.stop());
  const api = new FerryApi(server.runtime.api, dataDir);
  await api.ensure("/environments", { name: "idle" });
  const flags = agentNodeFlags();
  const agents = await Promise.all(
    entries.map(async (entry, i) => {
      const stateDir = join(workDir, `agent-${i}`);
      const token = await api.call<{ joinString: string }>("POST", "/join-tokens", { environment: "idle", uses: 1, ttl: "30m" });
      const env = { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json" };
      const enrol = spawnTracked(process.execPath, [entry, "enrol", "--state-dir", stateDir, "--name", `agent-${i}`], { env: { ...env, FERRY_JOIN: token.joinString }, stdio: ["ignore", "ignore", "inherit"] });
      await exited(enrol);
      if (enrol.exitCode !== 0) throw new Error(`${entry} enrol exited with ${enrol.exitCode}`);
      const reportFile = join(workDir, `agent-${i}.memory.json`);
      const out = openSync(join(workDir, `agent-${i}.log`), "a");
      const startedAt = Date.now();
      const child = spawnTracked(
        process.execPath,
        ["--import", ORPHAN_GUARD, "--import", MEMORY_REPORTER, ...flags, entry, "run", "--state-dir", stateDir, "--docker-socket", engine.socketPath],
        { env: { ...env, ...agentAllocatorEnv(), FERRY_BENCH_MEMORY_FILE: reportFile }, stdio: ["ignore", out, out] },
      );
      closeSync(out);
      cleanups.push(() => stopChild(child, 5000));
      return { entry, child, startedAt, reportFile };
    }),
  );
  log(`${agents.length} agent(s) running with ${flags.join(" ")}; sampling 40–60 s after start`);
  const results = await Promise.all(agents.map((a) => window(a.child.pid as number, a.reportFile, a.startedAt, 40_000, 60_000)));
  for (const [i, r] of results.entries()) {
    const p = r.peak;
    process.stdout.write(`${mib(p.rssBytes).padStart(9)}  anon ${mib(p.anonBytes).padStart(8)}  file ${mib(p.fileBytes).padStart(8)}  heap ${mib(p.heapUsedBytes).padStart(8)}  ${agents[i]!.entry}\n`);
  }
}

const entries = process.argv.slice(2).map((e) => resolve(e));
if (entries.length === 0) entries.push(join(ROOT, "installers/dist/ferry-agent.mjs"));
const workDir = mkdtempSync(join(tmpdir(), "ferry-agent-idle-"));
const cleanups: Array<() => Promise<unknown>> = [];
await superviseBench(
  {
    timeoutMs: 5 * 60_000,
    log,
    cleanups: [
      async () => {
        for (const c of cleanups.splice(0).reverse()) await c().catch(() => null);
      },
      () => rmSync(workDir, { recursive: true, force: true }),
    ],
  },
  () => run(entries, workDir, cleanups),
);
