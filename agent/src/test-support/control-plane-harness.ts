// A scriptable stand-in for the control plane's two listeners, for the agent's own tests.
//
// Real grpc-js servers on 127.0.0.1 (port 0) over real TLS: the enrolment listener is server-authenticated only, the
// agent listener requires a client certificate from the fleet CA. Certificates come from a real FleetCa in a
// throwaway temp directory (test-only material, deleted on close). The harness records everything it receives and
// lets a test script refusals, intervals, pings, disconnects, silence and stream kills.
//
// It implements only what the agent's logic needs to be exercised; the real control plane is tested end to end
// elsewhere.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";

import { create } from "@bufbuild/protobuf";
import { certificateInfo, createCsr, encodeJoinString, FleetCa, generateKeyPair } from "@ferry/pki";
import {
  AgentService,
  ConnectResponseSchema,
  DisconnectSchema,
  EnrolmentService,
  EnrolResponseSchema,
  HeartbeatAckSchema,
  isMalformed,
  PingSchema,
  RenewCertificateResponseSchema,
  serverDefinition,
  WelcomeSchema,
  wireError,
  type ConnectRequest,
  type ConnectResponse,
  type EnrolRequest,
  type Incoming,
  type ConnectRequestSchema,
  type RenewCertificateRequest,
  type WireErrorCode,
} from "@ferry/proto";
import * as grpc from "@grpc/grpc-js";

import { StateDir, type Identity } from "../core/state-dir.js";

export interface HarnessOptions {
  /** Interval sent in Welcome. Default 50 ms. */
  heartbeatIntervalMs?: number;
  /** Lifetime of certificates issued by Enrol and RenewCertificate. Default 1 h. */
  agentCertLifetimeMs?: number;
}

type Refusal = grpc.ServiceError | undefined;

/** How long the harness waits after the agent's read side ends before treating it as a half-close. */
const HALF_CLOSE_GRACE_MS = 25;

/** One Connect stream as the server sees it. */
export class HarnessStream extends EventEmitter<{
  message: [req: ConnectRequest];
  halfClosed: [];
  cancelled: [];
}> {
  readonly id: number;
  /** Serial of the client certificate presented on this stream's connection (lowercase hex). */
  readonly serial: string | undefined;
  /** Agent id from the client certificate. */
  readonly certAgentId: string | null;
  readonly received: ConnectRequest[] = [];
  /** Receive time of every message, parallel to `received`. */
  readonly receivedAt: number[] = [];
  /** When true, the server answers nothing at all (a black-holed stream). */
  silent = false;
  halfClosed = false;
  cancelled = false;
  closed = false;
  readonly #call: grpc.ServerDuplexStream<Incoming<typeof ConnectRequestSchema>, ConnectResponse>;

  constructor(
    id: number,
    call: grpc.ServerDuplexStream<Incoming<typeof ConnectRequestSchema>, ConnectResponse>,
  ) {
    super();
    this.id = id;
    this.#call = call;
    const peer = call.getAuthContext().sslPeerCertificate;
    const info = peer?.raw !== undefined ? certificateInfo(peer.raw) : undefined;
    this.serial = info?.serial;
    this.certAgentId = info?.agentId ?? null;
  }

  heartbeats(): { seq: number; at: number; lastRttMs: number }[] {
    const out: { seq: number; at: number; lastRttMs: number }[] = [];
    this.received.forEach((m, i) => {
      if (m.body.case === "heartbeat") {
        out.push({ seq: Number(m.body.value.seq), at: this.receivedAt[i]!, lastRttMs: m.body.value.lastRttMs });
      }
    });
    return out;
  }

  send(body: ConnectResponse["body"]): void {
    if (this.closed) return;
    this.#call.write(create(ConnectResponseSchema, { body }));
  }

  ping(nonce: bigint): void {
    this.send({ case: "ping", value: create(PingSchema, { nonce }) });
  }

  /** Disconnect{code}, then close the stream with the matching status, as the control plane does. */
  disconnect(code: string, message: string, retryAfterMs = 0): void {
    this.send({ case: "disconnect", value: create(DisconnectSchema, { code, message, retryAfterMs }) });
    if (code in { AGENT_REVOKED: 1, CERT_REVOKED: 1, SUPERSEDED: 1, SERVER_SHUTTING_DOWN: 1 }) {
      this.kill(wireError(code as WireErrorCode, message, retryAfterMs || undefined));
    } else {
      this.end();
    }
  }

  /** Ends the stream with an error status (default UNAVAILABLE). */
  kill(err?: grpc.ServiceError): void {
    if (this.closed) return;
    this.closed = true;
    const e = err ?? Object.assign(new Error("killed by the harness"), {
      code: grpc.status.UNAVAILABLE,
      details: "killed by the harness",
      metadata: new grpc.Metadata(),
    });
    this.#call.emit("error", e);
  }

  /** Ends the stream with status OK. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.#call.end();
  }

  /** Resolves with the first received message (past or future) matching `filter`. */
  async waitForMessage(filter: (m: ConnectRequest) => boolean, timeoutMs = 5_000): Promise<ConnectRequest> {
    const seen = this.received.find(filter);
    if (seen !== undefined) return seen;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("message", listener);
        reject(new Error(`stream ${this.id}: timed out waiting for a message`));
      }, timeoutMs);
      const listener = (m: ConnectRequest): void => {
        if (!filter(m)) return;
        clearTimeout(timer);
        this.off("message", listener);
        resolve(m);
      };
      this.on("message", listener);
    });
  }
}

export interface HarnessEvents {
  enrol: [req: EnrolRequest];
  stream: [stream: HarnessStream];
  renew: [req: RenewCertificateRequest, serial: string | undefined];
}

export class ControlPlaneHarness extends EventEmitter<HarnessEvents> {
  readonly ca: FleetCa;
  readonly enrolEndpoint: string;
  readonly agentEndpoint: string;
  /** A valid join token (43 base64url characters). */
  readonly token = randomBytes(32).toString("base64url");

  /** Interval sent in Welcome. */
  heartbeatIntervalMs: number;
  /** Interval sent in HeartbeatAck; defaults to heartbeatIntervalMs. */
  ackIntervalMs: number | undefined;
  agentCertLifetimeMs: number;

  /** Script a refusal for the n-th Enrol (1-based); undefined lets it through. */
  enrolHandler: ((req: EnrolRequest, n: number) => Refusal) | undefined;
  /** Script a refusal for the n-th Connect before any message; undefined accepts it. */
  connectHandler: ((n: number) => Refusal) | undefined;
  /** Script a refusal for the n-th RenewCertificate. */
  renewHandler: ((req: RenewCertificateRequest, n: number) => Refusal) | undefined;

  readonly enrolRequests: EnrolRequest[] = [];
  readonly renewRequests: { req: RenewCertificateRequest; serial: string | undefined; streamsOpen: number }[] = [];
  readonly streams: HarnessStream[] = [];
  /** Connect calls, including refused ones. */
  connectAttempts = 0;
  /** The next this-many streams start silent (no Welcome, nothing). */
  silentStreams = 0;

  readonly #dir: string;
  readonly #servers: grpc.Server[];
  #agentSeq = 0;

  private constructor(
    dir: string,
    ca: FleetCa,
    servers: grpc.Server[],
    enrolEndpoint: string,
    agentEndpoint: string,
    opts: HarnessOptions,
  ) {
    super();
    this.#dir = dir;
    this.ca = ca;
    this.#servers = servers;
    this.enrolEndpoint = enrolEndpoint;
    this.agentEndpoint = agentEndpoint;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 50;
    this.ackIntervalMs = undefined;
    this.agentCertLifetimeMs = opts.agentCertLifetimeMs ?? 3_600_000;
  }

  static async start(opts: HarnessOptions = {}): Promise<ControlPlaneHarness> {
    const dir = await mkdtemp(path.join(tmpdir(), "ferry-agent-harness-"));
    const ca = await FleetCa.loadOrCreate(path.join(dir, "ca"));
    const serverCert = await ca.issueServerCertificate({ hosts: ["127.0.0.1", "localhost"], lifetimeMs: 3_600_000 });
    const keyCertPair = {
      private_key: Buffer.from(serverCert.keyPem),
      // Leaf + CA: a new agent finds the CA it pins in the presented chain.
      cert_chain: Buffer.from(`${serverCert.certPem.trim()}\n${ca.certPem.trim()}\n`),
    };
    const enrolServer = new grpc.Server();
    const agentServer = new grpc.Server();
    // Handlers are registered before the ports are known, so they reach the instance through this late binding.
    const ref: { harness?: ControlPlaneHarness } = {};
    const self = (): ControlPlaneHarness => ref.harness!;

    enrolServer.addService(serverDefinition(EnrolmentService, { maxMessageBytes: 1 << 20 }), {
      enrol: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        void self().#onEnrol(call.request, cb);
      },
    });
    agentServer.addService(serverDefinition(AgentService, { maxMessageBytes: 1 << 20 }), {
      connect: (call: grpc.ServerDuplexStream<Incoming<typeof ConnectRequestSchema>, ConnectResponse>) => {
        self().#onConnect(call);
      },
      renewCertificate: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const peer = call.getAuthContext().sslPeerCertificate;
        void self().#onRenew(call.request, peer?.raw, cb);
      },
    });
    const bind = (server: grpc.Server, creds: grpc.ServerCredentials): Promise<number> =>
      new Promise((resolve, reject) => {
        server.bindAsync("127.0.0.1:0", creds, (err, port) => (err ? reject(err) : resolve(port)));
      });
    const enrolPort = await bind(enrolServer, grpc.ServerCredentials.createSsl(null, [keyCertPair], false));
    const agentPort = await bind(
      agentServer,
      grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [keyCertPair], true),
    );
    const harness = new ControlPlaneHarness(
      dir,
      ca,
      [enrolServer, agentServer],
      `127.0.0.1:${enrolPort}`,
      `127.0.0.1:${agentPort}`,
      opts,
    );
    ref.harness = harness;
    return harness;
  }

  /** A join string for this harness; override the fingerprint or token to test refusals. */
  joinString(opts: { fingerprint?: string; token?: string } = {}): string {
    return encodeJoinString({
      enrolEndpoint: this.enrolEndpoint,
      caFingerprint: opts.fingerprint ?? this.ca.fingerprint,
      token: opts.token ?? this.token,
    });
  }

  /** A fresh temp directory, removed on close(). */
  async tempDir(name: string): Promise<string> {
    return mkdtemp(path.join(this.#dir, `${name}-`));
  }

  /**
   * Writes an enrolled state directory without going through Enrol (for session tests): a new key, a certificate
   * from the harness CA with the given validity, identity pointing at the harness's agent listener.
   */
  async enrolDirect(
    opts: { agentId?: string; lifetimeMs?: number; backdateMs?: number; now?: Date; heartbeatIntervalMs?: number } = {},
  ): Promise<{ stateDir: StateDir; identity: Identity; serial: string }> {
    const agentId = opts.agentId ?? `agent-${++this.#agentSeq}`;
    const keys = await generateKeyPair();
    const csr = await createCsr(keys.privateKeyPem, { commonName: agentId });
    const issueOpts: { agentId: string; lifetimeMs: number; backdateMs?: number; now?: Date } = {
      agentId,
      lifetimeMs: opts.lifetimeMs ?? this.agentCertLifetimeMs,
    };
    if (opts.backdateMs !== undefined) issueOpts.backdateMs = opts.backdateMs;
    if (opts.now !== undefined) issueOpts.now = opts.now;
    const issued = await this.ca.issueAgentCertificate(csr, issueOpts);
    const stateDir = new StateDir(await this.tempDir("state"));
    const identity: Identity = {
      agentId,
      name: agentId,
      environment: "test",
      labels: {},
      agentEndpoint: this.agentEndpoint,
      enrolEndpoint: this.enrolEndpoint,
      caFingerprint: this.ca.fingerprint,
      enrolledAt: new Date().toISOString(),
    };
    if (opts.heartbeatIntervalMs !== undefined) identity.heartbeatIntervalMs = opts.heartbeatIntervalMs;
    await stateDir.writeEnrolment({
      identity,
      credentials: { keyPem: keys.privateKeyPem, certPem: issued.certPem, caBundlePem: this.ca.certPem },
    });
    return { stateDir, identity, serial: issued.serial };
  }

  /** Resolves with the n-th stream (1-based), waiting for it if needed. */
  async waitForStream(n: number, timeoutMs = 5_000): Promise<HarnessStream> {
    const existing = this.streams[n - 1];
    if (existing !== undefined) return existing;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("stream", listener);
        reject(new Error(`timed out waiting for stream ${n} (have ${this.streams.length})`));
      }, timeoutMs);
      const listener = (): void => {
        const s = this.streams[n - 1];
        if (s === undefined) return;
        clearTimeout(timer);
        this.off("stream", listener);
        resolve(s);
      };
      this.on("stream", listener);
    });
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.closed = true;
    for (const server of this.#servers) server.forceShutdown();
    await rm(this.#dir, { recursive: true, force: true });
  }

  // ── handlers ───────────────────────────────────────────────────────────────────────────────────────────────

  async #onEnrol(request: unknown, cb: grpc.sendUnaryData<unknown>): Promise<void> {
    if (isMalformed(request)) return cb(wireError(request.code, request.detail));
    const req = request as EnrolRequest;
    this.enrolRequests.push(req);
    this.emit("enrol", req);
    const refusal = this.enrolHandler?.(req, this.enrolRequests.length);
    if (refusal !== undefined) return cb(refusal);
    if (req.joinToken !== this.token) return cb(wireError("JOIN_TOKEN_INVALID", "unknown join token"));
    const agentId = `agent-${++this.#agentSeq}`;
    try {
      const issued = await this.ca.issueAgentCertificate(req.csrPem, { agentId, lifetimeMs: this.agentCertLifetimeMs });
      cb(
        null,
        create(EnrolResponseSchema, {
          agentId,
          certificatePem: issued.certPem,
          caBundlePem: [this.ca.certPem],
          environment: "test",
          labels: { role: "web" },
          heartbeatIntervalMs: this.heartbeatIntervalMs,
          agentEndpoint: this.agentEndpoint,
        }),
      );
    } catch (err) {
      cb(wireError("CSR_INVALID", (err as Error).message));
    }
  }

  #onConnect(call: grpc.ServerDuplexStream<Incoming<typeof ConnectRequestSchema>, ConnectResponse>): void {
    this.connectAttempts += 1;
    call.on("error", () => undefined);
    const refusal = this.connectHandler?.(this.connectAttempts);
    if (refusal !== undefined) {
      call.emit("error", refusal);
      return;
    }
    const stream = new HarnessStream(this.streams.length + 1, call);
    if (this.silentStreams > 0) {
      this.silentStreams -= 1;
      stream.silent = true;
    }
    this.streams.push(stream);
    call.on("cancelled", () => {
      // grpc-js emits "cancelled" whenever the HTTP/2 stream closes, also after the server sent its status; only
      // a close before that is a cancellation by the client.
      if (stream.closed) return;
      stream.cancelled = true;
      stream.closed = true;
      stream.emit("cancelled");
    });
    call.on("end", () => {
      // grpc-js ends the read side both on a client half-close and on a client cancel (RST_STREAM); the cancel is
      // reported only when the HTTP/2 stream closes, an I/O round later. Give it a moment to show before treating
      // this as a half-close, so the flags say what the agent really did.
      setTimeout(() => {
        if (stream.cancelled) return;
        // The agent half-closed: close our side cleanly, as the control plane does on a graceful agent stop.
        stream.halfClosed = true;
        stream.emit("halfClosed");
        stream.end();
      }, HALF_CLOSE_GRACE_MS);
    });
    call.on("data", (incoming: Incoming<typeof ConnectRequestSchema>) => {
      if (isMalformed(incoming)) {
        stream.kill(wireError(incoming.code, incoming.detail));
        return;
      }
      const req = incoming;
      stream.received.push(req);
      stream.receivedAt.push(Date.now());
      stream.emit("message", req);
      if (stream.silent) return;
      switch (req.body.case) {
        case "hello":
          stream.send({
            case: "welcome",
            value: create(WelcomeSchema, {
              agentId: stream.certAgentId ?? req.body.value.agentId,
              heartbeatIntervalMs: this.heartbeatIntervalMs,
              serverTimeMs: BigInt(Date.now()),
            }),
          });
          return;
        case "heartbeat":
          stream.send({
            case: "heartbeatAck",
            value: create(HeartbeatAckSchema, {
              seq: req.body.value.seq,
              serverTimeMs: BigInt(Date.now()),
              heartbeatIntervalMs: this.ackIntervalMs ?? this.heartbeatIntervalMs,
            }),
          });
          return;
        default:
          return;
      }
    });
    this.emit("stream", stream);
  }

  async #onRenew(request: unknown, peerRaw: Buffer | undefined, cb: grpc.sendUnaryData<unknown>): Promise<void> {
    if (isMalformed(request)) return cb(wireError(request.code, request.detail));
    const req = request as RenewCertificateRequest;
    const peer = peerRaw !== undefined ? certificateInfo(peerRaw) : undefined;
    this.renewRequests.push({
      req,
      serial: peer?.serial,
      streamsOpen: this.streams.filter((s) => !s.closed).length,
    });
    this.emit("renew", req, peer?.serial);
    const refusal = this.renewHandler?.(req, this.renewRequests.length);
    if (refusal !== undefined) return cb(refusal);
    if (peer?.agentId == null) return cb(wireError("CERT_REQUIRED", "no agent certificate"));
    try {
      const issued = await this.ca.issueAgentCertificate(req.csrPem, {
        agentId: peer.agentId,
        lifetimeMs: this.agentCertLifetimeMs,
      });
      cb(null, create(RenewCertificateResponseSchema, { certificatePem: issued.certPem, caBundlePem: [this.ca.certPem] }));
    } catch (err) {
      cb(wireError("CSR_INVALID", (err as Error).message));
    }
  }
}
