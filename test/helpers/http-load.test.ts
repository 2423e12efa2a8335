// The outside HTTP client the router suites measure with: an answer cut off mid-body, or one that never ends, must be
// a failure the suite sees, never a request that waits forever (a load's stop() waits for every request in flight).
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { httpGet, httpLoad } from "./http-load.js";

describe("http-load", () => {
  let server: http.Server;
  let port = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === "/ok") {
        res.end("1\n");
      } else if (req.url === "/cut") {
        // Headers and part of the body, then the connection goes: what a client of a backend killed mid-answer gets.
        res.writeHead(200, { "content-length": "100" });
        res.write("par");
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (req.url === "/trickle") {
        // A body that keeps coming, a byte at a time, more often than the socket's idle timeout: never ends by itself.
        res.writeHead(200, { "content-length": "100000" });
        const timer = setInterval(() => res.write("x"), 50);
        res.on("close", () => clearInterval(timer));
      } else {
        res.statusCode = 503;
        res.end("down");
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("returns the status and the trimmed body", async () => {
    assert.deepEqual(await httpGet(port, "/ok"), { status: 200, body: "1" });
    assert.deepEqual(await httpGet(port, "/other"), { status: 503, body: "down" });
  });

  it("rejects an answer cut off mid-body instead of waiting for an end that never comes", async () => {
    await assert.rejects(httpGet(port, "/cut", { timeoutMs: 5000 }), /answer cut off/);
  });

  it("bounds the whole request by timeoutMs, not only the socket's idle time", async () => {
    const started = Date.now();
    await assert.rejects(httpGet(port, "/trickle", { timeoutMs: 400 }), /timeout|cut off/);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });

  it("counts cut-off answers as failures, and stop() returns while they happen", async () => {
    const load = httpLoad(port, { workers: 2, maxMs: 10_000, path: "/cut", timeoutMs: 2000 });
    await new Promise((r) => setTimeout(r, 300));
    const seen = await load.stop();
    assert.equal(seen.ok, 0);
    assert.ok(seen.failed >= 2, `${seen.failed} failures`);
    assert.match(seen.errors[0]!, /answer cut off/);
  });
});
