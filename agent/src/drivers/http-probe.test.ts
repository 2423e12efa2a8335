// The HTTP probe: what it reports, what it reads of a large answer, and what it leaves in the process after many
// probes (no resource-timing entries, no undici loaded, no connection kept).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";

import { httpProbe, PROBE_BODY_BYTES } from "./http-probe.js";

let server: Server;
let base: string;
const open = new Set<Socket>();
before(async () => {
  server = createServer((req, res) => {
    if (req.url === "/health") res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    else if (req.url === "/big") {
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("x".repeat(8 * 1024 * 1024));
    } else if (req.url === "/moved") res.writeHead(302, { location: "/health" }).end();
    else if (req.url === "/slow") setTimeout(() => res.end("late"), 2_000).unref();
    else res.writeHead(404).end("no such page");
  });
  server.on("connection", (s: Socket) => {
    open.add(s);
    s.on("close", () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const signal = () => new AbortController().signal;

describe("httpProbe", () => {
  it("passes on 2xx and reports status and body; 3xx is not followed", async () => {
    assert.deepEqual(await httpProbe(`${base}/health`, 5_000, signal()), { ok: true, observed: { status: 200, body: "ok" } });
    assert.deepEqual(await httpProbe(`${base}/moved`, 5_000, signal()), { ok: false, observed: { status: 302, body: "" } });
    assert.deepEqual(await httpProbe(`${base}/nope`, 5_000, signal()), { ok: false, observed: { status: 404, body: "no such page" } });
  });

  it("reads a few KB of an 8 MB answer, not all of it, and reports a snippet", async () => {
    const r = await httpProbe(`${base}/big`, 5_000, signal());
    assert.equal(r.ok, false);
    assert.equal(r.observed["status"], 503);
    assert.equal(r.observed["body"], `${"x".repeat(512)}…`);
    assert.ok(PROBE_BODY_BYTES <= 4096);
  });

  it("reports a refused connection, a timeout and a URL it cannot use; an abort of the task throws", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    assert.deepEqual(await httpProbe(`http://127.0.0.1:${port}/health`, 5_000, signal()), { ok: false, observed: { error: "ECONNREFUSED" } });
    assert.deepEqual(await httpProbe(`${base}/slow`, 200, signal()), { ok: false, observed: { error: "no answer within 200 ms" } });
    assert.equal((await httpProbe("ftp://127.0.0.1/x", 1_000, signal())).ok, false);
    assert.match(String((await httpProbe("not a url", 1_000, signal())).observed["error"]), /not a URL/);
    const c = new AbortController();
    const probe = httpProbe(`${base}/slow`, 5_000, c.signal);
    c.abort(new Error("the task was cancelled"));
    await assert.rejects(probe, /the task was cancelled/);
  });

  it("leaves nothing behind after many probes: no resource-timing entries, no undici, no open connection", async () => {
    for (let i = 0; i < 300; i++) assert.equal((await httpProbe(`${base}/health`, 5_000, signal())).ok, true);
    assert.equal(performance.getEntriesByType("resource").length, 0);
    // Node lists the internal modules it loaded; fetch()'s is internal/deps/undici/undici.
    const loaded = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
    assert.ok(!loaded.some((m) => m.includes("undici")), "fetch's undici was not loaded");
    for (const deadline = Date.now() + 5_000; open.size > 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    assert.equal(open.size, 0, "the probes' connections are closed");
  });
});
