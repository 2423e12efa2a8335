// A minimal gRPC client for one AgentService/Connect stream: one TLS connection with the agent's own certificate,
// one HTTP/2 session, one bidirectional stream, length-prefixed protobuf messages.
//
// Why not grpc-js on the client side: load generators share the machine's two cores with the server under test, and
// every CPU cycle they spend is taken from it. A grpc-js channel per simulated agent (resolver, load balancer,
// subchannel, call stack, timers) costs several times what this does; the server cannot tell the difference — it
// sees the same TLS 1.3 handshake with a client certificate, the same HTTP/2 frames and the same gRPC messages a
// real agent sends. What is left out is client-only: HTTP/2 keepalive PINGs (the real agent sends one every 30 s
// after silence; the bench's heartbeats keep every stream busier than that) and channel-level retries (the load
// generator implements the agent's reconnect policy itself, see load-generator.ts).
import * as http2 from "node:http2";
import * as tls from "node:tls";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { controlPlaneIdentityCheck } from "@ferry/pki";
import { ConnectRequestSchema, ConnectResponseSchema, type ConnectRequest, type ConnectResponse } from "@ferry/proto";

export const CONNECT_PATH = "/ferry.agent.v1.AgentService/Connect";

export interface StreamEnd {
  /** gRPC status from the trailers (or a trailers-only response); null when the transport failed first. */
  status: number | null;
  /** Ferry error code (ferry-error-code), when the server sent one. */
  code?: string;
  retryAfterMs?: number;
  /** Transport error text when there was no gRPC status. */
  error?: string;
}

export interface StreamHandlers {
  onSecure(): void;
  onMessage(msg: ConnectResponse): void;
  /** Called exactly once, whatever ended the stream (including destroy()). */
  onEnd(end: StreamEnd): void;
}

// The agent's server identity check (agent/src/core/channel.ts), memoised by certificate fingerprint: it parses the
// certificate with @peculiar/x509, which costs milliseconds, and a load generator makes thousands of connections to
// one server presenting one certificate. A real agent makes one connection at a time, so it pays this once per
// connection; here it would only take CPU from the server under test. TLS still verifies the chain every time.
const identityCheck = controlPlaneIdentityCheck();
const identityVerdicts = new Map<string, Error | undefined>();
function checkServerIdentity(hostname: string, cert: tls.PeerCertificate): Error | undefined {
  const key = cert?.fingerprint256;
  if (key && identityVerdicts.has(key)) return identityVerdicts.get(key);
  const verdict = identityCheck(hostname, cert);
  if (key) identityVerdicts.set(key, verdict);
  return verdict;
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export class ConnectStream {
  private readonly socket: tls.TLSSocket;
  private readonly session: http2.ClientHttp2Session;
  private readonly req: http2.ClientHttp2Stream;
  private pending: Buffer | null = null;
  private end: StreamEnd | null = null;
  private done = false;
  private timer: NodeJS.Timeout | null;

  /**
   * `welcomeTimeoutMs` bounds the whole set-up — TCP, TLS, the call, the first answer — as the agent's welcome
   * timeout does (agent/src/core/session.ts: 3 × interval by default): the stream is cancelled unless `established()`
   * is called in time.
   */
  constructor(
    port: number,
    secureContext: tls.SecureContext,
    private readonly h: StreamHandlers,
    welcomeTimeoutMs: number,
  ) {
    this.socket = tls.connect({
      host: "127.0.0.1",
      port,
      secureContext,
      // An IP literal must not be sent as SNI (RFC 6066); the server is identified by its URI SAN, not a name.
      servername: "ferry-control-plane",
      ALPNProtocols: ["h2"],
      checkServerIdentity,
    });
    this.timer = setTimeout(() => this.fail("welcome timeout"), welcomeTimeoutMs);
    this.socket.once("secureConnect", () => h.onSecure());
    this.socket.on("error", (err: Error) => this.fail(err.message));
    this.session = http2.connect("https://ferry-control-plane", { createConnection: () => this.socket });
    this.session.on("error", (err: Error) => this.fail(err.message));
    this.session.on("close", () => this.fail("connection closed"));
    this.req = this.session.request(
      {
        ":method": "POST",
        ":path": CONNECT_PATH,
        "content-type": "application/grpc+proto",
        te: "trailers",
        "user-agent": "ferry-bench/1",
      },
      { endStream: false },
    );
    this.req.on("response", (headers: http2.IncomingHttpHeaders) => {
      // Trailers-only response: the call was refused before any message (authentication, admission).
      if (header(headers, "grpc-status") !== undefined) this.end = this.parseStatus(headers);
    });
    // The call is over when the server's side ends (trailers with END_STREAM): the client's own half of the HTTP/2
    // stream would stay open, and the stream never 'close', if this waited for both halves.
    this.req.on("trailers", (headers: http2.IncomingHttpHeaders) => {
      this.end = this.parseStatus(headers);
    });
    this.req.on("data", (chunk: Buffer) => this.onData(chunk));
    this.req.on("end", () => this.finish(this.end ?? { status: null, error: "stream ended without status" }));
    this.req.on("error", (err: Error) => this.fail(err.message));
    this.req.on("close", () => this.finish(this.end ?? { status: null, error: "stream closed without status" }));
  }

  private parseStatus(headers: http2.IncomingHttpHeaders): StreamEnd {
    const end: StreamEnd = { status: Number(header(headers, "grpc-status") ?? 2) };
    const code = header(headers, "ferry-error-code");
    if (code) end.code = code;
    const retry = header(headers, "ferry-retry-after-ms");
    if (retry && /^\d+$/.test(retry)) end.retryAfterMs = Number(retry);
    return end;
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const msg = fromBinary(ConnectResponseSchema, buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
      if (this.done) return;
      this.h.onMessage(msg);
    }
    this.pending = buf.length > 0 ? buf : null;
  }

  /** The agent is up (Welcome, or the baseline's first ack): the set-up deadline no longer applies. */
  established(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  send(msg: ConnectRequest): void {
    if (this.done) return;
    const body = toBinary(ConnectRequestSchema, msg);
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame.writeUInt8(0, 0);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    this.req.write(frame);
  }

  private fail(error: string): void {
    this.finish(this.end ?? { status: null, error });
  }

  private finish(end: StreamEnd): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.session.destroy();
    this.socket.destroy();
    this.h.onEnd(end);
  }

  /** Drops the connection at once (no half-close, no goodbye), like an agent host losing its network. */
  destroy(): void {
    this.finish({ status: null, error: "destroyed by the bench" });
  }

  /** Cancels the call on the agent's own decision (a Disconnect, a dead stream), reporting `end` as the reason. */
  cancel(end: StreamEnd): void {
    this.finish(end);
  }
}
