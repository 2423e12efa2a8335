// Requests refused by Node's HTTP parser, before fastify routes them, still get the API's error shape: headers over
// the limit (431 HEADERS_TOO_LARGE) and a malformed request (400 MALFORMED_REQUEST). Over a real loopback socket,
// because inject() bypasses the parser.
import assert from "node:assert/strict";
import { connect } from "node:net";
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
