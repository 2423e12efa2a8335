// `npm run bench:fleet` — how one Ferry control-plane process holds a large fleet of agent streams, measured side
// by side with a bare grpc-js server doing the minimum (baseline-server.ts). See docs/performance.md.
//
//   npm run bench:fleet                      15,000 agents (the default)
//   npm run bench:fleet -- --quick           1,000 agents, short windows: a smoke run in under two minutes
//   npm run bench:fleet -- --agents 5000     any fleet size
//   other flags: --generators G, --steady-seconds S, --cpu-prof (V8 profile of the Ferry server), --skip-baseline,
//                --keep (keep the temporary data directory), --timeout-minutes M, --ferry-bin PATH (run a modified
//                copy of the control plane, for experiments), --fresh-fleet (enrol again instead of reusing the
//                fleet cached in bench-results/fleet-cache/), --agent-welcome-timeout (agents abandon a connection
//                attempt with no Welcome after 3 × interval, TLS included, as the real agent does; off by default so
//                that the storm measures how fast the server absorbs it, see docs/performance.md)
//
// Processes: this orchestrator; the Ferry server (`node control-plane/bin/ferry.js server`, PGlite in a temporary
// directory) and later the baseline server; G load generators (load-generator.ts), each simulating a share of the
// fleet with one certificate, one TLS connection and one Connect stream per agent. Everything is on 127.0.0.1.
// Ferry and the baseline run one after the other, against the same agents, certificates and load generators.
//
// Prints figures and writes them to bench-results/fleet-<timestamp>.json. Exit status 0 whenever the bench ran
// (missed targets are printed as MISSED), non-zero only when it could not run.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { FleetCa } from "@ferry/pki";
import { forkBench, stopChild, superviseBench } from "./children.js";
import { FERRY_BIN, FerryServer, ROOT } from "./ferry-server.js";
import { now, Rpc, type AgentIdentity, type BaselineCommands, type ConnectResult, type FailureCounts, type GeneratorCommands, type HeapFigures, type Mode, type RecordResult } from "./ipc.js";
import { cpuMs, machineCpuMs, openFiles, rssBytes, tcpCounters } from "./proc-stats.js";
import { distribution, round, type Distribution } from "./stats.js";

// ---------------------------------------------------------------------------------------------------------------
// options

interface Options {
  agents: number;
  quick: boolean;
  generators: number;
  /** Offered heartbeat load of the whole fleet: the interval is agents / rate seconds. */
  heartbeatRate: number;
  steadyMs: number;
  warmupMs: number;
  settleMs: number;
  fanoutTrials: number;
  connectConcurrency: number;
  enrolConcurrency: number;
  phaseTimeoutMs: number;
  globalTimeoutMs: number;
  cpuProf: boolean;
  skipBaseline: boolean;
  keep: boolean;
  /** A different `ferry` entry point, e.g. a modified copy of the control plane outside the repository. */
  ferryBin: string | null;
  /** Enrol the fleet again even when a cached one fits. */
  freshFleet: boolean;
  /** Agents abandon a connection attempt without Welcome after 3 × interval, as the real agent does. */
  agentWelcomeTimeout: boolean;
}

const MAX_AGENTS_PER_GENERATOR = 4000;

function usage(msg: string): never {
  process.stderr.write(`bench:fleet: ${msg}\nusage: npm run bench:fleet -- [--quick] [--agents N] [--generators G] [--steady-seconds S] [--cpu-prof] [--skip-baseline] [--keep] [--timeout-minutes M] [--ferry-bin PATH] [--fresh-fleet] [--agent-welcome-timeout]\n`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("--")) usage(`unexpected argument ${a}`);
    const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (v !== undefined) flags.set(k, v);
    else if (["agents", "generators", "steady-seconds", "timeout-minutes", "ferry-bin"].includes(k)) {
      const next = argv[++i];
      if (next === undefined) usage(`--${k} needs a value`);
      flags.set(k, next);
    } else flags.set(k, true);
  }
  const known = ["quick", "agents", "generators", "steady-seconds", "cpu-prof", "skip-baseline", "keep", "timeout-minutes", "ferry-bin", "fresh-fleet", "agent-welcome-timeout"];
  for (const k of flags.keys()) if (!known.includes(k)) usage(`unknown flag --${k}`);
  const int = (k: string, def: number, min: number, max: number): number => {
    const v = flags.get(k);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) usage(`--${k} must be a whole number from ${min} to ${max}`);
    return n;
  };
  const quick = flags.has("quick");
  // The server process, like every process here, may hold at most 20,000 open files.
  const agents = int("agents", quick ? 1000 : 15_000, 10, 19_000);
  const generators = int("generators", Math.max(2, Math.ceil(agents / MAX_AGENTS_PER_GENERATOR)), 1, 16);
  if (agents / generators > 18_000) usage("each load generator may hold at most 18,000 agents (20,000 open files per process)");
  return {
    agents,
    quick,
    generators,
    heartbeatRate: 1000,
    steadyMs: int("steady-seconds", quick ? 8 : 60, 5, 3600) * 1000,
    warmupMs: quick ? 1000 : 3000,
    settleMs: quick ? 1000 : 5000,
    fanoutTrials: quick ? 2 : 3,
    connectConcurrency: 64,
    enrolConcurrency: 16,
    phaseTimeoutMs: quick ? 60_000 : 600_000,
    globalTimeoutMs: int("timeout-minutes", quick ? 6 : 90, 1, 600) * 60_000,
    cpuProf: flags.has("cpu-prof"),
    skipBaseline: flags.has("skip-baseline"),
    keep: flags.has("keep"),
    ferryBin: typeof flags.get("ferry-bin") === "string" ? resolve(flags.get("ferry-bin") as string) : null,
    freshFleet: flags.has("fresh-fleet"),
    agentWelcomeTimeout: flags.has("agent-welcome-timeout"),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// results

interface ConnectPhase {
  connected: number;
  serverReported: number;
  elapsedMs: number;
  handshakes: number;
  failures: FailureCounts;
  lost: FailureCounts;
  cpuPercent: CpuShare;
  /** Paced connect (bounded attempts in flight, so no accept-queue overflow): agents up per second, and the server
   * CPU each new stream cost (TLS handshake, authentication, Hello/Welcome, the connect write). */
  perSec: number;
  serverCpuPerConnectionMs: number;
}
interface MemoryPhase {
  rssBeforeBytes: number;
  rssAfterBytes: number;
  perAgentBytes: number;
  perAgentSplitBytes: { heapTotal: number; heapUsed: number; external: number; native: number };
  serverOpenFiles: number;
  rssAfterSteadyBytes?: number;
}
interface SteadyPhase {
  windowMs: number;
  heartbeatIntervalMs: number;
  offeredPerSec: number;
  ingestedPerSec: number;
  sent: number;
  acked: number;
  unacked: number;
  /** Streams that ended during the window without the bench asking (the agents reconnect), by reason. */
  lostStreams: FailureCounts;
  latencyMs: Distribution;
  serverCpuMs: number;
  serverCpuPercent: number;
  cpuPerHeartbeatUs: number;
  cpuPercent: CpuShare;
}
interface LivenessPhase {
  lastSeenFlushMs: number;
  rowsWritten: Record<string, number>;
  rowsPerAgentPer30s: number;
}
interface FanoutTrial {
  expected: number;
  reached: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}
interface FanoutPhase {
  trials: FanoutTrial[];
  /** Per-agent arrival over all trials. */
  arrivalMs: Distribution;
  worstMaxMs: number;
}
interface StormPhase {
  agents: number;
  back: number;
  notBack: number;
  durationMs: number;
  handshakes: number;
  handshakesPerSec: number;
  failures: FailureCounts;
  lost: FailureCounts;
  retried: number;
  serverCpuMs: number;
  serverCpuPerHandshakeMs: number;
  cpuPercent: CpuShare;
  /** Machine-wide: SYNs dropped on a full accept queue, and SYNs the clients had to send again. */
  tcp: { listenOverflows: number; synRetransmits: number };
  serverReportedAfter: number;
}
interface TargetResult {
  target: Mode;
  pid: number;
  connect: ConnectPhase;
  memory: MemoryPhase;
  steady: SteadyPhase;
  liveness?: LivenessPhase;
  fanout: FanoutPhase;
  storm: StormPhase;
}

// ---------------------------------------------------------------------------------------------------------------
// helpers

/** Where each phase ran, on the epoch clock and on the monotonic clock V8 CPU profiles use (µs). */
interface PhaseMark {
  target: Mode | "setup";
  phase: string;
  startEpochMs: number;
  endEpochMs: number;
  startMonoUs: number;
  endMonoUs: number;
}
const marks: PhaseMark[] = [];
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

async function phase<T>(target: PhaseMark["target"], name: string, fn: () => Promise<T>): Promise<T> {
  const startEpochMs = Date.now();
  const startMonoUs = monoUs();
  try {
    return await fn();
  } finally {
    marks.push({ target, phase: name, startEpochMs, endEpochMs: Date.now(), startMonoUs, endMonoUs: monoUs() });
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function mergeCounts(list: FailureCounts[]): FailureCounts {
  const out: FailureCounts = {};
  for (const c of list) for (const [k, v] of Object.entries(c)) out[k] = (out[k] ?? 0) + v;
  return out;
}

class Generators {
  constructor(readonly rpcs: Array<Rpc<GeneratorCommands>>) {}

  /** CPU time all load generators have used, ms. */
  cpuMs(): number {
    return this.rpcs.reduce((n, r) => n + (r.child.pid !== undefined ? cpuMs(r.child.pid) : 0), 0);
  }

  all<K extends keyof GeneratorCommands>(cmd: K, args: GeneratorCommands[K]["args"]): Promise<Array<GeneratorCommands[K]["result"]>> {
    return Promise.all(this.rpcs.map((r) => r.call(cmd, args)));
  }
}

/** Where the machine's CPU went over a window, in % of one core. */
interface CpuShare {
  server: number;
  generators: number;
  /** Everything else on the machine (other users' processes): noise in the figures when it is large. */
  other: number;
}

/** Starts a CPU accounting window over the server, the generators, this process and the whole machine. */
function cpuWindow(serverPid: number, gens: Generators): () => CpuShare & { serverMs: number; elapsedMs: number } {
  const t0 = now();
  const m0 = machineCpuMs().busy;
  const s0 = cpuMs(serverPid);
  const g0 = gens.cpuMs();
  const self0 = cpuMs(process.pid);
  return () => {
    const elapsedMs = now() - t0;
    const serverMs = cpuMs(serverPid) - s0;
    const genMs = gens.cpuMs() - g0;
    const selfMs = cpuMs(process.pid) - self0;
    const otherMs = Math.max(0, machineCpuMs().busy - m0 - serverMs - genMs - selfMs);
    const pct = (ms: number) => round((ms / elapsedMs) * 100);
    return { server: pct(serverMs), generators: pct(genMs), other: pct(otherMs), serverMs, elapsedMs };
  };
}

function noiseWarning(name: string, phaseName: string, c: CpuShare): void {
  if (c.other > 15) log(`WARNING ${name} ${phaseName}: other processes used ${c.other} % of a core during the measurement; figures are disturbed`);
}

/** What the orchestrator needs from the server under test. */
interface ServerUnderTest {
  mode: Mode;
  pid: number;
  port: number;
  caPem: string;
  heartbeatIntervalMs: number;
  /** Heartbeats the server has processed since it started. */
  heartbeats(): Promise<number>;
  /** Streams the server says it holds. */
  streams(): Promise<number>;
  heap(): Promise<HeapFigures>;
  /** Makes the server write one Ping to every stream; resolves with the nonce when the bench chose it. */
  pingAll(): Promise<string | null>;
  livenessRows?(): Promise<Record<string, number>>;
  lastSeenFlushMs?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// one server, all phases

async function measure(o: Options, gens: Generators, s: ServerUnderTest): Promise<TargetResult> {
  const N = o.agents;
  const name = s.mode === "ferry" ? "Ferry" : "baseline";
  await gens.all("target", { mode: s.mode, port: s.port, caPem: s.caPem, welcomeTimeout: o.agentWelcomeTimeout ? "agent" : "none" });
  await sleep(o.settleMs);

  // 1-2. connect every agent; memory before and after
  const rssBefore = rssBytes(s.pid);
  const heapBefore = await s.heap();
  log(`${name}: connecting ${N} agents (${o.connectConcurrency} attempts in flight per generator)`);
  const c0 = now();
  const connectWindow = cpuWindow(s.pid, gens);
  const connected = await phase(s.mode, "connect", () => gens.all("connect", { concurrency: o.connectConcurrency, timeoutMs: o.phaseTimeoutMs }));
  const connectElapsed = Math.max(...connected.map((r) => r.lastUpAt)) - c0;
  const up = connected.reduce((n, r) => n + r.up, 0);
  const { server: cs, generators: cg, other: co, serverMs: connectServerMs } = connectWindow();
  const connectCpu: CpuShare = { server: cs, generators: cg, other: co };
  log(`${name}: ${up}/${N} agents up in ${round(connectElapsed / 1000)} s; failed ${JSON.stringify(mergeCounts(connected.map((r) => r.failures)))}, ` +
    `lost after up ${JSON.stringify(mergeCounts(connected.map((r) => r.lost)))}; CPU (% of a core) ${JSON.stringify(connectCpu)}`);
  noiseWarning(name, "connect", connectCpu);
  await sleep(o.settleMs);
  const rssAfter = rssBytes(s.pid);
  const heapAfter = await s.heap();
  const connect: ConnectPhase = {
    connected: up,
    serverReported: await s.streams(),
    elapsedMs: round(connectElapsed),
    handshakes: connected.reduce((n, r) => n + r.handshakes, 0),
    failures: mergeCounts(connected.map((r) => r.failures)),
    lost: mergeCounts(connected.map((r) => r.lost)),
    cpuPercent: connectCpu,
    perSec: round(up / (connectElapsed / 1000)),
    serverCpuPerConnectionMs: round(connectServerMs / Math.max(1, up), 2),
  };
  const memory: MemoryPhase = {
    rssBeforeBytes: rssBefore,
    rssAfterBytes: rssAfter,
    perAgentBytes: up > 0 ? Math.round((rssAfter - rssBefore) / up) : NaN,
    // RSS growth split: the JavaScript heap V8 reserved, memory V8 accounts outside it (Buffers, and for Ferry the
    // embedded database's WebAssembly memory), and the rest (native: OpenSSL, nghttp2, allocator slack).
    perAgentSplitBytes: {
      heapTotal: Math.round((heapAfter.heapTotal - heapBefore.heapTotal) / Math.max(1, up)),
      heapUsed: Math.round((heapAfter.heapUsed - heapBefore.heapUsed) / Math.max(1, up)),
      external: Math.round((heapAfter.external - heapBefore.external) / Math.max(1, up)),
      native: Math.round((rssAfter - rssBefore - (heapAfter.heapTotal - heapBefore.heapTotal) - (heapAfter.external - heapBefore.external)) / Math.max(1, up)),
    },
    serverOpenFiles: openFiles(s.pid),
  };
  const genStatus = await gens.all("status", {});
  log(`${name}: server RSS ${mib(rssBefore)} -> ${mib(rssAfter)} MiB (${round(memory.perAgentBytes / 1024)} KiB/agent: ` +
    `${Object.entries(memory.perAgentSplitBytes).map(([k, v]) => `${k} ${round(v / 1024)}`).join(", ")} KiB), ` +
    `${memory.serverOpenFiles} open files; generators hold ${genStatus.map((g) => g.openFiles).join("/")} open files`);

  // 3-4. steady load: every agent beats once per interval, phases spread evenly over the fleet
  const rephaseAt = now() + 500;
  await gens.all("rephase", { at: rephaseAt, total: N });
  await sleep(rephaseAt - now() + o.warmupMs);
  log(`${name}: steady window of ${o.steadyMs / 1000} s at ${o.heartbeatRate} heartbeats/s offered (interval ${s.heartbeatIntervalMs} ms)`);
  const rows0 = s.livenessRows ? await s.livenessRows() : null;
  const hb0 = await s.heartbeats();
  const steadyWindow = cpuWindow(s.pid, gens);
  const t0 = now();
  const recs: RecordResult[] = await phase(s.mode, "steady", async () => {
    await gens.all("recordStart", {});
    await sleep(o.steadyMs);
    return gens.all("recordStop", {});
  });
  const t1 = now();
  const steadyCpu = steadyWindow();
  const hb1 = await s.heartbeats();
  const rows1 = s.livenessRows ? await s.livenessRows() : null;
  const windowMs = t1 - t0;
  const beats = hb1 - hb0;
  const sent = recs.reduce((n, r) => n + r.sent, 0);
  const steady: SteadyPhase = {
    windowMs: round(windowMs),
    heartbeatIntervalMs: s.heartbeatIntervalMs,
    offeredPerSec: round(sent / (windowMs / 1000)),
    ingestedPerSec: round(beats / (windowMs / 1000)),
    sent,
    acked: recs.reduce((n, r) => n + r.acked, 0),
    unacked: recs.reduce((n, r) => n + r.unacked, 0),
    lostStreams: mergeCounts(recs.map((r) => r.lost)),
    latencyMs: roundDist(distribution(recs.flatMap((r) => r.latenciesMs))),
    serverCpuMs: round(steadyCpu.serverMs),
    serverCpuPercent: steadyCpu.server,
    cpuPerHeartbeatUs: round((steadyCpu.serverMs * 1000) / Math.max(1, beats)),
    cpuPercent: { server: steadyCpu.server, generators: steadyCpu.generators, other: steadyCpu.other },
  };
  log(`${name}: ${steady.ingestedPerSec} heartbeats/s ingested, p50 ${steady.latencyMs.p50} ms, p99 ${steady.latencyMs.p99} ms, ` +
    `${steady.cpuPerHeartbeatUs} µs server CPU per heartbeat (server ${steady.serverCpuPercent} % of a core); ` +
    `${steady.unacked} unacknowledged, streams lost ${JSON.stringify(steady.lostStreams)}; CPU (% of a core) ${JSON.stringify(steady.cpuPercent)}`);
  noiseWarning(name, "steady window", steady.cpuPercent);
  let liveness: LivenessPhase | undefined;
  if (rows0 && rows1) {
    const written: Record<string, number> = {};
    for (const k of new Set([...Object.keys(rows0), ...Object.keys(rows1)])) written[k] = (rows1[k] ?? 0) - (rows0[k] ?? 0);
    const total = Object.values(written).reduce((a, b) => a + b, 0);
    liveness = {
      lastSeenFlushMs: s.lastSeenFlushMs ?? NaN,
      rowsWritten: written,
      rowsPerAgentPer30s: round(total / Math.max(1, up) / (windowMs / 30_000), 3),
    };
    log(`${name}: liveness rows written in the window ${JSON.stringify(written)} = ${liveness.rowsPerAgentPer30s} per agent per 30 s`);
  }
  memory.rssAfterSteadyBytes = rssBytes(s.pid);

  // 6. fan-out, with the steady load still running
  const trials: FanoutTrial[] = [];
  const arrivals: number[] = [];
  for (let i = 0; i < o.fanoutTrials; i++) {
    await gens.all("fanoutArm", {});
    // The agents that are up now are the ones the message must reach (a server may still count a stream whose
    // client is gone).
    const expected = (await gens.all("status", {})).reduce((n, g) => n + g.up, 0);
    const f0 = now();
    const fanoutStart = { e: Date.now(), m: monoUs() };
    let nonce = await s.pingAll();
    const deadline = f0 + 30_000;
    // Wait until every agent has the ping (or the deadline). Ferry chooses its own nonce: the ping that reached the
    // most agents is the fan-out (a keepalive Ping from the sweep reaches only a few).
    for (;;) {
      const statuses = await gens.all("fanoutStatus", {});
      const counts = mergeCounts(statuses);
      const best = nonce ?? Object.entries(counts).sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
      if (best !== null && (counts[best] ?? 0) >= expected) {
        nonce = best;
        break;
      }
      if (now() > deadline) {
        nonce = best;
        break;
      }
      await sleep(50);
    }
    marks.push({ target: s.mode, phase: `fanout-${i + 1}`, startEpochMs: fanoutStart.e, endEpochMs: Date.now(), startMonoUs: fanoutStart.m, endMonoUs: monoUs() });
    const times = nonce === null ? [] : (await gens.all("fanoutCollect", { nonce })).flat().map((t) => t - f0);
    const d = distribution(times);
    trials.push({ expected, reached: times.length, p50Ms: round(d.p50), p99Ms: round(d.p99), maxMs: round(d.max) });
    arrivals.push(...times);
    log(`${name}: fan-out ${i + 1}: ${times.length}/${expected} streams, p50 ${round(d.p50)} ms, p99 ${round(d.p99)} ms, max ${round(d.max)} ms`);
    await sleep(1000);
  }
  const fanout: FanoutPhase = {
    trials,
    arrivalMs: roundDist(distribution(arrivals)),
    worstMaxMs: Math.max(...trials.map((t) => t.maxMs)),
  };

  // 5. reconnect storm: every connection dropped at once, every agent reconnecting at once
  log(`${name}: reconnect storm of ${up} agents`);
  const stormWindow = cpuWindow(s.pid, gens);
  const tcp0 = tcpCounters();
  const st0 = now();
  const storms: ConnectResult[] = await phase(s.mode, "storm", () => gens.all("storm", { timeoutMs: o.phaseTimeoutMs }));
  const stormCpu = stormWindow();
  const tcp1 = tcpCounters();
  const notBack = storms.reduce((n, r) => n + r.notUp, 0);
  const back = storms.reduce((n, r) => n + r.up, 0);
  const durationMs = notBack > 0 ? o.phaseTimeoutMs : Math.max(...storms.map((r) => r.lastUpAt)) - st0;
  const handshakes = storms.reduce((n, r) => n + r.handshakes, 0);
  await sleep(Math.max(1000, o.settleMs));
  const storm: StormPhase = {
    agents: up,
    back,
    notBack,
    durationMs: round(durationMs),
    handshakes,
    handshakesPerSec: round(handshakes / (durationMs / 1000)),
    failures: mergeCounts(storms.map((r) => r.failures)),
    lost: mergeCounts(storms.map((r) => r.lost)),
    retried: storms.reduce((n, r) => n + r.retried, 0),
    serverCpuMs: round(stormCpu.serverMs),
    serverCpuPerHandshakeMs: round(stormCpu.serverMs / Math.max(1, handshakes), 2),
    cpuPercent: { server: stormCpu.server, generators: stormCpu.generators, other: stormCpu.other },
    tcp: { listenOverflows: tcp1.listenOverflows - tcp0.listenOverflows, synRetransmits: tcp1.synRetrans - tcp0.synRetrans },
    serverReportedAfter: await s.streams(),
  };
  log(`${name}: storm: ${back}/${up} back in ${round(durationMs / 1000, 2)} s, ${storm.handshakesPerSec} handshakes/s, ` +
    `${storm.retried} agents retried, failed ${JSON.stringify(storm.failures)}, lost after up ${JSON.stringify(storm.lost)}, ${storm.serverCpuPerHandshakeMs} ms server CPU per handshake; ` +
    `CPU (% of a core) ${JSON.stringify(storm.cpuPercent)}; TCP ${JSON.stringify(storm.tcp)}`);
  noiseWarning(name, "storm", storm.cpuPercent);

  const result: TargetResult = { target: s.mode, pid: s.pid, connect, memory, steady, fanout, storm };
  if (liveness) result.liveness = liveness;
  await gens.all("drop", {});
  return result;
}

function roundDist(d: Distribution): Distribution {
  return { count: d.count, p50: round(d.p50, 2), p99: round(d.p99, 2), max: round(d.max, 2), mean: round(d.mean, 2) };
}

function mib(bytes: number): number {
  return round(bytes / 1024 / 1024);
}

// ---------------------------------------------------------------------------------------------------------------
// report

interface Verdict {
  metric: string;
  ferry: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean | null;
}

function verdicts(o: Options, f: TargetResult, b: TargetResult | null): Verdict[] {
  const ratio = (x: number, y: number | undefined) => (y === undefined || !Number.isFinite(y) || y === 0 ? "-" : `${round(x / y, 2)}×`);
  const v: Verdict[] = [];
  v.push({
    metric: "connected agents",
    ferry: `${f.connect.connected} (server: ${f.connect.serverReported})`,
    baseline: b ? `${b.connect.connected} (server: ${b.connect.serverReported})` : "-",
    ratio: "",
    target: `= ${o.agents} requested (≥ 15,000 in one process)`,
    met: f.connect.connected >= o.agents && f.connect.serverReported >= o.agents,
  });
  v.push({
    metric: "paced connect: agents/s",
    ferry: `${f.connect.perSec} (${f.connect.serverCpuPerConnectionMs} ms CPU each)`,
    baseline: b ? `${b.connect.perSec} (${b.connect.serverCpuPerConnectionMs} ms CPU each)` : "-",
    ratio: ratio(f.connect.serverCpuPerConnectionMs, b?.connect.serverCpuPerConnectionMs),
    target: "",
    met: null,
  });
  v.push({
    metric: "server RSS per agent",
    ferry: `${round(f.memory.perAgentBytes / 1024)} KiB`,
    baseline: b ? `${round(b.memory.perAgentBytes / 1024)} KiB` : "-",
    ratio: ratio(f.memory.perAgentBytes, b?.memory.perAgentBytes),
    target: "≤ 120 KiB",
    met: f.memory.perAgentBytes <= 120 * 1024,
  });
  v.push({
    metric: "heartbeats/s ingested",
    ferry: `${f.steady.ingestedPerSec} (offered ${f.steady.offeredPerSec})`,
    baseline: b ? `${b.steady.ingestedPerSec} (offered ${b.steady.offeredPerSec})` : "-",
    ratio: ratio(f.steady.ingestedPerSec, b?.steady.ingestedPerSec),
    target: `≥ 99 % of ${o.heartbeatRate} offered`,
    met: f.steady.ingestedPerSec >= 0.99 * o.heartbeatRate,
  });
  v.push({
    metric: "heartbeat latency p50",
    ferry: `${f.steady.latencyMs.p50} ms`,
    baseline: b ? `${b.steady.latencyMs.p50} ms` : "-",
    ratio: ratio(f.steady.latencyMs.p50, b?.steady.latencyMs.p50),
    target: "",
    met: null,
  });
  v.push({
    metric: "heartbeat latency p99",
    ferry: `${f.steady.latencyMs.p99} ms`,
    baseline: b ? `${b.steady.latencyMs.p99} ms` : "-",
    ratio: ratio(f.steady.latencyMs.p99, b?.steady.latencyMs.p99),
    target: "< 100 ms",
    met: f.steady.latencyMs.p99 < 100,
  });
  const cpuRatio = b ? f.steady.cpuPerHeartbeatUs / b.steady.cpuPerHeartbeatUs : NaN;
  v.push({
    metric: "server CPU per heartbeat",
    ferry: `${f.steady.cpuPerHeartbeatUs} µs (${f.steady.serverCpuPercent} % core)`,
    baseline: b ? `${b.steady.cpuPerHeartbeatUs} µs (${b.steady.serverCpuPercent} % core)` : "-",
    ratio: ratio(f.steady.cpuPerHeartbeatUs, b?.steady.cpuPerHeartbeatUs),
    target: "≤ 1.5× baseline",
    met: b ? cpuRatio <= 1.5 : null,
  });
  if (f.liveness) {
    const short = f.liveness.lastSeenFlushMs < 30_000 ? ` (last-seen flush ${f.liveness.lastSeenFlushMs / 1000} s at this interval)` : "";
    v.push({
      metric: "PG liveness rows / agent / 30 s",
      ferry: `${f.liveness.rowsPerAgentPer30s}${short}`,
      baseline: "-",
      ratio: "",
      target: "≤ 1",
      met: f.liveness.rowsPerAgentPer30s <= 1,
    });
  }
  v.push({
    metric: "storm: time until all back",
    ferry: `${round(f.storm.durationMs / 1000, 2)} s (${f.storm.back}/${f.storm.agents}, ${f.storm.notBack} failing)`,
    baseline: b ? `${round(b.storm.durationMs / 1000, 2)} s (${b.storm.back}/${b.storm.agents}, ${b.storm.notBack} failing)` : "-",
    ratio: ratio(f.storm.durationMs, b?.storm.durationMs),
    target: "≤ 1.3× baseline, none failing",
    met: f.storm.notBack === 0 && (b ? f.storm.durationMs <= 1.3 * b.storm.durationMs : true),
  });
  v.push({
    metric: "storm: handshakes/s",
    ferry: `${f.storm.handshakesPerSec} (${f.storm.serverCpuPerHandshakeMs} ms CPU each)`,
    baseline: b ? `${b.storm.handshakesPerSec} (${b.storm.serverCpuPerHandshakeMs} ms CPU each)` : "-",
    ratio: ratio(f.storm.handshakesPerSec, b?.storm.handshakesPerSec),
    target: "",
    met: null,
  });
  v.push({
    metric: `fan-out to ${f.fanout.trials[0]?.expected ?? "?"} streams p50`,
    ferry: `${f.fanout.arrivalMs.p50} ms`,
    baseline: b ? `${b.fanout.arrivalMs.p50} ms` : "-",
    ratio: ratio(f.fanout.arrivalMs.p50, b?.fanout.arrivalMs.p50),
    target: "",
    met: null,
  });
  const reachedAll = f.fanout.trials.every((t) => t.reached >= t.expected);
  v.push({
    metric: "fan-out p99 / max",
    ferry: `${f.fanout.arrivalMs.p99} / ${f.fanout.worstMaxMs} ms${reachedAll ? "" : " (not all reached)"}`,
    baseline: b ? `${b.fanout.arrivalMs.p99} / ${b.fanout.worstMaxMs} ms` : "-",
    ratio: ratio(f.fanout.arrivalMs.p99, b?.fanout.arrivalMs.p99),
    // The target is stated for 10,000 streams; a run with another fleet size shows its figure without a verdict.
    target: o.agents === 10_000 ? "p99 < 1 s (10,000 streams)" : `p99 < 1 s at 10,000 streams (this run: ${o.agents}; --agents 10000)`,
    met: o.agents === 10_000 ? reachedAll && f.fanout.arrivalMs.p99 < 1000 : null,
  });
  return v;
}

function table(rows: Verdict[]): string {
  const head = ["", "Ferry", "baseline", "Ferry/base", "target", ""];
  const cells = rows.map((r) => [r.metric, r.ferry, r.baseline, r.ratio, r.target, r.met === null ? "" : r.met ? "met" : "MISSED"]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i] as number)).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// main

/** Which control plane was measured: the repository's commit and whether its working tree differs, or a --ferry-bin. */
function measuredCode(o: Options): Record<string, unknown> {
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return null;
    }
  };
  // With --ferry-bin the measured code is whatever that copy was built from: only the caller knows which commit.
  if (o.ferryBin) return { ferryBin: o.ferryBin, repositoryHead: git(["rev-parse", "HEAD"]), measuredCommit: null };
  return {
    ferryBin: FERRY_BIN,
    measuredCommit: git(["rev-parse", "HEAD"]),
    uncommittedChanges: git(["status", "--porcelain", "--", "control-plane", "pki", "proto"])?.split("\n").filter(Boolean).length ?? null,
  };
}

/** Where an enrolled fleet of N agents is kept between runs (bench-results/ is git-ignored). */
function fleetCacheDir(n: number): string {
  return join(ROOT, "bench-results", "fleet-cache", `agents-${n}`);
}

interface FleetFile {
  createdAt: string;
  enrolment: EnrolmentInfo;
  identities: AgentIdentity[];
}
interface EnrolmentInfo {
  cached: boolean;
  createdAt: string;
  enrolled: number;
  elapsedMs: number;
  perSec: number;
  /** Ferry server CPU per enrolment while the fleet was enrolled. */
  serverCpuMsPerEnrolment: number;
  /** Agents enrolled in the database (more than connect when a larger cached fleet is reused). */
  fleetSize: number;
}

/** Certificates of a cached fleet must outlive the run with a wide margin. */
const CACHE_MIN_VALIDITY_MS = 6 * 3_600_000;
const BENCH_CERT_LIFETIME = "720h";

/**
 * Gives the load generators an enrolled fleet of N agents, and leaves the enrolled Ferry data directory (PGlite +
 * CA + admin token) in the cache. Every agent enrols for real — Enrol RPC, join token, CSR, certificate from the
 * server's CA — so the agents table, certificates and serials are exactly what a real fleet leaves behind. That
 * costs the server ~30 ms of CPU per agent (docs/performance.md), several minutes for 15,000, so the result is
 * cached and reused while the certificates (issued for 30 days here) stay valid; --fresh-fleet re-enrols.
 */
async function prepareFleet(o: Options, gens: Generators, intervalMs: number): Promise<{ info: EnrolmentInfo; dataDir: string }> {
  const N = o.agents;
  const dir = fleetCacheDir(N);
  const file = join(dir, "fleet.json");
  const shares = Array.from({ length: o.generators }, (_, i) => Math.floor(N / o.generators) + (i < N % o.generators ? 1 : 0));
  // The exact size first; else the smallest larger fleet, of which the first N agents connect (the others stay
  // enrolled and offline, as agents of a real fleet do).
  const candidates = o.freshFleet
    ? []
    : [
        N,
        ...(existsSync(join(ROOT, "bench-results", "fleet-cache"))
          ? readdirSync(join(ROOT, "bench-results", "fleet-cache"))
              .map((d) => Number(/^agents-(\d+)$/.exec(d)?.[1]))
              .filter((m) => Number.isInteger(m) && m > N)
              .sort((a, b) => a - b)
          : []),
      ];
  for (const m of candidates) {
    const cacheDir = fleetCacheDir(m);
    const cacheFile = join(cacheDir, "fleet.json");
    if (!existsSync(cacheFile) || !existsSync(join(cacheDir, "data", "ca", "ca.crt"))) continue;
    const cached = JSON.parse(readFileSync(cacheFile, "utf8")) as FleetFile;
    const first = cached.identities[0];
    const notAfter = first ? Date.parse(new X509Certificate(first.certPem).validTo) : 0;
    if (cached.identities.length !== m || notAfter - Date.now() <= CACHE_MIN_VALIDITY_MS) {
      log(`the cached fleet in ${cacheDir} does not fit (agents or certificate validity)`);
      continue;
    }
    log(`reusing ${m === N ? "the fleet of" : `${N} of the`} ${m} agents enrolled at ${cached.createdAt} (${cacheDir}; --fresh-fleet to enrol again)`);
    const caPem = readFileSync(join(cacheDir, "data", "ca", "ca.crt"), "utf8");
    let from = 0;
    await Promise.all(
      shares.map((count, i) => {
        const identities = cached.identities.slice(from, from + count);
        from += count;
        return (gens.rpcs[i] as Rpc<GeneratorCommands>).call("load", { caPem, identities, heartbeatIntervalMs: intervalMs });
      }),
    );
    return { info: { ...cached.enrolment, cached: true, fleetSize: m }, dataDir: join(cacheDir, "data") };
  }

  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "data"), { recursive: true, mode: 0o700 });
  log(`starting Ferry to enrol ${N} agents`);
  const server = await phase("setup", "enrol-server-start", () =>
    FerryServer.start({
      dataDir: join(dir, "data"),
      heartbeatIntervalMs: intervalMs,
      // Enrolment is set-up, not what is measured: let the bench enrol as fast as the server can.
      args: ["--enrol-rate", "100000", "--enrol-burst", "100000", "--enrol-peer-rate", "100000", "--enrol-peer-burst", "100000", "--cert-lifetime", BENCH_CERT_LIFETIME],
      ...(o.ferryBin ? { bin: o.ferryBin } : {}),
      timeoutMs: 120_000,
    }),
  );
  try {
    const caPem = server.caPem;
    log(`enrolling ${N} agents over gRPC (one join token per load generator)`);
    const e0 = now();
    const cpu0 = cpuMs(server.pid);
    let first = 0;
    const enrolled = await phase("setup", "enrol", () =>
      Promise.all(
        shares.map(async (count, i) => {
          const joinToken = await server.joinToken(count);
          const firstIndex = first;
          first += count;
          return (gens.rpcs[i] as Rpc<GeneratorCommands>).call("enrol", {
            caPem,
            enrolPort: server.runtime.enrolPort,
            joinToken,
            count,
            firstIndex,
            total: N,
            concurrency: o.enrolConcurrency,
          });
        }),
      ),
    );
    const elapsedMs = now() - e0;
    const count = enrolled.reduce((n, r) => n + r.enrolled, 0);
    const info: EnrolmentInfo = {
      cached: false,
      createdAt: new Date().toISOString(),
      enrolled: count,
      elapsedMs: round(elapsedMs),
      perSec: round(count / (elapsedMs / 1000)),
      serverCpuMsPerEnrolment: round((cpuMs(server.pid) - cpu0) / Math.max(1, count), 2),
      fleetSize: count,
    };
    log(`enrolled ${count}/${N} in ${round(elapsedMs / 1000)} s (${info.perSec}/s, ${info.serverCpuMsPerEnrolment} ms server CPU each) ` +
      `${JSON.stringify(mergeCounts(enrolled.map((r) => r.failures)))}`);
    if (count < N) throw new Error(`only ${count} of ${N} agents could enrol`);
    await server.stop();
    const fleet: FleetFile = { createdAt: info.createdAt, enrolment: info, identities: enrolled.flatMap((r) => r.identities).sort((a, b) => a.gi - b.gi) };
    writeFileSync(`${file}.tmp`, JSON.stringify(fleet));
    renameSync(`${file}.tmp`, file);
    return { info, dataDir: join(dir, "data") };
  } catch (err) {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function run(o: Options, workDir: string): Promise<void> {
  const started = new Date();
  const N = o.agents;
  const intervalMs = Math.max(100, Math.round((N / o.heartbeatRate) * 1000));
  const ferryDir = join(workDir, "ferry");
  const profDir = join(ROOT, "bench-results", `cpu-prof-${started.toISOString().replace(/[:.]/g, "-")}`);
  const ferryArgs: string[] = [];
  log(`${N} agents, ${o.generators} load generators, heartbeat interval ${intervalMs} ms (${o.heartbeatRate}/s offered); work dir ${workDir}`);

  const genPath = fileURLToPath(new URL("./load-generator.ts", import.meta.url));
  const gens = new Generators(
    Array.from({ length: o.generators }, (_, i) => new Rpc<GeneratorCommands>(forkBench(genPath, [], ["--max-old-space-size=4096"]), `load generator ${i}`)),
  );
  const { info: enrolment, dataDir: fleetDataDir } = await prepareFleet(o, gens, intervalMs);

  // Every run measures a fresh copy of the enrolled data directory, in a fresh process: enrolment leaves garbage and
  // grown heaps behind that would blur "RSS before any agent". This is also what a fleet meets in production: a
  // control plane (re)starting with its fleet in the database.
  cpSync(fleetDataDir, ferryDir, { recursive: true });
  log(`starting Ferry (stream admission at its defaults: ${ferryArgs.join(" ") || "no extra flags"})`);
  const ferry = await phase("setup", "ferry-start", () =>
    FerryServer.start({
      dataDir: ferryDir,
      heartbeatIntervalMs: intervalMs,
      args: ferryArgs,
      ...(o.cpuProf ? { cpuProfDir: profDir } : {}),
      ...(o.ferryBin ? { bin: o.ferryBin } : {}),
      timeoutMs: 120_000,
    }),
  );
  const caPem = ferry.caPem;

  // The server default (config.ts): min(30 s, 2 × interval + grace), the grace defaulting to one interval.
  const lastSeenFlushMs = Math.min(30_000, 3 * intervalMs);
  const ferryResult = await measure(o, gens, {
    mode: "ferry",
    pid: ferry.pid,
    port: ferry.runtime.agentPort,
    caPem,
    heartbeatIntervalMs: intervalMs,
    heartbeats: async () => (await ferry.metrics()).get("ferry_heartbeats_total") ?? NaN,
    streams: async () => (await ferry.metrics()).get("ferry_agents_connected") ?? NaN,
    heap: async () => {
      const m = await ferry.metrics();
      return {
        heapUsed: m.get("ferry_nodejs_heap_size_used_bytes") ?? NaN,
        heapTotal: m.get("ferry_nodejs_heap_size_total_bytes") ?? NaN,
        external: m.get("ferry_nodejs_external_memory_bytes") ?? NaN,
      };
    },
    pingAll: async () => {
      await ferry.pingFleet();
      return null;
    },
    livenessRows: async () => {
      const m = await ferry.metrics();
      const out: Record<string, number> = {};
      for (const [k, v] of m) {
        const hit = /^ferry_liveness_rows_written_total\{kind="([^"]+)"\}$/.exec(k);
        if (hit) out[hit[1] as string] = v;
      }
      return out;
    },
    lastSeenFlushMs,
  });
  log("stopping Ferry");
  await ferry.stop();
  if (o.cpuProf) log(`Ferry CPU profile written under ${profDir}`);

  let baseResult: TargetResult | null = null;
  if (!o.skipBaseline) {
    // The baseline trusts the same CA and presents a server certificate from it with the same chain (leaf + CA), so
    // both servers do the same TLS work per handshake, against the very same agent keys and certificates.
    const ca = await FleetCa.loadOrCreate(join(ferryDir, "ca"));
    const cert = await ca.issueServerCertificate({ hosts: ["127.0.0.1", "localhost"], lifetimeMs: 86_400_000 });
    const baseline = new Rpc<BaselineCommands>(forkBench(fileURLToPath(new URL("./baseline-server.ts", import.meta.url))), "baseline server");
    const { port } = await baseline.call("start", {
      keyPem: cert.keyPem,
      certChainPem: `${cert.certPem.trim()}\n${ca.certPem.trim()}\n`,
      caPem: ca.certPem,
      heartbeatIntervalMs: intervalMs,
    });
    log(`baseline: bare grpc-js server on 127.0.0.1:${port}`);
    let nonce = 1_000_000;
    baseResult = await measure(o, gens, {
      mode: "baseline",
      pid: baseline.child.pid as number,
      port,
      caPem: ca.certPem,
      heartbeatIntervalMs: intervalMs,
      heartbeats: async () => (await baseline.call("stats", {})).heartbeats,
      streams: async () => (await baseline.call("stats", {})).streams,
      heap: () => baseline.call("memory", {}),
      pingAll: async () => {
        const n = String(++nonce);
        await baseline.call("pingAll", { nonce: n });
        return n;
      },
    });
    await baseline.call("stop", {}).catch(() => null);
    await stopChild(baseline.child);
  }

  const rows = verdicts(o, ferryResult, baseResult);
  const finished = new Date();
  const out = {
    bench: "fleet",
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    machine: { cpus: cpus().length, memoryBytes: totalmem(), node: process.version, kernel: release() },
    options: {
      agents: N,
      quick: o.quick,
      generators: o.generators,
      heartbeatRate: o.heartbeatRate,
      heartbeatIntervalMs: intervalMs,
      steadyMs: o.steadyMs,
      ferryArgs,
      ferryBin: o.ferryBin,
      agentWelcomeTimeout: o.agentWelcomeTimeout,
    },
    code: measuredCode(o),
    enrolment,
    phases: marks,
    ferry: ferryResult,
    baseline: baseResult,
    verdicts: rows,
  };
  const resultsDir = join(ROOT, "bench-results");
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `fleet-${started.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);

  process.stdout.write(
    `\nFerry fleet bench — ${N} agents, ${o.heartbeatRate} heartbeats/s offered (interval ${intervalMs} ms), ` +
      `${started.toISOString()}, ${round((finished.getTime() - started.getTime()) / 1000)} s\n\n${table(rows)}\n\nresults: ${file}\n`,
  );
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const workDir = mkdtempSync(join(tmpdir(), "ferry-bench-"));
  await superviseBench(
    { timeoutMs: o.globalTimeoutMs, log, cleanups: [() => (o.keep ? undefined : rmSync(workDir, { recursive: true, force: true }))] },
    () => run(o, workDir),
  );
}

void main();
