// The agent's gRPC client against a small node:http2 server on 127.0.0.1 (real TLS, a real FleetCa), for what a real
// grpc-js server will not do on demand: split and merged frames, oversize and compressed messages, trailers-only and
// non-gRPC answers, resets, GOAWAY, silence and unanswered PINGs; and against a grpc-js server with the control
// plane's glue (serverDefinition, wireError, the error-code interceptor). The agent's whole exchange with grpc-js is
// covered by session.test.ts and enrol.test.ts (the harness runs grpc-js), and end to end by the e2e suites.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { controlPlaneIdentityCheck, FleetCa } from "@ferry/pki";
import { errorCodeInterceptor, serverDefinition, wireError } from "@ferry/proto";
import * as grpc from "@grpc/grpc-js";
import {
  AgentService,
  ConnectRequestSchema,
  ConnectResponseSchema,
  GrpcStatus,
  HeartbeatSchema,
  parseWireError,
  PingSchema,
  PullTasksRequestSchema,
  PullTasksResponseSchema,
  type ConnectResponse,
} from "@ferry/proto/wire";

import { DEFAULT_MAX_RECEIVE_MESSAGE_BYTES, encodeFrame, encodeTimeout, FrameDecoder, decodeGrpcMessage } from "./framing.js";
import { GrpcCallError, GrpcClient, type GrpcClientOptions, type StatusObject } from "./client.js";

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

let dir: string;
let ca: FleetCa;
let server: http2.Http2SecureServer;
let port: number;
let handler: Handler = () => undefined;
/** Called with each new server-side HTTP/2 session, before it has read a stream. */
let onSession: ((s: http2.ServerHttp2Session) => void) | undefined;
let tlsConnections = 0;
const serverSessions = new Set<http2.ServerHttp2Session>();

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "ferry-grpc-client-"));
  ca = await FleetCa.loadOrCreate(path.join(dir, "ca"));
  const cert = await ca.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: 3_600_000 });
  server = http2.createSecureServer({ key: cert.keyPem, cert: `${cert.certPem.trim()}\n${ca.certPem.trim()}\n` });
  server.on("secureConnection", () => (tlsConnections += 1));
  server.on("session", (s) => {
    serverSessions.add(s);
    onSession?.(s);
    s.on("close", () => serverSessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => undefined); // the resets the tests make
    handler(stream, headers);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as net.AddressInfo).port;
});

after(async () => {
  for (const s of serverSessions) s.destroy();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

function client(extra: Partial<GrpcClientOptions> = {}): GrpcClient {
  return new GrpcClient({
    target: `127.0.0.1:${port}`,
    ca: ca.certPem,
    servername: "ferry-control-plane",
    checkServerIdentity: controlPlaneIdentityCheck(),
    userAgent: "ferry-agent/test",
    ...extra,
  });
}

const GRPC_HEADERS = { ":status": 200, "content-type": "application/grpc+proto" };

function responseFrame(msg: ConnectResponse): Buffer {
  return encodeFrame(toBinary(ConnectResponseSchema, msg));
}

const ping = (nonce: bigint): ConnectResponse => create(ConnectResponseSchema, { body: { case: "ping", value: create(PingSchema, { nonce }) } });

/** Runs a Connect call to its end, collecting messages and the status. */
async function connectCall(c: GrpcClient, opts: { deadline?: number } = {}): Promise<{ messages: ConnectResponse[]; status: StatusObject }> {
  const call = c.call(AgentService.method.connect, opts);
  const messages: ConnectResponse[] = [];
  call.on("data", (m) => messages.push(m));
  call.write(create(ConnectRequestSchema, { body: { case: "heartbeat", value: create(HeartbeatSchema, { seq: 1n }) } }));
  const [status] = (await once(call, "status")) as [StatusObject];
  return { messages, status };
}

async function unaryError(c: GrpcClient, opts: { deadline?: number; signal?: AbortSignal } = {}): Promise<GrpcCallError> {
  const err = await c.unary(AgentService.method.pullTasks, create(PullTasksRequestSchema, { max: 1 }), opts).then(
    () => assert.fail("the call should have failed"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof GrpcCallError, String(err));
  return err;
}

/** Resolves when the server's stream is closed, with the RST_STREAM code it saw. */
function streamClosed(stream: http2.ServerHttp2Stream): Promise<number | undefined> {
  return new Promise((resolve) => stream.on("close", () => resolve(stream.rstCode)));
}

describe("gRPC framing", () => {
  it("splits messages whatever the chunking, and bounds what it buffers", () => {
    const a = encodeFrame(Buffer.from("hello"));
    const b = encodeFrame(Buffer.alloc(0));
    const c = encodeFrame(Buffer.from("world!"));
    const all = Buffer.concat([a, b, c]);
    for (let cut = 0; cut <= all.length; cut++) {
      const d = new FrameDecoder(64);
      const got = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))].map((x) => x.toString());
      assert.deepEqual(got, ["hello", "", "world!"], `cut at ${cut}`);
      assert.equal(d.partial, false);
    }
    const d = new FrameDecoder(64);
    const byteByByte: string[] = [];
    for (const byte of all) byteByByte.push(...d.push(Buffer.from([byte])).map((x) => x.toString()));
    assert.deepEqual(byteByByte, ["hello", "", "world!"]);

    const big = Buffer.alloc(5);
    big.writeUInt32BE(65, 1);
    assert.throws(() => new FrameDecoder(64).push(big), { code: GrpcStatus.RESOURCE_EXHAUSTED, message: "Received message larger than max (65 vs. 64)" });
    assert.throws(() => new FrameDecoder(64).push(Buffer.from([1, 0, 0, 0, 1, 0])), { code: GrpcStatus.INTERNAL, message: /compressed/ });
    assert.throws(() => new FrameDecoder(64).push(Buffer.from([7, 0, 0, 0, 0])), { code: GrpcStatus.INTERNAL });
    assert.equal(DEFAULT_MAX_RECEIVE_MESSAGE_BYTES, 4 * 1024 * 1024);
  });

  it("writes grpc-timeout in at most 8 digits and reads percent-encoded grpc-message", () => {
    assert.equal(encodeTimeout(1500), "1500m");
    assert.equal(encodeTimeout(0.2), "1m");
    assert.equal(encodeTimeout(99_999_999), "99999999m");
    assert.equal(encodeTimeout(100_000_000), "100000S");
    assert.equal(encodeTimeout(10 * 365 * 86_400_000), "5256000M");
    for (const ms of [1, 999, 123_456_789, 2 ** 31, 10 * 365 * 86_400_000]) assert.match(encodeTimeout(ms), /^\d{1,8}[HMSm]$/);
    assert.equal(decodeGrpcMessage("caf%C3%A9 100%25 done"), "café 100% done");
    assert.equal(decodeGrpcMessage("plain"), "plain");
    assert.equal(decodeGrpcMessage("bad %zz escape %"), "bad %zz escape %");
  });
});

describe("GrpcClient against a node:http2 server", () => {
  it("sends the gRPC request headers and frames, and reads messages split across and merged within DATA frames", async () => {
    let seen: http2.IncomingHttpHeaders | undefined;
    const requests: Buffer[] = [];
    handler = (stream, headers) => {
      seen = headers;
      const d = new FrameDecoder();
      stream.on("data", (chunk: Buffer) => requests.push(...d.push(chunk)));
      stream.respond(GRPC_HEADERS, { waitForTrailers: true });
      // Two messages in one DATA frame, then one written a byte at a time.
      stream.write(Buffer.concat([responseFrame(ping(1n)), responseFrame(ping(2n))]));
      const third = responseFrame(ping(3n));
      let i = 0;
      const drip = (): void => {
        if (i < third.length) {
          stream.write(third.subarray(i, ++i), drip);
          return;
        }
        stream.end();
      };
      drip();
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-extra": "yes" }));
    };
    const c = client();
    try {
      const { messages, status } = await connectCall(c, { deadline: Date.now() + 5_000 });
      assert.equal(status.code, GrpcStatus.OK);
      assert.deepEqual(status.metadata.get("x-extra"), ["yes"]);
      assert.deepEqual(messages.map((m) => (m.body.case === "ping" ? m.body.value.nonce : -1n)), [1n, 2n, 3n]);
      assert.ok(seen);
      assert.equal(seen[":method"], "POST");
      assert.equal(seen[":path"], "/ferry.agent.v1.AgentService/Connect");
      assert.equal(seen["content-type"], "application/grpc+proto");
      assert.equal(seen["te"], "trailers");
      assert.equal(seen["grpc-accept-encoding"], "identity");
      assert.equal(seen["user-agent"], "ferry-agent/test");
      assert.match(String(seen["grpc-timeout"]), /^\d{1,8}m$/);
      assert.ok(Number(String(seen["grpc-timeout"]).slice(0, -1)) <= 5_000);
      assert.equal(requests.length, 1);
      const req = fromBinary(ConnectRequestSchema, requests[0]!);
      assert.equal(req.body.case === "heartbeat" && req.body.value.seq, 1n);
    } finally {
      c.close();
    }
  });

  it("delivers every message before the status, and a unary call resolves with its one response", async () => {
    handler = (stream) => {
      stream.respond(GRPC_HEADERS, { waitForTrailers: true });
      stream.end(encodeFrame(toBinary(PullTasksResponseSchema, create(PullTasksResponseSchema, {}))));
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    };
    const c = client();
    try {
      const res = await c.unary(AgentService.method.pullTasks, create(PullTasksRequestSchema, { max: 3 }), { metadata: { "x-ferry-test": "1" } });
      assert.deepEqual(res.offers, []);
    } finally {
      c.close();
    }
  });

  it("reads a trailers-only refusal with its Ferry code, retry hint and percent-encoded message", async () => {
    handler = (stream) => {
      stream.respond(
        {
          ...GRPC_HEADERS,
          "grpc-status": String(GrpcStatus.RESOURCE_EXHAUSTED),
          "grpc-message": "RATE_LIMITED: slow down, caf%C3%A9 100%25",
          "ferry-error-code": "RATE_LIMITED",
          "ferry-retry-after-ms": "1250",
        },
        { endStream: true },
      );
    };
    const c = client();
    try {
      const err = await unaryError(c);
      assert.equal(err.code, GrpcStatus.RESOURCE_EXHAUSTED);
      assert.equal(err.details, "RATE_LIMITED: slow down, café 100%");
      assert.equal(err.message, "8 RESOURCE_EXHAUSTED: RATE_LIMITED: slow down, café 100%");
      assert.deepEqual(parseWireError(err), { code: "RATE_LIMITED", status: GrpcStatus.RESOURCE_EXHAUSTED, message: "slow down, café 100%", retryAfterMs: 1250 });
    } finally {
      c.close();
    }
  });

  it("maps a non-200 HTTP status and a non-gRPC content type", async () => {
    const c = client();
    try {
      handler = (stream) => stream.respond({ ":status": 503, "content-type": "text/plain" }, { endStream: true });
      let err = await unaryError(c);
      assert.equal(err.code, GrpcStatus.UNAVAILABLE);
      assert.equal(err.details, "Received HTTP status code 503");
      handler = (stream) => stream.respond({ ":status": 404 }, { endStream: true });
      assert.equal((await unaryError(c)).code, GrpcStatus.UNIMPLEMENTED);
      handler = (stream) => {
        stream.respond({ ":status": 200, "content-type": "text/html" });
        stream.end("<html>not grpc</html>");
      };
      err = await unaryError(c);
      assert.equal(err.code, GrpcStatus.UNKNOWN);
      assert.match(err.details, /content-type "text\/html"/);
    } finally {
      c.close();
    }
  });

  it("refuses an oversize message with RESOURCE_EXHAUSTED and cancels the stream", async () => {
    let closed: Promise<number | undefined> | undefined;
    handler = (stream) => {
      closed = streamClosed(stream);
      stream.respond(GRPC_HEADERS);
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(1024, 1);
      stream.write(Buffer.concat([prefix, Buffer.alloc(100)])); // the rest never needs to come
    };
    const c = client({ maxReceiveMessageBytes: 1000 });
    try {
      const { messages, status } = await connectCall(c);
      assert.equal(status.code, GrpcStatus.RESOURCE_EXHAUSTED);
      assert.equal(status.details, "Received message larger than max (1024 vs. 1000)");
      assert.equal(messages.length, 0);
      assert.equal(await closed, http2.constants.NGHTTP2_CANCEL);
    } finally {
      c.close();
    }
  });

  it("refuses a compressed message and one that does not decode with INTERNAL", async () => {
    const c = client();
    try {
      handler = (stream) => {
        stream.respond({ ...GRPC_HEADERS, "grpc-encoding": "gzip" });
        stream.write(Buffer.from([1, 0, 0, 0, 2, 0x1f, 0x8b]));
      };
      let { status } = await connectCall(c);
      assert.equal(status.code, GrpcStatus.INTERNAL);
      assert.match(status.details, /compressed/);
      handler = (stream) => {
        stream.respond(GRPC_HEADERS);
        stream.write(encodeFrame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
      };
      ({ status } = await connectCall(c));
      assert.equal(status.code, GrpcStatus.INTERNAL);
      assert.match(status.details, /cannot decode the response ferry\.agent\.v1\.ConnectResponse/);
    } finally {
      c.close();
    }
  });

  it("maps RST_STREAM and a response without status as grpc-js does", async () => {
    const c = client();
    try {
      handler = (stream) => {
        stream.respond(GRPC_HEADERS);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      assert.equal((await connectCall(c)).status.code, GrpcStatus.CANCELLED);
      handler = (stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      assert.equal((await connectCall(c)).status.code, GrpcStatus.UNAVAILABLE);
      handler = (stream) => stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.equal((await connectCall(c)).status.code, GrpcStatus.RESOURCE_EXHAUSTED);
      handler = (stream) => stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      const { status } = await connectCall(c);
      assert.equal(status.code, GrpcStatus.INTERNAL);
      assert.match(status.details, /RST_STREAM with code 1/);
      handler = (stream) => {
        stream.respond(GRPC_HEADERS);
        stream.end(responseFrame(ping(9n)));
      };
      const noStatus = await connectCall(c);
      assert.equal(noStatus.status.code, GrpcStatus.INTERNAL);
      assert.equal(noStatus.messages.length, 1, "the message before the missing status was still delivered");
    } finally {
      c.close();
    }
  });

  it("a GOAWAY before the stream was processed ends the call UNAVAILABLE, and the next call uses a new connection", async () => {
    // GOAWAY with last-stream-id 0 as soon as the connection is up: the server will process none of its streams.
    onSession = (s) => s.goaway(http2.constants.NGHTTP2_NO_ERROR, 0);
    handler = (stream) => {
      stream.respond({ ...GRPC_HEADERS, "grpc-status": "0" }, { endStream: true });
    };
    const c = client();
    try {
      const before = tlsConnections;
      const { status } = await connectCall(c);
      assert.equal(status.code, GrpcStatus.UNAVAILABLE);
      onSession = undefined;
      const again = await connectCall(c);
      assert.equal(again.status.code, GrpcStatus.OK);
      assert.equal(tlsConnections - before, 2);
    } finally {
      onSession = undefined;
      c.close();
    }
  });

  it("enforces the deadline locally and cancels the stream; cancel() and an abort signal end the call CANCELLED", async () => {
    const closed: Array<Promise<number | undefined>> = [];
    handler = (stream) => {
      closed.push(streamClosed(stream));
      stream.respond(GRPC_HEADERS); // and never anything else
    };
    const c = client();
    try {
      const started = Date.now();
      const err = await unaryError(c, { deadline: Date.now() + 200 });
      assert.equal(err.code, GrpcStatus.DEADLINE_EXCEEDED);
      assert.ok(Date.now() - started >= 190 && Date.now() - started < 2_000);
      assert.equal(await closed[0], http2.constants.NGHTTP2_CANCEL);

      const call = c.call(AgentService.method.connect);
      const status = once(call, "status");
      await new Promise((r) => setTimeout(r, 50));
      call.cancel();
      assert.equal(((await status)[0] as StatusObject).code, GrpcStatus.CANCELLED);
      assert.equal(await closed[1], http2.constants.NGHTTP2_CANCEL);

      const abort = new AbortController();
      setTimeout(() => abort.abort(), 50);
      assert.equal((await unaryError(c, { signal: abort.signal })).code, GrpcStatus.CANCELLED);
      assert.equal((await unaryError(c, { deadline: Date.now() - 1 })).code, GrpcStatus.DEADLINE_EXCEEDED);
    } finally {
      c.close();
    }
  });

  it("a connection that cannot be made ends the call UNAVAILABLE with the cause", async () => {
    const unused = net.createServer();
    unused.listen(0, "127.0.0.1");
    await once(unused, "listening");
    const freePort = (unused.address() as net.AddressInfo).port;
    await new Promise((r) => unused.close(r));
    const c = client({ target: `127.0.0.1:${freePort}` });
    try {
      const err = await unaryError(c);
      assert.equal(err.code, GrpcStatus.UNAVAILABLE);
      assert.match(err.details, /ECONNREFUSED/);
    } finally {
      c.close();
    }
    // A server whose certificate is not the control plane's is refused by the identity check.
    const wrong = client({ checkServerIdentity: () => new Error("not the control plane") });
    try {
      const err = await unaryError(wrong);
      assert.equal(err.code, GrpcStatus.UNAVAILABLE);
      assert.match(err.details, /not the control plane/);
    } finally {
      wrong.close();
    }
  });

  it("keepalive: answered PINGs keep a quiet call up; an unanswered PING ends it UNAVAILABLE", async () => {
    // A TCP relay in front of the server that can stop passing the server's bytes: a black hole, as a dropped NAT
    // mapping looks to the agent.
    let blackhole = false;
    const sockets = new Set<net.Socket>();
    const relay = net.createServer((down) => {
      const up = net.connect(port, "127.0.0.1");
      sockets.add(down).add(up);
      down.pipe(up);
      up.on("data", (chunk: Buffer) => {
        if (!blackhole) down.write(chunk);
      });
      const end = (): void => {
        down.destroy();
        up.destroy();
      };
      down.on("error", end).on("close", end);
      up.on("error", end).on("close", end);
    });
    relay.listen(0, "127.0.0.1");
    await once(relay, "listening");
    const relayPort = (relay.address() as net.AddressInfo).port;
    handler = (stream) => stream.respond(GRPC_HEADERS); // a Connect stream that stays quiet
    const c = client({ target: `127.0.0.1:${relayPort}`, keepalive: { timeMs: 100, timeoutMs: 300 } });
    try {
      const call = c.call(AgentService.method.connect);
      let status: StatusObject | undefined;
      call.on("status", (s) => (status = s));
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(status, undefined, "several keepalive periods of silence, PINGs answered: the call is up");
      blackhole = true;
      const started = Date.now();
      if (status === undefined) await once(call, "status");
      const ended = status as StatusObject | undefined;
      assert.equal(ended?.code, GrpcStatus.UNAVAILABLE);
      assert.match(ended?.details ?? "", /keepalive/);
      assert.ok(Date.now() - started < 2_000);
    } finally {
      c.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => relay.close(r));
    }
  });

  it("respects backpressure: write() returns false and `drain` follows", async () => {
    let serverStream: http2.ServerHttp2Stream | undefined;
    handler = (stream) => {
      serverStream = stream;
      stream.pause(); // read nothing for now
      stream.respond(GRPC_HEADERS);
    };
    const c = client();
    try {
      const call = c.call(AgentService.method.connect);
      const big = create(ConnectRequestSchema, { body: { case: "heartbeat", value: create(HeartbeatSchema, { agentId: "x".repeat(64 * 1024) }) } });
      let writes = 0;
      while (call.write(big)) {
        writes += 1;
        assert.ok(writes < 1_000, "write() never asked to wait");
      }
      const drained = once(call, "drain");
      await new Promise((r) => setTimeout(r, 50));
      serverStream?.resume();
      await drained;
      call.cancel();
    } finally {
      c.close();
    }
  });

  it("one client keeps one connection; close() ends it, and a new client makes a new TLS handshake", async () => {
    handler = (stream) => stream.respond({ ...GRPC_HEADERS, "grpc-status": "0" }, { endStream: true });
    const before = tlsConnections;
    const c = client();
    assert.equal((await connectCall(c)).status.code, GrpcStatus.OK);
    assert.equal((await connectCall(c)).status.code, GrpcStatus.OK);
    assert.equal(tlsConnections - before, 1);
    c.close();
    const err = await unaryError(c);
    assert.equal(err.code, GrpcStatus.UNAVAILABLE);
    assert.match(err.details, /closed/);
    const d = client();
    try {
      assert.equal((await connectCall(d)).status.code, GrpcStatus.OK);
      assert.equal(tlsConnections - before, 2);
    } finally {
      d.close();
    }
  });
});

describe("GrpcClient against the control plane's grpc-js server glue", () => {
  let grpcServer: grpc.Server;
  let grpcPort: number;
  let serverCancelled: Promise<void> | undefined;
  let signalCancelled: (() => void) | undefined;

  before(async () => {
    const cert = await ca.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: 3_600_000 });
    grpcServer = new grpc.Server({ interceptors: [errorCodeInterceptor()] });
    grpcServer.addService(serverDefinition(AgentService, { maxMessageBytes: 1 << 20 }), {
      pullTasks: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const req = call.request as { max: number };
        if (req.max === 1) cb(wireError("RATE_LIMITED", "too many pulls, réessayez", 1500));
        else if (req.max === 2) {
          // Never answers: the client's deadline ends the call, and grpc-js sees the cancel.
          serverCancelled = new Promise((resolve) => (signalCancelled = resolve));
          call.on("cancelled", () => signalCancelled?.());
        } else cb(null, create(PullTasksResponseSchema, {}));
      },
      connect: (call: grpc.ServerDuplexStream<unknown, ConnectResponse>) => {
        call.once("data", () => {
          for (let i = 1n; i <= 50n; i++) call.write(ping(i));
          call.end();
        });
      },
    });
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(
        "127.0.0.1:0",
        grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(cert.keyPem), cert_chain: Buffer.from(`${cert.certPem.trim()}\n${ca.certPem.trim()}\n`) }], false),
        (err, p) => (err ? reject(err) : resolve(p)),
      ),
    );
  });

  after(() => grpcServer.forceShutdown());

  it("unary answers, refusals with their Ferry code and retry hint, and deadlines the server sees", async () => {
    const c = client({ target: `127.0.0.1:${grpcPort}` });
    try {
      const ok = await c.unary(AgentService.method.pullTasks, create(PullTasksRequestSchema, { max: 5 }), { deadline: Date.now() + 5_000 });
      assert.deepEqual(ok.offers, []);
      const refused = await unaryError(c, {});
      assert.deepEqual(parseWireError(refused), { code: "RATE_LIMITED", status: GrpcStatus.RESOURCE_EXHAUSTED, message: "too many pulls, réessayez", retryAfterMs: 1500 });
      const late = await c.unary(AgentService.method.pullTasks, create(PullTasksRequestSchema, { max: 2 }), { deadline: Date.now() + 300 }).then(
        () => assert.fail("should time out"),
        (e: unknown) => e as GrpcCallError,
      );
      assert.equal(late.code, GrpcStatus.DEADLINE_EXCEEDED);
      await serverCancelled;
    } finally {
      c.close();
    }
  });

  it("a bidi stream delivers every message before the status", async () => {
    const c = client({ target: `127.0.0.1:${grpcPort}` });
    try {
      const { messages, status } = await connectCall(c);
      assert.equal(status.code, GrpcStatus.OK);
      assert.deepEqual(messages.map((m) => (m.body.case === "ping" ? m.body.value.nonce : -1n)), Array.from({ length: 50 }, (_, i) => BigInt(i + 1)));
    } finally {
      c.close();
    }
  });
});
