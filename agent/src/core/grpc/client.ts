// The agent's gRPC client: one HTTP/2 connection (node:http2) to one control-plane listener, unary calls and
// bidirectional streams with protobuf-es messages. It replaces grpc-js in the agent, whose channel machinery
// (resolver, load balancer, subchannel pool, retries) the agent never used and whose loading cost about 2.3 MB of heap
// (docs/performance.md, "Footprint"). What it does is the part of the gRPC over HTTP/2 protocol
// (doc/PROTOCOL-HTTP2.md) a client of one grpc-js server needs, with grpc-js's status codes and texts where an
// answer goes wrong, so the agent's error handling and logs read as before.
//
// One client owns one connection at a time, made on the first call and made anew after it dropped; close() closes
// it. A client built with renewed credentials therefore always makes a new TLS handshake.
//
// Calls report their end as a status object ({ code, details, metadata }); unary calls reject with a GrpcCallError
// of the same shape, which parseWireError (@ferry/proto/wire) reads as it reads a grpc-js ServiceError.
import { EventEmitter } from "node:events";
import * as http2 from "node:http2";
import type { PeerCertificate } from "node:tls";

import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { GrpcStatus, grpcStatusName } from "@ferry/proto/wire";

import {
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  FrameDecoder,
  type FrameError,
  decodeGrpcMessage,
  encodeFrame,
  encodeTimeout,
  statusFromHttp,
} from "./framing.js";

const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_INTERNAL_ERROR,
} = http2.constants;

/** Response metadata: header or trailer values by lower-case key ("-bin" keys decoded from base64). */
export class Metadata {
  readonly #map = new Map<string, Array<string | Buffer>>();

  get(key: string): Array<string | Buffer> {
    return this.#map.get(key.toLowerCase()) ?? [];
  }

  add(key: string, value: string | Buffer): void {
    const k = key.toLowerCase();
    const values = this.#map.get(k);
    if (values) values.push(value);
    else this.#map.set(k, [value]);
  }

  /** Every key with its values, for logs and tests. */
  toJSON(): Record<string, Array<string | Buffer>> {
    return Object.fromEntries(this.#map);
  }

  /** The custom metadata of a HEADERS frame: not the pseudo-headers, nor the fields of the protocol itself. */
  static fromHeaders(headers: http2.IncomingHttpHeaders): Metadata {
    const md = new Metadata();
    for (const [key, raw] of Object.entries(headers)) {
      if (raw === undefined || key.startsWith(":") || PROTOCOL_HEADERS.has(key)) continue;
      for (const value of Array.isArray(raw) ? raw : [raw]) {
        if (key.endsWith("-bin")) {
          for (const part of value.split(",")) md.add(key, Buffer.from(part.trim(), "base64"));
        } else {
          md.add(key, value);
        }
      }
    }
    return md;
  }
}

const PROTOCOL_HEADERS = new Set(["content-type", "grpc-status", "grpc-message", "grpc-encoding", "grpc-accept-encoding", "te", "date"]);

/** How a call ended. */
export interface StatusObject {
  code: number;
  details: string;
  metadata: Metadata;
}

/** A call that ended with a status other than OK. `code`, `details` and `metadata` as grpc-js's ServiceError has them. */
export class GrpcCallError extends Error {
  readonly code: number;
  readonly details: string;
  readonly metadata: Metadata;

  constructor(status: StatusObject) {
    super(`${status.code} ${grpcStatusName(status.code)}: ${status.details}`);
    this.name = "GrpcCallError";
    this.code = status.code;
    this.details = status.details;
    this.metadata = status.metadata;
  }
}

/** A method of a protobuf-es service descriptor (AgentService.method.connect …). */
export interface MethodDesc<I extends DescMessage, O extends DescMessage> {
  readonly name: string;
  readonly parent: { readonly typeName: string };
  readonly input: I;
  readonly output: O;
}

export interface CallOptions {
  /** Absolute deadline (ms since the epoch): the call ends DEADLINE_EXCEEDED and is cancelled, and the server is told. */
  deadline?: number;
  /** Aborting cancels the call (CANCELLED). */
  signal?: AbortSignal;
  /** Custom request metadata (ASCII values; keys must not be the protocol's own). */
  metadata?: Record<string, string>;
}

export interface KeepaliveOptions {
  /** HTTP/2 PING after this long without any frame from the server, while a call is active. */
  timeMs: number;
  /** The connection is dead when a PING is not answered within this: its calls end UNAVAILABLE. */
  timeoutMs: number;
}

export interface GrpcClientOptions {
  /** "host:port", "[v6]:port". */
  target: string;
  /** Trusted CA certificates (PEM): the only trust anchors. */
  ca: string;
  /** Client key and certificate (PEM) for mutual TLS. */
  key?: string;
  cert?: string;
  /** TLS SNI. An IP literal must not be sent (RFC 6066); the caller picks a name then. */
  servername: string;
  /** Replaces the host name check: the server is identified by what this accepts. */
  checkServerIdentity: (hostname: string, cert: PeerCertificate) => Error | undefined;
  userAgent: string;
  keepalive?: KeepaliveOptions;
  /** Largest response message accepted (RESOURCE_EXHAUSTED past it). Default 4 MiB, as grpc-js. */
  maxReceiveMessageBytes?: number;
}

/** One connection and what happened to it. */
interface Connection {
  session: http2.ClientHttp2Session;
  /** The first error the connection reported (TLS, socket, keepalive). */
  error: Error | undefined;
  keepaliveTimer: NodeJS.Timeout | undefined;
  lastActivity: number;
}

export class GrpcClient {
  readonly #o: GrpcClientOptions;
  readonly #calls = new Set<ClientCall<DescMessage, DescMessage>>();
  #conn: Connection | undefined;
  #closed = false;

  constructor(options: GrpcClientOptions) {
    this.#o = options;
  }

  /** Starts a call; messages are written with write() and the request side closed with end(). */
  call<I extends DescMessage, O extends DescMessage>(method: MethodDesc<I, O>, options: CallOptions = {}): ClientCall<I, O> {
    return new ClientCall(this, method, options, this.#o.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES);
  }

  /** One request, one response. Rejects with GrpcCallError. */
  unary<I extends DescMessage, O extends DescMessage>(
    method: MethodDesc<I, O>,
    request: MessageShape<I>,
    options: CallOptions = {},
  ): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      const call = this.call(method, options);
      let response: MessageShape<O> | undefined;
      let count = 0;
      call.on("data", (msg) => {
        count += 1;
        if (count === 1) response = msg;
        else call.fail(GrpcStatus.INTERNAL, "Too many responses received");
      });
      call.on("status", (status) => {
        if (status.code !== GrpcStatus.OK) reject(new GrpcCallError(status));
        else if (response === undefined) reject(new GrpcCallError({ code: GrpcStatus.UNIMPLEMENTED, details: "No message received", metadata: status.metadata }));
        else resolve(response);
      });
      call.write(request);
      call.end();
    });
  }

  /** Closes the connection: calls under way finish, new calls fail UNAVAILABLE. */
  close(): void {
    this.#closed = true;
    const conn = this.#conn;
    if (conn === undefined) return;
    this.#stopKeepalive(conn);
    if (!conn.session.closed && !conn.session.destroyed) conn.session.close();
  }

  // ── for ClientCall ───────────────────────────────────────────────────────────────────────────────────────

  /** Opens an HTTP/2 stream on the current connection (made now if there is none). Throws when it cannot. */
  open(call: ClientCall<DescMessage, DescMessage>, headers: http2.OutgoingHttpHeaders): { stream: http2.ClientHttp2Stream; conn: Connection } {
    if (this.#closed) throw new Error("the client is closed");
    const conn = this.#connection();
    const stream = conn.session.request(headers, { endStream: false });
    this.#calls.add(call);
    if (this.#calls.size === 1) conn.session.ref();
    this.#armKeepalive(conn);
    return { stream, conn };
  }

  ended(call: ClientCall<DescMessage, DescMessage>): void {
    if (!this.#calls.delete(call) || this.#calls.size > 0) return;
    const conn = this.#conn;
    if (conn === undefined) return;
    // Idle: no keepalive (the server's policy is not to be pinged without calls) and no hold on the event loop.
    this.#stopKeepalive(conn);
    if (!conn.session.destroyed) conn.session.unref();
  }

  /** A frame arrived: the connection is alive. */
  activity(conn: Connection): void {
    conn.lastActivity = Date.now();
  }

  get userAgent(): string {
    return this.#o.userAgent;
  }

  get authority(): string {
    return this.#o.target;
  }

  #connection(): Connection {
    const current = this.#conn;
    if (current && !current.session.closed && !current.session.destroyed) return current;
    const session = http2.connect(`https://${this.#o.target}`, {
      ca: this.#o.ca,
      ...(this.#o.key !== undefined ? { key: this.#o.key } : {}),
      ...(this.#o.cert !== undefined ? { cert: this.#o.cert } : {}),
      servername: this.#o.servername,
      checkServerIdentity: this.#o.checkServerIdentity,
      ALPNProtocols: ["h2"],
      settings: { enablePush: false },
    });
    const conn: Connection = { session, error: undefined, keepaliveTimer: undefined, lastActivity: Date.now() };
    session.on("error", (err: Error) => {
      conn.error ??= err;
    });
    session.on("close", () => {
      this.#stopKeepalive(conn);
      if (this.#conn === conn) this.#conn = undefined;
    });
    this.#conn = conn;
    return conn;
  }

  #armKeepalive(conn: Connection): void {
    const ka = this.#o.keepalive;
    if (ka === undefined || !(ka.timeMs > 0) || conn.keepaliveTimer !== undefined) return;
    const check = (): void => {
      conn.keepaliveTimer = undefined;
      if (this.#calls.size === 0 || conn.session.destroyed || conn.session.closed) return;
      const quietFor = Date.now() - conn.lastActivity;
      if (quietFor < ka.timeMs || conn.session.connecting) {
        conn.keepaliveTimer = setTimeout(check, Math.max(1, ka.timeMs - quietFor)).unref();
        return;
      }
      // At most one PING per timeMs of silence from the server. The control plane's grpc-js server counts no ping
      // strikes (it has no GOAWAY ENHANCE_YOUR_CALM policy for client pings), and the agent's 30 s default stays
      // well above the 5 min / 10 s minimums other gRPC servers enforce only for pings without data.
      const timeout = setTimeout(() => {
        conn.error ??= new Error(`keepalive: the server did not answer a PING within ${ka.timeoutMs} ms`);
        conn.session.destroy();
      }, ka.timeoutMs).unref();
      conn.keepaliveTimer = timeout;
      const sent = conn.session.ping((err) => {
        clearTimeout(timeout);
        if (conn.keepaliveTimer === timeout) conn.keepaliveTimer = undefined;
        if (err) return; // the connection is going away; its calls report why
        conn.lastActivity = Date.now();
        this.#armKeepalive(conn);
      });
      if (!sent) {
        clearTimeout(timeout);
        conn.keepaliveTimer = undefined;
        conn.error ??= new Error("keepalive: too many PINGs unanswered");
        conn.session.destroy();
      }
    };
    conn.keepaliveTimer = setTimeout(check, ka.timeMs).unref();
  }

  #stopKeepalive(conn: Connection): void {
    if (conn.keepaliveTimer !== undefined) clearTimeout(conn.keepaliveTimer);
    conn.keepaliveTimer = undefined;
  }
}

export interface ClientCallEvents<O extends DescMessage> {
  /** A response message, in order. */
  data: [message: MessageShape<O>];
  /** Exactly once, after the last `data`: how the call ended. No `error` event is emitted; a failure is a status. */
  status: [status: StatusObject];
  /** write() returned false earlier and the request side can take more. */
  drain: [];
}

/** One call. Created by GrpcClient.call(). */
export class ClientCall<I extends DescMessage, O extends DescMessage> extends EventEmitter<ClientCallEvents<O>> {
  readonly #client: GrpcClient;
  readonly #method: MethodDesc<I, O>;
  readonly #decoder: FrameDecoder;
  #stream: http2.ClientHttp2Stream | undefined;
  #conn: Connection | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #abort: { signal: AbortSignal; listener: () => void } | undefined;
  /** The status the server sent (trailers, or a trailers-only response), waiting for the end of the messages. */
  #received: StatusObject | undefined;
  #httpStatus: number | undefined;
  #streamError: NodeJS.ErrnoException | undefined;
  #done = false;

  constructor(client: GrpcClient, method: MethodDesc<I, O>, options: CallOptions, maxReceiveMessageBytes: number) {
    super();
    this.#client = client;
    this.#method = method;
    this.#decoder = new FrameDecoder(maxReceiveMessageBytes);
    const headers: http2.OutgoingHttpHeaders = {
      ...options.metadata,
      ":method": "POST",
      ":path": `/${method.parent.typeName}/${method.name}`,
      ":authority": client.authority,
      "content-type": "application/grpc+proto",
      te: "trailers",
      "grpc-accept-encoding": "identity",
      "user-agent": client.userAgent,
    };
    if (options.deadline !== undefined) {
      const left = options.deadline - Date.now();
      if (left <= 0) {
        this.#endLater(GrpcStatus.DEADLINE_EXCEEDED, "Deadline exceeded before the call started");
        return;
      }
      headers["grpc-timeout"] = encodeTimeout(left);
      this.#deadlineTimer = setTimeout(() => this.fail(GrpcStatus.DEADLINE_EXCEEDED, `Deadline exceeded after ${left} ms`), left);
    }
    if (options.signal !== undefined) {
      const signal = options.signal;
      if (signal.aborted) {
        this.#endLater(GrpcStatus.CANCELLED, "Cancelled on client");
        return;
      }
      const listener = (): void => this.cancel();
      signal.addEventListener("abort", listener, { once: true });
      this.#abort = { signal, listener };
    }
    let opened;
    try {
      opened = client.open(this, headers);
    } catch (err) {
      this.#endLater(GrpcStatus.UNAVAILABLE, `cannot start the call: ${(err as Error).message}`);
      return;
    }
    const { stream, conn } = opened;
    this.#stream = stream;
    this.#conn = conn;
    stream.on("response", (h: http2.IncomingHttpHeaders) => this.#onHeaders(h));
    stream.on("data", (chunk: Buffer) => this.#onData(chunk));
    stream.on("trailers", (h: http2.IncomingHttpHeaders) => {
      client.activity(conn);
      this.#received ??= statusFrom(h);
    });
    stream.on("end", () => this.#onEnd());
    stream.on("error", (err: Error) => {
      this.#streamError ??= err;
    });
    stream.on("close", () => this.#onClose());
    stream.on("drain", () => this.emit("drain"));
  }

  /** Sends a message. Returns false when the caller should wait for `drain` before writing more. */
  write(message: MessageShape<I>): boolean {
    const stream = this.#stream;
    if (this.#done || stream === undefined || stream.writableEnded || stream.destroyed) return false;
    let frame: Buffer;
    try {
      frame = encodeFrame(toBinary(this.#method.input, message));
    } catch (err) {
      this.fail(GrpcStatus.INTERNAL, `Request message serialization failure: ${(err as Error).message}`);
      return false;
    }
    return stream.write(frame);
  }

  /** Half-closes: no more messages from this side; the server answers and ends the call. */
  end(): void {
    const stream = this.#stream;
    if (this.#done || stream === undefined || stream.writableEnded || stream.destroyed) return;
    stream.end();
  }

  /** Cancels the call (RST_STREAM CANCEL): it ends CANCELLED unless it had already ended. */
  cancel(): void {
    this.fail(GrpcStatus.CANCELLED, "Cancelled on client");
  }

  /** Ends the call now with this status, cancelling the stream; nothing the server sends afterwards is delivered. */
  fail(code: number, details: string): void {
    if (this.#done) return;
    const stream = this.#stream;
    // Reported on a later tick, as grpc-js does: never from inside the caller's cancel() or write(), whose caller may
    // not expect its own listeners to run yet. Nothing is delivered after this point.
    this.#finish({ code, details, metadata: new Metadata() }, true);
    if (stream !== undefined && !stream.closed && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  }

  #endLater(code: number, details: string): void {
    process.nextTick(() => this.#finish({ code, details, metadata: new Metadata() }));
  }

  #onHeaders(h: http2.IncomingHttpHeaders): void {
    if (this.#conn) this.#client.activity(this.#conn);
    this.#httpStatus = Number(h[":status"]);
    if (h["grpc-status"] !== undefined) {
      // Trailers-only: the call was answered without messages (a refusal, most often).
      this.#received = statusFrom(h);
      return;
    }
    if (this.#httpStatus !== 200) {
      this.fail(statusFromHttp(this.#httpStatus), `Received HTTP status code ${this.#httpStatus}`);
      return;
    }
    const contentType = first(h["content-type"]) ?? "";
    if (!contentType.startsWith("application/grpc")) {
      this.fail(GrpcStatus.UNKNOWN, `the server did not answer with gRPC (content-type "${contentType.slice(0, 100)}")`);
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#done) return;
    if (this.#conn) this.#client.activity(this.#conn);
    let bodies: Buffer[];
    try {
      bodies = this.#decoder.push(chunk);
    } catch (err) {
      const e = err as FrameError;
      this.fail(e.code ?? GrpcStatus.INTERNAL, e.message);
      return;
    }
    for (const body of bodies) {
      if (this.#done) return;
      let msg: MessageShape<O>;
      try {
        msg = fromBinary(this.#method.output, body);
      } catch (err) {
        this.fail(GrpcStatus.INTERNAL, `cannot decode the response ${this.#method.output.typeName}: ${(err as Error).message}`);
        return;
      }
      this.emit("data", msg);
    }
  }

  /** The server's side ended (END_STREAM) and every message was delivered. */
  #onEnd(): void {
    if (this.#done) return;
    const stream = this.#stream;
    let status = this.#received;
    if (status === undefined) {
      // No status: a reset (node ends the readable side on RST_STREAM too, before it reports the reset) or an
      // END_STREAM without trailers. 'close' says which; make sure it comes even while our side of a bidi call is
      // open, after node had its turn to process a reset.
      setImmediate(() => {
        if (stream !== undefined && !stream.closed && !stream.destroyed) stream.close(NGHTTP2_NO_ERROR);
      });
      return;
    }
    if (status.code === GrpcStatus.OK && this.#decoder.partial) {
      status = { code: GrpcStatus.INTERNAL, details: "the server ended the call inside a message", metadata: status.metadata };
    }
    this.#finish(status);
    // The call is over; release our half of the stream too (it may be open on a bidi call).
    if (stream !== undefined && !stream.closed && !stream.destroyed) stream.close(NGHTTP2_NO_ERROR);
  }

  /** The HTTP/2 stream is gone. If no status arrived, say why the way grpc-js would. */
  #onClose(): void {
    if (this.#done) return;
    if (this.#received !== undefined) {
      this.#finish(this.#received);
      return;
    }
    this.#finish({ ...this.#transportStatus(), metadata: new Metadata() });
  }

  #transportStatus(): { code: number; details: string } {
    const stream = this.#stream;
    const conn = this.#conn;
    const rst = stream?.rstCode;
    if (rst === NGHTTP2_REFUSED_STREAM) return { code: GrpcStatus.UNAVAILABLE, details: "Stream refused by server" };
    if (conn !== undefined && (conn.error !== undefined || conn.session.destroyed)) {
      const cause = conn.error ?? this.#streamError;
      return { code: GrpcStatus.UNAVAILABLE, details: cause ? `Connection dropped: ${cause.message}` : "Connection dropped" };
    }
    const errCode = this.#streamError?.code;
    if (errCode === "ECONNRESET" || errCode === "ETIMEDOUT") return { code: GrpcStatus.UNAVAILABLE, details: this.#streamError!.message };
    switch (rst) {
      case NGHTTP2_CANCEL:
        return { code: GrpcStatus.CANCELLED, details: "Call cancelled by the server" };
      case NGHTTP2_ENHANCE_YOUR_CALM:
        return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: "Bandwidth exhausted or memory limit exceeded" };
      case NGHTTP2_INADEQUATE_SECURITY:
        return { code: GrpcStatus.PERMISSION_DENIED, details: "Protocol not secure enough" };
      case NGHTTP2_INTERNAL_ERROR:
        return { code: GrpcStatus.INTERNAL, details: `Received RST_STREAM with code ${rst} (Internal server error)` };
      case NGHTTP2_NO_ERROR:
      case undefined:
        if (this.#httpStatus !== undefined && this.#httpStatus !== 200) {
          return { code: statusFromHttp(this.#httpStatus), details: `Received HTTP status code ${this.#httpStatus}` };
        }
        return { code: GrpcStatus.INTERNAL, details: `Received RST_STREAM with code ${rst ?? 0} (Call ended without gRPC status)` };
      default:
        return { code: GrpcStatus.INTERNAL, details: `Received RST_STREAM with code ${rst}` };
    }
  }

  #finish(status: StatusObject, later = false): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    if (this.#abort !== undefined) this.#abort.signal.removeEventListener("abort", this.#abort.listener);
    this.#abort = undefined;
    if (this.#stream !== undefined) this.#client.ended(this);
    if (later) process.nextTick(() => this.emit("status", status));
    else this.emit("status", status);
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function statusFrom(h: http2.IncomingHttpHeaders): StatusObject {
  const raw = first(h["grpc-status"]);
  const valid = raw !== undefined && /^\d{1,9}$/.test(raw);
  const code = valid ? Number(raw) : GrpcStatus.UNKNOWN;
  const message = first(h["grpc-message"]);
  const details = message !== undefined ? decodeGrpcMessage(message) : valid ? "" : `invalid grpc-status ${JSON.stringify(raw ?? "")}`;
  return { code, details, metadata: Metadata.fromHeaders(h) };
}
