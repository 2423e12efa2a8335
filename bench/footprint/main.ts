// `npm run bench:footprint` — resident memory of the control plane and the agent, idle and after load, beside a bare
// node process, in one run. See docs/performance.md ("Footprint").
//
//   npm run bench:footprint                  10,000 deploys on the control plane, 1,000 real agent tasks and 1,000
//                                            log-heavy ones
//   npm run bench:footprint -- --quick       1,000 deploys, 100 agent tasks, 100 log-heavy ones
//   other flags: --deploys N, --tasks N, --heavy-tasks N, --targets K (4), --sim-agents N (50), --heartbeat-ms MS (250),
//                --database-url URL (PostgreSQL side; default FERRY_TEST_DATABASE_URL, else the local test server),
//                --no-postgres, --agent bundle|bin (bundle), --gateway-targets N (100; 0: none), --keep, --timeout-minutes M,
//                --agent-flags "FLAGS" (node flags for the agents instead of the unit's, to compare; "" for none)
//
// What runs, all on 127.0.0.1, every process with the same memory-report preload (memory.ts):
// 1. At once: a bare `node` (an empty interval timer); `ferry server` on PGlite in a new data directory (a first
//    start, as `npm start` meets it); `ferry server` on a new PostgreSQL database. One real agent is enrolled with
//    each through its CLI (`ferry-agent enrol`) and run (`ferry-agent run`, the Docker driver on the project's test
//    engine) with the node flags of installers/linux/ferry-agent.service.
//    Beside them, a gateway agent (gateway.ts) with the ECS and Nomad drivers and no Docker one, enrolled with the
//    PGlite control plane, serving `--gateway-targets` ECS services and as many Nomad jobs (the project's fakes).
// 2. Idle: each process is sampled every 5 s from 40 to 60 s after it started (and at least 15 s after its agent
//    came online); the largest RSS in the window is the figure judged. Then the gateway agent deploys a release to
//    every one of its targets, rests 45 s and is sampled for 10 s ("after deploys").
// 3. The PostgreSQL server and its agent stop. The PGlite server restarts on its data directory with a 250 ms
//    heartbeat interval (the agent reconnects by itself), and two loads run together:
//    - the real agent runs `--tasks` real deployments over `--targets` docker targets (two busybox httpd images
//      alternated, so every task replaces a container, with an http health check), each through the whole path:
//      API, signing, dispatch, signature and digest checks, journal, log spool, Docker, sticker, result; and beside
//      them `--heavy-tasks` log-heavy ones over as many other targets: a container that prints long lines and
//      crashes at start, so the driver copies its last lines into the task log (the largest log a Docker task
//      writes) and the task fails with INSTANCE_CRASHED;
//    - `--sim-agents` simulated agents (bench/deploy/dispatch-agents.ts: real mTLS streams, signature checks, instant
//      success) take `--deploys` deployments, and heartbeat every `--heartbeat-ms` with the real agent: the heartbeats
//      the control plane ingests are printed in agent-days (5,760 heartbeats = one agent for a day at 15 s).
// 4. The loads run in two stages, each followed by a rest (the simulated agents disconnected) and a sample window:
//    "warm" after a tenth of them (45 s rest, 10 s window), "after" at the end (60 s rest, 20 s window). "After" must
//    be within 10 % of the idle figure; "after vs warm" is what the bulk of the load left behind.
//
// Prints a table with PASS/MISS per target and writes bench-results/footprint-<timestamp>.json. Exit status 0
// whenever the bench ran, non-zero only when it could not run.
import { execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildTestImage, dockerEngine, runDocker } from "../../test/helpers/docker.js";
import { freePort } from "../../test/helpers/net.js";
import { createDatabase } from "../../test/helpers/postgres.js";
import { pushImage, registrySkipReason, startRegistry, type TestRegistry } from "../../test/helpers/registry.js";
import { exited, forkBench, ORPHAN_GUARD, spawnTracked, stopChild, superviseBench } from "../fleet/children.js";
import { FerryServer, ROOT } from "../fleet/ferry-server.js";
import { Rpc } from "../fleet/ipc.js";
import type { AgentsCommands } from "../deploy/ipc.js";
import { ApiError, FerryApi, type DeploymentView } from "../deploy/ferry-api.js";
import { agentAllocatorEnv, agentNodeFlags } from "./agent-flags.js";
import { crashingTargetConfig, httpdTargetConfig } from "./task-targets.js";
import { startGateway, type Gateway } from "./gateway.js";
import { MEMORY_REPORTER, mib, window, type MemorySample } from "./memory.js";

const AGENT_BUNDLE = join(ROOT, "installers/dist/ferry-agent/ferry-agent.mjs");
const AGENT_BIN = join(ROOT, "agent/bin/ferry-agent.js");
const IDLE_FROM_MS = 40_000;
const IDLE_TO_MS = 60_000;
const TARGET_CP_IDLE = 250 * 1048576;
const TARGET_AGENT_IDLE = 50 * 1048576;
const GROWTH_LIMIT = 1.1;
// How long one agent task may take before the bench gives up. Generous: with a 250 ms heartbeat the agent treats
// 750 ms of silence as a dead stream, and on a loaded machine the control plane under the simulated fleet's load can
// miss that; the agent then reconnects with backoff (up to 30 s a try) and its tasks wait. This bench measures memory,
// not latency.
const TASK_DEADLINE_MS = 600_000;
const HEARTBEATS_PER_DAY = 86_400 / 15;

interface Options {
  quick: boolean;
  deploys: number;
  tasks: number;
  heavyTasks: number;
  targets: number;
  simAgents: number;
  heartbeatMs: number;
  databaseUrl: string | null;
  agent: "bundle" | "bin";
  keep: boolean;
  timeoutMinutes: number;
  gatewayTargets: number;
  /** Node flags for the agents; null: the systemd unit's. */
  agentFlags: string[] | null;
}

function usage(msg: string): never {
  process.stderr.write(
    `bench:footprint: ${msg}\nusage: npm run bench:footprint -- [--quick] [--deploys N] [--tasks N] [--heavy-tasks N] [--targets K] [--sim-agents N] [--heartbeat-ms MS] ` +
      `[--database-url URL | --no-postgres] [--agent bundle|bin] [--gateway-targets N] [--agent-flags FLAGS] [--keep] [--timeout-minutes M]\n`,
  );
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const withValue = ["deploys", "tasks", "heavy-tasks", "targets", "sim-agents", "heartbeat-ms", "database-url", "agent", "timeout-minutes", "gateway-targets", "agent-flags"];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("--")) usage(`unexpected argument ${a}`);
    // --flag=value: the value is everything after the first "=" (node flags carry their own).
    const eq = a.indexOf("=");
    const [k, v] = eq < 0 ? [a.slice(2), undefined] : [a.slice(2, eq), a.slice(eq + 1)];
    if (v !== undefined) flags.set(k, v);
    else if (withValue.includes(k)) {
      const next = argv[++i];
      if (next === undefined) usage(`--${k} needs a value`);
      flags.set(k, next);
    } else flags.set(k, true);
  }
  for (const k of flags.keys()) if (![...withValue, "quick", "no-postgres", "keep"].includes(k)) usage(`unknown flag --${k}`);
  const num = (k: string, def: number, min: number, max: number): number => {
    const v = flags.get(k);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) usage(`--${k} must be a whole number from ${min} to ${max}`);
    return n;
  };
  const quick = flags.has("quick");
  const agent = flags.get("agent") ?? "bundle";
  if (agent !== "bundle" && agent !== "bin") usage("--agent takes bundle or bin");
  const db = flags.get("database-url");
  if (db !== undefined && flags.has("no-postgres")) usage("--database-url and --no-postgres exclude each other");
  return {
    quick,
    deploys: num("deploys", quick ? 1000 : 10_000, 0, 100_000),
    tasks: num("tasks", quick ? 100 : 1000, 0, 10_000),
    heavyTasks: num("heavy-tasks", quick ? 100 : 1000, 0, 10_000),
    targets: num("targets", 4, 1, 16),
    simAgents: num("sim-agents", 50, 1, 500),
    heartbeatMs: num("heartbeat-ms", 250, 100, 60_000),
    databaseUrl: flags.has("no-postgres") ? null : typeof db === "string" ? db : (process.env["FERRY_TEST_DATABASE_URL"] ?? "postgresql://postgres@127.0.0.1:5432/test"),
    agent,
    keep: flags.has("keep"),
    timeoutMinutes: num("timeout-minutes", quick ? 25 : 75, 1, 600),
    gatewayTargets: num("gateway-targets", 100, 0, 1000),
    agentFlags: typeof flags.get("agent-flags") === "string" ? (flags.get("agent-flags") as string).split(/\s+/).filter(Boolean) : null,
  };
}

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** One measured process: its pid, when it started, and where its preload writes the heap figures. */
interface Measured {
  name: string;
  pid: number;
  startedAt: number;
  reportFile: string;
}

function reporterEnv(file: string): Record<string, string> {
  return { FERRY_BENCH_MEMORY_FILE: file };
}

async function idleWindow(m: Measured, notBefore = 0): Promise<{ samples: MemorySample[]; peak: MemorySample }> {
  const from = Math.max(IDLE_FROM_MS, notBefore - m.startedAt);
  return window(m.pid, m.reportFile, m.startedAt, from, from + (IDLE_TO_MS - IDLE_FROM_MS));
}

async function startServer(dir: string, name: string, args: string[], heartbeatMs: number): Promise<{ server: FerryServer; m: Measured }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const reportFile = join(dir, `..`, `${name}.memory.json`);
  const startedAt = Date.now();
  const server = await FerryServer.start({ dataDir: dir, heartbeatIntervalMs: heartbeatMs, args, nodeArgs: ["--import", MEMORY_REPORTER], env: reporterEnv(reportFile), timeoutMs: 180_000 });
  return { server, m: { name, pid: server.pid, startedAt, reportFile } };
}

interface AgentProc {
  child: ChildProcess;
  m: Measured;
  id: string;
}

/** How an agent is run: its `ferry-agent run` arguments, extra environment, and the drivers it must come online with. */
interface AgentRun {
  args: string[];
  env?: Record<string, string>;
  drivers: string[];
}

const dockerAgent = (socket: string): AgentRun => ({ args: ["--docker-socket", socket], drivers: ["docker"] });

async function enrolAndRun(o: Options, api: FerryApi, environment: string, workDir: string, name: string, how: AgentRun): Promise<AgentProc> {
  const entry = o.agent === "bundle" ? AGENT_BUNDLE : AGENT_BIN;
  const stateDir = join(workDir, `${name}-state`);
  const token = await api.call<{ joinString: string }>("POST", "/join-tokens", { environment, uses: 1, ttl: "30m" });
  const enrol = spawnTracked(process.execPath, ["--import", ORPHAN_GUARD, entry, "enrol", "--state-dir", stateDir, "--name", name], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json", FERRY_JOIN: token.joinString },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await exited(enrol);
  if (enrol.exitCode !== 0) throw new Error(`ferry-agent enrol (${name}) exited with ${enrol.exitCode ?? enrol.signalCode}`);
  const reportFile = join(workDir, `${name}.memory.json`);
  const out = openSync(join(workDir, `${name}.log`), "a");
  const startedAt = Date.now();
  const child = spawnTracked(
    process.execPath,
    ["--import", ORPHAN_GUARD, "--import", MEMORY_REPORTER, ...(o.agentFlags ?? agentNodeFlags()), entry, "run", "--state-dir", stateDir, ...how.args, "--log-level", "info"],
    { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json", ...agentAllocatorEnv(), ...how.env, ...reporterEnv(reportFile) }, stdio: ["ignore", out, out] },
  );
  closeSync(out);
  const id = await waitOnline(api, environment, name, 90_000, 0, how.drivers);
  return { child, m: { name, pid: child.pid as number, startedAt, reportFile }, id };
}

/** Until the agent is online with the drivers named and, when `since` is given, has heartbeated after it. */
async function waitOnline(api: FerryApi, environment: string, name: string, timeoutMs: number, since = 0, drivers = ["docker"]): Promise<string> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const r = await api.call<{ agents: { id: string; name: string; status: string; connected: boolean; lastHeartbeatAt: string | null; facts: { drivers?: string[] } }[] }>(
      "GET",
      `/agents?environment=${environment}`,
    );
    const a = r.agents.find(
      (x) => x.name === name && x.status === "online" && x.connected && drivers.every((d) => x.facts.drivers?.includes(d)) && Date.parse(x.lastHeartbeatAt ?? "") > since,
    );
    if (a) return a.id;
    if (Date.now() > deadline) throw new Error(`agent ${name} did not come online with the ${drivers.join(" and ")} driver(s) within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

/** CPU time (user + system) a process has used so far, from /proc/PID/stat; clock ticks are 100 a second on Linux. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// loads

interface AgentLoad {
  tasks: number;
  succeeded: number;
  failed: Record<string, number>;
  logBytes: number;
  /** Log-heavy tasks (they fail by design: INSTANCE_CRASHED) and their log. */
  heavy: { tasks: number; outcomes: Record<string, number>; logBytes: number };
  seconds: number;
}

interface Load<S> {
  /** Runs until `upTo` units in all have been done (the same instance carries on from where it stopped). */
  run(upTo: number): Promise<void>;
  stats: S;
  /** Quiets the load between runs (the simulated agents disconnect) and brings it back. */
  pause(): Promise<void>;
  resume(): Promise<void>;
}

/**
 * Real deployments through the real agent, `o.targets` at a time, alternating two releases per target; and as many
 * log-heavy tasks at a time beside them (`o.heavyTasks` in all, in the same proportion at every stage).
 */
async function agentTasks(o: Options, api: FerryApi, env: string, agentId: string, reg: TestRegistry, socket: string, onAbort: (fn: () => Promise<unknown>) => void): Promise<Load<AgentLoad>> {
  const suffix = randomBytes(3).toString("hex");
  const repository = `bench-footprint-${suffix}/web`;
  const port0 = await freePort();
  const v1 = await buildTestImage({ registry: reg.host, repository, tag: "1", version: "web 1", port: port0, socketPath: socket });
  const v2 = await buildTestImage({ registry: reg.host, repository, tag: "2", version: "web 2", port: port0, socketPath: socket });
  const containers: string[] = [];
  onAbort(async () => {
    if (containers.length) await runDocker(socket, ["rm", "-f", ...containers]).catch(() => "");
    for (const img of [v1.pinned, v2.pinned]) await runDocker(socket, ["rmi", "-f", img]).catch(() => "");
  });
  await api.ensure("/components", { name: "web", repository: `${reg.host}/${repository}` });
  const r1 = await api.call<{ id: string }>("POST", "/releases", { name: "footprint-web", version: "1", components: { web: ":1" } });
  const r2 = await api.call<{ id: string }>("POST", "/releases", { name: "footprint-web", version: "2", components: { web: ":2" } });
  const targets: string[] = [];
  const heavyTargets: string[] = [];
  for (let i = 0; i < o.targets; i++) {
    // One image for every target; each container serves its own loopback port (host networking).
    const port = await freePort();
    const container = `ferry-footprint-${suffix}-${i}`;
    containers.push(container, `${container}-crash`);
    if (o.heavyTasks > 0) {
      const crashPort = await freePort();
      await api.call("POST", `/environments/${env}/targets`, {
        name: `crash-${i}`,
        kind: "docker",
        agentId,
        config: crashingTargetConfig(`${container}-crash`, crashPort),
      });
      heavyTargets.push(`crash-${i}`);
    }
    await api.call("POST", `/environments/${env}/targets`, {
      name: `web-${i}`,
      kind: "docker",
      agentId,
      config: httpdTargetConfig(container, port),
    });
    targets.push(`web-${i}`);
  }
  const out: AgentLoad = { tasks: 0, succeeded: 0, failed: {}, logBytes: 0, heavy: { tasks: 0, outcomes: {}, logBytes: 0 }, seconds: 0 };
  let next = 0;
  let nextHeavy = 0;
  const rounds = new Map<string, number>();
  const run = async (upTo: number): Promise<void> => {
    const t0 = Date.now();
    const heavyUpTo = o.tasks === 0 ? 0 : Math.ceil((o.heavyTasks * upTo) / o.tasks);
    await Promise.all([
      ...heavyTargets.map(async (target) => {
        while (nextHeavy < heavyUpTo) {
          nextHeavy += 1;
          const round = rounds.get(target) ?? 0;
          rounds.set(target, round + 1);
          const d = await api.call<DeploymentView>("POST", "/deployments", { release: round % 2 === 0 ? r1.id : r2.id, environment: env, targets: [target] });
          for (const deadline = Date.now() + TASK_DEADLINE_MS; ; await sleep(50)) {
            const task = (await api.call<DeploymentView>("GET", `/deployments/${d.id}`)).tasks[0];
            if (task && ["succeeded", "failed", "errored", "expired", "cancelled"].includes(task.state)) {
              const key = `${task.state} ${task.code ?? ""}`.trim();
              out.heavy.tasks += 1;
              out.heavy.logBytes += task.logBytes;
              out.heavy.outcomes[key] = (out.heavy.outcomes[key] ?? 0) + 1;
              break;
            }
            if (Date.now() > deadline) throw new Error(`deployment ${d.id} on ${target} did not finish within ${TASK_DEADLINE_MS / 1000} s (${task?.state})`);
          }
          if (out.heavy.tasks % 100 === 0) log(`agent: ${out.heavy.tasks}/${o.heavyTasks} log-heavy tasks ${JSON.stringify(out.heavy.outcomes)}`);
        }
      }),
      ...targets.map(async (target) => {
        for (;;) {
          if (next >= upTo) return;
          next += 1;
          const round = rounds.get(target) ?? 0;
          rounds.set(target, round + 1);
          const d = await api.call<DeploymentView>("POST", "/deployments", { release: round % 2 === 0 ? r1.id : r2.id, environment: env, targets: [target] });
          for (const deadline = Date.now() + TASK_DEADLINE_MS; ; ) {
            const v = await api.call<DeploymentView>("GET", `/deployments/${d.id}`);
            const task = v.tasks[0];
            if (task && ["succeeded", "failed", "errored", "expired", "cancelled"].includes(task.state)) {
              out.tasks += 1;
              out.logBytes += task.logBytes;
              if (task.state === "succeeded") out.succeeded += 1;
              else out.failed[`${task.state} ${task.code ?? ""}`.trim()] = (out.failed[`${task.state} ${task.code ?? ""}`.trim()] ?? 0) + 1;
              break;
            }
            if (Date.now() > deadline) throw new Error(`deployment ${d.id} on ${target} did not finish within ${TASK_DEADLINE_MS / 1000} s (${task?.state})`);
            await sleep(50);
          }
          if (out.tasks % 100 === 0) log(`agent: ${out.tasks}/${o.tasks} tasks (${out.succeeded} succeeded)`);
        }
      }),
    ]);
    out.seconds += (Date.now() - t0) / 1000;
  };
  return { run, stats: out, pause: async () => {}, resume: async () => {} };
}

interface FleetLoad {
  deploys: number;
  agents: number;
  heartbeats: number;
  seconds: number;
  unfinished: number;
  targetBusyRetries: number;
}

/** Deployments to simulated agents that report success at once, 8 requests in flight. */
async function fleetDeploys(o: Options, server: FerryServer, api: FerryApi, reg: TestRegistry, fleet: Rpc<AgentsCommands>): Promise<Load<FleetLoad>> {
  const env = "bench"; // FerryServer.joinToken's environment
  await api.ensure("/environments", { name: env });
  await pushImage(reg, "bench-footprint/sim", "1"); // the simulated agents never pull it; the release must resolve
  await api.ensure("/components", { name: "sim", repository: `${reg.host}/bench-footprint/sim` });
  const rel = await api.call<{ id: string }>("POST", "/releases", { name: "footprint-sim", version: "1", components: { sim: ":1" } });
  const enrolled = await fleet.call("enrol", { caPem: server.caPem, enrolPort: server.runtime.enrolPort, joinToken: await server.joinToken(o.simAgents), count: o.simAgents, firstIndex: 0, concurrency: 8 });
  if (enrolled.identities.length < o.simAgents) throw new Error(`only ${enrolled.identities.length} of ${o.simAgents} simulated agents enrolled ${JSON.stringify(enrolled.failures)}`);
  const connect = async () => {
    await fleet.call("target", { mode: "ferry", port: server.runtime.agentPort, caPem: server.caPem, heartbeatEveryMs: o.heartbeatMs });
    const conn = await fleet.call("connect", { concurrency: 16, timeoutMs: 60_000 });
    if (conn.up < o.simAgents) throw new Error(`only ${conn.up} of ${o.simAgents} simulated agents connected ${JSON.stringify(conn.failures)}`);
  };
  await connect();
  const targets: string[] = [];
  for (const a of enrolled.identities) {
    await api.call("POST", `/environments/${env}/targets`, { name: `sim-${a.gi}`, kind: "docker", agentId: a.id, config: { container: `sim-${a.gi}`, component: "sim" } });
    targets.push(`sim-${a.gi}`);
  }
  const stats: FleetLoad = { deploys: 0, agents: o.simAgents, heartbeats: 0, seconds: 0, unfinished: 0, targetBusyRetries: 0 };
  const hb0 = (await fleet.call("status", {})).heartbeatsSent;
  let next = 0;
  let busy = 0;
  const run = async (upTo: number): Promise<void> => {
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < upTo) {
          const i = next++;
          // A target takes one deployment at a time; with targets in turn that only happens when the previous one's
          // result is still being written: wait a little and ask again.
          for (let attempt = 1; ; attempt++) {
            try {
              await api.call("POST", "/deployments", { release: rel.id, environment: env, targets: [targets[i % targets.length]] });
              break;
            } catch (err) {
              if (!(err instanceof ApiError && err.code === "DEPLOYMENT_IN_PROGRESS") || attempt >= 1500) throw err;
              busy += 1;
              await sleep(20);
            }
          }
          if ((i + 1) % 1000 === 0) {
            log(`control plane: ${i + 1}/${o.deploys} deployments`);
            await fleet.call("collect", {}); // the simulated agents keep what they saw until collected
          }
        }
      }),
    );
    await sleep(3000);
    let unfinished = 0;
    for (const state of ["queued", "running"]) {
      const r = await api.call<{ deployments: unknown[] }>("GET", `/deployments?environment=${env}&state=${state}&limit=200`);
      unfinished += r.deployments.length;
    }
    await fleet.call("collect", {});
    Object.assign(stats, { deploys: next, heartbeats: (await fleet.call("status", {})).heartbeatsSent - hb0, seconds: stats.seconds + (Date.now() - t0) / 1000, unfinished, targetBusyRetries: busy });
  };
  return {
    run,
    stats,
    pause: async () => {
      await fleet.call("drop", {});
    },
    resume: connect,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// report

interface Row {
  what: string;
  rss: number | null;
  anon: number | null;
  file: number | null;
  heap: number | null;
  wasm: number | null;
  target: string;
  verdict: boolean | null;
}

function row(what: string, s: MemorySample | null, target = "", verdict: boolean | null = null): Row {
  return { what, rss: s?.rssBytes ?? null, anon: s?.anonBytes ?? null, file: s?.fileBytes ?? null, heap: s?.heapUsedBytes ?? null, wasm: s ? s.wasmBytes : null, target, verdict };
}

function table(rows: Row[]): string {
  const head = ["", "RSS", "anon", "file", "heap used", "wasm memory", "target", ""];
  const cells = rows.map((r) => [r.what, mib(r.rss), mib(r.anon), mib(r.file), mib(r.heap), mib(r.wasm), r.target, r.verdict === null ? "" : r.verdict ? "PASS" : "MISS"]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => c.map((x, i) => (i >= 1 && i <= 5 ? x.padStart(widths[i] as number) : x.padEnd(widths[i] as number))).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// main

const abortHooks: Array<() => Promise<unknown>> = [];

async function run(o: Options, workDir: string): Promise<void> {
  const started = new Date();
  const load0 = loadavg();
  const engine = await dockerEngine();
  if (!engine.available) throw new Error(engine.reason);
  const regSkip = registrySkipReason();
  if (regSkip) throw new Error(regSkip);
  if (o.agent === "bundle" && !existsSync(AGENT_BUNDLE)) throw new Error(`no agent bundle at ${AGENT_BUNDLE}: npm run bundle:agent`);
  const socket = engine.socketPath;
  const flags = o.agentFlags ?? agentNodeFlags();
  log(`agent: ${o.agent === "bundle" ? "installers/dist/ferry-agent/ferry-agent.mjs" : "agent/bin/ferry-agent.js"} with ${flags.join(" ")} ${Object.entries(agentAllocatorEnv()).map(([k, v]) => `${k}=${v}`).join(" ")}; Docker Engine ${socket}; load average ${load0.map((l) => l.toFixed(2)).join(" ")}`);

  const reg = await startRegistry();
  abortHooks.push(() => reg.stop());
  let pgDb: { url: string; drop: () => Promise<void> } | null = null;
  if (o.databaseUrl) {
    try {
      pgDb = await createDatabase(o.databaseUrl);
      abortHooks.push(() => pgDb!.drop());
    } catch (err) {
      log(`PostgreSQL at ${o.databaseUrl} is not usable (${(err as Error).message}); the PostgreSQL side is not measured`);
    }
  }

  // ---- 1. bare node, both control planes, an agent each
  const bareFile = join(workDir, "bare-node.memory.json");
  const bareStarted = Date.now();
  const bare = spawnTracked(process.execPath, ["--import", ORPHAN_GUARD, "--import", MEMORY_REPORTER, "-e", "setInterval(() => {}, 1000)"], {
    env: { ...process.env, NODE_OPTIONS: "", ...reporterEnv(bareFile) },
    stdio: "ignore",
  });
  const bareM: Measured = { name: "bare node", pid: bare.pid as number, startedAt: bareStarted, reportFile: bareFile };
  const bareAgentFile = join(workDir, "bare-node-agent-flags.memory.json");
  const bareAgent = spawnTracked(process.execPath, ["--import", ORPHAN_GUARD, "--import", MEMORY_REPORTER, ...flags, "-e", "setInterval(() => {}, 1000)"], {
    env: { ...process.env, NODE_OPTIONS: "", ...agentAllocatorEnv(), ...reporterEnv(bareAgentFile) },
    stdio: "ignore",
  });
  const bareAgentM: Measured = { name: "bare node, agent flags", pid: bareAgent.pid as number, startedAt: Date.now(), reportFile: bareAgentFile };

  const pgliteDir = join(workDir, "pglite-cp");
  const [lite, pgSide] = await Promise.all([
    startServer(pgliteDir, "cp-pglite", [], 15_000),
    pgDb ? startServer(join(workDir, "postgres-cp"), "cp-postgres", ["--database-url", pgDb.url], 15_000) : Promise.resolve(null),
  ]);
  let liteServer: FerryServer = lite.server;
  log(`control planes up: PGlite in ${((Date.now() - lite.m.startedAt) / 1000).toFixed(1)} s${pgSide ? `, PostgreSQL in ${((Date.now() - pgSide.m.startedAt) / 1000).toFixed(1)} s` : ""}`);
  const liteApi = new FerryApi(liteServer.runtime.api, pgliteDir);
  await liteApi.ensure("/environments", { name: "footprint" });
  const agentA = await enrolAndRun(o, liteApi, "footprint", workDir, "agent-pglite", dockerAgent(socket));
  let agentB: AgentProc | null = null;
  if (pgSide) {
    const pgApi = new FerryApi(pgSide.server.runtime.api, join(workDir, "postgres-cp"));
    await pgApi.ensure("/environments", { name: "footprint" });
    agentB = await enrolAndRun(o, pgApi, "footprint", workDir, "agent-postgres", dockerAgent(socket));
  }

  const onlineAt = Date.now();
  log("agents online; idle windows (40–60 s after each start)");

  // ---- 2. idle
  const [bareIdle, bareAgentIdle, liteIdle, pgIdle, agentIdle, agentBIdle] = await Promise.all([
    idleWindow(bareM),
    idleWindow(bareAgentM),
    idleWindow(lite.m, onlineAt + 15_000),
    pgSide ? idleWindow(pgSide.m, onlineAt + 15_000) : Promise.resolve(null),
    idleWindow(agentA.m),
    agentB ? idleWindow(agentB.m) : Promise.resolve(null),
  ]);
  log(`idle: PGlite ${mib(liteIdle.peak.rssBytes)}, PostgreSQL ${mib(pgIdle?.peak.rssBytes ?? null)}, agent ${mib(agentIdle.peak.rssBytes)}, bare node ${mib(bareIdle.peak.rssBytes)}`);
  await stopChild(bare, 2000);
  await stopChild(bareAgent, 2000);
  if (agentB) await stopChild(agentB.child, 10_000);
  if (pgSide) await pgSide.server.stop();

  // ---- the gateway agent, alone beside the PGlite control plane and the first agent (so it changes no figure above):
  // idle with its targets configured, then a deploy to every target, a rest and a sample
  let gatewayIdle: { samples: MemorySample[]; peak: MemorySample } | null = null;
  let gatewayDeploys: (Awaited<ReturnType<Gateway["deployAll"]>> & { cpuSeconds: number }) | null = null;
  let gatewayAfter: { samples: MemorySample[]; peak: MemorySample } | null = null;
  if (o.gatewayTargets > 0) {
    const gw = await startGateway(liteApi, reg, "footprint", o.gatewayTargets, workDir);
    abortHooks.push(() => gw.close());
    const agent = await enrolAndRun(o, liteApi, "footprint", workDir, "agent-gateway", { args: gw.runArgs, env: gw.env, drivers: ["ecs", "nomad"] });
    await gw.addTargets(agent.id);
    const gateway = { gw, agent };
    gatewayIdle = await idleWindow(agent.m);
    log(`gateway agent idle ${mib(gatewayIdle.peak.rssBytes)}; deploying to its ${2 * o.gatewayTargets} targets`);
    const cpu0 = cpuSeconds(agent.m.pid);
    gatewayDeploys = { ...(await gateway.gw.deployAll("2", 16)), cpuSeconds: 0 };
    gatewayDeploys.cpuSeconds = cpuSeconds(agent.m.pid) - cpu0;
    log(`gateway: ${gatewayDeploys.deploys} deploys in ${gatewayDeploys.seconds.toFixed(0)} s, ${gatewayDeploys.cpuSeconds.toFixed(1)} CPU s ${JSON.stringify(gatewayDeploys.outcomes)}; resting`);
    gatewayAfter = await window(gateway.agent.m.pid, gateway.agent.m.reportFile, Date.now(), 45_000, 55_000);
    await stopChild(gateway.agent.child, 10_000);
    await gateway.gw.close();
  }

  // ---- 3. load on the PGlite control plane and the agent
  // Same ports: the agent dials the endpoint it enrolled with.
  const ports = ["--api-listen", new URL(liteServer.runtime.api).host, "--agent-listen", `127.0.0.1:${liteServer.runtime.agentPort}`, "--enrol-listen", `127.0.0.1:${liteServer.runtime.enrolPort}`];
  await liteServer.stop();
  const restartedAt = Date.now();
  const restarted = await startServer(pgliteDir, "cp-pglite-load", ports, o.heartbeatMs);
  liteServer = restarted.server;
  const api = new FerryApi(liteServer.runtime.api, pgliteDir);
  // The agent's status row still says online from before the restart: wait for a heartbeat on the new process.
  await waitOnline(api, "footprint", "agent-pglite", 90_000, restartedAt);
  log(`PGlite control plane restarted with a ${o.heartbeatMs} ms heartbeat; agent back online; loads: ${o.tasks} agent tasks and ${o.heavyTasks} log-heavy ones, ${o.deploys} deployments to ${o.simAgents} simulated agents`);
  const fleet = new Rpc<AgentsCommands>(forkBench(fileURLToPath(new URL("../deploy/dispatch-agents.ts", import.meta.url))), "simulated agents");
  const [agentRun, fleetRun] = await Promise.all([
    o.tasks > 0 ? agentTasks(o, api, "footprint", agentA.id, reg, socket, (fn) => abortHooks.push(fn)) : Promise.resolve(null),
    o.deploys > 0 ? fleetDeploys(o, liteServer, api, reg, fleet) : Promise.resolve(null),
  ]);
  // Two stages: a tenth of each load (every code path has run once: "warm"), a rest and a sample; then the rest of
  // it, a rest and the "after" sample. After − warm is what the bulk of the load left behind; warm − idle is what
  // running each path once costs (compiled code, pools, the heap grown to its working size).
  const loadStarted = Date.now();
  const agentCpu0 = cpuSeconds(agentA.m.pid);
  const stage = async (fraction: number, restMs: number, sampleMs: number) => {
    await Promise.all([agentRun?.run(Math.ceil(o.tasks * fraction)), fleetRun?.run(Math.ceil(o.deploys * fraction))]);
    await fleetRun?.pause(); // the simulated agents disconnect: the server is back to its one real agent
    const from = Date.now() + restMs;
    const [cp, agent] = await Promise.all([
      window(restarted.m.pid, restarted.m.reportFile, from, 0, sampleMs),
      window(agentA.m.pid, agentA.m.reportFile, from, 0, sampleMs),
    ]);
    return { cp, agent };
  };
  // The rest lets V8's memory reducer, which runs once the allocation rate has dropped, give back the young
  // generation and the garbage of the burst (it took 15–45 s in runs here): what stays after it is what the load left.
  const warm = await stage(0.1, 45_000, 10_000);
  log(`warm (a tenth of the loads): control plane ${mib(warm.cp.peak.rssBytes)}, agent ${mib(warm.agent.peak.rssBytes)}`);
  await fleetRun?.resume();
  const after = await stage(1, 60_000, 20_000);
  const liteAfter = after.cp;
  const agentAfter = after.agent;
  const agentLoad = agentRun?.stats ?? null;
  const fleetLoad = fleetRun?.stats ?? null;
  const loadSeconds = (Date.now() - loadStarted) / 1000;
  // The agent's CPU over the loads, the rests included (a heartbeat every 250 ms, little else).
  const agentCpuSeconds = cpuSeconds(agentA.m.pid) - agentCpu0;
  const fleetStatus = await fleet.call("status", {}).catch(() => null);
  const realHeartbeats = Math.floor(loadSeconds * (1000 / o.heartbeatMs));
  log(`loads done in ${loadSeconds.toFixed(0)} s`);
  await stopChild(fleet.child, 5000);
  await stopChild(agentA.child, 10_000);
  await liteServer.stop();

  // ---- figures
  const cpGrowth = liteAfter.peak.rssBytes / liteIdle.peak.rssBytes;
  const agentGrowth = agentAfter.peak.rssBytes / agentIdle.peak.rssBytes;
  const loadDesc = [
    fleetLoad ? `${fleetLoad.deploys.toLocaleString("en")} deploys` : null,
    agentLoad ? `${agentLoad.tasks.toLocaleString("en")} agent tasks` : null,
    fleetLoad ? `${Math.round((fleetLoad.heartbeats + realHeartbeats) / HEARTBEATS_PER_DAY)} agent-days of heartbeats` : null,
  ].filter(Boolean).join(", ");
  const rows: Row[] = [
    row("bare node", bareIdle.peak),
    row("bare node, agent flags", bareAgentIdle.peak),
    row("control plane, PGlite, idle", liteIdle.peak, "≤ 250 MB", liteIdle.peak.rssBytes <= TARGET_CP_IDLE),
    row("control plane, PostgreSQL, idle", pgIdle?.peak ?? null),
    row(`control plane, PGlite, after ${loadDesc}`, liteAfter.peak, `≤ idle + 10 % (${(cpGrowth * 100 - 100).toFixed(1)} %)`, cpGrowth <= GROWTH_LIMIT),
    row("agent, Docker driver, idle", agentIdle.peak, "≤ 50 MB", agentIdle.peak.rssBytes <= TARGET_AGENT_IDLE),
    row("agent (second run, PostgreSQL side), idle", agentBIdle?.peak ?? null),
    row(`agent, after ${agentLoad ? agentLoad.tasks.toLocaleString("en") : 0} tasks and ${agentLoad ? agentLoad.heavy.tasks.toLocaleString("en") : 0} log-heavy ones`, agentAfter.peak, `≤ idle + 10 % (${(agentGrowth * 100 - 100).toFixed(1)} %)`, agentGrowth <= GROWTH_LIMIT),
    row(`control plane, PGlite, warm (a tenth of the loads)`, warm.cp.peak, `after vs warm: ${((liteAfter.peak.rssBytes / warm.cp.peak.rssBytes) * 100 - 100).toFixed(1)} %`),
    row(`agent, warm (${Math.ceil(o.tasks * 0.1)} tasks, ${o.tasks === 0 ? 0 : Math.ceil((o.heavyTasks * Math.ceil(o.tasks * 0.1)) / o.tasks)} log-heavy)`, warm.agent.peak, `after vs warm: ${((agentAfter.peak.rssBytes / warm.agent.peak.rssBytes) * 100 - 100).toFixed(1)} %`),
  ];
  if (gatewayIdle && gatewayAfter && gatewayDeploys) {
    rows.push(
      row(`gateway agent, ${o.gatewayTargets} ECS + ${o.gatewayTargets} Nomad targets, idle`, gatewayIdle.peak),
      row(`gateway agent, after ${gatewayDeploys.deploys} deploys`, gatewayAfter.peak, `vs idle: ${((gatewayAfter.peak.rssBytes / gatewayIdle.peak.rssBytes) * 100 - 100).toFixed(1)} %`),
    );
  }
  const finished = new Date();
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return null;
    }
  };
  const out = {
    bench: "footprint",
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    machine: { cpus: cpus().length, memoryBytes: totalmem(), node: process.version, kernel: release(), loadAverageAtStart: load0, loadAverageAtEnd: loadavg() },
    options: o,
    agentNodeFlags: flags,
    agentAllocatorEnv: agentAllocatorEnv(),
    code: { commit: git(["rev-parse", "HEAD"]), uncommittedChanges: git(["status", "--porcelain", "--", "control-plane", "agent", "pki", "proto", "installers", "scripts"])?.split("\n").filter(Boolean).length ?? null },
    idle: { bareNode: bareIdle, bareNodeAgentFlags: bareAgentIdle, pglite: liteIdle, postgres: pgIdle, agent: agentIdle, agentPostgresSide: agentBIdle, gateway: gatewayIdle },
    gateway: gatewayDeploys ? { targets: { ecs: o.gatewayTargets, nomad: o.gatewayTargets }, deploys: gatewayDeploys, after: gatewayAfter } : null,
    load: { seconds: loadSeconds, agent: agentLoad, agentCpuSeconds, fleet: fleetLoad, fleetStatus, realAgentHeartbeatsApprox: realHeartbeats },
    warm: { pglite: warm.cp, agent: warm.agent },
    after: { pglite: liteAfter, agent: agentAfter },
    verdicts: rows,
  };
  const resultsDir = join(ROOT, "bench-results");
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `footprint-${started.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  const notes = [
    gatewayDeploys ? `gateway agent: ${gatewayDeploys.deploys} deploys (one per target) in ${gatewayDeploys.seconds.toFixed(0)} s, ${gatewayDeploys.cpuSeconds.toFixed(1)} s of the agent's CPU ${JSON.stringify(gatewayDeploys.outcomes)}; sampled 45–55 s after the last` : "gateway agent: not run",
    agentLoad
      ? `agent tasks: ${agentLoad.succeeded}/${agentLoad.tasks} succeeded ${JSON.stringify(agentLoad.failed)}, ${agentLoad.logBytes.toLocaleString("en")} log bytes; ` +
        `log-heavy: ${agentLoad.heavy.tasks} ${JSON.stringify(agentLoad.heavy.outcomes)}, ${agentLoad.heavy.logBytes.toLocaleString("en")} log bytes; ${agentLoad.seconds.toFixed(0)} s, ${agentCpuSeconds.toFixed(1)} s of the agent's CPU`
      : "agent tasks: none",
    fleetLoad ? `control-plane deploys: ${fleetLoad.deploys} to ${fleetLoad.agents} simulated agents in ${fleetLoad.seconds.toFixed(0)} s, ${fleetLoad.unfinished} unfinished, ${fleetLoad.targetBusyRetries} retries on a busy target; heartbeats: ${fleetLoad.heartbeats.toLocaleString("en")} simulated + ≈ ${realHeartbeats.toLocaleString("en")} from the agent (a day at 15 s is ${HEARTBEATS_PER_DAY})` : "control-plane deploys: none",
    `RSS is the largest in each window (idle: 40–60 s after start; warm: 45–55 s after a tenth of the loads; after: 60–80 s after all of them, the simulated agents disconnected); heap used as the process reported it at that sample; wasm memory: the resident part of WebAssembly memory (PGlite's PostgreSQL), from /proc/PID/smaps`,
  ];
  process.stdout.write(
    `\nFerry footprint bench — ${started.toISOString()}, ${Math.round((finished.getTime() - started.getTime()) / 1000)} s, load average ${load0.map((l) => l.toFixed(1)).join(" ")} → ${loadavg().map((l) => l.toFixed(1)).join(" ")}\n\n` +
      `${table(rows)}\n\n${notes.join("\n")}\n\nresults: ${file}\n`,
  );
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const workDir = mkdtempSync(join(tmpdir(), "ferry-bench-footprint-"));
  await superviseBench(
    {
      timeoutMs: o.timeoutMinutes * 60_000,
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
