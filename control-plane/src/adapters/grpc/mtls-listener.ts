// The agent listener's TLS front.
//
// Ferry terminates TLS itself and hands each established connection to grpc-js (Server.createConnectionInjector)
// instead of letting grpc-js own the socket. The handshake requests a client certificate and checks it against the
// fleet CA bundle, but does not abort on failure: the connection is kept just long enough to answer every call on
// it with a precise, stable reason (CERT_REQUIRED, CERT_UNTRUSTED, CERT_EXPIRED, ...), and the refusal is logged
// and audited. A TLS alert would only tell the agent "handshake failure" and tell the operator nothing.
// An unauthenticated connection never reaches grpc-js at all: it is served by a bare HTTP/2 responder that answers
// every stream, whatever its method (unknown ones included), with the refusal as a gRPC trailers-only response
// (UNAUTHENTICATED or PERMISSION_DENIED plus the ferry-error-code), and is closed after a short linger. So a peer
// without a valid certificate learns nothing about the service, not even which methods exist.
//
// A valid certificate is not enough either: the agent it names must be one this control plane enrolled (a
// certificate from the same CA for an id the database does not know — another fleet sharing the CA, a restored
// backup — is refused as AGENT_UNKNOWN). Known ids are remembered, so the lookup costs one query per agent per
// process, not one per connection.
import { X509Certificate } from "node:crypto";
import * as http2 from "node:http2";
import type { Server } from "@grpc/grpc-js";
import { ServerCredentials } from "@grpc/grpc-js";
import * as tls from "node:tls";
import type { Logger } from "pino";
import { peerIdentity } from "@ferry/pki";
import { ERROR_CODE_KEY, WireErrorCodes, type WireErrorCode } from "@ferry/proto";

export type PeerVerdict =
  | { ok: true; agentId: string; serial: string; notAfter: number; notBefore: number }
  | { ok: false; code: WireErrorCode; message: string };

export interface MtlsListenerOptions {
  grpc: Server;
  keyPem: string;
  /** Server certificate followed by the CA, so new agents can find the CA they pin. */
  certChainPem: string;
  caBundle: string[];
  log: Logger;
  onRefusedConnection: (verdict: PeerVerdict & { ok: false }, peer: string) => void;
  /** How long an unauthenticated connection is kept to deliver the refusal. */
  lingerMs?: number;
  /** Whether the control plane enrolled this agent id (true ids are cached by the listener). */
  isKnownAgent: (agentId: string) => Promise<boolean>;
  /** TLS options every Ferry listener shares (protocol floor, AEAD-only cipher suites). */
  tlsOptions?: tls.SecureContextOptions;
}

/** The key grpc-js's call.getPeer() produces for a connection. */
export function peerKey(address: string | undefined, port: number | undefined): string {
  return port ? `${address}:${port}` : String(address);
}

const OPENSSL_TO_CODE: Record<string, WireErrorCode> = {
  CERT_HAS_EXPIRED: "CERT_EXPIRED",
  CERT_NOT_YET_VALID: "CERT_NOT_YET_VALID",
};

export function judgePeer(socket: tls.TLSSocket): PeerVerdict {
  const peer = socket.getPeerCertificate();
  if (!peer || !peer.raw) {
    return { ok: false, code: "CERT_REQUIRED", message: "no client certificate was presented; agents authenticate with the certificate they got at enrolment" };
  }
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? "unknown");
    const code = OPENSSL_TO_CODE[reason] ?? "CERT_UNTRUSTED";
    const cert = new X509Certificate(peer.raw);
    const message =
      code === "CERT_EXPIRED"
        ? `the client certificate (serial ${cert.serialNumber.toLowerCase()}) expired at ${new Date(cert.validTo).toISOString()}; re-enrol the agent`
        : code === "CERT_NOT_YET_VALID"
          ? `the client certificate is not valid before ${new Date(cert.validFrom).toISOString()}; check the agent's clock`
          : `the client certificate was not issued by this fleet's CA (${reason}; issuer: ${cert.issuer.replace(/\n/g, ", ")})`;
    return { ok: false, code, message };
  }
  try {
    const info = peerIdentity(peer);
    if (!info.agentId) {
      return { ok: false, code: "CERT_UNTRUSTED", message: "the client certificate carries no agent identity (SAN urn:ferry:agent:<id>)" };
    }
    return { ok: true, agentId: info.agentId, serial: info.serial, notAfter: info.notAfter.getTime(), notBefore: info.notBefore.getTime() };
  } catch (err) {
    return { ok: false, code: "CERT_UNTRUSTED", message: `the client certificate cannot be read: ${(err as Error).message}` };
  }
}

export class MtlsListener {
  private readonly server: tls.Server;
  private readonly verdicts = new Map<string, PeerVerdict>();
  private readonly sockets = new Set<tls.TLSSocket>();
  private readonly knownAgents = new Set<string>();
  private readonly injector;
  /** Answers every call on an unauthenticated connection with its refusal; grpc-js never sees the connection. */
  private readonly refuser = http2.createServer();

  constructor(private readonly o: MtlsListenerOptions) {
    // Insecure credentials: grpc-js gets connections on which TLS is already established by this class.
    this.injector = o.grpc.createConnectionInjector(ServerCredentials.createInsecure());
    this.server = tls.createServer({
      ...this.secureOptions(o.caBundle),
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
      minVersion: "TLSv1.2",
    });
    this.refuser.on("stream", (stream) => {
      const verdict = this.verdicts.get(peerKey(stream.session?.socket.remoteAddress, stream.session?.socket.remotePort));
      const refusal: PeerVerdict & { ok: false } =
        verdict && !verdict.ok ? verdict : { ok: false, code: "CERT_REQUIRED", message: "this connection is not authenticated" };
      stream.on("error", () => {});
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": String(WireErrorCodes[refusal.code]),
          "grpc-message": encodeURIComponent(`${refusal.code}: ${refusal.message}`),
          [ERROR_CODE_KEY]: refusal.code,
        },
        { endStream: true },
      );
    });
    this.refuser.on("sessionError", () => {});
    this.server.on("secureConnection", (socket) => this.accept(socket));
    this.server.on("tlsClientError", (err, socket) => {
      o.log.debug({ err: err.message, peer: peerKey(socket.remoteAddress, socket.remotePort) }, "TLS handshake failed");
    });
  }

  private secureOptions(caBundle: string[]): tls.SecureContextOptions {
    return { ...this.o.tlsOptions, key: this.o.keyPem, cert: this.o.certChainPem, ca: caBundle };
  }

  /** Replaces the trusted CA bundle (CA rotation); applies to new connections. */
  setTrust(caBundle: string[]): void {
    this.server.setSecureContext(this.secureOptions(caBundle));
  }

  private accept(socket: tls.TLSSocket): void {
    const key = peerKey(socket.remoteAddress, socket.remotePort);
    const judged = judgePeer(socket);
    if (!judged.ok || this.knownAgents.has(judged.agentId)) {
      this.admit(socket, key, judged);
      return;
    }
    // Until the lookup answers, the connection's bytes wait in the socket: nothing reads them yet.
    this.o.isKnownAgent(judged.agentId).then(
      (known) => {
        if (known) this.knownAgents.add(judged.agentId);
        this.admit(socket, key, known ? judged : { ok: false, code: "AGENT_UNKNOWN", message: `agent ${judged.agentId} is not enrolled with this control plane; enrol it with a join token from this control plane` });
      },
      (err: unknown) => {
        this.o.log.warn({ err, peer: key }, "could not look up a connecting agent; closing the connection");
        socket.destroy();
      },
    );
  }

  private admit(socket: tls.TLSSocket, key: string, verdict: PeerVerdict): void {
    if (socket.destroyed) return;
    this.verdicts.set(key, verdict);
    this.sockets.add(socket);
    socket.on("error", (err: Error) => this.o.log.debug({ err: err.message, peer: key }, "agent connection error"));
    socket.once("close", () => {
      this.verdicts.delete(key);
      this.sockets.delete(socket);
    });
    if (!verdict.ok) {
      this.o.onRefusedConnection(verdict, key);
      setTimeout(() => socket.destroy(), this.o.lingerMs ?? 3000).unref();
      this.refuser.emit("connection", socket);
      return;
    }
    this.injector.injectConnection(socket);
  }

  verdictFor(peer: string): PeerVerdict | undefined {
    return this.verdicts.get(peer);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      // A large backlog absorbs a reconnect storm of the whole fleet without refusing TCP connections.
      this.server.listen({ host, port, backlog: 4096 }, () => {
        this.server.off("error", reject);
        const addr = this.server.address();
        resolve(typeof addr === "object" && addr ? addr.port : port);
      });
    });
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.injector.destroy();
    this.refuser.close();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
