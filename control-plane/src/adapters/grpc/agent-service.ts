// AgentService (mTLS listener): the Connect stream and certificate renewal.
//
// Every handler starts with authenticate(): the agent's identity comes from the peer certificate the TLS layer
// verified (mtls-listener.ts), never from a message. Checked on every new call: a certificate was presented and
// chains to a trusted CA, it is inside its validity window now (a connection can outlive its certificate), its
// serial is not revoked, and its agent is not revoked.
import { create } from "@bufbuild/protobuf";
import type { ServerUnaryCall, sendUnaryData, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  ConnectResponseSchema,
  HeartbeatAckSchema,
  RenewCertificateResponseSchema,
  WelcomeSchema,
  isMalformed,
  wireError,
  type ConnectRequestSchema,
  type Incoming,
  type RenewCertificateRequestSchema,
  type RenewCertificateResponse,
  type HostFacts,
  type WireErrorCode,
} from "@ferry/proto";
import type { Clock } from "../../ports/clock.js";
import { isFerryError } from "../../domain/errors.js";
import type { FleetService, HostFactsRecord } from "../../domain/fleet/fleet-service.js";
import { clockSkewMs } from "../../domain/fleet/liveness.js";
import type { LivenessRecorder } from "../../domain/fleet/liveness-recorder.js";
import type { AdmissionGate } from "./admission.js";
import type { MtlsListener, PeerVerdict } from "./mtls-listener.js";
import type { RefusalRecorder } from "./refusals.js";
import type { AgentCall, LiveSession, SessionRegistry } from "./session-registry.js";
import { toWireError } from "./wire-errors.js";

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
}

type Authenticated = PeerVerdict & { ok: true };

export function factsRecord(f: HostFacts | undefined): Partial<HostFactsRecord> {
  if (!f) return {};
  return {
    hostname: f.hostname.slice(0, 255),
    os: f.os.slice(0, 64),
    osRelease: f.osRelease.slice(0, 128),
    arch: f.arch.slice(0, 32),
    agentVersion: f.agentVersion.slice(0, 64),
    drivers: f.drivers.slice(0, 32).map((d) => d.slice(0, 32)),
    cpus: f.cpus,
    memoryBytes: Number(f.memoryBytes),
  };
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
              }),
            },
          }),
        );
        log.info({ serial: id.serial }, "agent connected");
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
        case "hello":
          return violation("PROTOCOL_VIOLATION", "Hello may only be sent once per stream");
        default:
          return violation("PROTOCOL_VIOLATION", "empty or unknown message");
      }
    });

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

  return {
    connect,
    renewCertificate: (call: ServerUnaryCall<Incoming<typeof RenewCertificateRequestSchema>, RenewCertificateResponse>, cb: sendUnaryData<RenewCertificateResponse>) => {
      void renewCertificate(call, cb);
    },
  };
}
