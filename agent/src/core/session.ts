// The agent's long-lived session with the control plane (docs/protocol.md, "Session", "Reconnect", "Certificate
// renewal").
//
// Lifecycle (string states, observable through the `state` event):
//
//   starting ──► connecting ──► connected ──┐
//                   ▲   │                   │ stream ended / error / dead / Disconnect
//                   │   └───────────────────┤
//                   └──────── backoff ◄─────┘
//
//   any ──stop()──► stopping ──► stopped
//   any ──revoked / expired / unknown identity──► failed      (never retried: the agent must be re-enrolled)
//
// One connection attempt = one client (its own HTTP/2 connection, channel.ts) + one Connect stream. The client lives as
// long as its stream and is closed when the stream ends, so a reconnect always makes a fresh TCP + TLS connection:
// after a dead stream the old HTTP/2 connection may be a black hole, and after a renewal the next handshake must
// present the new certificate. RenewCertificate runs over the current stream's client (its mTLS identity); renewing
// only swaps the credentials the *next* client is built with, so the open stream is never dropped.
//
// Every timer the session arms is cleared on stop and on failure: a stopped session leaves no handle open.
import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

import { create } from "@bufbuild/protobuf";
import { certificateInfo, createCsr, generateKeyPair } from "@ferry/pki";
import {
  ConnectRequestSchema,
  HeartbeatSchema,
  HelloSchema,
  parseWireError,
  PongSchema,
  PullTasksRequestSchema,
  RenewCertificateRequestSchema,
  type LogAck,
  type ResultAck,
  type Sticker,
  type TaskOffer,
  type TaskSigningKey,
  type ConnectRequest,
  type ConnectResponse,
  type HostFacts,
  type RenewCertificateResponse,
  GrpcStatus,
  grpcStatusName,
} from "@ferry/proto/wire";
import type { Logger } from "pino";

import { AgentError, REENROL_CODES, isAgentError } from "./agent-error.js";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { createAgentClient, DEFAULT_KEEPALIVE, type AgentClient, type ConnectCall, type KeepaliveOptions } from "./channel.js";
import type { StatusObject } from "./grpc/client.js";
import { keyMatchesCertificate, type AgentCredentials, type Identity, type StateDir } from "./state-dir.js";

export type SessionState = "starting" | "connecting" | "connected" | "backoff" | "stopping" | "stopped" | "failed";

export interface CertificateSummary {
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** Why a stream ended, as reported by the `streamEnded` event. */
export interface StreamEnd {
  /** Human-readable cause: "disconnect SERVER_SHUTTING_DOWN", "dead stream", "UNAVAILABLE: …", "stopped". */
  reason: string;
  /** Ferry code from a Disconnect or the call status, when there was one. */
  code?: string;
  /** The server's message with that code. */
  message?: string;
  /** Server-provided floor for the next reconnect. */
  retryAfterMs?: number;
  /** Whether this stream had reached Welcome. */
  welcomed: boolean;
  /** The call's final gRPC status, a GrpcStatus (CANCELLED when the agent cut it: dead stream, Disconnect, stop timeout). */
  status: number;
}

export interface SessionEvents {
  state: [state: SessionState, previous: SessionState];
  welcome: [info: { agentId: string; heartbeatIntervalMs: number; serverTimeMs: number; taskSigningKeys: TaskSigningKey[] }];
  /** The control plane offered a task (verification is the task runner's job). */
  taskOffer: [offer: TaskOffer];
  logAck: [ack: LogAck];
  resultAck: [ack: ResultAck];
  /** The trusted task-signing keys changed (rotation). */
  signingKeys: [keys: TaskSigningKey[]];
  /** A heartbeat was written to the stream. */
  heartbeat: [info: { seq: number; lastRttMs: number }];
  heartbeatAck: [info: { seq: number; rttMs: number | undefined; heartbeatIntervalMs: number }];
  intervalChanged: [info: { from: number; to: number }];
  /** A Ping arrived and was answered with a Pong. */
  ping: [info: { nonce: bigint }];
  disconnect: [info: { code: string; message: string; retryAfterMs: number }];
  streamEnded: [info: StreamEnd];
  backoff: [info: { attempt: number; delayMs: number; reason: string }];
  renewed: [info: CertificateSummary & { nextRenewalAt: Date }];
  renewalFailed: [info: { error: Error; retryAt: Date | undefined }];
  failed: [error: AgentError];
}

export interface RenewalOptions {
  /** Schedule renewals automatically at half-life plus jitter. Default true. */
  enabled?: boolean;
  /** Jitter added after half-life, as a fraction of the lifetime. Default 0.1 (docs/protocol.md). */
  jitterFraction?: number;
  /**
   * Never schedule a renewal sooner than this after the previous one (bounded by half the remaining validity, so a
   * short-lived certificate still renews in time). Stops a certificate whose back-dated notBefore puts half-life in
   * the past from causing a renewal loop. Default 30 s.
   */
  minDelayMs?: number;
  /** Retry backoff after a failed renewal. Default base 5 s, cap 5 min (and never past a quarter of what is left). */
  retry?: Partial<BackoffOptions>;
  /** Deadline of the RenewCertificate call. Default 30 s. */
  timeoutMs?: number;
}

export interface SessionOptions {
  stateDir: StateDir;
  /** Root logger; the session logs through a child carrying `agentId`. */
  logger: Logger;
  /** Host facts for each Hello (collected anew on every connection). */
  facts: () => HostFacts;
  /** Reconnect backoff (docs/protocol.md: base 500 ms, cap 30 s). */
  backoff?: Partial<BackoffOptions>;
  /** Uniform random in [0, 1) for backoff and renewal jitter; injectable for tests. */
  random?: () => number;
  keepalive?: KeepaliveOptions;
  /** Interval assumed until the first Welcome: identity.json's value, else this. Default 15 s. */
  defaultHeartbeatIntervalMs?: number;
  /** A stream with no server message for silenceFactor × interval is dead. Default 3. */
  silenceFactor?: number;
  /**
   * How long a new stream may take to produce Welcome (this includes TCP and TLS set-up) before it is abandoned.
   * Default silenceFactor × interval, the same rule as after Welcome.
   */
  welcomeTimeoutMs?: number;
  /** How long stop() waits for the server to close the stream after the half-close. Default 5 s. */
  stopTimeoutMs?: number;
  renewal?: RenewalOptions;
  /** What the agent reports about its tasks and targets in Hello and heartbeats (stickers, running tasks). */
  reports?: SessionReports;
}

export interface SessionReports {
  hello(): { stickers: Sticker[]; runningTaskIds: string[] };
  /** stickers is present when they changed since the last report, or periodically. */
  heartbeat(): { stickers?: Sticker[]; runningTaskIds: string[] };
}

export type SessionResult = { state: "stopped" } | { state: "failed"; error: AgentError };

const DEFAULT_INTERVAL_MS = 15_000;
/** Floor on a server-dictated interval: a misconfigured server must not turn the agent into a busy loop. */
const MIN_INTERVAL_MS = 10;
/** setTimeout's limit (2^31 - 1 ms, ~24.8 days); longer waits are chained. */
const MAX_TIMER_MS = 2_147_483_647;

/** When to renew: half-life plus up to jitterFraction of the lifetime, never sooner than the floor. */
export function renewalTime(
  cert: { notBefore: Date; notAfter: Date },
  opts: { now: number; random: () => number; jitterFraction?: number; minDelayMs?: number },
): number {
  const notBefore = cert.notBefore.getTime();
  const notAfter = cert.notAfter.getTime();
  const lifetime = Math.max(0, notAfter - notBefore);
  const at = notBefore + lifetime / 2 + opts.random() * (opts.jitterFraction ?? 0.1) * lifetime;
  const floor = opts.now + Math.min(opts.minDelayMs ?? 30_000, Math.max(0, (notAfter - opts.now) / 2));
  return Math.round(Math.max(at, floor));
}

/** A cancellable timeout that can wait longer than setTimeout allows. */
class LongTimer {
  #handle: NodeJS.Timeout | undefined;

  constructor(at: number, fn: () => void) {
    // Always through setTimeout, even when already due: the caller must never be re-entered synchronously.
    const arm = (): void => {
      const left = Math.max(0, at - Date.now());
      this.#handle = setTimeout(() => {
        if (Date.now() < at) {
          arm();
          return;
        }
        this.#handle = undefined;
        fn();
      }, Math.min(left, MAX_TIMER_MS));
    };
    arm();
  }

  cancel(): void {
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    this.#handle = undefined;
  }
}

/** Per-stream state. A new one for every connection attempt. */
interface StreamContext {
  call: ConnectCall;
  client: AgentClient;
  welcomed: boolean;
  ended: boolean;
  dead: boolean;
  stopRequested: boolean;
  disconnect: { code: string; message: string; retryAfterMs: number } | undefined;
  seq: number;
  lastSentAt: number;
  lastRttMs: number;
  sentAt: Map<number, number>;
  heartbeatTimer: NodeJS.Timeout | undefined;
  silenceTimer: NodeJS.Timeout | undefined;
  stopTimer: NodeJS.Timeout | undefined;
}

const TERMINAL_GUIDANCE: Record<string, string> = {
  AGENT_REVOKED: "this agent has been revoked on the control plane",
  CERT_REVOKED: "this agent's certificate has been revoked on the control plane",
  CERT_EXPIRED: "this agent's certificate has expired, and an expired certificate cannot be renewed",
  AGENT_UNKNOWN: "the control plane does not know this agent",
  IDENTITY_MISMATCH: "the control plane says this agent's certificate and its agent id disagree",
};

export class Session extends EventEmitter<SessionEvents> {
  readonly #opts: SessionOptions;
  readonly #random: () => number;
  readonly #backoff: Backoff;
  readonly #renewalBackoff: Backoff;
  #log: Logger;

  #state: SessionState = "starting";
  #started = false;
  #stopRequested = false;
  #finished = false;
  readonly #stopController = new AbortController();

  #identity: Identity | undefined;
  #credentials: AgentCredentials | undefined;
  #certificate: CertificateSummary | undefined;
  #intervalMs: number;

  #stream: StreamContext | undefined;
  #renewalTimer: LongTimer | undefined;
  #nextRenewalAt: Date | undefined;
  #renewing: Promise<CertificateSummary> | undefined;
  #renewalCall: AbortController | undefined;
  #renewalClient: AgentClient | undefined;

  #resolveDone!: (result: SessionResult) => void;
  /** Settles once, when the session is `stopped` or `failed`. Never rejects. */
  readonly done: Promise<SessionResult>;

  constructor(opts: SessionOptions) {
    super();
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
    this.#backoff = new Backoff({ ...opts.backoff, random: this.#random });
    this.#renewalBackoff = new Backoff({ baseMs: 5_000, capMs: 300_000, ...opts.renewal?.retry, random: this.#random });
    this.#log = opts.logger;
    this.#intervalMs = opts.defaultHeartbeatIntervalMs ?? DEFAULT_INTERVAL_MS;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  get state(): SessionState {
    return this.#state;
  }

  get agentId(): string | undefined {
    return this.#identity?.agentId;
  }

  /** The heartbeat interval in force (the latest the server dictated). */
  get heartbeatIntervalMs(): number {
    return this.#intervalMs;
  }

  /** The certificate new connections present. */
  get certificate(): CertificateSummary | undefined {
    return this.#certificate;
  }

  /** When the next renewal is scheduled (automatic or retry), if one is. */
  get nextRenewalAt(): Date | undefined {
    return this.#nextRenewalAt;
  }

  /** Begins connecting. Returns at once; follow `state` events or await `done`. */
  start(): this {
    if (this.#started) throw new Error("session already started");
    this.#started = true;
    this.#setState("starting");
    void this.#run();
    return this;
  }

  /** start() and wait until the session is stopped or failed. */
  async run(): Promise<SessionResult> {
    this.start();
    return this.done;
  }

  /**
   * Ends the session gracefully: half-closes the stream and waits (up to stopTimeoutMs) for the server to close it,
   * then closes the channel and clears every timer. Resolves when the session is `stopped` (or already `failed`).
   */
  async stop(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#stopRequested = true;
      this.#stopController.abort();
      this.#setState("stopped");
      this.#resolveDone({ state: "stopped" });
      return;
    }
    if (this.#state === "stopped" || this.#state === "failed") {
      await this.done;
      return;
    }
    if (!this.#stopRequested) {
      this.#stopRequested = true;
      this.#log.info("stopping the session");
      this.#setState("stopping");
      this.#stopController.abort();
      this.#cancelRenewal();
      const s = this.#stream;
      if (s !== undefined && !s.ended) {
        s.stopRequested = true;
        this.#clearStreamTimers(s);
        // Half-close: the server sees a clean end of our side and closes its own; cancel if it does not.
        s.call.end();
        s.stopTimer = setTimeout(() => s.call.cancel(), this.#opts.stopTimeoutMs ?? 5_000);
      }
    }
    await this.done;
  }

  /** Renews the certificate now (tests, operator command). Rejects when the renewal fails; a retry is scheduled. */
  async renewNow(): Promise<CertificateSummary> {
    if (this.#identity === undefined || this.#stopRequested || this.#state === "failed") {
      throw new AgentError("SESSION_STOPPED", "internal", "the session is not running");
    }
    return this.#renew();
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────────────────────────

  /** Writes a message on the current stream once it is welcomed; false when there is none (the caller keeps it). */
  send(body: ConnectRequest["body"]): boolean {
    const s = this.#stream;
    if (!s || !s.welcomed || s.ended || s.stopRequested) return false;
    this.#write(s, body);
    return true;
  }

  /** Whether the current stream is welcomed and writable. */
  get streamReady(): boolean {
    const s = this.#stream;
    return !!s && s.welcomed && !s.ended && !s.stopRequested;
  }

  /** The pull side of task delivery: the tasks queued for this agent, leased to it. */
  pullTasks(max = 16, timeoutMs = 15_000): Promise<TaskOffer[]> {
    const client = this.#stream?.client;
    if (!client) return Promise.resolve([]);
    return client.pullTasks(create(PullTasksRequestSchema, { max }), { deadline: Date.now() + timeoutMs }).then((res) => res.offers);
  }

  #setState(next: SessionState): void {
    const previous = this.#state;
    if (previous === next) return;
    this.#state = next;
    this.#log.debug({ state: next, previous }, "session state");
    this.emit("state", next, previous);
  }

  async #run(): Promise<void> {
    try {
      const { identity, credentials } = await this.#opts.stateDir.load();
      this.#identity = identity;
      this.#log = this.#opts.logger.child({ agentId: identity.agentId });
      if (identity.heartbeatIntervalMs !== undefined && this.#opts.defaultHeartbeatIntervalMs === undefined) {
        this.#intervalMs = identity.heartbeatIntervalMs;
      }
      this.#adoptCredentials(credentials);
      if (this.#opts.renewal?.enabled !== false) this.#scheduleRenewal();

      while (!this.#stopRequested) {
        this.#assertCertificateUsable();
        const end = await this.#connectOnce();
        if (this.#stopRequested) break;
        if (end.code !== undefined && REENROL_CODES.has(end.code)) throw this.#terminal(end.code, end.message ?? "");
        const delayMs = this.#backoff.next(end.retryAfterMs);
        this.#log.info(
          { reason: end.reason, code: end.code, retryAfterMs: end.retryAfterMs, delayMs, attempt: this.#backoff.attempt },
          "stream ended; reconnecting after backoff",
        );
        this.emit("backoff", { attempt: this.#backoff.attempt, delayMs, reason: end.reason });
        this.#setState("backoff");
        try {
          await sleep(delayMs, undefined, { signal: this.#stopController.signal });
        } catch {
          // Aborted by stop(): fall through to the loop condition.
        }
      }
      this.#finish({ state: "stopped" });
    } catch (err) {
      const error = isAgentError(err)
        ? err
        : new AgentError("UNKNOWN", "internal", `session failed: ${(err as Error).message}`, { cause: err });
      this.#finish({ state: "failed", error });
    }
  }

  #finish(result: SessionResult): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#stopRequested = true;
    this.#stopController.abort();
    this.#cancelRenewal();
    const s = this.#stream;
    if (s !== undefined && !s.ended) {
      s.stopRequested = true;
      this.#clearStreamTimers(s);
      s.call.cancel();
      s.client.close();
    }
    if (result.state === "failed") {
      this.#log.error({ code: result.error.code }, result.error.message);
      this.#setState("failed");
      this.emit("failed", result.error);
    } else {
      this.#log.info("session stopped");
      this.#setState("stopped");
    }
    this.#resolveDone(result);
  }

  #terminal(code: string, detail: string): AgentError {
    const what = TERMINAL_GUIDANCE[code] ?? `the control plane refused this agent (${code})`;
    const dir = this.#opts.stateDir.path;
    return new AgentError(
      code as AgentError["code"],
      "reenrol",
      `${what}${detail ? ` (${detail})` : ""}; agent ${this.#identity?.agentId ?? "?"} must be re-enrolled: ` +
        `create a join token and run \`ferry-agent enrol --force --join … --state-dir ${dir}\``,
    );
  }

  #assertCertificateUsable(): void {
    const cert = this.#certificate;
    if (cert === undefined) return;
    const now = Date.now();
    if (now >= cert.notAfter.getTime()) {
      throw this.#terminal("CERT_EXPIRED", `certificate ${cert.serial} expired at ${cert.notAfter.toISOString()}`);
    }
    if (now < cert.notBefore.getTime()) {
      this.#log.warn(
        { notBefore: cert.notBefore.toISOString() },
        "the certificate is not valid yet by this host's clock; check the clock (NTP)",
      );
    }
  }

  // ── one connection ─────────────────────────────────────────────────────────────────────────────────────────

  #connectOnce(): Promise<StreamEnd> {
    const identity = this.#identity!;
    const credentials = this.#credentials!;
    this.#setState("connecting");
    this.#log.debug({ endpoint: identity.agentEndpoint, serial: this.#certificate?.serial }, "opening stream");
    const client = createAgentClient(identity.agentEndpoint, credentials, this.#opts.keepalive ?? DEFAULT_KEEPALIVE);
    const call = client.connect();
    const s: StreamContext = {
      call,
      client,
      welcomed: false,
      ended: false,
      dead: false,
      stopRequested: false,
      disconnect: undefined,
      seq: 0,
      lastSentAt: 0,
      lastRttMs: 0,
      sentAt: new Map(),
      heartbeatTimer: undefined,
      silenceTimer: undefined,
      stopTimer: undefined,
    };
    this.#stream = s;

    return new Promise<StreamEnd>((resolve) => {
      call.on("data", (msg: ConnectResponse) => this.#onMessage(s, msg));
      // `status` comes once, after every message the server sent was delivered: a Disconnect sent just before the
      // close has been handled by now.
      call.on("status", (status: StatusObject) => {
        s.ended = true;
        this.#clearStreamTimers(s);
        if (s.stopTimer !== undefined) clearTimeout(s.stopTimer);
        if (this.#stream === s) this.#stream = undefined;
        client.close();
        const end = this.#classifyEnd(s, status);
        this.emit("streamEnded", end);
        resolve(end);
      });

      this.#write(s, {
        case: "hello",
        value: create(HelloSchema, {
          agentId: identity.agentId,
          facts: this.#opts.facts(),
          agentTimeMs: BigInt(Date.now()),
          ...(this.#opts.reports?.hello() ?? {}),
        }),
      });
      this.#armSilence(s);
    });
  }

  #classifyEnd(s: StreamContext, status: StatusObject): StreamEnd {
    const base = { welcomed: s.welcomed, status: status.code };
    if (s.stopRequested) return { reason: "stopped", ...base };
    if (s.disconnect !== undefined) {
      const d = s.disconnect;
      const end: StreamEnd = { reason: `disconnect ${d.code}`, code: d.code, message: d.message, ...base };
      if (d.retryAfterMs > 0) end.retryAfterMs = d.retryAfterMs;
      return end;
    }
    if (s.dead) return { reason: "dead stream", ...base };
    if (status.code === GrpcStatus.OK) return { reason: "the server closed the stream", ...base };
    const w = parseWireError(status);
    const end: StreamEnd = {
      reason: `${w.code === "UNKNOWN" ? grpcStatusName(w.status) : w.code}: ${w.message}`,
      ...base,
    };
    if (w.code !== "UNKNOWN") {
      end.code = w.code;
      end.message = w.message;
    }
    if (w.retryAfterMs !== undefined) end.retryAfterMs = w.retryAfterMs;
    return end;
  }

  #write(s: StreamContext, body: ConnectRequest["body"]): void {
    if (s.ended || s.stopRequested) return;
    s.call.write(create(ConnectRequestSchema, { body }));
  }

  #onMessage(s: StreamContext, msg: ConnectResponse): void {
    // Once stopping, the stream is only being closed: a late Welcome must not flip the state back to connected.
    if (s.ended || s.stopRequested) return;
    this.#armSilence(s);
    const body = msg.body;
    switch (body.case) {
      case "welcome": {
        if (s.welcomed) return;
        s.welcomed = true;
        this.#backoff.reset();
        this.#setInterval(body.value.heartbeatIntervalMs);
        if (body.value.agentId !== "" && body.value.agentId !== this.#identity?.agentId) {
          this.#log.warn({ welcomedAs: body.value.agentId }, "the control plane welcomed a different agent id");
        }
        this.#log.info({ heartbeatIntervalMs: this.#intervalMs }, "connected");
        this.#setState("connected");
        this.emit("welcome", {
          agentId: body.value.agentId,
          heartbeatIntervalMs: this.#intervalMs,
          serverTimeMs: Number(body.value.serverTimeMs),
          taskSigningKeys: body.value.taskSigningKeys,
        });
        this.#armSilence(s);
        this.#scheduleHeartbeat(s, Date.now() + this.#intervalMs);
        return;
      }
      case "heartbeatAck": {
        const seq = Number(body.value.seq);
        const sentAt = s.sentAt.get(seq);
        let rttMs: number | undefined;
        if (sentAt !== undefined) {
          rttMs = Date.now() - sentAt;
          s.lastRttMs = rttMs;
          s.sentAt.delete(seq);
        }
        const before = this.#intervalMs;
        this.#setInterval(body.value.heartbeatIntervalMs);
        if (this.#intervalMs !== before && s.welcomed) {
          this.#armSilence(s);
          this.#scheduleHeartbeat(s, Math.max(Date.now(), s.lastSentAt + this.#intervalMs));
        }
        this.emit("heartbeatAck", { seq, rttMs, heartbeatIntervalMs: this.#intervalMs });
        return;
      }
      case "ping": {
        this.#write(s, { case: "pong", value: create(PongSchema, { nonce: body.value.nonce }) });
        this.emit("ping", { nonce: body.value.nonce });
        return;
      }
      case "disconnect": {
        const d = { code: body.value.code, message: body.value.message, retryAfterMs: body.value.retryAfterMs };
        s.disconnect = d;
        const level = REENROL_CODES.has(d.code) ? "error" : "warn";
        this.#log[level](d, d.code === "SUPERSEDED"
          ? "the control plane superseded this stream with a newer one (is another process using this identity?)"
          : "the control plane is closing the stream");
        this.emit("disconnect", d);
        // Disconnect is the decision; do not wait for the server to close the call.
        this.#clearStreamTimers(s);
        s.call.cancel();
        return;
      }
      case "taskOffer":
        if (body.value.task) this.emit("taskOffer", body.value);
        return;
      case "logAck":
        this.emit("logAck", body.value);
        return;
      case "resultAck":
        this.emit("resultAck", body.value);
        return;
      case "signingKeys":
        this.emit("signingKeys", body.value.keys);
        return;
      default:
        // An unknown message from a newer control plane: ignore it, the stream stays up.
        this.#log.debug({ case: body.case }, "ignoring unknown message");
    }
  }

  #setInterval(ms: number): void {
    if (!(ms > 0)) return;
    const next = Math.max(MIN_INTERVAL_MS, ms);
    if (next === this.#intervalMs) return;
    const from = this.#intervalMs;
    this.#intervalMs = next;
    this.#log.debug({ from, to: next }, "heartbeat interval changed");
    this.emit("intervalChanged", { from, to: next });
  }

  #scheduleHeartbeat(s: StreamContext, at: number): void {
    if (s.heartbeatTimer !== undefined) clearTimeout(s.heartbeatTimer);
    s.heartbeatTimer = setTimeout(() => {
      s.heartbeatTimer = undefined;
      this.#sendHeartbeat(s);
    }, Math.max(0, at - Date.now()));
  }

  #sendHeartbeat(s: StreamContext): void {
    if (s.ended || s.stopRequested) return;
    s.seq += 1;
    const now = Date.now();
    s.lastSentAt = now;
    s.sentAt.set(s.seq, now);
    // Acks that never come must not grow the map without bound.
    for (const old of s.sentAt.keys()) if (old <= s.seq - 16) s.sentAt.delete(old);
    const report = this.#opts.reports?.heartbeat();
    this.#write(s, {
      case: "heartbeat",
      value: create(HeartbeatSchema, {
        agentId: this.#identity!.agentId,
        seq: BigInt(s.seq),
        agentTimeMs: BigInt(now),
        lastRttMs: Math.min(s.lastRttMs, 0xffffffff),
        runningTaskIds: report?.runningTaskIds ?? [],
        ...(report?.stickers ? { stickers: report.stickers, stickersIncluded: true } : {}),
      }),
    });
    this.emit("heartbeat", { seq: s.seq, lastRttMs: s.lastRttMs });
    this.#scheduleHeartbeat(s, now + this.#intervalMs);
  }

  /** (Re)arms the dead-stream timer: silenceFactor × interval without any server message (before Welcome: the
   * welcome timeout). */
  #armSilence(s: StreamContext): void {
    if (s.silenceTimer !== undefined) clearTimeout(s.silenceTimer);
    if (s.ended || s.stopRequested) return;
    const silenceMs = (this.#opts.silenceFactor ?? 3) * this.#intervalMs;
    const limitMs = s.welcomed ? silenceMs : (this.#opts.welcomeTimeoutMs ?? silenceMs);
    s.silenceTimer = setTimeout(() => {
      s.silenceTimer = undefined;
      this.#log.warn(
        { silentForMs: limitMs, welcomed: s.welcomed },
        s.welcomed
          ? "no message from the control plane; treating the stream as dead"
          : "no Welcome from the control plane in time; abandoning the stream",
      );
      s.dead = true;
      this.#clearStreamTimers(s);
      s.call.cancel();
    }, limitMs);
  }

  #clearStreamTimers(s: StreamContext): void {
    if (s.heartbeatTimer !== undefined) clearTimeout(s.heartbeatTimer);
    if (s.silenceTimer !== undefined) clearTimeout(s.silenceTimer);
    s.heartbeatTimer = undefined;
    s.silenceTimer = undefined;
  }

  // ── certificate renewal ────────────────────────────────────────────────────────────────────────────────────

  #adoptCredentials(credentials: AgentCredentials): void {
    const info = certificateInfo(credentials.certPem);
    this.#credentials = credentials;
    this.#certificate = { serial: info.serial, notBefore: info.notBefore, notAfter: info.notAfter };
  }

  #scheduleRenewal(at?: number): void {
    this.#renewalTimer?.cancel();
    const cert = this.#certificate;
    if (cert === undefined || this.#stopRequested) return;
    const when =
      at ??
      renewalTime(cert, {
        now: Date.now(),
        random: this.#random,
        jitterFraction: this.#opts.renewal?.jitterFraction ?? 0.1,
        minDelayMs: this.#opts.renewal?.minDelayMs ?? 30_000,
      });
    this.#nextRenewalAt = new Date(when);
    this.#log.debug({ nextRenewalAt: this.#nextRenewalAt.toISOString() }, "certificate renewal scheduled");
    this.#renewalTimer = new LongTimer(when, () => {
      this.#renewalTimer = undefined;
      this.#renew().catch(() => undefined); // failures are logged and rescheduled inside
    });
  }

  #cancelRenewal(): void {
    this.#renewalTimer?.cancel();
    this.#renewalTimer = undefined;
    this.#nextRenewalAt = undefined;
    this.#renewalCall?.abort();
    this.#renewalClient?.close();
  }

  #renew(): Promise<CertificateSummary> {
    this.#renewing ??= this.#renewOnce().finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  async #renewOnce(): Promise<CertificateSummary> {
    this.#renewalTimer?.cancel();
    this.#renewalTimer = undefined;
    const identity = this.#identity!;
    try {
      const keys = await generateKeyPair();
      const csrPem = await createCsr(keys.privateKeyPem, { commonName: identity.agentId });
      if (this.#stopRequested) throw new AgentError("SESSION_STOPPED", "internal", "the session stopped during renewal");
      const response = await this.#callRenew(csrPem);
      if (this.#stopRequested) throw new AgentError("SESSION_STOPPED", "internal", "the session stopped during renewal");

      let info;
      try {
        if (!keyMatchesCertificate(keys.privateKeyPem, response.certificatePem)) {
          throw new Error("the certificate is not for the new key");
        }
        info = certificateInfo(response.certificatePem);
      } catch (err) {
        throw new AgentError("RENEWAL_RESPONSE_INVALID", "internal", `the control plane answered with an unusable certificate: ${(err as Error).message}`, { cause: err });
      }
      if (info.agentId !== null && info.agentId !== identity.agentId) {
        throw new AgentError("RENEWAL_RESPONSE_INVALID", "internal", `the renewed certificate names agent ${info.agentId}`);
      }
      const caBundlePem =
        response.caBundlePem.length > 0 ? response.caBundlePem.map((p) => p.trim()).join("\n") + "\n" : undefined;
      const next: AgentCredentials = {
        keyPem: keys.privateKeyPem,
        certPem: response.certificatePem,
        caBundlePem: caBundlePem ?? this.#credentials!.caBundlePem,
      };
      // Persist first: only credentials that are on disk are used for the next connection, so a restart never
      // goes back to a key the running agent has already moved away from.
      await this.#opts.stateDir.writeRenewal(caBundlePem === undefined ? { keyPem: next.keyPem, certPem: next.certPem } : { keyPem: next.keyPem, certPem: next.certPem, caBundlePem });
      const previous = this.#certificate?.serial;
      this.#adoptCredentials(next);
      this.#renewalBackoff.reset();
      this.#scheduleRenewal();
      const summary = this.#certificate!;
      this.#log.info(
        { previousSerial: previous, serial: summary.serial, notAfter: summary.notAfter.toISOString(), nextRenewalAt: this.#nextRenewalAt?.toISOString() },
        "certificate renewed; new connections will use it",
      );
      this.emit("renewed", { ...summary, nextRenewalAt: this.#nextRenewalAt ?? summary.notAfter });
      return summary;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (this.#stopRequested) throw error;
      const w = isAgentError(error) ? undefined : parseWireError(error);
      if (w !== undefined && REENROL_CODES.has(w.code)) {
        const terminal = this.#terminal(w.code, `certificate renewal refused: ${w.message}`);
        this.#finish({ state: "failed", error: terminal });
        throw terminal;
      }
      const retryAt = this.#scheduleRenewalRetry(w?.retryAfterMs);
      this.#log.error(
        { err: error.message, code: w?.code ?? (isAgentError(error) ? error.code : undefined), retryAt: retryAt?.toISOString() },
        "certificate renewal failed; will retry",
      );
      this.emit("renewalFailed", { error, retryAt });
      throw error;
    }
  }

  #scheduleRenewalRetry(retryAfterMs: number | undefined): Date | undefined {
    const cert = this.#certificate;
    if (cert === undefined || this.#stopRequested) return undefined;
    const now = Date.now();
    // Keep several tries in hand before expiry: never wait longer than a quarter of the remaining validity.
    const left = cert.notAfter.getTime() - now;
    const delay = Math.min(this.#renewalBackoff.next(retryAfterMs), Math.max(1_000, left / 4));
    this.#scheduleRenewal(now + delay);
    return this.#nextRenewalAt;
  }

  /** RenewCertificate over the current stream's client (its mTLS identity), or a short-lived one between streams. */
  #callRenew(csrPem: string): Promise<RenewCertificateResponse> {
    let client = this.#stream?.client;
    let owned: AgentClient | undefined;
    if (client === undefined) {
      owned = createAgentClient(this.#identity!.agentEndpoint, this.#credentials!, this.#opts.keepalive ?? DEFAULT_KEEPALIVE);
      this.#renewalClient = owned;
      client = owned;
    }
    const request = create(RenewCertificateRequestSchema, { csrPem });
    const deadline = Date.now() + (this.#opts.renewal?.timeoutMs ?? 30_000);
    const cancel = new AbortController();
    this.#renewalCall = cancel;
    return client.renewCertificate(request, { deadline, signal: cancel.signal }).finally(() => {
      if (this.#renewalCall === cancel) this.#renewalCall = undefined;
      if (owned !== undefined) {
        owned.close();
        if (this.#renewalClient === owned) this.#renewalClient = undefined;
      }
    });
  }
}
