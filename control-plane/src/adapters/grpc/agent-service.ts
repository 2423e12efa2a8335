// AgentService (mTLS listener): the Connect stream and certificate renewal.
//
// Every handler starts with authenticate(): the agent's identity comes from the peer certificate the TLS layer
// verified (mtls-listener.ts), never from a message. Checked on every new call: a certificate was presented and
// chains to a trusted CA, it is inside its validity window now (a connection can outlive its certificate), its
// serial is not revoked, and its agent is not revoked.
import { isCapability } from "@ferry/contract";
import { create } from "@bufbuild/protobuf";
import type { ServerUnaryCall, sendUnaryData, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  AckTaskResponseSchema,
  ConnectResponseSchema,
  HeartbeatAckSchema,
  LogAckSchema,
  PullTasksResponseSchema,
  ReportResultResponseSchema,
  ResultAckSchema,
  TaskSigningKeySchema,
  RenewCertificateResponseSchema,
  WelcomeSchema,
  isMalformed,
  wireError,
  type ConnectRequestSchema,
  type ConnectRequest,
  type Incoming,
  type RenewCertificateRequestSchema,
  type RenewCertificateResponse,
  type HostFacts,
  type WireErrorCode,
  type AckTaskRequest,
  type MalformedMessage,
  type AckTaskResponse,
  type PullTasksRequest,
  type PullTasksResponse,
  type ReportResultRequest,
  type ReportResultResponse,
  type Sticker,
  type TaskAck,
  type TaskResult,
  type TaskSigningKey,
} from "@ferry/proto";
import type { TaskQueue, TaskResultInput } from "../../domain/deploy/task-queue.js";
import type { PublishedKey } from "../../ports/signer.js";
import type { TaskDispatcher } from "./task-dispatcher.js";
import type { Clock } from "../../ports/clock.js";
import { isFerryError } from "../../domain/errors.js";
import type { FleetService, HostFactsRecord } from "../../domain/fleet/fleet-service.js";
import { clockSkewMs } from "../../domain/fleet/liveness.js";
import { storableCount, storableFacts, storableText } from "../../domain/fleet/agent-input.js";
import type { LivenessRecorder } from "../../domain/fleet/liveness-recorder.js";
import type { AdmissionGate } from "./admission.js";
import type { MtlsListener, PeerVerdict } from "./mtls-listener.js";
import type { RefusalRecorder } from "./refusals.js";
import type { AgentCall, LiveSession, SessionRegistry } from "./session-registry.js";
import { toWireError } from "./wire-errors.js";
import { DEFAULT_STREAM_INTAKE, StreamIntake, taskMessageBytes } from "./stream-intake.js";
import { MAX_TASK_LOG_BYTES } from "../../domain/deploy/agent-input-limits.js";

export interface Revocations {
  serials: Set<string>;
  agents: Set<string>;
}

export interface AgentServiceDeps {
  fleet: FleetService;
  listener: () => MtlsListener;
  sessions: SessionRegistry;
  recorder: LivenessRecorder;
  revocations: Revocations;
  admission: AdmissionGate;
  refusals: RefusalRecorder;
  clock: Clock;
  heartbeatIntervalMs: number;
  caBundle: () => string[];
  log: Logger;
  helloTimeoutMs?: number;
  onHeartbeat?: () => void;
  tasks?: AgentTaskDeps;
  /** Back-pressure per stream (stream-intake.ts); defaults DEFAULT_STREAM_INTAKE. */
  streamIntake?: { highBytes?: number; lowBytes?: number; observe?: (pendingBytes: number, paused: boolean, agentId: string) => void };
}

type TaskMessageBody = Extract<ConnectRequest["body"], { case: "taskAck" | "taskProgress" | "logChunk" | "taskResult" }>;

export interface AgentTaskDeps {
  queue: TaskQueue;
  dispatcher: TaskDispatcher;
  signingKeys: () => PublishedKey[];
  /** Called once per stream after Hello, with the facts it carried (target checks waiting for this agent are queued). */
  onConnected?: (agentId: string, facts: Partial<HostFactsRecord>) => Promise<unknown>;
}

export function signingKeysMessage(keys: PublishedKey[]): TaskSigningKey[] {
  return keys.map((k) => create(TaskSigningKeySchema, { keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: BigInt(k.notAfterMs) }));
}

/** A sticker as stored and served by the API (plain JSON, times as epoch ms). */
export function stickerRecord(s: Sticker): Record<string, unknown> {
  // Agent-supplied text goes into jsonb: storableText drops what PostgreSQL refuses (NUL, lone surrogates).
  return {
    targetId: storableText(s.targetId, 64),
    targetName: storableText(s.targetName, 128),
    releaseId: storableText(s.releaseId, 64),
    releaseName: storableText(s.releaseName, 128),
    releaseVersion: storableText(s.releaseVersion, 128),
    deploymentId: storableText(s.deploymentId, 64),
    taskId: storableText(s.taskId, 64),
    writtenAtMs: storableCount(s.writtenAtMs, MAX_TIME_MS),
    agentId: storableText(s.agentId, 64),
    images: s.images.slice(0, 32).map((i) => ({ component: storableText(i.component, 128), repository: storableText(i.repository, 512), digest: storableText(i.digest, 80), runningDigest: storableText(i.runningDigest, 80) })),
    observedAtMs: storableCount(s.observedAtMs, MAX_TIME_MS),
    observedState: storableText(s.observedState, 32),
  };
}

function resultInput(r: TaskResult): TaskResultInput {
  let details: Record<string, unknown> = {};
  if (r.detailsJson) {
    try {
      const v: unknown = JSON.parse(r.detailsJson);
      if (typeof v === "object" && v !== null && !Array.isArray(v)) details = v as Record<string, unknown>;
    } catch {
      details = { unparsedDetails: r.detailsJson.slice(0, 4096) };
    }
  }
  return {
    taskId: r.taskId,
    outcome: r.outcome,
    code: r.code.slice(0, 64),
    message: r.message.slice(0, 4096),
    details,
    sticker: r.sticker ? stickerRecord(r.sticker) : null,
    startedAt: Number(r.startedAtMs),
    finishedAt: Number(r.finishedAtMs),
    logBytes: Number(r.logBytes),
    attempt: r.attempt,
  };
}

function ackInput(a: TaskAck): { taskId: string; accepted: boolean; code: string; message: string } {
  return { taskId: a.taskId, accepted: a.accepted, code: a.refusalCode.slice(0, 64), message: a.refusalMessage.slice(0, 4096) };
}

type Authenticated = PeerVerdict & { ok: true };

/** The largest time in ms a JavaScript Date (and a timestamptz built from it) can hold. */
const MAX_TIME_MS = 8_640_000_000_000_000;

export function factsRecord(f: HostFacts | undefined): Partial<HostFactsRecord> {
  if (!f) return {};
  return storableFacts({
    hostname: f.hostname,
    os: f.os,
    osRelease: f.osRelease,
    arch: f.arch,
    agentVersion: f.agentVersion,
    drivers: f.drivers,
    cpus: f.cpus,
    memoryBytes: storableCount(f.memoryBytes, Number.MAX_SAFE_INTEGER),
    driverFacts: f.driverFacts.map((d) => ({ kind: d.kind, capabilities: d.capabilities.filter(isCapability), detail: d.detail })),
    taskPayloadVersions: f.taskPayloadVersions,
  });
}

export function agentServiceImpl(d: AgentServiceDeps): UntypedServiceImplementation {
  const refuse = (code: WireErrorCode, message: string, details: Record<string, unknown>) => {
    d.refusals.refuse("agent", code, message, details);
    return wireError(code, message);
  };

  function authenticate(peer: string, method: string): Authenticated {
    const v = d.listener().verdictFor(peer);
    if (!v) throw refuse("CERT_REQUIRED", "no TLS session is known for this connection", { peer, method });
    // Connection-level refusals were logged once when the connection was accepted; repeat only as a call error.
    if (!v.ok) throw wireError(v.code, v.message);
    const now = d.clock.now();
    if (now > v.notAfter) {
      throw refuse("CERT_EXPIRED", `the client certificate (serial ${v.serial}) expired at ${new Date(v.notAfter).toISOString()}; re-enrol the agent`, { peer, method, agentId: v.agentId });
    }
    if (d.revocations.agents.has(v.agentId)) {
      throw refuse("AGENT_REVOKED", `agent ${v.agentId} is revoked; enrol it again with a new join token`, { peer, method, agentId: v.agentId });
    }
    if (d.revocations.serials.has(v.serial)) {
      throw refuse("CERT_REVOKED", `certificate ${v.serial} is revoked`, { peer, method, agentId: v.agentId });
    }
    return v;
  }

  function connect(call: AgentCall): void {
    const peer = call.getPeer();
    let id: Authenticated;
    try {
      id = authenticate(peer, "Connect");
    } catch (err) {
      call.emit("error", err);
      return;
    }
    const admission = d.admission.tryAdmit();
    if (!admission.admitted) {
      call.emit("error", wireError("RATE_LIMITED", "too many agents are connecting; retry later", admission.retryAfterMs));
      return;
    }
    const log = d.log.child({ agentId: id.agentId, peer });
    let session: LiveSession | null = null;
    // Task messages of one stream are applied in order (a log chunk after the one before it, a result after its ack).
    let chain: Promise<void> = Promise.resolve();
    const serial = (fn: () => Promise<void>) => {
      chain = chain.then(fn).catch((err: unknown) => log.warn({ err }, "could not apply a task message; the agent will resend it"));
    };
    const intake = new StreamIntake(call, {
      ...DEFAULT_STREAM_INTAKE,
      ...d.streamIntake,
      ...(d.streamIntake?.observe ? { observe: (bytes: number, paused: boolean) => d.streamIntake?.observe?.(bytes, paused, id.agentId) } : { observe: undefined }),
    });
    // One warning per task and kind of refusal per stream: a misbehaving agent must not flood the log either.
    const warned = new Set<string>();
    const droppedOnce = (taskId: string, kind: string, message: string) => {
      const key = `${kind}\0${taskId}`;
      if (warned.has(key) || warned.size > 1000) return;
      warned.add(key);
      log.warn({ taskId, kind }, message);
    };
    const helloTimer = setTimeout(() => {
      call.emit("error", refuse("PROTOCOL_VIOLATION", "no Hello within the time allowed", { peer, agentId: id.agentId }));
    }, d.helloTimeoutMs ?? 10_000);

    const violation = (code: WireErrorCode, message: string) => {
      const err = refuse(code, message, { peer, agentId: id.agentId });
      if (session) d.sessions.close(session, code, message, 0);
      else call.emit("error", err);
    };

    call.on("data", (msg: Incoming<typeof ConnectRequestSchema>) => {
      if (isMalformed(msg)) return violation(msg.code, msg.detail);
      const now = d.clock.now();
      const body = msg.body;
      if (!session) {
        if (body.case !== "hello") return violation("PROTOCOL_VIOLATION", "the first message on a stream must be Hello");
        clearTimeout(helloTimer);
        if (body.value.agentId && body.value.agentId !== id.agentId) {
          return violation("IDENTITY_MISMATCH", `Hello claims agent ${body.value.agentId} but the certificate is agent ${id.agentId}`);
        }
        session = { agentId: id.agentId, serial: id.serial, peer, call, openedAt: now, lastSentAt: now, lastReceivedAt: now, closed: false };
        d.sessions.add(session);
        d.recorder.connected(id.agentId, factsRecord(body.value.facts), id.serial, id.notAfter);
        d.sessions.send(
          session,
          create(ConnectResponseSchema, {
            body: {
              case: "welcome",
              value: create(WelcomeSchema, {
                agentId: id.agentId,
                heartbeatIntervalMs: d.heartbeatIntervalMs,
                serverTimeMs: BigInt(now),
                taskSigningKeys: d.tasks ? signingKeysMessage(d.tasks.signingKeys()) : [],
              }),
            },
          }),
        );
        log.info({ serial: id.serial }, "agent connected");
        if (d.tasks) {
          const t = d.tasks;
          const hello = body.value;
          serial(async () => {
            if (hello.stickers.length > 0) await t.queue.recordStickers(id.agentId, hello.stickers.map(stickerRecord));
            await t.queue.renew(id.agentId, hello.runningTaskIds);
            await t.onConnected?.(id.agentId, factsRecord(hello.facts));
          });
          t.dispatcher.wake(id.agentId);
        }
        return;
      }
      session.lastReceivedAt = now;
      switch (body.case) {
        case "heartbeat": {
          const hb = body.value;
          if (hb.agentId && hb.agentId !== id.agentId) {
            return violation("IDENTITY_MISMATCH", `heartbeat claims agent ${hb.agentId} but the certificate is agent ${id.agentId}`);
          }
          const skew = hb.agentTimeMs > 0n ? clockSkewMs(Number(hb.agentTimeMs), now, hb.lastRttMs) : null;
          d.recorder.heartbeat(id.agentId, skew);
          d.onHeartbeat?.();
          if (d.tasks && (hb.stickersIncluded || hb.runningTaskIds.length > 0)) {
            const t = d.tasks;
            serial(async () => {
              if (hb.stickersIncluded) await t.queue.recordStickers(id.agentId, hb.stickers.map(stickerRecord));
              await t.queue.renew(id.agentId, hb.runningTaskIds);
            });
          }
          d.sessions.send(
            session,
            create(ConnectResponseSchema, {
              body: {
                case: "heartbeatAck",
                value: create(HeartbeatAckSchema, { seq: hb.seq, serverTimeMs: BigInt(now), heartbeatIntervalMs: d.heartbeatIntervalMs }),
              },
            }),
          );
          return;
        }
        case "pong":
          return;
        case "taskAck":
        case "taskProgress":
        case "logChunk":
        case "taskResult": {
          const t = d.tasks;
          if (!t) return violation("PROTOCOL_VIOLATION", "this control plane does not run tasks");
          const live = session;
          const size = taskMessageBytes(body);
          intake.add(size);
          serial(async () => {
            try {
              await applyTaskMessage(t, live, body);
            } finally {
              intake.done(size);
            }
          });
          return;
        }
        case "hello":
          return violation("PROTOCOL_VIOLATION", "Hello may only be sent once per stream");
        default:
          return violation("PROTOCOL_VIOLATION", "empty or unknown message");
      }
    });

    /** Applies one task message of this stream; called in stream order (serial). */
    async function applyTaskMessage(t: AgentTaskDeps, live: LiveSession, body: TaskMessageBody): Promise<void> {
      switch (body.case) {
        case "taskAck":
          await t.queue.ack(id.agentId, ackInput(body.value));
          return;
        case "taskProgress": {
          const kept = await t.queue.progress(id.agentId, { taskId: body.value.taskId, step: body.value.step, detail: body.value.detail, at: Number(body.value.atMs) });
          if (!kept) droppedOnce(body.value.taskId, "progress", "progress for a task that is not running, or past the per-task event limit, was not kept");
          return;
        }
        case "logChunk": {
          const r = await t.queue.appendLog(id.agentId, body.value.taskId, Number(body.value.offset), body.value.data);
          if (r !== null) {
            if (r.dropped) droppedOnce(body.value.taskId, `log-${r.dropped}`, r.dropped === "cap" ? `log past the per-task limit of ${MAX_TASK_LOG_BYTES} bytes was not kept` : "log past the length the task's result declared was not kept");
            d.sessions.send(live, create(ConnectResponseSchema, { body: { case: "logAck", value: create(LogAckSchema, { taskId: body.value.taskId, offset: BigInt(r.ackOffset) }) } }));
          }
          return;
        }
        case "taskResult": {
          const known = await t.queue.result(id.agentId, resultInput(body.value));
          // An unknown task (not this agent's) is acknowledged too, so the agent stops resending it; it is logged.
          if (!known) log.warn({ taskId: body.value.taskId }, "result for a task this agent does not own");
          d.sessions.send(live, create(ConnectResponseSchema, { body: { case: "resultAck", value: create(ResultAckSchema, { taskId: body.value.taskId }) } }));
          return;
        }
      }
    }

    const ended = () => {
      clearTimeout(helloTimer);
      if (!session) return;
      const current = d.sessions.remove(session);
      if (current) {
        d.recorder.disconnected(session.agentId);
        log.info("agent disconnected");
      }
      session = null;
    };
    call.on("end", () => {
      ended();
      call.end();
    });
    call.on("cancelled", ended);
    call.on("error", ended);
    call.on("close", ended);
  }

  async function renewCertificate(
    call: ServerUnaryCall<Incoming<typeof RenewCertificateRequestSchema>, RenewCertificateResponse>,
    callback: sendUnaryData<RenewCertificateResponse>,
  ): Promise<void> {
    const peer = call.getPeer();
    try {
      const id = authenticate(peer, "RenewCertificate");
      const req = call.request;
      if (isMalformed(req)) throw refuse(req.code, req.detail, { peer, agentId: id.agentId });
      const cert = await d.fleet.renewCertificate(id.agentId, req.csrPem);
      d.log.info({ agentId: id.agentId, serial: cert.serial, notAfter: cert.notAfter }, "agent certificate renewed");
      callback(null, create(RenewCertificateResponseSchema, { certificatePem: cert.certPem, caBundlePem: d.caBundle() }));
    } catch (err) {
      if (isFerryError(err)) d.refusals.refuse("agent", err.code, err.message, { peer, method: "RenewCertificate" });
      callback(toWireError(err, d.log));
    }
  }

  function unary<Req extends object, Res>(method: string, fn: (id: Authenticated, req: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req | MalformedMessage, Res>, callback: sendUnaryData<Res>) => {
      const peer = call.getPeer();
      void (async () => {
        try {
          const id = authenticate(peer, method);
          const req = call.request;
          if (isMalformed(req)) throw refuse(req.code, req.detail, { peer, agentId: id.agentId });
          if (!d.tasks) throw wireError("PROTOCOL_VIOLATION", "this control plane does not run tasks");
          callback(null, await fn(id, req));
        } catch (err) {
          callback(toWireError(err, d.log));
        }
      })();
    };
  }

  const pullTasks = unary<PullTasksRequest, PullTasksResponse>("PullTasks", async (id, req) => {
    const t = d.tasks!;
    const claimed = await t.queue.claim(id.agentId, Math.min(Math.max(req.max || 16, 1), 64));
    return create(PullTasksResponseSchema, { offers: await t.dispatcher.toOffers(claimed) });
  });
  const ackTask = unary<AckTaskRequest, AckTaskResponse>("AckTask", async (id, req) => {
    if (req.ack) await d.tasks!.queue.ack(id.agentId, ackInput(req.ack));
    return create(AckTaskResponseSchema, {});
  });
  const reportResult = unary<ReportResultRequest, ReportResultResponse>("ReportResult", async (id, req) => {
    if (!req.result) throw wireError("PROTOCOL_VIOLATION", "ReportResult needs a result");
    await d.tasks!.queue.result(id.agentId, resultInput(req.result));
    return create(ReportResultResponseSchema, { ack: create(ResultAckSchema, { taskId: req.result.taskId }) });
  });

  return {
    pullTasks,
    ackTask,
    reportResult,
    connect,
    renewCertificate: (call: ServerUnaryCall<Incoming<typeof RenewCertificateRequestSchema>, RenewCertificateResponse>, cb: sendUnaryData<RenewCertificateResponse>) => {
      void renewCertificate(call, cb);
    },
  };
}
