// Requests refused by Node's HTTP parser, before fastify routes them, still get the API's error shape: headers over
// the limit (431 HEADERS_TOO_LARGE) and a malformed request (400 MALFORMED_REQUEST); so does a request that reaches a
// replica while it stops (503 SERVER_SHUTTING_DOWN). Over a real loopback socket, because inject() bypasses the parser.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { describe, it } from "node:test";
import { testBackends } from "../store/test-backends.js";
import { startTestHttpServer } from "./test-server.js";

async function raw(port: number, request: string): Promise<{ status: number; body: { error: { code: string; message: string }; requestId: string } }> {
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(port, "127.0.0.1", () => s.write(request));
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", reject);
    s.on("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
    s.setTimeout(10_000, () => s.destroy(new Error("no answer in 10 s")));
  });
  const [head = "", body = ""] = text.split("\r\n\r\n");
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body: JSON.parse(body) as never };
}

describe("requests the HTTP parser refuses", () => {
  it("answers oversize headers and malformed requests in the API's error shape", async (t) => {
    const store = await testBackends()[0]!.open(t);
    const { app } = await startTestHttpServer(t, store);
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as { port: number }).port;

    const huge = await raw(port, `GET /api/v1/environments HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`);
    assert.equal(huge.status, 431);
    assert.equal(huge.body.error.code, "HEADERS_TOO_LARGE");
    assert.match(huge.body.requestId, /^req_/);

    const broken = await raw(port, "GET /api/v1/environments HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n");
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, "MALFORMED_REQUEST");

    const badEncoding = await raw(port, "GET /api/v1/environments/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.equal(badEncoding.status, 400);
    assert.equal(badEncoding.body.error.code, "MALFORMED_REQUEST");
  });
});

describe("a request that reaches a stopping server", () => {
  it("is answered 503 SERVER_SHUTTING_DOWN in the API's error shape", async (t) => {
    const store = await testBackends()[0]!.open(t);
    const { app, adminToken } = await startTestHttpServer(t, store);
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const body = JSON.stringify({ name: "late" });
    const chunks: Buffer[] = [];
    const socket = connect(port, "127.0.0.1");
    const ended = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("data", (c: Buffer) => chunks.push(c));
    // A first request still uploading its body keeps the connection busy, so closing does not drop it.
    const received = new Promise<void>((resolve) => app.server.once("request", () => resolve()));
    socket.write(`POST /api/v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 3)}`);
    await received;
    const closed = app.close();
    for (let i = 0; app.server.listening; i++) {
      assert.ok(i < 500, "the server did not start closing");
      await delay(10);
    }
    // The rest of the first request, then a second one pipelined behind it.
    socket.write(`${body.slice(3)}GET /api/v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminToken}\r\n\r\n`);
    await ended;
    await closed;
    const text = Buffer.concat(chunks).toString("utf8");
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ["201", "503"], text);
    const last = JSON.parse(text.slice(text.lastIndexOf("\r\n\r\n") + 4)) as { error: { code: string }; requestId: string };
    assert.equal(last.error.code, "SERVER_SHUTTING_DOWN");
    assert.match(last.requestId, /^req_/);
  });
});
