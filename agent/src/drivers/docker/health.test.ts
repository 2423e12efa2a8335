import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server } from "node:net";
import { after, describe, it } from "node:test";

import { waitHealthy, type ContainerHealthState, type HealthTarget, type ResolvedHealthCheck } from "./health.js";

const running: ContainerHealthState = { running: true, restarting: false, status: "running", exitCode: 0 };

function target(states: ContainerHealthState[] | (() => ContainerHealthState), logs = ""): HealthTarget & { polls: number } {
  const t = {
    polls: 0,
    async state() {
      t.polls++;
      if (typeof states === "function") return states();
      return states[Math.min(t.polls - 1, states.length - 1)] ?? running;
    },
    async logsTail() {
      return logs;
    },
  };
  return t;
}

async function listen(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return (server.address() as AddressInfo).port;
}

const check = (c: Partial<ResolvedHealthCheck> & Pick<ResolvedHealthCheck, "type">): ResolvedHealthCheck => ({ timeoutMs: 1500, intervalMs: 200, ...c });
const signal = () => new AbortController().signal;

describe("waitHealthy", () => {
  let answers: number[] = [];
  const http = createHttpServer((req, res) => {
    const status = answers.shift() ?? 200;
    res.writeHead(status, { "content-type": "text/plain" }).end(status === 200 ? "ok" : `status ${status}: not ready`);
  });
  const tcp = createTcpServer((s) => s.end());
  after(() => {
    http.closeAllConnections();
    http.close();
    tcp.close();
  });

  it("http: polls until the URL answers 2xx", async () => {
    const port = await listen(http);
    answers = [503, 503];
    const r = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/health` }), target([running]), signal());
    assert.equal(r.ok, true, r.summary);
    assert.equal(r.attempts, 3);
    assert.equal(r.observed["status"], 200);
  });

  it("http: a URL that never answers 2xx fails at the timeout with the last status and body", async () => {
    const port = (http.address() as AddressInfo).port;
    answers = Array.from({ length: 100 }, () => 500);
    const lines: string[] = [];
    const r = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/health`, timeoutMs: 800 }), target([running]), signal(), { log: (l) => lines.push(l) });
    assert.equal(r.ok, false);
    assert.match(r.summary, /not healthy within/);
    assert.equal(r.observed["status"], 500);
    assert.match(String(r.observed["body"]), /not ready/);
    // One line per change of what the probe sees, not one per probe.
    assert.equal(lines.length, 1);
    answers = [];
  });

  it("http: connection errors are reported by code", async () => {
    const closed = createTcpServer();
    const port = await listen(closed);
    closed.close();
    const r = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/`, timeoutMs: 500 }), target([running]), signal());
    assert.equal(r.ok, false);
    assert.equal(r.observed["error"], "ECONNREFUSED");
  });

  it("tcp: passes when the port accepts, fails with the connect error when it does not", async () => {
    const port = await listen(tcp);
    assert.equal((await waitHealthy(check({ type: "tcp", port }), target([running]), signal())).ok, true);
    const closed = createTcpServer();
    const freePort = await listen(closed);
    closed.close();
    const r = await waitHealthy(check({ type: "tcp", port: freePort, timeoutMs: 500 }), target([running]), signal());
    assert.equal(r.ok, false);
    assert.equal(r.observed["error"], "ECONNREFUSED");
  });

  it("a container that exits fails at once with its exit code and output", async () => {
    const exited: ContainerHealthState = { running: false, restarting: false, status: "exited", exitCode: 3 };
    const started = Date.now();
    const r = await waitHealthy(check({ type: "http", url: "http://127.0.0.1:1/", timeoutMs: 10_000 }), target([running, exited], "boom\n"), signal());
    assert.equal(r.ok, false);
    assert.ok(Date.now() - started < 2000);
    assert.deepEqual(r.observed["container"], { status: "exited", exitCode: 3, logs: "boom" });
  });

  it("docker: follows the engine's HEALTHCHECK state", async () => {
    const log = [{ start: "t0", exitCode: 1, output: "wget: server returned error: HTTP/1.1 404 Not Found" }];
    const starting = { ...running, health: { status: "starting", log } };
    const healthy = { ...running, health: { status: "healthy", log } };
    const unhealthy = { ...running, health: { status: "unhealthy", log } };
    assert.equal((await waitHealthy(check({ type: "docker" }), target([starting, healthy]), signal())).ok, true);
    const bad = await waitHealthy(check({ type: "docker", timeoutMs: 10_000 }), target([starting, unhealthy]), signal());
    assert.equal(bad.ok, false);
    assert.equal(bad.observed["status"], "unhealthy");
    assert.deepEqual(bad.observed["log"], log);
    const none = await waitHealthy(check({ type: "docker" }), target([running]), signal());
    assert.equal(none.ok, false);
    assert.match(none.summary, /no HEALTHCHECK/);
  });

  it("none: passes once the container has kept running for the settle time", async () => {
    const started = Date.now();
    const r = await waitHealthy(check({ type: "none" }), target([running]), signal(), { settleMs: 400 });
    assert.equal(r.ok, true);
    assert.ok(Date.now() - started >= 400);
  });

  it("stops waiting when aborted", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("cancelled")), 100);
    await assert.rejects(waitHealthy(check({ type: "tcp", port: 1, timeoutMs: 10_000 }), target([running]), ac.signal), /cancelled/);
  });
});
