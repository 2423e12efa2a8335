// A quick idle measurement of one or more agent builds side by side, for comparing changes to the agent's footprint
// without the full bench (docs/performance.md, "Footprint"):
//
//   node --conditions=ferry-source --import tsx bench/footprint/agent-idle.ts [--smaps DIR] [[--flags=FLAGS] ENTRY ...]
//
// Each ENTRY (default: installers/dist/ferry-agent/ferry-agent.mjs) is an agent entry point (a bundle or agent/bin/ferry-agent.js).
// `--flags="--a --b"` runs the entries after it with these node flags instead of the unit's (`--flags=` for none), to
// compare flags side by side; `--smaps DIR` copies into DIR, for each agent at the end of its window, its /proc/PID/smaps,
// the node binary's resident pages, the built-ins it loaded and its log.
// One control plane on a new PostgreSQL database (FERRY_TEST_DATABASE_URL, else the local test server); each entry is
// enrolled through its CLI and run with the systemd unit's node flags and allocator settings, the Docker driver on
// the project's engine, all at once; each is sampled every 5 s from 40 to 60 s after it started and its largest RSS
// is printed.
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, realpathSync, rmSync, writeFileSync } from "node:fs";
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

interface Entry {
  entry: string;
  /** Node flags; undefined: the unit's. */
  flags: string[] | undefined;
}

// With --smaps: the built-in modules the agent has loaded (process.moduleLoadList), written beside the memory report.
const MODULE_LIST_REPORTER = `data:text/javascript,${encodeURIComponent(
  'import { writeFileSync } from "node:fs"; process.on("SIGUSR2", () => writeFileSync(process.env.FERRY_BENCH_MEMORY_FILE + ".modules", process.moduleLoadList.join("\\n")));',
)}`;

/**
 * The addresses of the node binary's pages resident in a process (from /proc/PID/pagemap; needs root), to find what
 * touches them: `nm` maps an address to the symbol it falls in.
 */
function residentNodePages(pid: number): number[] {
  const binary = realpathSync(process.execPath);
  const pages: number[] = [];
  const fd = openSync(`/proc/${pid}/pagemap`, "r");
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s+(.*)$/.exec(line);
      if (!m || m[3] !== binary) continue;
      const from = parseInt(m[1] as string, 16) / 4096;
      const to = parseInt(m[2] as string, 16) / 4096;
      const buf = Buffer.alloc((to - from) * 8);
      readSync(fd, buf, 0, buf.length, from * 8);
      for (let p = 0; p < to - from; p++) if (buf.readBigUInt64LE(p * 8) >> 63n) pages.push((from + p) * 4096);
    }
  } finally {
    closeSync(fd);
  }
  return pages;
}

async function run(entries: Entry[], smapsDir: string | undefined, workDir: string, cleanups: Array<() => Promise<unknown>>): Promise<void> {
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
  const unitFlags = agentNodeFlags();
  const agents = await Promise.all(
    entries.map(async ({ entry, flags = unitFlags }, i) => {
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
        ["--import", ORPHAN_GUARD, "--import", MEMORY_REPORTER, ...(smapsDir ? ["--import", MODULE_LIST_REPORTER] : []), ...flags, entry, "run", "--state-dir", stateDir, "--docker-socket", engine.socketPath],
        { env: { ...env, ...agentAllocatorEnv(), FERRY_BENCH_MEMORY_FILE: reportFile }, stdio: ["ignore", out, out] },
      );
      closeSync(out);
      cleanups.push(() => stopChild(child, 5000));
      return { entry, flags, child, startedAt, reportFile };
    }),
  );
  log(`${agents.length} agent(s) running (unit flags: ${unitFlags.join(" ")}); sampling 40–60 s after start`);
  const results = await Promise.all(
    agents.map(async (a, i) => {
      const pid = a.child.pid as number;
      const r = await window(pid, a.reportFile, a.startedAt, 40_000, 60_000);
      if (smapsDir) {
        mkdirSync(smapsDir, { recursive: true });
        writeFileSync(join(smapsDir, `agent-${i}.smaps`), readFileSync(`/proc/${pid}/smaps`));
        writeFileSync(join(smapsDir, `agent-${i}.modules`), readFileSync(`${a.reportFile}.modules`));
        writeFileSync(join(smapsDir, `agent-${i}.log`), readFileSync(join(workDir, `agent-${i}.log`)));
        writeFileSync(join(smapsDir, `agent-${i}.node-pages`), residentNodePages(pid).map((a) => a.toString(16)).join("\n"));
      }
      return r;
    }),
  );
  for (const [i, r] of results.entries()) {
    const p = r.peak;
    const a = agents[i]!;
    const flags = a.flags === unitFlags ? "" : `  [${a.flags.join(" ")}]`;
    process.stdout.write(`${mib(p.rssBytes).padStart(9)}  anon ${mib(p.anonBytes).padStart(8)}  file ${mib(p.fileBytes).padStart(8)}  heap ${mib(p.heapUsedBytes).padStart(8)}  ${a.entry}${flags}\n`);
  }
}

const entries: Entry[] = [];
let smapsDir: string | undefined;
let flags: string[] | undefined;
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i] as string;
  if (arg === "--smaps") smapsDir = resolve(process.argv[++i] ?? ".");
  else if (arg.startsWith("--flags=")) flags = arg.slice("--flags=".length).split(/\s+/).filter(Boolean);
  else if (arg.startsWith("--")) throw new Error(`unknown option ${arg}`);
  else entries.push({ entry: resolve(arg), flags });
}
if (entries.length === 0) entries.push({ entry: join(ROOT, "installers/dist/ferry-agent/ferry-agent.mjs"), flags });
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
  () => run(entries, smapsDir, workDir, cleanups),
);
