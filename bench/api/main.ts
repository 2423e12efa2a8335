// `npm run bench:api` — the Ferry control plane's JSON API under load: release creation (with tag resolution
// against a real registry on loopback) and release reads at 10,000 releases, beside a bare fastify baseline.
// Prints figures (not a pass/fail test) and writes them to bench-results/api-<timestamp>.json. See
// docs/performance.md, "API benchmark".
//
//   npm run bench:api                                  10,000 releases, 20 s per read endpoint
//   npm run bench:api -- --quick                       1,000 releases, 5 s per read endpoint
//   npm run bench:api -- --releases N                  any number of releases
//   npm run bench:api -- --database-url postgresql://postgres@127.0.0.1:5432/test
//                                                      PostgreSQL instead of PGlite (a fresh database is created for
//                                                      the run and dropped at the end)
//   other flags: --read-seconds S, --read-concurrency C (32), --create-concurrency C (8), --cpu-prof (V8 profile of
//                the Ferry server, summarised and kept in bench-results/), --timeout-minutes M
//
// Processes, all on 127.0.0.1: this orchestrator (pushes images, creates releases); Debian's docker-registry
// (test/helpers/registry.ts); one `ferry server` (control-plane/bin/ferry.js, built dist); the read-load generator
// (load-generator.ts, a child process); later the baseline server (baseline-server.ts). Every child is stopped by
// its PID at exit, on error, on SIGINT/SIGTERM and when the global timeout fires.
//
// Caches: the server keeps releases in memory once read. Collecting the read material walks every list page, which
// would leave every release cached, so the server is restarted on the same data before the read load: reads start
// from an empty cache (as after any restart; the restart also runs PGlite's start-up ANALYZE over the loaded
// tables). `GET /releases/{id}` and `GET /releases/{name@version}` draw from disjoint samples, since a release read
// by one is cached for the other.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, closeSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { pushImage, pushIndex, startRegistry, type TestRegistry } from "../../test/helpers/registry.js";
import { createDatabase } from "../../test/helpers/postgres.js";
import type { BaselineReady, LoadCommand, LoadResult } from "./ipc.js";
import { round, summarise } from "./stats.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const FERRY_BIN = join(ROOT, "control-plane/bin/ferry.js");
const HERE = fileURLToPath(new URL(".", import.meta.url));

// ---------------------------------------------------------------------------------------------------------------
// options

interface Options {
  quick: boolean;
  releases: number;
  databaseUrl: string | null;
  readSeconds: number;
  warmupSeconds: number;
  readConcurrency: number;
  createConcurrency: number;
  cpuProf: boolean;
  timeoutMinutes: number;
}

function usage(msg: string): never {
  console.error(`bench:api: ${msg}`);
  console.error("usage: npm run bench:api -- [--quick] [--releases N] [--database-url URL] [--read-seconds S] [--read-concurrency C] [--create-concurrency C] [--cpu-prof] [--timeout-minutes M]");
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes("--quick");
  const o: Options = {
    quick,
    releases: quick ? 1000 : 10_000,
    databaseUrl: null,
    readSeconds: quick ? 5 : 20,
    warmupSeconds: quick ? 1 : 2,
    readConcurrency: 32,
    createConcurrency: 8,
    cpuProf: false,
    timeoutMinutes: quick ? 10 : 40,
  };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) usage(`${flag} needs a number ≥ ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case "--quick":
        break;
      case "--cpu-prof":
        o.cpuProf = true;
        break;
      case "--releases":
        o.releases = Math.floor(num(a, v, 1));
        i++;
        break;
      case "--database-url":
        if (!v) usage("--database-url needs a URL");
        o.databaseUrl = v;
        i++;
        break;
      case "--read-seconds":
        o.readSeconds = num(a, v, 1);
        i++;
        break;
      case "--read-concurrency":
        o.readConcurrency = Math.floor(num(a, v, 1));
        i++;
        break;
      case "--create-concurrency":
        o.createConcurrency = Math.floor(num(a, v, 1));
        i++;
        break;
      case "--timeout-minutes":
        o.timeoutMinutes = num(a, v, 1);
        i++;
        break;
      default:
        usage(`unknown argument ${a ?? ""}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// children and cleanup

const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];
let registryPid: number | null = null;

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** By PID: SIGTERM, then SIGKILL after graceMs. */
async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pid = child.pid;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }, graceMs);
  await exited(child);
  clearTimeout(timer);
}

let cleaningUp: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c, 5000)));
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch (err) {
        console.error(`cleanup: ${(err as Error).message}`);
      }
    }
  })();
  return cleaningUp;
}

process.on("exit", () => {
  // Last resort, synchronous: SIGKILL anything still running, by PID.
  for (const c of children) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  if (registryPid !== null) {
    try {
      process.kill(registryPid, 0);
      process.kill(registryPid, "SIGKILL");
    } catch {
      // gone
    }
  }
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    console.error(`\nbench:api: ${sig}, stopping children`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// the Ferry server

interface FerryServer {
  child: ChildProcess;
  api: string;
  token: string;
  dataDir: string;
  logFile: string;
}

async function startFerry(o: { dataDir: string; databaseUrl: string | null; cpuProfDir: string | null }): Promise<FerryServer> {
  const logFile = join(o.dataDir, "server.log");
  // Written once the server is ready; a restart on the same data directory must not read the previous one.
  rmSync(join(o.dataDir, "runtime.json"), { force: true });
  const fd = openSync(logFile, "a");
  const nodeArgs = o.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", o.cpuProfDir] : [];
  const child = track(
    spawn(
      process.execPath,
      [
        ...nodeArgs,
        FERRY_BIN,
        "server",
        "--data-dir", o.dataDir,
        "--api-listen", "127.0.0.1:0",
        "--agent-listen", "127.0.0.1:0",
        "--enrol-listen", "127.0.0.1:0",
        "--log-level", "info",
        ...(o.databaseUrl ? ["--database-url", o.databaseUrl] : []),
      ],
      { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json" }, stdio: ["ignore", fd, fd] },
    ),
  );
  closeSync(fd);
  const runtimeFile = join(o.dataDir, "runtime.json");
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`ferry server exited (${child.exitCode ?? child.signalCode}); see ${logFile}:\n${readFileSync(logFile, "utf8").slice(-3000)}`);
    if (existsSync(runtimeFile)) {
      const rt = JSON.parse(readFileSync(runtimeFile, "utf8")) as { api: string };
      const token = readFileSync(join(o.dataDir, "admin-token"), "utf8").trim();
      return { child, api: rt.api, token, dataDir: o.dataDir, logFile };
    }
    if (Date.now() > deadline) throw new Error(`ferry server did not write runtime.json within 60 s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function api<T>(f: FerryServer, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { authorization: `Bearer ${f.token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${f.api}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

// ---------------------------------------------------------------------------------------------------------------
// CPU profile summary: self time by function, and time under the catalog/store code

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function summariseProfile(file: string, top = 25): Array<{ fn: string; selfMs: number; selfPct: number }> {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const byFn = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    total += us;
    const url = n.callFrame.url.replace(/^file:\/\//, "").replace(ROOT, "");
    const key = `${n.callFrame.functionName || "(anonymous)"} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ""}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  return [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, us]) => ({ fn, selfMs: Math.round(us / 1000), selfPct: round((us / total) * 100, 1) }));
}

// ---------------------------------------------------------------------------------------------------------------
// load generator and baseline

function forkChild(file: string, args: string[] = []): ChildProcess {
  return track(fork(join(HERE, file), args, { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, NODE_OPTIONS: "" } }));
}

function measure(gen: ChildProcess, cmd: LoadCommand): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: LoadResult) => {
      if (m.type !== "result" || m.label !== cmd.label) return;
      gen.off("message", onMessage);
      gen.off("exit", onExit);
      resolve(m);
    };
    const onExit = (code: number | null) => reject(new Error(`load generator exited (${code}) during ${cmd.label}`));
    gen.on("message", onMessage);
    gen.once("exit", onExit);
    gen.send(cmd);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// main

interface Created {
  id: string;
  name: string;
  version: string;
}

interface ReleaseBody {
  id: string;
  name: string;
  version: string;
  createdAt: string;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const globalTimer = setTimeout(() => {
    console.error(`\nbench:api: global timeout (${o.timeoutMinutes} min) reached, stopping`);
    void cleanup().finally(() => process.exit(3));
  }, o.timeoutMinutes * 60_000);
  globalTimer.unref();

  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const resultsDir = join(ROOT, "bench-results");
  mkdirSync(resultsDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "ferry-bench-api-"));
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  const log = (s: string) => console.log(`[${((performance.now()) / 1000).toFixed(1).padStart(6)} s] ${s}`);

  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memoryGiB: round(totalmem() / 2 ** 30, 1), kernel: release(), node: process.version };
  // Other work on the machine (another bench, a test run) changes every figure: the 1-minute load average is
  // recorded at each phase, and a warning printed when it already exceeds the core count at the start.
  const load: Record<string, number> = {};
  const noteLoad = (phase: string) => (load[phase] = round(loadavg()[0] ?? 0, 2));
  noteLoad("start");
  log(`machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node} — shared by the server, registry, orchestrator and load generator`);

  if ((load["start"] ?? 0) > machine.cpus) log(`WARNING: 1-minute load average ${load["start"]} > ${machine.cpus} cores before the bench started: other processes compete for the CPU`);

  // 1. registry and images
  const reg: TestRegistry = await startRegistry();
  registryPid = reg.pid;
  cleanups.push(() => reg.stop());
  const repos = ["shop/web", "shop/api", "shop/worker"] as const;
  const tags = ["1.0", "1.1", "1.2", "1.3", "2.0"];
  for (const repo of repos) for (const tag of tags) await pushImage(reg, repo, tag);
  await pushIndex(reg, "shop/api", "multi");
  log(`registry ${reg.url} (pid ${reg.pid}): ${repos.length} repositories × ${tags.length} tags + 1 multi-arch index (shop/api:multi)`);

  // 2. database and server
  let database: { url: string; drop: () => Promise<void> } | null = null;
  if (o.databaseUrl) {
    database = await createDatabase(o.databaseUrl);
    const db = database;
    cleanups.unshift(() => db.drop());
    log(`PostgreSQL: fresh database ${new URL(db.url).pathname.slice(1)}`);
  }
  const dataDir = join(work, "ferry");
  mkdirSync(dataDir);
  // One profile directory per server process: creation, then reads.
  const profDir = o.cpuProf ? join(work, "prof") : null;
  if (profDir) mkdirSync(join(profDir, "reads"), { recursive: true });
  let ferry = await startFerry({ dataDir, databaseUrl: database?.url ?? null, cpuProfDir: profDir });
  log(`ferry server ${ferry.api} (pid ${ferry.child.pid ?? "?"}), ${database ? "PostgreSQL" : "PGlite"}${o.cpuProf ? ", --cpu-prof" : ""}`);
  const components = ["web", "api", "worker"] as const;
  for (const [i, c] of components.entries()) {
    const r = await api(ferry, "POST", "/api/v1/components", { name: c, repository: `${reg.host}/${repos[i] ?? ""}` });
    if (r.status !== 201) throw new Error(`create component ${c}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  // 3. releases
  const created: Created[] = [];
  const createLatencies: number[] = [];
  let createErrors = 0;
  let firstCreateError: string | null = null;
  const names = 20;
  const releaseInput = (i: number) => {
    const count = 1 + (i % 3);
    const comps: Record<string, string> = {};
    for (let k = 0; k < count; k++) {
      const c = components[(i + k) % components.length] as string;
      comps[c] = c === "api" && i % 7 === 0 ? ":multi" : `:${tags[(i >> 2) % tags.length] ?? "1.0"}`;
    }
    return { name: `svc-${String(i % names).padStart(2, "0")}`, version: `1.${Math.floor(i / names)}.0`, components: comps, notes: `bench release ${i}`, provenance: { ci: "bench", run: i } };
  };
  let next = 0;
  const createStart = performance.now();
  let lastReport = createStart;
  await Promise.all(
    Array.from({ length: o.createConcurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= o.releases) return;
        const input = releaseInput(i);
        const t0 = performance.now();
        try {
          const r = await api<ReleaseBody | { error: { code: string; message: string } }>(ferry, "POST", "/api/v1/releases", input);
          const t1 = performance.now();
          if (r.status === 201) {
            createLatencies.push(t1 - t0);
            const b = r.body as ReleaseBody;
            created.push({ id: b.id, name: b.name, version: b.version });
          } else {
            createErrors++;
            firstCreateError ??= `HTTP ${r.status} ${JSON.stringify(r.body)}`;
          }
        } catch (err) {
          createErrors++;
          firstCreateError ??= (err as Error).message;
        }
        const now = performance.now();
        if (now - lastReport > 10_000) {
          lastReport = now;
          log(`  created ${created.length}/${o.releases} (${Math.round((created.length / (now - createStart)) * 1000)}/s)`);
        }
      }
    }),
  );
  const createElapsed = performance.now() - createStart;
  noteLoad("afterCreation");
  const creation = {
    releases: created.length,
    errors: createErrors,
    firstError: firstCreateError,
    concurrency: o.createConcurrency,
    elapsedMs: Math.round(createElapsed),
    perSecond: round((created.length / createElapsed) * 1000, 1),
    latencyMs: summarise(createLatencies),
  };
  log(`created ${created.length} releases in ${(createElapsed / 1000).toFixed(1)} s (${creation.perSecond}/s), ${createErrors} errors; p50 ${creation.latencyMs.p50} ms, p99 ${creation.latencyMs.p99} ms, max ${creation.latencyMs.max} ms`);
  if (created.length === 0) throw new Error(`no release was created: ${firstCreateError ?? "?"}`);

  // 4. material for the read load: ids, name@version refs, cursors into the older half of the list
  const cursors: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  for (;;) {
    const r: { status: number; body: { releases: unknown[]; nextCursor: string | null } } = await api(ferry, "GET", `/api/v1/releases?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    if (r.status !== 200) throw new Error(`list: ${r.status}`);
    pages++;
    if (!r.body.nextCursor) break;
    cursor = r.body.nextCursor;
    cursors.push(cursor);
  }
  const deep = cursors.slice(Math.floor(cursors.length / 2));
  if (deep.length === 0) {
    // Fewer than 1,000 releases: take cursors from 50-release pages instead.
    const r = await api<{ nextCursor: string | null }>(ferry, "GET", `/api/v1/releases?limit=${Math.max(1, Math.floor(created.length / 2))}`);
    if (r.body.nextCursor) deep.push(r.body.nextCursor);
  }
  // Fisher–Yates, then two disjoint samples of up to 5,000: one read by id, the other by name@version.
  const shuffled = [...created];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j] as Created, shuffled[i] as Created];
  }
  const half = Math.min(5000, Math.max(1, Math.floor(shuffled.length / 2)));
  const byIdSample = shuffled.slice(0, half);
  const byNameSample = shuffled.length > 1 ? shuffled.slice(half, 2 * half) : byIdSample;
  const sample = shuffled[0] as Created;
  const single = await api<unknown>(ferry, "GET", `/api/v1/releases/${sample.id}`);
  const page = await api<unknown>(ferry, "GET", "/api/v1/releases?limit=50");
  writeFileSync(join(work, "single.json"), JSON.stringify(single.body));
  writeFileSync(join(work, "list.json"), JSON.stringify(page.body));
  log(`read material: ${byIdSample.length} ids, ${byNameSample.length} other releases by name@version, ${deep.length} deep cursors (walked ${pages} pages of 500)`);

  // Restart on the same data so that the read load starts from an empty release cache (see the header).
  await stopChild(ferry.child, 20_000);
  ferry = await startFerry({ dataDir, databaseUrl: database?.url ?? null, cpuProfDir: profDir ? join(profDir, "reads") : null });
  log(`ferry server restarted for the reads (pid ${ferry.child.pid ?? "?"}): release cache empty`);

  const endpoints: Array<{ key: string; label: string; paths: string[]; baseline: "single" | "list" }> = [
    { key: "getById", label: "GET /releases/{id}", paths: byIdSample.map((c) => `/api/v1/releases/${c.id}`), baseline: "single" },
    { key: "getByNameVersion", label: "GET /releases/{name@version}", paths: byNameSample.map((c) => `/api/v1/releases/${c.name}@${c.version}`), baseline: "single" },
    { key: "listFirstPage", label: "GET /releases?limit=50", paths: ["/api/v1/releases?limit=50"], baseline: "list" },
    { key: "listDeepPage", label: "GET /releases?limit=50&cursor=(deep)", paths: deep.map((c) => `/api/v1/releases?limit=50&cursor=${c}`), baseline: "list" },
    { key: "listByComponent", label: "GET /releases?component=X", paths: components.map((c) => `/api/v1/releases?component=${c}`), baseline: "list" },
  ];

  // 5. read load from a separate process
  const gen = forkChild("load-generator.ts");
  const base = { concurrency: o.readConcurrency, warmupMs: o.warmupSeconds * 1000, durationMs: o.readSeconds * 1000, maxRequests: 2_000_000 };
  const reads: Record<string, LoadResult> = {};
  for (const e of endpoints) {
    const r = await measure(gen, { type: "run", label: e.key, baseUrl: ferry.api, token: ferry.token, paths: e.paths, ...base });
    reads[e.key] = r;
    noteLoad(e.key);
    log(`  ${e.label.padEnd(38)} p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  ${r.requestsPerSecond} req/s  (${r.requests} ok, ${r.errors} errors${r.firstError ? `: ${r.firstError}` : ""})`);
  }

  // Stop Ferry before the baseline so both have the machine to themselves (and --cpu-prof writes its profile).
  await stopChild(ferry.child, 20_000);
  const profiles: Array<{ phase: string; file: string; top: Array<{ fn: string; selfMs: number; selfPct: number }> }> = [];
  if (profDir) {
    for (const [phase, dir] of [["creation", profDir], ["reads", join(profDir, "reads")]] as const) {
      const f = readdirSync(dir).find((n) => n.endsWith(".cpuprofile"));
      if (!f) continue;
      const kept = join(resultsDir, `api-${stamp}-${phase}.cpuprofile`);
      writeFileSync(kept, readFileSync(join(dir, f)));
      profiles.push({ phase, file: kept, top: summariseProfile(kept) });
    }
  }

  // 6. baseline
  const baselineChild = forkChild("baseline-server.ts", [join(work, "single.json"), join(work, "list.json")]);
  const ready = await new Promise<BaselineReady>((resolve, reject) => {
    baselineChild.once("message", (m: BaselineReady) => resolve(m));
    baselineChild.once("exit", (code) => reject(new Error(`baseline server exited (${code})`)));
  });
  const baseline: Record<"single" | "list", LoadResult> = {
    single: await measure(gen, { type: "run", label: "baseline-single", baseUrl: ready.url, token: null, paths: ["/single"], ...base }),
    list: await measure(gen, { type: "run", label: "baseline-list", baseUrl: ready.url, token: null, paths: ["/list"], ...base }),
  };
  noteLoad("afterBaseline");
  for (const [k, r] of Object.entries(baseline)) log(`  baseline fastify ${ready.fastifyVersion} /${k.padEnd(20)} p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  ${r.requestsPerSecond} req/s`);
  gen.send({ type: "exit" });
  await Promise.all([exited(gen), stopChild(baselineChild)]);

  // 7. report
  const readTarget = 50;
  const createTarget = 500;
  const readRows = endpoints.map((e) => {
    const r = reads[e.key] as LoadResult;
    const b = baseline[e.baseline];
    return {
      endpoint: e.label,
      key: e.key,
      p50: r.latencyMs.p50,
      p99: r.latencyMs.p99,
      max: r.latencyMs.max,
      rps: r.requestsPerSecond,
      errors: r.errors,
      bytes: r.meanResponseBytes,
      baseline: `/${e.baseline}`,
      baselineP50: b.latencyMs.p50,
      baselineP99: b.latencyMs.p99,
      baselineRps: b.requestsPerSecond,
      rpsRatio: b.requestsPerSecond ? round(r.requestsPerSecond / b.requestsPerSecond, 3) : null,
      p99Ratio: b.latencyMs.p99 ? round(r.latencyMs.p99 / b.latencyMs.p99, 1) : null,
      target: r.latencyMs.p99 < readTarget && r.errors === 0 ? "MET" : "MISSED",
    };
  });
  const createVerdict = creation.latencyMs.p99 < createTarget && creation.errors === 0 ? "MET" : "MISSED";

  const fmt = (v: number | string | null, w: number) => String(v ?? "-").padStart(w);
  console.log("");
  console.log(`Ferry API bench — ${created.length} releases, ${database ? "PostgreSQL" : "PGlite"}, reads at ${o.readConcurrency} keep-alive connections for ${o.readSeconds} s each (after ${o.warmupSeconds} s warm-up)`);
  console.log(`Machine: ${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node}. The server, the registry, this orchestrator and the load generator share these cores: figures are for this machine, not a server on its own.`);
  console.log("");
  console.log(`Release creation (POST /api/v1/releases, 1–3 tags resolved per release against docker-registry on loopback, ${o.createConcurrency} in flight)`);
  console.log(`  ${creation.releases} created, ${creation.errors} errors, ${creation.perSecond}/s; p50 ${creation.latencyMs.p50} ms, p90 ${creation.latencyMs.p90} ms, p99 ${creation.latencyMs.p99} ms, max ${creation.latencyMs.max} ms   target p99 < ${createTarget} ms: ${createVerdict}`);
  console.log("");
  console.log(`${"endpoint".padEnd(38)}${fmt("p50 ms", 9)}${fmt("p99 ms", 9)}${fmt("max ms", 9)}${fmt("req/s", 8)}${fmt("bytes", 8)} | ${"baseline".padEnd(8)}${fmt("p50", 7)}${fmt("p99", 7)}${fmt("req/s", 8)} | ${fmt("req/s ×", 8)}${fmt("p99 ×", 7)} | p99 < ${readTarget} ms`);
  for (const r of readRows) {
    console.log(`${r.endpoint.padEnd(38)}${fmt(r.p50, 9)}${fmt(r.p99, 9)}${fmt(r.max, 9)}${fmt(r.rps, 8)}${fmt(r.bytes, 8)} | ${r.baseline.padEnd(8)}${fmt(r.baselineP50, 7)}${fmt(r.baselineP99, 7)}${fmt(r.baselineRps, 8)} | ${fmt(r.rpsRatio, 8)}${fmt(r.p99Ratio, 7)} | ${r.target}${r.errors ? ` (${r.errors} errors)` : ""}`);
  }
  console.log(`(baseline: bare fastify ${ready.fastifyVersion}, static body captured from Ferry — /single a release, /list a 50-release page; no auth, no database. req/s × = Ferry ÷ baseline; p99 × = Ferry ÷ baseline)`);
  console.log(`1-minute load average by phase (${machine.cpus} cores): ${Object.entries(load).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  for (const profile of profiles) {
    console.log("");
    console.log(`CPU profile of the Ferry server (${profile.phase} phase): ${profile.file}; top self time:`);
    for (const t of profile.top.slice(0, 15)) console.log(`  ${fmt(t.selfPct, 5)}%  ${fmt(t.selfMs, 7)} ms  ${t.fn}`);
  }

  const out = join(resultsDir, `api-${stamp}.json`);
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        bench: "api",
        startedAt: startedAt.toISOString(),
        options: o,
        machine,
        loadAverage1m: load,
        database: database ? "postgresql" : "pglite",
        registry: { repositories: repos, tags, multiArch: "shop/api:multi" },
        creation: { ...creation, targetP99Ms: createTarget, verdict: createVerdict },
        reads: readRows,
        readDetails: reads,
        baseline: { fastifyVersion: ready.fastifyVersion, ...baseline },
        targets: { readP99Ms: readTarget, createP99Ms: createTarget },
        readsFrom: "a server restarted after setup: release cache empty when the read load starts",
        profiles,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${out}`);
  clearTimeout(globalTimer);
}

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err: unknown) => {
    console.error(`bench:api failed: ${(err as Error).stack ?? String(err)}`);
    await cleanup();
    process.exit(1);
  });
