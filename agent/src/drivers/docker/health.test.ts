import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server } from "node:net";
import { after, describe, it } from "node:test";

import { crashOf, nextLookInMs, waitHealthy, type ContainerHealthState, type HealthTarget, type ResolvedHealthCheck, type StartMark } from "./health.js";

const STARTED_AT = "2026-12-04T22:00:00.000000001Z";
const running: ContainerHealthState = { running: true, restarting: false, status: "running", exitCode: 0, restartCount: 0, startedAt: STARTED_AT };
/** start's record of the container: settled already unless a test says otherwise. */
const settled = (): StartMark => ({ restartCount: 0, startedAt: STARTED_AT, atMs: Date.now() - 60_000 });
const justStarted = (): StartMark => ({ restartCount: 0, startedAt: STARTED_AT, atMs: Date.now() });

/** A scripted container: each poll takes the next state (the last one repeats). */
function target(states: ContainerHealthState[] | (() => ContainerHealthState), logs = "", lastExit?: number): HealthTarget & { polls: number } {
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
    async lastExit() {
      return lastExit;
    },
  };
  return t;
}

async function listen(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return (server.address() as AddressInfo).port;
}

const check = (c: Partial<ResolvedHealthCheck> & Pick<ResolvedHealthCheck, "type">): ResolvedHealthCheck => ({ timeoutMs: 1500, intervalMs: 200, settleMs: 0, ...c });
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
    const r = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/health` }), target([running]), settled(), signal());
    assert.equal(r.ok, true, r.summary);
    assert.equal(r.attempts, 3);
    assert.equal(r.observed["status"], 200);
  });

  it("http: a URL that never answers 2xx fails at the timeout with the last status and body", async () => {
    const port = (http.address() as AddressInfo).port;
    answers = Array.from({ length: 100 }, () => 500);
    const lines: string[] = [];
    const r = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/health`, timeoutMs: 800 }), target([running]), settled(), signal(), { log: (l) => lines.push(l) });
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
    const r = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/`, timeoutMs: 500 }), target([running]), settled(), signal());
    assert.equal(r.ok, false);
    assert.equal(r.observed["error"], "ECONNREFUSED");
  });

  it("tcp: passes when the port accepts, fails with the connect error when it does not", async () => {
    const port = await listen(tcp);
    assert.equal((await waitHealthy(check({ type: "tcp", port }), target([running]), settled(), signal())).ok, true);
    const closed = createTcpServer();
    const freePort = await listen(closed);
    closed.close();
    const r = await waitHealthy(check({ type: "tcp", port: freePort, timeoutMs: 500 }), target([running]), settled(), signal());
    assert.equal(r.ok, false);
    assert.equal(r.observed["error"], "ECONNREFUSED");
  });

  it("an exited container fails at once as INSTANCE_CRASHED, its exit code and output in the task log line by line", async () => {
    const exited: ContainerHealthState = { ...running, running: false, status: "exited", exitCode: 3 };
    const lines: string[] = [];
    const started = Date.now();
    const r = await waitHealthy(check({ type: "http", url: "http://127.0.0.1:1/", timeoutMs: 10_000 }), target([running, exited], "starting\nboom: no database\n"), settled(), signal(), {
      log: (l) => lines.push(l),
    });
    assert.equal(r.ok, false);
    assert.equal(r.code, "INSTANCE_CRASHED");
    assert.ok(Date.now() - started < 2000);
    assert.match(r.summary, /exited; exit code 3/);
    assert.deepEqual(r.observed["container"], { status: "exited", exitCode: 3, restartCount: 0, restartsSinceStart: 0, logs: "starting\nboom: no database" });
    assert.ok(lines.some((l) => /exited; exit code 3/.test(l)), lines.join("\n"));
    assert.ok(lines.includes("health:   | starting") && lines.includes("health:   | boom: no database"), lines.join("\n"));
  });

  it("a restarting container fails at once, even with the check passing", async () => {
    const port = (http.address() as AddressInfo).port;
    answers = [];
    const restarting: ContainerHealthState = { ...running, restarting: true, status: "restarting", exitCode: 3, restartCount: 1 };
    const r = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/health` }), target([restarting]), justStarted(), signal());
    assert.equal(r.code, "INSTANCE_CRASHED");
    assert.match(r.summary, /restarting.*restarted 1 time since it was started.*exit code 3/);
  });

  it("a container Docker restarted between two polls (running again) fails: RestartCount changed, exit code from the engine's record", async () => {
    const again: ContainerHealthState = { ...running, restartCount: 2, startedAt: "2026-12-04T22:00:02Z" };
    const lines: string[] = [];
    const r = await waitHealthy(check({ type: "none", settleMs: 5000 }), target([running, again], "bye\n", 3), justStarted(), signal(), { log: (l) => lines.push(l) });
    assert.equal(r.code, "INSTANCE_CRASHED");
    assert.match(r.summary, /exited and Docker restarted it \(restarted 2 times since it was started\); exit code 3/);
    assert.equal((r.observed["container"] as { exitCode: number }).exitCode, 3);
    assert.ok(lines.includes("health:   | bye"));
  });

  it("a changed StartedAt alone is a restart too", () => {
    assert.equal(crashOf(running, { restartCount: 0, startedAt: STARTED_AT, atMs: 0 }), undefined);
    assert.match(crashOf({ ...running, startedAt: "2026-12-04T22:00:09Z" }, { restartCount: 0, startedAt: STARTED_AT, atMs: 0 }) ?? "", /restarted it \(its start time changed\)/);
  });

  it("settle window: a check that passes at once still waits out the window, and a restart within it fails", async () => {
    const port = (http.address() as AddressInfo).port;
    answers = [];
    const started = Date.now();
    const ok = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/health`, settleMs: 600 }), target([running]), justStarted(), signal());
    assert.equal(ok.ok, true, ok.summary);
    assert.ok(Date.now() - started >= 600, `passed after ${Date.now() - started} ms`);
    assert.match(ok.summary, /running with no restart for \d+ ms; http check passed/);

    // Healthy on every probe, but Docker restarts it 300 ms in: the window catches it.
    const t0 = Date.now();
    const flaky = target(() => (Date.now() - t0 < 300 ? running : { ...running, restartCount: 1, startedAt: "2026-12-04T22:00:01Z" }));
    const bad = await waitHealthy(check({ type: "http", url: `http://127.0.0.1:${port}/health`, settleMs: 1000 }), flaky, justStarted(), signal());
    assert.equal(bad.code, "INSTANCE_CRASHED");
    assert.ok(Date.now() - t0 < 1500);
  });

  it("none: passes once the container has kept running through the settle window", async () => {
    const started = Date.now();
    const r = await waitHealthy(check({ type: "none", settleMs: 400 }), target([running]), justStarted(), signal());
    assert.equal(r.ok, true);
    assert.ok(Date.now() - started >= 400);
  });

  it("docker: follows the engine's HEALTHCHECK state; none configured on an image without one fails", async () => {
    const log = [{ start: "t0", exitCode: 1, output: "wget: server returned error: HTTP/1.1 404 Not Found" }];
    const starting = { ...running, health: { status: "starting", log } };
    const healthy = { ...running, health: { status: "healthy", log } };
    const unhealthy = { ...running, health: { status: "unhealthy", log } };
    assert.equal((await waitHealthy(check({ type: "docker" }), target([starting, healthy]), settled(), signal())).ok, true);
    const bad = await waitHealthy(check({ type: "docker", timeoutMs: 10_000 }), target([starting, unhealthy]), settled(), signal());
    assert.equal(bad.ok, false);
    assert.equal(bad.code, "HEALTH_CHECK_FAILED");
    assert.deepEqual(bad.observed["healthcheck"], { status: "unhealthy", log });
    const none = await waitHealthy(check({ type: "docker" }), target([running]), settled(), signal());
    assert.equal(none.code, "HEALTH_CHECK_FAILED");
    assert.match(none.summary, /no HEALTHCHECK/);
  });

  it("the image's HEALTHCHECK is honoured whatever the configured check: unhealthy fails at once, starting is waited for", async () => {
    const port = (http.address() as AddressInfo).port;
    answers = [];
    const log = [{ start: "t0", exitCode: 1, output: "down" }];
    const url = `http://127.0.0.1:${port}/health`;
    // The configured http check passes; the image says unhealthy.
    const started = Date.now();
    const bad = await waitHealthy(check({ type: "http", url, timeoutMs: 10_000 }), target([{ ...running, health: { status: "unhealthy", log } }]), settled(), signal());
    assert.equal(bad.code, "HEALTH_CHECK_FAILED");
    assert.match(bad.summary, /HEALTHCHECK reports unhealthy/);
    assert.ok(Date.now() - started < 2000);
    // With type none as well.
    const badNone = await waitHealthy(check({ type: "none" }), target([{ ...running, health: { status: "unhealthy", log } }]), settled(), signal());
    assert.equal(badNone.code, "HEALTH_CHECK_FAILED");
    // Starting, then healthy: passes only once healthy.
    const t = target([{ ...running, health: { status: "starting", log } }, { ...running, health: { status: "starting", log } }, { ...running, health: { status: "healthy", log } }]);
    const ok = await waitHealthy(check({ type: "http", url }), t, settled(), signal());
    assert.equal(ok.ok, true, ok.summary);
    assert.equal(t.polls, 3);
    assert.match(ok.summary, /HEALTHCHECK healthy/);
    // Starting for ever: fails at the timeout, naming the HEALTHCHECK.
    const slow = await waitHealthy(check({ type: "none", timeoutMs: 500 }), target([{ ...running, health: { status: "starting", log } }]), settled(), signal());
    assert.equal(slow.code, "HEALTH_CHECK_FAILED");
    assert.match(slow.summary, /HEALTHCHECK stayed starting/);
  });

  it("stops waiting when aborted", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("cancelled")), 100);
    await assert.rejects(waitHealthy(check({ type: "tcp", port: 1, timeoutMs: 10_000 }), target([running]), settled(), ac.signal), /cancelled/);
  });
});

describe("nextLookInMs", () => {
  const base = { delay: 2000, now: 10_000, deadline: 70_000, settledAt: 10_000 };
  const c = (type: ResolvedHealthCheck["type"]) => check({ type, intervalMs: 1000 });

  it("a probe of Ferry's own backs off up to the interval", () => {
    assert.equal(nextLookInMs({ ...base, check: c("http"), checkPassed: false, imageOk: true, delay: 250 }), 250);
    assert.equal(nextLookInMs({ ...base, check: c("http"), checkPassed: false, imageOk: true }), 1000);
    assert.equal(nextLookInMs({ ...base, check: c("tcp"), checkPassed: false, imageOk: true }), 1000);
  });

  it("the engine's healthcheck verdict is read every 250 ms, without backing off", () => {
    // type docker: the verdict itself is the check
    assert.equal(nextLookInMs({ ...base, check: c("docker"), checkPassed: false, imageOk: false }), 250);
    // the check passed (or there is none) and the image's HEALTHCHECK is still starting
    assert.equal(nextLookInMs({ ...base, check: c("http"), checkPassed: true, imageOk: false }), 250);
    assert.equal(nextLookInMs({ ...base, check: c("none"), checkPassed: true, imageOk: false }), 250);
  });

  it("once only the settle window is left, the next look is when it ends, at most an interval away", () => {
    assert.equal(nextLookInMs({ ...base, check: c("none"), checkPassed: true, imageOk: true, settledAt: 10_400 }), 400);
    assert.equal(nextLookInMs({ ...base, check: c("none"), checkPassed: true, imageOk: true, settledAt: 13_000 }), 1000);
  });

  it("never waits past the deadline", () => {
    assert.equal(nextLookInMs({ ...base, check: c("docker"), checkPassed: false, imageOk: false, deadline: 10_100 }), 100);
    assert.equal(nextLookInMs({ ...base, check: c("http"), checkPassed: false, imageOk: true, deadline: 10_000 }), 0);
  });
});
