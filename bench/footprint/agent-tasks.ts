// What the agent keeps after running tasks: a real agent (the bundle, the unit's node flags and allocator settings,
// plus --expose-gc for these measurements only) against a real control plane (PGlite) and the project's Docker
// Engine. It is measured idle and after N deploy tasks, then after log-heavy tasks; each point is taken after a rest,
// two full collections and a heap snapshot, and the snapshots are compared by constructor. See docs/performance.md
// ("What the agent keeps after tasks").
//
//   node --conditions=ferry-source --import tsx bench/footprint/agent-tasks.ts [--points 0,10,100,300]
//        [--heavy N (100)] [--targets K (4)] [--rest-seconds S (20)] [--no-snapshots] [--keep] [--entry FILE]
//   node --conditions=ferry-source --import tsx bench/footprint/agent-tasks.ts --diff A.heapsnapshot B.heapsnapshot
//        [--retainers NAME]
//
// Tasks: real deployments over `--targets` docker targets (two busybox httpd images alternated, every task replaces
// a container, an http health check), as bench:footprint runs them. Log-heavy tasks: deployments to targets whose
// container crashes at once after printing long lines, so the Docker driver copies the container's last lines into
// the task log (health.ts, INSTANCE_CRASHED) — the largest task log the driver writes — and the task fails.
//
// Needs the Docker Engine and the registry of scripts/test-env.sh, and the bundle (npm run bundle:agent). Run it
// under the e2e lock. Writes bench-results/agent-tasks-<timestamp>.json (and the snapshots with --keep).
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { buildTestImage, dockerEngine, runDocker } from "../../test/helpers/docker.js";
import { freePort } from "../../test/helpers/net.js";
import { registrySkipReason, startRegistry } from "../../test/helpers/registry.js";
import { exited, ORPHAN_GUARD, spawnTracked, stopChild, superviseBench } from "../fleet/children.js";
import { FerryServer, ROOT } from "../fleet/ferry-server.js";
import { FerryApi, type DeploymentView } from "../deploy/ferry-api.js";
import { agentAllocatorEnv, agentNodeFlags } from "./agent-flags.js";
import { crashingTargetConfig, httpdTargetConfig } from "./task-targets.js";

const log = (msg: string) => process.stderr.write(`[agent-tasks ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

// ---------------------------------------------------------------------------------------------------------------
// heap snapshots: totals by constructor, and who retains a constructor's objects

interface Snapshot {
  nodeFields: string[];
  nodeTypes: string[];
  edgeFields: string[];
  edgeTypes: string[];
  nodes: number[];
  edges: number[];
  strings: string[];
}

function readSnapshot(file: string): Snapshot {
  const s = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
    nodes: number[];
    edges: number[];
    strings: string[];
  };
  const m = s.snapshot.meta;
  return { nodeFields: m.node_fields, nodeTypes: m.node_types[0], edgeFields: m.edge_fields, edgeTypes: m.edge_types[0], nodes: s.nodes, edges: s.edges, strings: s.strings };
}

/** The group a node counts in: an object's constructor, else its type (code, strings, arrays, shapes...). */
function groupOf(type: string, name: string): string {
  if (type === "object" || type === "closure" || type === "native") return `${type}:${name}`;
  if (type === "hidden" || type === "array" || type === "object shape") return `${type}:${name.replace(/\d+/g, "#").slice(0, 60)}`;
  return type;
}

export interface GroupTotals {
  [group: string]: { count: number; bytes: number };
}

export function snapshotTotals(file: string): { total: number; groups: GroupTotals } {
  const s = readSnapshot(file);
  const width = s.nodeFields.length;
  const fType = s.nodeFields.indexOf("type");
  const fName = s.nodeFields.indexOf("name");
  const fSize = s.nodeFields.indexOf("self_size");
  const groups: GroupTotals = {};
  let total = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = s.nodeTypes[s.nodes[i + fType] as number] as string;
    const name = s.strings[s.nodes[i + fName] as number] as string;
    const size = s.nodes[i + fSize] as number;
    const g = groupOf(type, name);
    const e = (groups[g] ??= { count: 0, bytes: 0 });
    e.count += 1;
    e.bytes += size;
    total += size;
  }
  return { total, groups };
}

export function diffTotals(a: { total: number; groups: GroupTotals }, b: { total: number; groups: GroupTotals }, top = 25): string {
  const names = new Set([...Object.keys(a.groups), ...Object.keys(b.groups)]);
  const rows = [...names].map((n) => {
    const x = a.groups[n] ?? { count: 0, bytes: 0 };
    const y = b.groups[n] ?? { count: 0, bytes: 0 };
    return { n, dc: y.count - x.count, db: y.bytes - x.bytes, bytes: y.bytes };
  });
  rows.sort((p, q) => Math.abs(q.db) - Math.abs(p.db));
  const lines = rows.slice(0, top).map((r) => `${(r.db >= 0 ? "+" : "") + (r.db / 1024).toFixed(1).padStart(8)} KB ${(r.dc >= 0 ? "+" : "") + String(r.dc).padStart(7)}  ${r.n}`);
  return [`total ${mb(a.total)} -> ${mb(b.total)} (${((b.total - a.total) / 1024).toFixed(0)} KB)`, ...lines].join("\n");
}

/** For the objects of one group: which (retainer group, edge name) pairs hold them, with counts. */
export function retainers(file: string, group: string, top = 20): string {
  const s = readSnapshot(file);
  const width = s.nodeFields.length;
  const fType = s.nodeFields.indexOf("type");
  const fName = s.nodeFields.indexOf("name");
  const fEdges = s.nodeFields.indexOf("edge_count");
  const eWidth = s.edgeFields.length;
  const eType = s.edgeFields.indexOf("type");
  const eName = s.edgeFields.indexOf("name_or_index");
  const eTo = s.edgeFields.indexOf("to_node");
  const groupAt = (i: number) => groupOf(s.nodeTypes[s.nodes[i + fType] as number] as string, s.strings[s.nodes[i + fName] as number] as string);
  const counts = new Map<string, number>();
  let edge = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const n = s.nodes[i + fEdges] as number;
    for (let k = 0; k < n; k++, edge += eWidth) {
      const to = s.edges[edge + eTo] as number;
      if (groupAt(to) !== group) continue;
      const et = s.edgeTypes[s.edges[edge + eType] as number] as string;
      if (et === "weak") continue;
      const nameOrIndex = s.edges[edge + eName] as number;
      const label = et === "element" || et === "hidden" ? `[${et}]` : String(s.strings[nameOrIndex]);
      const key = `${groupAt(i)} .${label}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, c]) => `${String(c).padStart(7)}  ${k}`).join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// the measured agent

// Answers SIGUSR2: two full collections, process.memoryUsage(), then (when asked) a heap snapshot, named by the label
// written to FERRY_BENCH_SNAPSHOT_DIR/request. Carried only by this tool's agent (it needs --expose-gc).
const PROBE_SOURCE = `
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { writeHeapSnapshot, getHeapSpaceStatistics } from "node:v8";
const dir = process.env.FERRY_BENCH_SNAPSHOT_DIR;
if (dir) {
  process.on("SIGUSR2", () => {
    const label = readFileSync(dir + "/request", "utf8").trim();
    globalThis.gc(); globalThis.gc();
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]));
    // Resident memory now, after the collections and before a snapshot's own allocations.
    const status = readFileSync("/proc/self/status", "utf8");
    const kb = (k) => Number(new RegExp(k + ":[^0-9]*([0-9]+) kB").exec(status)[1]) * 1024;
    const rss = { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile") };
    let snapshot = null;
    if (label.endsWith("+snapshot")) snapshot = writeHeapSnapshot(dir + "/" + label.slice(0, -9) + ".heapsnapshot");
    writeFileSync(dir + "/answer.tmp", JSON.stringify({ label, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, spaces, rss, snapshot }));
    renameSync(dir + "/answer.tmp", dir + "/" + label + ".json");
  });
}
`;
const PROBE = `data:text/javascript,${encodeURIComponent(PROBE_SOURCE)}`;

interface Point {
  label: string;
  tasks: number;
  heavyTasks: number;
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
  heapUsed: number;
  external: number;
  spaces: Record<string, number>;
  snapshot: string | null;
}

async function probe(pid: number, dir: string, label: string, snapshot: boolean): Promise<Omit<Point, "tasks" | "heavyTasks">> {
  writeFileSync(join(dir, "request.tmp"), snapshot ? `${label}+snapshot` : label);
  renameSync(join(dir, "request.tmp"), join(dir, "request"));
  const answer = join(dir, `${snapshot ? `${label}+snapshot` : label}.json`);
  process.kill(pid, "SIGUSR2");
  for (const deadline = Date.now() + 180_000; !existsSync(answer); ) {
    if (Date.now() > deadline) throw new Error(`the agent did not answer the probe ${label}`);
    await sleep(100);
  }
  const a = JSON.parse(readFileSync(answer, "utf8")) as {
    heapUsed: number;
    external: number;
    spaces: Record<string, number>;
    rss: { rss: number; anon: number; file: number };
    snapshot: string | null;
  };
  return {
    label,
    // Read by the probe after the collections and before the snapshot (which allocates tens of MB while it writes).
    rssBytes: a.rss.rss,
    anonBytes: a.rss.anon,
    fileBytes: a.rss.file,
    heapUsed: a.heapUsed,
    external: a.external,
    spaces: a.spaces,
    snapshot: a.snapshot,
  };
}

interface Options {
  points: number[];
  heavy: number;
  targets: number;
  restSeconds: number;
  keep: boolean;
  entry: string;
  /** Heap snapshots at every point, or none (a snapshot leaves the C heap larger for a while: RSS-only runs). */
  snapshots: boolean;
}

function usage(msg: string): never {
  process.stderr.write(`agent-tasks: ${msg}\nusage: agent-tasks.ts [--points 0,10,100,300] [--heavy N] [--targets K] [--rest-seconds S] [--no-snapshots] [--keep] [--entry FILE]\n       agent-tasks.ts --diff A B [--retainers GROUP]\n`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const o: Options = { points: [0, 10, 100, 300], heavy: 100, targets: 4, restSeconds: 20, keep: false, entry: join(ROOT, "installers/dist/ferry-agent/ferry-agent.mjs"), snapshots: true };
  const int = (v: string | undefined, name: string, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > max) usage(`--${name} must be a whole number from 0 to ${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--points") {
      o.points = (argv[++i] ?? "").split(",").map((x) => int(x, "points", 10_000));
      if (o.points.some((p, k) => k > 0 && p <= (o.points[k - 1] as number))) usage("--points must increase");
    } else if (a === "--heavy") o.heavy = int(argv[++i], "heavy", 10_000);
    else if (a === "--targets") o.targets = Math.max(1, int(argv[++i], "targets", 16));
    else if (a === "--rest-seconds") o.restSeconds = int(argv[++i], "rest-seconds", 600);
    else if (a === "--keep") o.keep = true;
    else if (a === "--no-snapshots") o.snapshots = false;
    else if (a === "--entry") o.entry = argv[++i] ?? usage("--entry needs a file");
    else usage(`unexpected argument ${a}`);
  }
  return o;
}

const abortHooks: Array<() => Promise<unknown>> = [];

async function run(o: Options, workDir: string): Promise<void> {
  const engine = await dockerEngine();
  if (!engine.available) throw new Error(engine.reason);
  const regSkip = registrySkipReason();
  if (regSkip) throw new Error(regSkip);
  if (!existsSync(o.entry)) throw new Error(`no agent at ${o.entry}: npm run bundle:agent`);
  const socket = engine.socketPath;
  const started = new Date();
  const load0 = loadavg();
  const reg = await startRegistry();
  abortHooks.push(() => reg.stop());

  const dataDir = join(workDir, "cp");
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const server = await FerryServer.start({ dataDir, heartbeatIntervalMs: 15_000, args: [], timeoutMs: 180_000 });
  abortHooks.push(() => server.stop());
  const api = new FerryApi(server.runtime.api, dataDir);
  const env = "after";
  await api.ensure("/environments", { name: env });

  // enrol and run the agent as installed, plus the probe
  const stateDir = join(workDir, "agent-state");
  const snapDir = join(workDir, "snapshots");
  mkdirSync(snapDir);
  const token = await api.call<{ joinString: string }>("POST", "/join-tokens", { environment: env, uses: 1, ttl: "30m" });
  const enrol = spawnTracked(process.execPath, ["--import", ORPHAN_GUARD, o.entry, "enrol", "--state-dir", stateDir, "--name", "measured"], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json", FERRY_JOIN: token.joinString },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await exited(enrol);
  if (enrol.exitCode !== 0) throw new Error(`ferry-agent enrol exited with ${enrol.exitCode ?? enrol.signalCode}`);
  const out = openSync(join(workDir, "agent.log"), "a");
  const flags = agentNodeFlags();
  const agentStarted = Date.now();
  const agent = spawnTracked(
    process.execPath,
    ["--import", ORPHAN_GUARD, "--import", PROBE, "--expose-gc", ...flags, o.entry, "run", "--state-dir", stateDir, "--docker-socket", socket, "--log-level", "info"],
    { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json", ...agentAllocatorEnv(), FERRY_BENCH_SNAPSHOT_DIR: snapDir }, stdio: ["ignore", out, out] },
  );
  closeSync(out);
  abortHooks.push(() => stopChild(agent, 10_000));
  const pid = agent.pid as number;
  let agentId = "";
  for (const deadline = Date.now() + 90_000; !agentId; await sleep(250)) {
    const r = await api.call<{ agents: { id: string; name: string; status: string; connected: boolean; facts: { drivers?: string[] } }[] }>("GET", `/agents?environment=${env}`);
    agentId = r.agents.find((a) => a.name === "measured" && a.connected && a.status === "online" && a.facts.drivers?.includes("docker"))?.id ?? "";
    if (!agentId && Date.now() > deadline) throw new Error("the agent did not come online");
  }
  log(`agent online (${o.entry.replace(ROOT, "")} with ${flags.join(" ")} --expose-gc); building images`);

  // images, releases, targets
  const suffix = randomBytes(3).toString("hex");
  const repository = `bench-after-${suffix}/web`;
  const port0 = await freePort();
  const v1 = await buildTestImage({ registry: reg.host, repository, tag: "1", version: "web 1", port: port0, socketPath: socket });
  const v2 = await buildTestImage({ registry: reg.host, repository, tag: "2", version: "web 2", port: port0, socketPath: socket });
  const containers: string[] = [];
  abortHooks.push(async () => {
    if (containers.length) await runDocker(socket, ["rm", "-f", ...containers]).catch(() => "");
    for (const img of [v1.pinned, v2.pinned]) await runDocker(socket, ["rmi", "-f", img]).catch(() => "");
  });
  await api.ensure("/components", { name: "web", repository: `${reg.host}/${repository}` });
  const r1 = await api.call<{ id: string }>("POST", "/releases", { name: "after-web", version: "1", components: { web: ":1" } });
  const r2 = await api.call<{ id: string }>("POST", "/releases", { name: "after-web", version: "2", components: { web: ":2" } });
  const targets: string[] = [];
  const heavyTargets: string[] = [];
  for (let i = 0; i < o.targets; i++) {
    const port = await freePort();
    const name = `ferry-after-${suffix}-${i}`;
    containers.push(name, `${name}-crash`);
    await api.call("POST", `/environments/${env}/targets`, {
      name: `web-${i}`,
      kind: "docker",
      agentId,
      config: httpdTargetConfig(name, port),
    });
    targets.push(`web-${i}`);
    const crashPort = await freePort();
    await api.call("POST", `/environments/${env}/targets`, {
      name: `crash-${i}`,
      kind: "docker",
      agentId,
      config: crashingTargetConfig(`${name}-crash`, crashPort),
    });
    heavyTargets.push(`crash-${i}`);
  }

  const stats = { tasks: 0, heavy: 0, outcomes: {} as Record<string, number>, logBytes: 0, heavyLogBytes: 0, seconds: 0 };
  const rounds = new Map<string, number>();
  const deployAll = async (list: string[], count: number, heavy: boolean) => {
    let next = 0;
    const t0 = Date.now();
    await Promise.all(
      list.map(async (target) => {
        while (next < count) {
          next += 1;
          const round = rounds.get(target) ?? 0;
          rounds.set(target, round + 1);
          const d = await api.call<DeploymentView>("POST", "/deployments", { release: round % 2 === 0 ? r1.id : r2.id, environment: env, targets: [target] });
          for (const deadline = Date.now() + 180_000; ; await sleep(50)) {
            const v = await api.call<DeploymentView>("GET", `/deployments/${d.id}`);
            const task = v.tasks[0];
            if (task && ["succeeded", "failed", "errored", "expired", "cancelled"].includes(task.state)) {
              const key = `${task.state} ${task.code ?? ""}`.trim();
              stats.outcomes[key] = (stats.outcomes[key] ?? 0) + 1;
              if (heavy) {
                stats.heavy += 1;
                stats.heavyLogBytes += task.logBytes;
              } else {
                stats.tasks += 1;
                stats.logBytes += task.logBytes;
              }
              break;
            }
            if (Date.now() > deadline) throw new Error(`deployment ${d.id} on ${target} did not finish (${task?.state})`);
          }
        }
      }),
    );
    stats.seconds += (Date.now() - t0) / 1000;
  };

  const points: Point[] = [];
  const measure = async (label: string) => {
    await sleep(o.restSeconds * 1000);
    const p = await probe(pid, snapDir, label, o.snapshots);
    points.push({ ...p, tasks: stats.tasks, heavyTasks: stats.heavy });
    log(`${label}: RSS ${mb(p.rssBytes)} (anon ${mb(p.anonBytes)}, file ${mb(p.fileBytes)}), heap used ${mb(p.heapUsed)}, external ${mb(p.external)}; ${JSON.stringify(stats.outcomes)}`);
  };
  // Idle: at least 60 s after the start, as bench:footprint's idle window ends.
  await sleep(agentStarted + 60_000 - Date.now());
  let done = 0;
  for (const n of o.points) {
    if (n > done) await deployAll(targets, n - done, false);
    done = n;
    await measure(`tasks-${n}`);
  }
  if (o.heavy > 0) {
    await deployAll(heavyTargets, o.heavy, true);
    await measure(`heavy-${o.heavy}`);
    // and normal tasks again after them: what the heavy ones left once the agent is back to its usual work
    await deployAll(targets, Math.min(50, done || 50), false);
    await measure(`heavy-${o.heavy}-then-tasks`);
  }
  await stopChild(agent, 10_000);

  const diffs: Record<string, string> = {};
  const totals = points.map((p) => (p.snapshot ? snapshotTotals(p.snapshot) : null));
  for (let k = 1; k < points.length; k++) {
    const a = totals[k - 1];
    const b = totals[k];
    if (a && b) diffs[`${points[k - 1]?.label} -> ${points[k]?.label}`] = diffTotals(a, b);
  }
  if (totals[0] && totals[points.length - 1]) diffs[`${points[0]?.label} -> ${points[points.length - 1]?.label}`] = diffTotals(totals[0], totals[points.length - 1] as NonNullable<(typeof totals)[number]>);
  const resultsDir = join(ROOT, "bench-results");
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `agent-tasks-${started.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ bench: "agent-tasks", startedAt: started.toISOString(), finishedAt: new Date().toISOString(), loadAverage: [load0, loadavg()], options: o, nodeFlags: [...flags, "--expose-gc"], stats, points, diffs }, null, 2)}\n`);
  process.stdout.write(
    `\n${["point", "tasks", "heavy", "RSS", "anon", "file", "heap used", "external"].join("\t")}\n` +
      points.map((p) => [p.label, p.tasks, p.heavyTasks, mb(p.rssBytes), mb(p.anonBytes), mb(p.fileBytes), mb(p.heapUsed), mb(p.external)].join("\t")).join("\n") +
      `\n\ntasks: ${stats.tasks} (${stats.logBytes.toLocaleString("en")} log bytes), log-heavy: ${stats.heavy} (${stats.heavyLogBytes.toLocaleString("en")} log bytes), ${JSON.stringify(stats.outcomes)}, ${stats.seconds.toFixed(0)} s\n\n` +
      Object.entries(diffs).map(([k, v]) => `== ${k}\n${v}`).join("\n\n") +
      `\n\nresults: ${file}${o.keep ? `; snapshots in ${snapDir}` : ""}\n`,
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === "--diff") {
    const [a, b] = [argv[1], argv[2]];
    if (!a || !b || !existsSync(a) || !existsSync(b) || !statSync(a).isFile()) usage("--diff needs two snapshot files");
    process.stdout.write(`${diffTotals(snapshotTotals(a), snapshotTotals(b), 40)}\n`);
    if (argv[3] === "--retainers" && argv[4]) process.stdout.write(`\nretainers of ${argv[4]} in ${b}:\n${retainers(b, argv[4])}\n`);
    return;
  }
  const o = parseOptions(argv);
  const workDir = mkdtempSync(join(tmpdir(), "ferry-agent-tasks-"));
  await superviseBench(
    {
      timeoutMs: 60 * 60_000,
      log,
      cleanups: [
        async () => {
          for (const hook of abortHooks.splice(0).reverse()) await hook().catch(() => null);
        },
        () => {
          if (o.keep) log(`kept ${workDir}`);
          else rmSync(workDir, { recursive: true, force: true });
        },
      ],
    },
    () => run(o, workDir),
  );
}

void main();
