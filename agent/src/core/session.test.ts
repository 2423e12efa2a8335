import { strict as assert } from "node:assert";
import { readFile, stat } from "node:fs/promises";
import { after, afterEach, before, describe, it } from "node:test";

import { certificateInfo } from "@ferry/pki";
import { wireError } from "@ferry/proto";
import { GrpcStatus } from "@ferry/proto/wire";

import { StaticDriverRegistry } from "../drivers/registry.js";
import { ControlPlaneHarness, type HarnessStream } from "../test-support/control-plane-harness.js";
import { logSink } from "../test-support/log-sink.js";
import { eventWaiter, waitUntil } from "../test-support/wait.js";
import { collectFacts } from "./facts.js";
import { renewalTime, Session, type SessionEvents, type SessionOptions, type SessionState } from "./session.js";
import { STATE_FILES, type StateDir } from "./state-dir.js";

const INTERVAL = 40;
const nextEvent = eventWaiter<SessionEvents>();
let harness: ControlPlaneHarness;
const sessions: Session[] = [];

before(async () => {
  harness = await ControlPlaneHarness.start({ heartbeatIntervalMs: INTERVAL });
});
afterEach(async () => {
  // Whatever a test did, leave no session running (a leaked one would keep the process alive).
  await Promise.all(sessions.splice(0).map((s) => s.stop()));
  harness.heartbeatIntervalMs = INTERVAL;
  harness.ackIntervalMs = undefined;
  harness.connectHandler = undefined;
  harness.renewHandler = undefined;
  harness.silentStreams = 0;
});
after(async () => {
  await harness.close();
  // Every session was stopped or failed: no timer or socket of theirs may survive (stdio pipes are the runner's).
  const leaked = (): string[] =>
    process.getActiveResourcesInfo().filter((r) => r === "Timeout" || r.includes("TCP") || r.includes("TLS"));
  await waitUntil(() => leaked().length === 0, `no handles left open (still: ${leaked().join(", ")})`, 2_000);
});

function newSession(stateDir: StateDir, overrides: Partial<SessionOptions> = {}): Session {
  const sink = logSink();
  const session = new Session({
    stateDir,
    logger: sink.logger,
    facts: () => collectFacts(new StaticDriverRegistry(["docker"])),
    backoff: { baseMs: 10, capMs: 40 },
    random: () => 0.5,
    defaultHeartbeatIntervalMs: INTERVAL,
    // Intervals are tiny so the suite is fast; keep the dead-stream rule from firing on a slow, loaded machine
    // except in the tests about it (they pass silenceFactor 3 / a short welcome timeout explicitly).
    silenceFactor: 25,
    welcomeTimeoutMs: 5_000,
    stopTimeoutMs: 1_000,
    renewal: { minDelayMs: 20, retry: { baseMs: 20, capMs: 60 } },
    ...overrides,
  });
  sessions.push(session);
  return session;
}

async function waitForState(session: Session, state: SessionState, timeoutMs = 5_000): Promise<void> {
  if (session.state === state) return;
  await nextEvent(session, "state", (s: SessionState) => s === state, timeoutMs);
}

/** A started session with its first stream open and welcomed. */
async function connected(overrides: Partial<SessionOptions> = {}): Promise<{
  session: Session;
  stream: HarnessStream;
  stateDir: StateDir;
  agentId: string;
}> {
  const { stateDir, identity } = await harness.enrolDirect();
  const streamsBefore = harness.streams.length;
  const session = newSession(stateDir, overrides).start();
  await waitForState(session, "connected");
  const stream = await harness.waitForStream(streamsBefore + 1);
  return { session, stream, stateDir, agentId: identity.agentId };
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

describe("session: stream protocol", () => {
  it("sends Hello first, then heartbeats at the server's interval with the measured RTT", async () => {
    const acks: { seq: number; rttMs: number | undefined }[] = [];
    const sentAt: number[] = [];
    // For each heartbeat sent after the first observed ack: the RTT of the latest ack the agent had processed then.
    const expectedRtt = new Map<number, number | undefined>();
    const { session, stream, agentId } = await connected();
    session.on("heartbeatAck", (a) => acks.push(a));
    session.on("heartbeat", (h) => {
      sentAt.push(Date.now());
      if (acks.length > 0) expectedRtt.set(h.seq, acks[acks.length - 1]!.rttMs);
    });

    const first = stream.received[0]!;
    assert.equal(first.body.case, "hello");
    assert.equal(first.body.case === "hello" && first.body.value.agentId, agentId);
    assert.deepEqual(first.body.case === "hello" && first.body.value.facts?.drivers, ["docker"]);
    assert.equal(stream.serial, session.certificate?.serial);

    await waitUntil(() => stream.heartbeats().length >= 5, "five heartbeats");
    const beats = stream.heartbeats();
    assert.deepEqual(beats.slice(0, 5).map((b) => b.seq), [1, 2, 3, 4, 5]);
    // Send times (receive times also carry the server's delays): never early; on time as a rule (a loaded machine
    // may delay one, so the upper bound is on the median).
    await waitUntil(() => sentAt.length >= 4, "four heartbeats observed at the agent");
    const g = gaps(sentAt);
    for (const gap of g) assert.ok(gap >= INTERVAL - 5, `heartbeat gap ${gap} ms, interval ${INTERVAL} ms`);
    const median = [...g].sort((a, b) => a - b)[Math.floor(g.length / 2)]!;
    assert.ok(median < INTERVAL * 3, `median heartbeat gap ${median} ms, interval ${INTERVAL} ms`);
    // Each heartbeat reports the RTT of the latest acknowledged one (on a loaded machine an ack may arrive after the
    // next heartbeat left, so that is not always seq - 1).
    assert.equal(beats[0]!.lastRttMs, 0);
    await waitUntil(() => expectedRtt.size >= 2, "two heartbeats sent after an ack");
    await waitUntil(() => stream.heartbeats().length >= Math.max(...expectedRtt.keys()), "those heartbeats received");
    const onWire = new Map(stream.heartbeats().map((b) => [b.seq, b.lastRttMs]));
    for (const [seq, rtt] of expectedRtt) assert.equal(onWire.get(seq), rtt, `heartbeat ${seq} lastRttMs`);
    assert.ok(acks.every((a) => a.rttMs !== undefined && a.rttMs >= 0));
  });

  it("follows an interval change announced in HeartbeatAck", async () => {
    const { session, stream } = await connected();
    await waitUntil(() => stream.heartbeats().length >= 2, "two heartbeats");
    harness.ackIntervalMs = 150;
    await nextEvent(session, "intervalChanged", (c) => c.to === 150);
    // From the change on, at the agent: the last heartbeat before it, then the ones at the new interval.
    const sentAt: number[] = [];
    session.on("heartbeat", () => sentAt.push(Date.now()));
    const changedAt = stream.heartbeats().length;
    await waitUntil(() => stream.heartbeats().length >= changedAt + 3, "three heartbeats at the new interval");
    const after = stream.heartbeats().slice(changedAt);
    assert.ok(after.length >= 3);
    // Timers run on the monotonic clock and the gaps are read off Date.now(): allow a few ms, as the test above does.
    for (const gap of gaps(sentAt)) assert.ok(gap >= 150 - 5, `heartbeat gap ${gap} ms after the change to 150 ms`);
    assert.equal(session.heartbeatIntervalMs, 150);
  });

  it("answers Ping with Pong carrying the same nonce", async () => {
    const { session, stream } = await connected();
    const pinged = nextEvent(session, "ping");
    stream.ping(0xfeedbeefn);
    const pong = await stream.waitForMessage((m) => m.body.case === "pong");
    assert.equal(pong.body.case === "pong" && pong.body.value.nonce, 0xfeedbeefn);
    await pinged;
  });

  it("reconnects after the server kills the stream, and says Hello again", async () => {
    const { session, stream } = await connected();
    const ended = nextEvent(session, "streamEnded");
    stream.kill();
    const [end] = await ended;
    assert.match(end.reason, /UNAVAILABLE/);
    const second = await harness.waitForStream(stream.id + 1);
    assert.equal(second.received.length > 0 || (await second.waitForMessage(() => true)) !== undefined, true);
    assert.equal(second.received[0]!.body.case, "hello");
    await waitForState(session, "connected");
  });

  it("treats a silent stream as dead after 3 × interval and reconnects", async () => {
    const { session, stream } = await connected({ silenceFactor: 3 });
    const silencedAt = Date.now();
    stream.silent = true;
    const [end] = await nextEvent(session, "streamEnded");
    const detectedAfter = Date.now() - silencedAt;
    assert.equal(end.reason, "dead stream");
    assert.ok(detectedAfter >= 3 * INTERVAL - 5, `detected after ${detectedAfter} ms`);
    await waitUntil(() => stream.cancelled, "the harness sees the dead stream cancelled");
    const second = await harness.waitForStream(stream.id + 1);
    await waitForState(session, "connected");
    assert.equal(second.silent, false);
  });

  it("abandons a stream that never sends Welcome", async () => {
    const { stateDir } = await harness.enrolDirect();
    const streamsBefore = harness.streams.length;
    harness.silentStreams = 1;
    const openedAt = Date.now();
    const session = newSession(stateDir, { welcomeTimeoutMs: 150 }).start();
    const first = await harness.waitForStream(streamsBefore + 1);
    const [end] = await nextEvent(session, "streamEnded");
    assert.equal(end.reason, "dead stream");
    assert.equal(end.welcomed, false);
    assert.ok(Date.now() - openedAt >= 145, "waited for the welcome timeout");
    await waitUntil(() => first.cancelled, "the harness sees the abandoned stream cancelled");
    await waitForState(session, "connected");
  });

  it("honours a RATE_LIMITED retry-after as a floor on the reconnect delay", async () => {
    const { stateDir } = await harness.enrolDirect();
    let refusedAt = 0;
    const attemptsBefore = harness.connectAttempts;
    harness.connectHandler = (n) => {
      if (n === attemptsBefore + 1) {
        refusedAt = Date.now();
        return wireError("RATE_LIMITED", "too many streams", 300);
      }
      return undefined;
    };
    const streamsBefore = harness.streams.length;
    const session = newSession(stateDir).start();
    const [backoff] = await nextEvent(session, "backoff");
    assert.ok(backoff.delayMs >= 300, `backoff ${backoff.delayMs} ms ignores retry-after`);
    assert.match(backoff.reason, /RATE_LIMITED/);
    const stream = await harness.waitForStream(streamsBefore + 1);
    const waited = stream.receivedAt[0] !== undefined ? stream.receivedAt[0] - refusedAt : Date.now() - refusedAt;
    assert.ok(waited >= 295, `reconnected after ${waited} ms, retry-after was 300 ms`);
    await waitForState(session, "connected");
  });

  it("reconnects after Disconnect SERVER_SHUTTING_DOWN, honouring retry_after_ms", async () => {
    const { session, stream } = await connected();
    const t0 = Date.now();
    stream.disconnect("SERVER_SHUTTING_DOWN", "restarting", 200);
    const [d] = await nextEvent(session, "disconnect");
    assert.equal(d.code, "SERVER_SHUTTING_DOWN");
    const second = await harness.waitForStream(stream.id + 1);
    await second.waitForMessage((m) => m.body.case === "hello");
    assert.ok(second.receivedAt[0]! - t0 >= 195, "waited at least retry_after_ms");
    await waitForState(session, "connected");
  });

  it("reconnects after Disconnect SUPERSEDED", async () => {
    const { session, stream } = await connected();
    stream.disconnect("SUPERSEDED", "a newer stream took over");
    await harness.waitForStream(stream.id + 1);
    await waitForState(session, "connected");
  });
});

describe("session: terminal failures", () => {
  it("fails on Disconnect AGENT_REVOKED and never reconnects", async () => {
    const { session, stream, agentId } = await connected();
    const attempts = harness.connectAttempts;
    stream.disconnect("AGENT_REVOKED", "revoked by alice");
    const [error] = await nextEvent(session, "failed");
    assert.equal(error.code, "AGENT_REVOKED");
    assert.equal(error.kind, "reenrol");
    assert.match(error.message, /re-enrolled/);
    assert.match(error.message, new RegExp(agentId));
    assert.deepEqual(await session.done, { state: "failed", error });
    assert.equal(session.state, "failed");
    assert.equal(harness.connectAttempts, attempts, "no reconnect after revocation");
    assert.equal(session.nextRenewalAt, undefined, "renewal timer cleared");
    await session.stop(); // a no-op on a failed session
    assert.equal(session.state, "failed");
  });

  it("fails when the call itself is refused CERT_REVOKED", async () => {
    const { stateDir } = await harness.enrolDirect();
    const attempts = harness.connectAttempts;
    harness.connectHandler = () => wireError("CERT_REVOKED", "serial revoked");
    const result = await newSession(stateDir).run();
    assert.equal(result.state, "failed");
    assert.equal(result.state === "failed" && result.error.code, "CERT_REVOKED");
    assert.equal(harness.connectAttempts, attempts + 1);
  });

  it("stops as failed on CERT_EXPIRED instead of spinning", async () => {
    const { stateDir } = await harness.enrolDirect();
    const attempts = harness.connectAttempts;
    harness.connectHandler = () => wireError("CERT_EXPIRED", "certificate expired");
    const result = await newSession(stateDir).run();
    assert.equal(result.state === "failed" && result.error.code, "CERT_EXPIRED");
    assert.match(result.state === "failed" ? result.error.message : "", /expired.*re-enrolled/);
    assert.equal(harness.connectAttempts, attempts + 1, "exactly one attempt");
  });

  it("does not even connect with a certificate that has already expired", async () => {
    const { stateDir } = await harness.enrolDirect({ now: new Date(Date.now() - 7_200_000), lifetimeMs: 3_600_000 });
    const attempts = harness.connectAttempts;
    const result = await newSession(stateDir).run();
    assert.equal(result.state === "failed" && result.error.code, "CERT_EXPIRED");
    assert.equal(harness.connectAttempts, attempts);
  });

  it("fails with a usage error when the state directory is not enrolled", async () => {
    const { StateDir } = await import("./state-dir.js");
    const result = await newSession(new StateDir(await harness.tempDir("empty"))).run();
    assert.equal(result.state === "failed" && result.error.code, "NOT_ENROLLED");
    assert.equal(result.state === "failed" && result.error.kind, "usage");
  });
});

describe("session: certificate renewal", () => {
  it("computes the schedule at half-life plus up to 10 % jitter", () => {
    const notBefore = new Date(1_000_000);
    const notAfter = new Date(1_000_000 + 86_400_000);
    const at = (r: number): number => renewalTime({ notBefore, notAfter }, { now: 1_000_000, random: () => r });
    assert.equal(at(0), 1_000_000 + 43_200_000);
    assert.equal(at(0.5), 1_000_000 + 43_200_000 + 4_320_000);
    assert.equal(at(0.999999), Math.round(1_000_000 + 43_200_000 + 0.999999 * 8_640_000));
    // Past half-life (an agent that was down), renew soon but not in a loop.
    const late = renewalTime({ notBefore, notAfter }, { now: 1_000_000 + 80_000_000, random: () => 0, minDelayMs: 30_000 });
    assert.equal(late, 1_000_000 + 80_000_000 + 30_000);
    // Almost expired: the floor shrinks to half of what is left.
    const nearly = renewalTime({ notBefore, notAfter }, { now: notAfter.getTime() - 10_000, random: () => 0, minDelayMs: 30_000 });
    assert.equal(nearly, notAfter.getTime() - 5_000);
  });

  it("swaps the certificate without closing the open stream; the next connection uses it", async () => {
    const { session, stream, stateDir } = await connected();
    const oldSerial = session.certificate!.serial;
    const oldKey = await readFile(stateDir.file(STATE_FILES.key), "utf8");
    const scheduledBefore = session.nextRenewalAt!;
    const streamEnded = { value: false };
    session.on("streamEnded", () => (streamEnded.value = true));

    const renewed = await session.renewNow();
    assert.notEqual(renewed.serial, oldSerial);
    const req = harness.renewRequests.at(-1)!;
    assert.equal(req.serial, oldSerial, "renewal ran over the current mTLS identity");

    // Persisted atomically, key 0600, new key.
    const loaded = await stateDir.load();
    assert.equal(certificateInfo(loaded.credentials.certPem).serial, renewed.serial);
    assert.notEqual(loaded.credentials.keyPem, oldKey);
    assert.equal((await stat(stateDir.file(STATE_FILES.key))).mode & 0o777, 0o600);
    assert.ok(session.nextRenewalAt!.getTime() >= scheduledBefore.getTime() - 1, "schedule moved to the new cert");

    // The open stream is untouched: still the only one, still heartbeating.
    const beats = stream.heartbeats().length;
    await waitUntil(() => stream.heartbeats().length >= beats + 2, "heartbeats continue on the same stream");
    assert.equal(streamEnded.value, false);
    assert.equal(stream.closed, false);
    assert.equal(harness.streams.at(-1), stream);

    // The next connection presents the new certificate.
    stream.kill();
    const next = await harness.waitForStream(stream.id + 1);
    assert.equal(next.serial, renewed.serial);
    await waitForState(session, "connected");
  });

  it("renews automatically at the scheduled time", async () => {
    const { stateDir } = await harness.enrolDirect({ lifetimeMs: 1_500, backdateMs: 0 });
    const streamsBefore = harness.streams.length;
    const session = newSession(stateDir, { random: () => 0 }).start();
    const firstSerial = (await nextEvent(session, "welcome"), session.certificate!.serial);
    const scheduled = session.nextRenewalAt!;
    assert.ok(scheduled.getTime() - Date.now() < 1_500);
    const [info] = await nextEvent(session, "renewed", () => true, 5_000);
    assert.notEqual(info.serial, firstSerial);
    assert.ok(Date.now() >= scheduled.getTime() - 5);
    // The new certificate (1 h) is scheduled at its half-life, with random() = 0.
    const expected = info.notBefore.getTime() + (info.notAfter.getTime() - info.notBefore.getTime()) / 2;
    assert.equal(session.nextRenewalAt!.getTime(), Math.round(expected));
    assert.equal(harness.streams.length, streamsBefore + 1, "still one stream");
  });

  it("retries a failed renewal with backoff", async () => {
    const { session } = await connected();
    const before = harness.renewRequests.length;
    harness.renewHandler = (_req, n) => (n === before + 1 ? wireError("INTERNAL", "database down") : undefined);
    const failed = nextEvent(session, "renewalFailed");
    await assert.rejects(session.renewNow(), /database down/);
    const [info] = await failed;
    assert.ok(info.retryAt !== undefined && info.retryAt.getTime() - Date.now() < 1_000, "retry scheduled soon");
    await nextEvent(session, "renewed");
    assert.equal(harness.renewRequests.length, before + 2);
    assert.equal(session.state, "connected");
  });

  it("fails when renewal is refused because the agent was revoked", async () => {
    const { session } = await connected();
    harness.renewHandler = () => wireError("AGENT_REVOKED", "revoked");
    await assert.rejects(session.renewNow(), /re-enrolled/);
    const result = await session.done;
    assert.equal(result.state === "failed" && result.error.code, "AGENT_REVOKED");
  });
});

describe("session: stop", () => {
  it("half-closes the stream, waits for the server, and stops", async () => {
    const { session, stream } = await connected();
    const states: SessionState[] = [];
    session.on("state", (s) => states.push(s));
    const ended = nextEvent(session, "streamEnded");
    await session.stop();
    assert.deepEqual(states, ["stopping", "stopped"]);
    const [end] = await ended;
    assert.equal(end.status, GrpcStatus.OK, "the server closed the call after the half-close; nothing was cancelled");
    assert.equal(stream.halfClosed, true, "the server saw a clean half-close");
    assert.equal(stream.cancelled, false);
    assert.deepEqual(await session.done, { state: "stopped" });
    assert.equal(session.nextRenewalAt, undefined);
  });

  it("stops promptly while waiting in backoff", async () => {
    const { stateDir } = await harness.enrolDirect();
    harness.connectHandler = () => wireError("RATE_LIMITED", "busy", 60_000);
    const session = newSession(stateDir).start();
    await waitForState(session, "backoff");
    const t0 = Date.now();
    await session.stop();
    assert.ok(Date.now() - t0 < 500, "stop did not wait out the backoff");
    assert.equal(session.state, "stopped");
  });

  it("cancels the stream when the server does not close after the half-close", async () => {
    const { session, stream } = await connected({ stopTimeoutMs: 100 });
    stream.silent = true;
    // A server that ignores the half-close: the harness closes on "end", so simulate by detaching that behaviour.
    stream.end = () => undefined;
    const t0 = Date.now();
    await session.stop();
    assert.ok(Date.now() - t0 >= 95);
    await waitUntil(() => stream.cancelled, "the server sees the cancel");
  });

  it("can be stopped before it starts", async () => {
    const { stateDir } = await harness.enrolDirect();
    const session = newSession(stateDir);
    await session.stop();
    assert.equal(session.state, "stopped");
  });
});
