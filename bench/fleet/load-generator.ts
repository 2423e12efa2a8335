// A load-generator process: simulates a share of the fleet, each agent with its own key and certificate, its own TLS
// connection and its own Connect stream. Forked by main.ts and driven over IPC (ipc.ts).
//
// Agents behave as the real agent does (agent/src/core/session.ts, docs/protocol.md): against Ferry they send Hello
// and are up at Welcome; they heartbeat at the interval the server dictates (Welcome / HeartbeatAck); they answer
// every Ping with a Pong; after a failed attempt they wait max(server retry-after, full-jitter backoff with base
// 500 ms and cap 30 s). Against the bare baseline there is no Hello: an agent opens its stream with a heartbeat
// (seq 0) and is up when that is acknowledged — the same single round trip as Hello -> Welcome.
import { readdirSync, readFileSync } from "node:fs";
import * as tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { controlPlaneIdentityCheck, createCsr, generateKeyPair } from "@ferry/pki";
import {
  ConnectRequestSchema,
  EnrolRequestSchema,
  EnrolmentService,
  HeartbeatSchema,
  HelloSchema,
  HostFactsSchema,
  PongSchema,
  clientConstructor,
  parseWireError,
  unary,
  type ConnectResponse,
  type EnrolRequestSchema as EnrolRequestDesc,
  type EnrolResponseSchema,
  type UnaryClientMethod,
} from "@ferry/proto";
import { ConnectStream, type StreamEnd } from "./grpc-stream.js";
import {
  now,
  serve,
  type ConnectResult,
  type AgentIdentity,
  type EnrolResult,
  type FailureCounts,
  type GeneratorCommands,
  type GeneratorStatus,
  type Mode,
  type RecordResult,
} from "./ipc.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
/** The agent's welcome timeout and dead-stream rule: silence for this many intervals. */
const SILENCE_FACTOR = 3;
/** Pings remembered per agent between a fan-out arm and its collection. */
const MAX_PINGS_PER_AGENT = 8;

interface Agent {
  /** Index in the whole fleet (all generators): spreads heartbeats evenly across processes. */
  readonly gi: number;
  readonly id: string;
  readonly keyPem: string;
  readonly certPem: string;
  ctx: tls.SecureContext | null;
  stream: ConnectStream | null;
  /** The bench wants this agent connected: it reconnects whenever its stream ends, as a real agent does. */
  wanted: boolean;
  up: boolean;
  /** Opened by a bounded round and not yet up or failed (counts against the round's concurrency). */
  inFlight: boolean;
  attempt: number;
  retried: boolean;
  intervalMs: number;
  seq: number;
  sentAt: number;
  awaitingSeq: number;
  lastRttMs: number;
  lastServerAt: number;
  hbTimer: NodeJS.Timeout | null;
  nextBeatAt: number;
  retryTimer: NodeJS.Timeout | null;
  pings: Array<[string, number]> | null;
}

let mode: Mode = "ferry";
let welcomeTimeout: "agent" | "none" = "none";
/** Bound on a connection attempt when the agent's welcome timeout is off: only a server that never answers hits it. */
const NO_WELCOME_TIMEOUT_MS = 15 * 60_000;
let port = 0;
let caPem = "";
const agents: Agent[] = [];

// The current connect or storm round: which agents it still waits for, and what happened on the way.
let round: {
  handshakes: number;
  failures: FailureCounts;
  lost: FailureCounts;
  startedAt: number;
  lastUpAt: number;
  waiting: Set<Agent>;
  done: (() => void) | null;
  concurrency: number | null;
  inFlight: number;
  queue: Agent[];
} | null = null;

let recording: { sent: number; acked: number; latencies: number[]; open: Set<Agent>; lost: FailureCounts } | null = null;
/** Streams of up agents that ended without the bench asking, since the process started. */
const lostTotal: FailureCounts = {};
let fanoutArmed = false;

function count(map: FailureCounts, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function secureContext(a: Agent): tls.SecureContext {
  // Built once per agent and reused on every reconnect, as grpc-js does for one set of channel credentials.
  a.ctx ??= tls.createSecureContext({ key: a.keyPem, cert: a.certPem, ca: caPem, minVersion: "TLSv1.2" });
  return a.ctx;
}

function endReason(end: StreamEnd): string {
  if (end.code) return end.code;
  if (end.status !== null) return `grpc-status ${end.status}`;
  const e = end.error ?? "unknown";
  // Keep the reason set small: strip addresses and ports from socket errors.
  return e.replace(/\d+\.\d+\.\d+\.\d+(:\d+)?/g, "").trim().slice(0, 60);
}

function clearTimers(a: Agent): void {
  if (a.hbTimer) clearTimeout(a.hbTimer);
  if (a.retryTimer) clearTimeout(a.retryTimer);
  a.hbTimer = a.retryTimer = null;
}

function scheduleBeat(a: Agent, at: number): void {
  if (a.hbTimer) clearTimeout(a.hbTimer);
  a.nextBeatAt = at;
  a.hbTimer = setTimeout(() => beat(a), Math.max(0, at - now()));
}

function beat(a: Agent): void {
  a.hbTimer = null;
  if (!a.up || !a.stream) return;
  const t = now();
  // The agent's dead-stream rule: nothing from the server for 3 × interval.
  if (t - a.lastServerAt > SILENCE_FACTOR * a.intervalMs) {
    a.stream.cancel({ status: null, error: "dead stream" });
    return;
  }
  sendHeartbeat(a);
  // Drift-free: the next beat is planned from this one's slot, not from when the timer happened to fire.
  let next = a.nextBeatAt + a.intervalMs;
  if (next < t) next = t + a.intervalMs;
  scheduleBeat(a, next);
}

function sendHeartbeat(a: Agent): void {
  if (!a.stream) return;
  a.seq += 1;
  a.awaitingSeq = a.seq;
  a.sentAt = now();
  a.stream.send(
    create(ConnectRequestSchema, {
      body: {
        case: "heartbeat",
        value: create(HeartbeatSchema, { agentId: a.id, seq: BigInt(a.seq), agentTimeMs: BigInt(Math.round(a.sentAt)), lastRttMs: a.lastRttMs }),
      },
    }),
  );
  if (recording) {
    recording.sent += 1;
    recording.open.add(a);
  }
}

function leaveFlight(a: Agent): void {
  if (!a.inFlight) return;
  a.inFlight = false;
  if (round) {
    round.inFlight -= 1;
    pump();
  }
}

function markUp(a: Agent, t: number): void {
  a.up = true;
  a.stream?.established();
  a.attempt = 0;
  leaveFlight(a);
  if (round && round.waiting.delete(a)) {
    round.lastUpAt = Math.max(round.lastUpAt, t);
    if (round.waiting.size === 0) round.done?.();
  }
  // As the agent does: the first heartbeat one interval after Welcome.
  scheduleBeat(a, t + a.intervalMs);
}

function onMessage(a: Agent, msg: ConnectResponse): void {
  const t = now();
  a.lastServerAt = t;
  switch (msg.body.case) {
    case "welcome":
      if (msg.body.value.heartbeatIntervalMs > 0) a.intervalMs = msg.body.value.heartbeatIntervalMs;
      if (!a.up) markUp(a, t);
      return;
    case "heartbeatAck": {
      const ack = msg.body.value;
      if (ack.heartbeatIntervalMs > 0) a.intervalMs = ack.heartbeatIntervalMs;
      if (Number(ack.seq) === a.awaitingSeq) {
        const rtt = t - a.sentAt;
        a.lastRttMs = Math.round(rtt);
        a.awaitingSeq = -1;
        if (recording?.open.delete(a)) {
          recording.acked += 1;
          recording.latencies.push(rtt);
        }
      }
      if (!a.up && mode === "baseline") markUp(a, t);
      return;
    }
    case "ping": {
      const nonce = msg.body.value.nonce;
      if (fanoutArmed) {
        a.pings ??= [];
        if (a.pings.length < MAX_PINGS_PER_AGENT) a.pings.push([nonce.toString(), t]);
      }
      queuePong(a, nonce);
      return;
    }
    case "disconnect": {
      // As the agent does: the Disconnect is the decision; cancel without waiting for the server to end the call.
      const d = msg.body.value;
      a.stream?.cancel({ status: null, code: d.code, ...(d.retryAfterMs > 0 ? { retryAfterMs: d.retryAfterMs } : {}) });
      return;
    }
    default:
      return;
  }
}

// Pongs are answered after the current batch of socket reads: when a fan-out reaches thousands of this process's
// streams at once, every arrival is timestamped before any reply is encrypted and written. Answering inline would
// add this process's own reply work to the arrival times of the streams read after it. The server sees the Pongs a
// few milliseconds later, which changes nothing for it (it only notes that the agent spoke).
let pongQueue: Array<[Agent, bigint]> = [];
function queuePong(a: Agent, nonce: bigint): void {
  if (pongQueue.length === 0) setImmediate(flushPongs);
  pongQueue.push([a, nonce]);
}
function flushPongs(): void {
  const batch = pongQueue;
  pongQueue = [];
  for (const [a, nonce] of batch) {
    a.stream?.send(create(ConnectRequestSchema, { body: { case: "pong", value: create(PongSchema, { nonce }) } }));
  }
}

function onEnd(a: Agent, s: ConnectStream, end: StreamEnd): void {
  if (a.stream !== s) return; // torn down by the bench (drop, storm): it reconnects on the bench's terms
  a.stream = null;
  const wasUp = a.up;
  a.up = false;
  if (a.hbTimer) clearTimeout(a.hbTimer);
  a.hbTimer = null;
  recording?.open.delete(a);
  leaveFlight(a);
  if (!a.wanted) return;
  const reason = endReason(end);
  if (wasUp) {
    count(lostTotal, reason);
    if (recording) count(recording.lost, reason);
    if (round) {
      count(round.lost, reason);
      round.waiting.add(a);
    }
  } else if (round?.waiting.has(a)) {
    count(round.failures, reason);
  }
  // The agent's reconnect policy: full jitter after the cap, the server's retry-after as a floor.
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(a.attempt, 30));
  const delay = Math.max(end.retryAfterMs ?? 0, Math.floor(Math.random() * ceiling));
  a.attempt += 1;
  a.retried = true;
  a.retryTimer = setTimeout(() => {
    a.retryTimer = null;
    if (a.wanted && !a.stream) enqueue(a);
  }, delay);
}

function open(a: Agent): void {
  const s = new ConnectStream(
    port,
    secureContext(a),
    {
      onSecure: () => {
        if (round) round.handshakes += 1;
      },
      onMessage: (m) => onMessage(a, m),
      onEnd: (end) => onEnd(a, s, end),
    },
    // Before Welcome the agent waits 3 × the interval it knows (from enrolment or its last Welcome), TLS included.
    welcomeTimeout === "agent" ? SILENCE_FACTOR * a.intervalMs : NO_WELCOME_TIMEOUT_MS,
  );
  a.stream = s;
  a.seq = 0;
  a.awaitingSeq = -1;
  a.lastServerAt = now();
  if (mode === "ferry") {
    const facts = create(HostFactsSchema, { hostname: `bench-${a.gi}`, os: "linux", arch: "x64", agentVersion: "bench", drivers: ["docker"], cpus: 2 });
    s.send(create(ConnectRequestSchema, { body: { case: "hello", value: create(HelloSchema, { agentId: a.id, facts, agentTimeMs: BigInt(Date.now()) }) } }));
  } else {
    sendHeartbeat(a);
  }
}

function enqueue(a: Agent): void {
  if (!round || round.concurrency === null) {
    open(a);
    return;
  }
  round.queue.push(a);
  pump();
}

function pump(): void {
  if (!round || round.concurrency === null) return;
  while (round.inFlight < round.concurrency && round.queue.length > 0) {
    const a = round.queue.shift() as Agent;
    if (!a.wanted || a.stream) continue;
    round.inFlight += 1;
    a.inFlight = true;
    open(a);
  }
}

/** `firstDelayMs` spreads the first attempts (a storm: the agent's backoff before its first reconnect). */
async function runRound(
  toConnect: Agent[],
  concurrency: number | null,
  timeoutMs: number,
  startedAt: number,
  firstDelayMs?: () => number,
): Promise<ConnectResult> {
  const r = {
    handshakes: 0,
    failures: {} as FailureCounts,
    lost: {} as FailureCounts,
    startedAt,
    lastUpAt: 0,
    waiting: new Set(toConnect),
    done: null as (() => void) | null,
    concurrency,
    inFlight: 0,
    queue: [] as Agent[],
  };
  round = r;
  for (const a of toConnect) {
    a.wanted = true;
    a.retried = false;
  }
  const finished = new Promise<void>((resolve) => {
    r.done = resolve;
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  if (r.waiting.size === 0) r.done?.();
  for (const a of toConnect) {
    const delay = firstDelayMs?.() ?? 0;
    if (delay <= 0) enqueue(a);
    else
      a.retryTimer = setTimeout(() => {
        a.retryTimer = null;
        if (a.wanted && !a.stream) enqueue(a);
      }, delay);
  }
  await Promise.race([finished, timedOut]);
  clearTimeout(timer);
  round = null;
  for (const a of agents) a.inFlight = false;
  const notUp = r.waiting.size;
  // Agents still down at the deadline stop trying: the bench reports them instead of retrying forever.
  for (const a of r.waiting) {
    a.wanted = false;
    if (a.retryTimer) clearTimeout(a.retryTimer);
    a.retryTimer = null;
    const s = a.stream;
    a.stream = null;
    s?.destroy();
  }
  return {
    up: agents.filter((a) => a.up).length,
    notUp,
    handshakes: r.handshakes,
    failures: r.failures,
    lost: r.lost,
    retried: toConnect.filter((a) => a.retried).length,
    startedAt: r.startedAt,
    lastUpAt: r.lastUpAt,
  };
}

// ---- enrolment ----

function newAgent(id: AgentIdentity, intervalMs: number): Agent {
  return {
    ...id,
    ctx: null,
    stream: null,
    wanted: false,
    up: false,
    inFlight: false,
    attempt: 0,
    retried: false,
    intervalMs,
    seq: 0,
    sentAt: 0,
    awaitingSeq: -1,
    lastRttMs: 0,
    lastServerAt: 0,
    hbTimer: null,
    nextBeatAt: 0,
    retryTimer: null,
    pings: null,
  };
}

type EnrolClient = grpc.Client & { enrol: UnaryClientMethod<typeof EnrolRequestDesc, typeof EnrolResponseSchema> };

async function enrol(args: GeneratorCommands["enrol"]["args"]): Promise<EnrolResult> {
  const started = now();
  caPem = args.caPem;
  const Ctor = clientConstructor(EnrolmentService);
  // One HTTP/2 connection multiplexes this generator's enrolments: the bench measures streams, not enrolment.
  const client = new Ctor(
    `127.0.0.1:${args.enrolPort}`,
    grpc.credentials.createSsl(Buffer.from(args.caPem), null, null, { checkServerIdentity: controlPlaneIdentityCheck() }),
    { "grpc.ssl_target_name_override": "ferry-control-plane", "grpc.use_local_subchannel_pool": 1 },
  ) as unknown as EnrolClient;
  const failures: FailureCounts = {};
  let failed = 0;
  let nextIndex = 0;
  const worker = async () => {
    while (nextIndex < args.count) {
      const i = nextIndex++;
      const gi = args.firstIndex + i;
      const kp = await generateKeyPair();
      const csrPem = await createCsr(kp.privateKeyPem, { commonName: `bench-${gi}` });
      // Bounded retries: RATE_LIMITED is honoured (the bench starts Ferry with a high enrolment rate, so it is rare).
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await unary(client.enrol, client, create(EnrolRequestSchema, { joinToken: args.joinToken, csrPem, name: `bench-${gi}` }), {
            deadline: Date.now() + 60_000,
          });
          agents.push(newAgent({ gi, id: res.agentId, keyPem: kp.privateKeyPem, certPem: res.certificatePem }, res.heartbeatIntervalMs || 15_000));
          break;
        } catch (err) {
          const w = parseWireError(err);
          if (w.code === "RATE_LIMITED" && attempt < 20) {
            await new Promise((r) => setTimeout(r, Math.max(w.retryAfterMs ?? 0, Math.random() * 1000)));
            continue;
          }
          count(failures, w.code);
          failed += 1;
          break;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  client.close();
  agents.sort((a, b) => a.gi - b.gi);
  return {
    enrolled: agents.length,
    failed,
    failures,
    elapsedMs: now() - started,
    identities: agents.map((a) => ({ gi: a.gi, id: a.id, keyPem: a.keyPem, certPem: a.certPem })),
  };
}

function openFiles(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return -1;
  }
}

function rssBytes(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : -1;
}

function drop(): void {
  for (const a of agents) {
    a.wanted = false;
    clearTimers(a);
    const s = a.stream;
    a.stream = null;
    a.up = false;
    s?.destroy();
  }
}

serve<GeneratorCommands>({
  enrol,
  load: (args) => {
    drop();
    agents.length = 0;
    caPem = args.caPem;
    for (const id of args.identities) agents.push(newAgent(id, args.heartbeatIntervalMs));
    agents.sort((a, b) => a.gi - b.gi);
    return { loaded: agents.length };
  },
  target: (args) => {
    drop();
    mode = args.mode;
    port = args.port;
    welcomeTimeout = args.welcomeTimeout;
    if (args.caPem !== caPem) {
      caPem = args.caPem;
      for (const a of agents) a.ctx = null;
    }
    return null;
  },
  connect: (args) => runRound(agents.filter((a) => !a.up), args.concurrency, args.timeoutMs, now()),
  storm: async (args) => {
    const startedAt = now();
    const fleet = agents.filter((a) => a.wanted);
    // Every connection goes down at once. Each agent then does what the real one does when its stream dies: it waits
    // its first backoff (attempt 0: uniform in [0, 500 ms)) and reconnects; later failures back off further.
    for (const a of fleet) {
      clearTimers(a);
      const s = a.stream;
      a.stream = null;
      a.up = false;
      a.attempt = 1;
      s?.destroy();
    }
    return runRound(fleet, null, args.timeoutMs, startedAt, () => Math.floor(Math.random() * BACKOFF_BASE_MS));
  },
  rephase: (args) => {
    for (const a of agents) {
      if (!a.up) continue;
      scheduleBeat(a, args.at + (a.gi / args.total) * a.intervalMs);
    }
    return null;
  },
  recordStart: () => {
    recording = { sent: 0, acked: 0, latencies: [], open: new Set(), lost: {} };
    return null;
  },
  recordStop: (): RecordResult => {
    const r = recording ?? { sent: 0, acked: 0, latencies: [], open: new Set<Agent>(), lost: {} };
    recording = null;
    return { sent: r.sent, acked: r.acked, latenciesMs: r.latencies, unacked: r.open.size, up: agents.filter((a) => a.up).length, lost: r.lost };
  },
  fanoutArm: () => {
    for (const a of agents) a.pings = null;
    fanoutArmed = true;
    return null;
  },
  fanoutStatus: () => {
    const counts: Record<string, number> = {};
    for (const a of agents) {
      const seen = new Set<string>();
      for (const [nonce] of a.pings ?? []) {
        if (seen.has(nonce)) continue;
        seen.add(nonce);
        counts[nonce] = (counts[nonce] ?? 0) + 1;
      }
    }
    return counts;
  },
  fanoutCollect: (args) => {
    fanoutArmed = false;
    const out: number[] = [];
    for (const a of agents) {
      const hit = a.pings?.find(([nonce]) => nonce === args.nonce);
      if (hit) out.push(hit[1]);
      a.pings = null;
    }
    return out;
  },
  status: (): GeneratorStatus => ({
    agents: agents.length,
    up: agents.filter((a) => a.up).length,
    connecting: agents.filter((a) => a.stream !== null && !a.up).length,
    openFiles: openFiles(),
    rssBytes: rssBytes(),
    lost: lostTotal,
  }),
  drop: () => {
    drop();
    return null;
  },
});
