// A simulated-agent process for the dispatch-latency measurement: a share of the fleet, each agent with its own key
// and certificate, its own TLS connection and its own Connect stream (bench/fleet/grpc-stream.ts). Forked by
// main.ts and driven over IPC (ipc.ts).
//
// Each agent does what the real agent does with a task offer, up to the point where a driver would run: it checks
// the signature, audience and expiry with verifySignedTask (@ferry/pki) against the task-signing keys the server
// announced in Welcome, records when the offer arrived and when verification finished, answers TaskAck (accepted),
// and then reports a TaskResult "succeeded" at once, so the task is finished and the target free for the next one.
// What it leaves out: the journal (a disk write and fsync per task in the real agent) and the driver.
//
// Connection behaviour is the fleet bench's: Hello with host facts that advertise the docker driver, heartbeats at
// the interval the server dictates, Pong for Ping, and a reconnect with jittered backoff when a stream ends.
import * as tls from "node:tls";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { controlPlaneIdentityCheck, createCsr, generateKeyPair, TaskRefusal, verifySignedTask, type TrustedTaskKey } from "@ferry/pki";
import {
  ConnectRequestSchema,
  EnrolRequestSchema,
  EnrolmentService,
  HeartbeatSchema,
  HelloSchema,
  HostFactsSchema,
  PongSchema,
  TaskAckSchema,
  TaskResultSchema,
  clientConstructor,
  parseWireError,
  unary,
  type ConnectResponse,
  type EnrolRequestSchema as EnrolRequestDesc,
  type EnrolResponseSchema,
  type TaskOffer,
  type UnaryClientMethod,
} from "@ferry/proto";
import { ConnectStream, type StreamEnd } from "../fleet/grpc-stream.js";
import { now, serve, type AgentIdentity } from "../fleet/ipc.js";
import type { AgentsCommands, TaskSeen } from "./ipc.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
const WELCOME_TIMEOUT_MS = 60_000;

interface Agent {
  readonly gi: number;
  readonly id: string;
  readonly keyPem: string;
  readonly certPem: string;
  ctx: tls.SecureContext | null;
  stream: ConnectStream | null;
  wanted: boolean;
  up: boolean;
  attempt: number;
  intervalMs: number;
  seq: number;
  hbTimer: NodeJS.Timeout | null;
  retryTimer: NodeJS.Timeout | null;
}

let port = 0;
let caPem = "";
const agents: Agent[] = [];
/** The keys the server announced (Welcome): the same set for every agent of one server. */
let trusted: TrustedTaskKey[] = [];
let seen: TaskSeen[] = [];
let offers = 0;
let refused = 0;
let heartbeatsSent = 0;
/** Heartbeat period set by the orchestrator instead of the server's (bench:footprint compresses a day of them). */
let heartbeatEveryMs: number | null = null;
const lost: Record<string, number> = {};

let round: { waiting: Set<Agent>; done: () => void; failures: Record<string, number>; inFlight: number; queue: Agent[]; concurrency: number } | null = null;

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function newAgent(id: AgentIdentity): Agent {
  return { ...id, ctx: null, stream: null, wanted: false, up: false, attempt: 0, intervalMs: 15_000, seq: 0, hbTimer: null, retryTimer: null };
}

function send(a: Agent, body: MessageInitShape<typeof ConnectRequestSchema>): void {
  a.stream?.send(create(ConnectRequestSchema, body));
}

function scheduleBeat(a: Agent, delayMs: number): void {
  if (a.hbTimer) clearTimeout(a.hbTimer);
  a.hbTimer = setTimeout(() => {
    a.hbTimer = null;
    if (!a.up) return;
    a.seq += 1;
    send(a, { body: { case: "heartbeat", value: create(HeartbeatSchema, { agentId: a.id, seq: BigInt(a.seq), agentTimeMs: BigInt(Date.now()) }) } });
    heartbeatsSent += 1;
    scheduleBeat(a, heartbeatEveryMs ?? a.intervalMs);
  }, delayMs);
}

function leaveFlight(): void {
  if (!round) return;
  round.inFlight -= 1;
  pump();
}

function markUp(a: Agent): void {
  a.up = true;
  a.attempt = 0;
  a.stream?.established();
  if (round?.waiting.delete(a)) {
    leaveFlight();
    if (round.waiting.size === 0) round.done();
  }
  // Spread the fleet's heartbeats over the interval.
  scheduleBeat(a, Math.random() * (heartbeatEveryMs ?? a.intervalMs));
}

function onOffer(a: Agent, offer: TaskOffer): void {
  const receivedAt = now();
  offers += 1;
  const env = offer.task;
  let taskId: string;
  let verified = false;
  let refusal: string | undefined;
  try {
    if (!env) throw new TaskRefusal("TASK_MALFORMED", "offer without a task");
    const payload = verifySignedTask(
      { payload: env.payload, payloadType: env.payloadType, keyId: env.keyId, signature: env.signature },
      { trustedKeys: trusted, agentId: a.id, now: Date.now() },
    );
    taskId = payload.taskId;
    verified = true;
  } catch (err) {
    refusal = err instanceof TaskRefusal ? err.code : (err as Error).message;
    refused += 1;
    try {
      taskId = (JSON.parse(Buffer.from(env?.payload ?? new Uint8Array()).toString("utf8")) as { taskId?: string }).taskId ?? "";
    } catch {
      taskId = "";
    }
  }
  const verifiedAt = now();
  seen.push({ taskId, agentId: a.id, receivedAt, verifiedAt, verified, ...(refusal ? { refusal } : {}) });
  send(a, {
    body: { case: "taskAck", value: create(TaskAckSchema, { taskId, accepted: verified, attempt: offer.attempt, ...(refusal ? { refusalCode: refusal, refusalMessage: "refused by the bench agent" } : {}) }) },
  });
  if (!verified) return;
  // Nothing to run: report success at once so the target is free for the next deployment.
  const t = BigInt(Date.now());
  send(a, { body: { case: "taskResult", value: create(TaskResultSchema, { taskId, outcome: "succeeded", startedAtMs: t, finishedAtMs: t, attempt: offer.attempt }) } });
}

function onMessage(a: Agent, msg: ConnectResponse): void {
  switch (msg.body.case) {
    case "welcome": {
      const w = msg.body.value;
      if (w.heartbeatIntervalMs > 0) a.intervalMs = w.heartbeatIntervalMs;
      if (w.taskSigningKeys.length > 0) trusted = w.taskSigningKeys.map((k) => ({ keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: k.notAfterMs }));
      if (!a.up) markUp(a);
      return;
    }
    case "signingKeys":
      trusted = msg.body.value.keys.map((k) => ({ keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: k.notAfterMs }));
      return;
    case "heartbeatAck":
      if (msg.body.value.heartbeatIntervalMs > 0) a.intervalMs = msg.body.value.heartbeatIntervalMs;
      return;
    case "ping":
      send(a, { body: { case: "pong", value: create(PongSchema, { nonce: msg.body.value.nonce }) } });
      return;
    case "taskOffer":
      onOffer(a, msg.body.value);
      return;
    case "disconnect": {
      const d = msg.body.value;
      a.stream?.cancel({ status: null, code: d.code, ...(d.retryAfterMs > 0 ? { retryAfterMs: d.retryAfterMs } : {}) });
      return;
    }
    default:
      return;
  }
}

function onEnd(a: Agent, s: ConnectStream, end: StreamEnd): void {
  if (a.stream !== s) return;
  a.stream = null;
  const wasUp = a.up;
  a.up = false;
  if (a.hbTimer) clearTimeout(a.hbTimer);
  a.hbTimer = null;
  const reason = end.code ?? (end.status !== null ? `grpc-status ${end.status}` : (end.error ?? "unknown").slice(0, 60));
  if (wasUp) count(lost, reason);
  else if (round?.waiting.has(a)) {
    count(round.failures, reason);
    leaveFlight();
  }
  if (!a.wanted) return;
  if (wasUp && round) round.waiting.add(a);
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(a.attempt, 30));
  const delay = Math.max(end.retryAfterMs ?? 0, Math.floor(Math.random() * ceiling));
  a.attempt += 1;
  a.retryTimer = setTimeout(() => {
    a.retryTimer = null;
    if (!a.wanted || a.stream) return;
    if (round?.waiting.has(a)) {
      round.queue.push(a);
      pump();
    } else open(a);
  }, delay);
}

function open(a: Agent): void {
  a.ctx ??= tls.createSecureContext({ key: a.keyPem, cert: a.certPem, ca: caPem, minVersion: "TLSv1.2" });
  const s = new ConnectStream(port, a.ctx, { onSecure: () => undefined, onMessage: (m) => onMessage(a, m), onEnd: (end) => onEnd(a, s, end) }, WELCOME_TIMEOUT_MS);
  a.stream = s;
  a.seq = 0;
  const facts = create(HostFactsSchema, { hostname: `bench-${a.gi}`, os: "linux", arch: "x64", agentVersion: "bench", drivers: ["docker"], cpus: 2 });
  send(a, { body: { case: "hello", value: create(HelloSchema, { agentId: a.id, facts, agentTimeMs: BigInt(Date.now()) }) } });
}

function pump(): void {
  if (!round) return;
  while (round.inFlight < round.concurrency && round.queue.length > 0) {
    const a = round.queue.shift() as Agent;
    if (!a.wanted || a.stream) continue;
    round.inFlight += 1;
    open(a);
  }
}

async function connect(args: AgentsCommands["connect"]["args"]): Promise<AgentsCommands["connect"]["result"]> {
  const toConnect = agents.filter((a) => !a.up);
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const r = { waiting: new Set(toConnect), done, failures: {} as Record<string, number>, inFlight: 0, queue: [...toConnect], concurrency: args.concurrency };
  round = r;
  for (const a of toConnect) a.wanted = true;
  if (toConnect.length === 0) done();
  pump();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, args.timeoutMs)))]);
  clearTimeout(timer);
  round = null;
  return { up: agents.filter((a) => a.up).length, notUp: r.waiting.size, failures: r.failures };
}

function drop(): void {
  round = null;
  for (const a of agents) {
    a.wanted = false;
    if (a.hbTimer) clearTimeout(a.hbTimer);
    if (a.retryTimer) clearTimeout(a.retryTimer);
    a.hbTimer = a.retryTimer = null;
    const s = a.stream;
    a.stream = null;
    a.up = false;
    s?.destroy();
  }
}

type EnrolClient = grpc.Client & { enrol: UnaryClientMethod<typeof EnrolRequestDesc, typeof EnrolResponseSchema> };

async function enrol(args: AgentsCommands["enrol"]["args"]): Promise<AgentsCommands["enrol"]["result"]> {
  caPem = args.caPem;
  const Ctor = clientConstructor(EnrolmentService);
  const client = new Ctor(
    `127.0.0.1:${args.enrolPort}`,
    grpc.credentials.createSsl(Buffer.from(args.caPem), null, null, { checkServerIdentity: controlPlaneIdentityCheck() }),
    { "grpc.ssl_target_name_override": "ferry-control-plane", "grpc.use_local_subchannel_pool": 1 },
  ) as unknown as EnrolClient;
  const failures: Record<string, number> = {};
  const identities: AgentIdentity[] = [];
  let next = 0;
  const worker = async () => {
    while (next < args.count) {
      const gi = args.firstIndex + next++;
      const kp = await generateKeyPair();
      const csrPem = await createCsr(kp.privateKeyPem, { commonName: `bench-${gi}` });
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await unary(client.enrol, client, create(EnrolRequestSchema, { joinToken: args.joinToken, csrPem, name: `bench-${gi}` }), { deadline: Date.now() + 60_000 });
          identities.push({ gi, id: res.agentId, keyPem: kp.privateKeyPem, certPem: res.certificatePem });
          break;
        } catch (err) {
          const w = parseWireError(err);
          if (w.code === "RATE_LIMITED" && attempt < 20) {
            await new Promise((r) => setTimeout(r, Math.max(w.retryAfterMs ?? 0, Math.random() * 1000)));
            continue;
          }
          count(failures, w.code);
          break;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  client.close();
  identities.sort((a, b) => a.gi - b.gi);
  agents.length = 0;
  for (const id of identities) agents.push(newAgent(id));
  return { identities, failures };
}

serve<AgentsCommands>({
  enrol,
  load: (args) => {
    drop();
    agents.length = 0;
    caPem = args.caPem;
    for (const id of args.identities) agents.push(newAgent(id));
    return { loaded: agents.length };
  },
  target: (args) => {
    // Both servers get the same Hello; the mode only names the server in the orchestrator's figures.
    drop();
    port = args.port;
    trusted = [];
    heartbeatEveryMs = args.heartbeatEveryMs ?? null;
    if (args.caPem !== caPem) {
      caPem = args.caPem;
      for (const a of agents) a.ctx = null;
    }
    return null;
  },
  connect,
  collect: () => {
    const out = seen;
    seen = [];
    return out;
  },
  status: () => ({ agents: agents.length, up: agents.filter((a) => a.up).length, lost, offers, refused, heartbeatsSent }),
  drop: () => {
    drop();
    return null;
  },
});
