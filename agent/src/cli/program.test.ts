import { strict as assert } from "node:assert";
import { EventEmitter } from "node:events";
import * as path from "node:path";
import { after, afterEach, before, describe, it } from "node:test";

import { wireError } from "@ferry/proto";

import { agentVersion } from "../core/facts.js";
import { ControlPlaneHarness } from "../test-support/control-plane-harness.js";
import { logSink } from "../test-support/log-sink.js";
import { EXIT, runCli, type CliIo } from "./program.js";

let harness: ControlPlaneHarness;

before(async () => {
  harness = await ControlPlaneHarness.start({ heartbeatIntervalMs: 40 });
});
afterEach(() => {
  harness.enrolHandler = undefined;
  harness.connectHandler = undefined;
});
after(async () => {
  await harness.close();
});

function io(env: NodeJS.ProcessEnv = {}): CliIo & { out: () => string; err: () => string; logs: () => string; signals: EventEmitter } {
  let out = "";
  let err = "";
  const sink = logSink();
  const signals = new EventEmitter();
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env,
    logDestination: sink.stream,
    signals,
    runtime: {
      session: {
        defaultHeartbeatIntervalMs: 40,
        backoff: { baseMs: 10, capMs: 40 },
        stopTimeoutMs: 1_000,
        // Tiny intervals for speed; do not let a loaded machine trip the dead-stream rule.
        silenceFactor: 25,
        welcomeTimeoutMs: 5_000,
      },
    },
    out: () => out,
    err: () => err,
    logs: sink.text,
  };
}

describe("ferry-agent CLI", () => {
  it("prints its version", async () => {
    const t = io();
    assert.equal(await runCli(["--version"], t), EXIT.ok);
    assert.equal(t.out().trim(), agentVersion());
  });

  it("exits 2 on usage errors", async () => {
    let t = io();
    assert.equal(await runCli(["run"], t), EXIT.usage);
    assert.match(t.err(), /--state-dir is required \(or set FERRY_AGENT_STATE_DIR\)/);
    t = io();
    assert.equal(await runCli(["frobnicate"], t), EXIT.usage);
    t = io();
    assert.equal(await runCli(["run", "--state-dir", "/tmp", "--log-level", "loud"], t), EXIT.usage);
    t = io();
    assert.equal(await runCli(["enrol", "--state-dir", "/tmp/x"], t), EXIT.usage);
    assert.match(t.err(), /--join is required/);
    t = io();
    assert.equal(await runCli(["run", "--state-dir", "/tmp", "--observe-interval", "0.5"], t), EXIT.usage);
    assert.match(t.err(), /--observe-interval: "0.5" is not a number of seconds from 1 to 86400/);
  });

  it("exits 2 when the state directory is not enrolled", async () => {
    const t = io();
    assert.equal(await runCli(["run", "--state-dir", await harness.tempDir("empty")], t), EXIT.usage);
    assert.match(t.err(), /NOT_ENROLLED/);
  });

  it("enrols from the environment, never logging the join string, then refuses a second enrolment", async () => {
    const stateDir = path.join(await harness.tempDir("cli"), "state");
    const join = harness.joinString();
    const t = io({ FERRY_JOIN: join, FERRY_AGENT_STATE_DIR: stateDir });
    assert.equal(await runCli(["enrol", "--name", "web-7", "--log-level", "debug"], t), EXIT.ok, t.err());
    assert.match(t.err(), /enrolled as agent agent-\d+ in environment test/);
    assert.equal(t.out(), "", "stdout is reserved for JSON log lines (here sent to the sink)");
    assert.equal(harness.enrolRequests.at(-1)?.name, "web-7");
    for (const text of [t.out(), t.err(), t.logs()]) {
      assert.ok(!text.includes(harness.token), "the token leaked");
      assert.ok(!text.includes(join.slice(14)), "the join string leaked");
    }
    assert.ok(t.logs().length > 0, "something was logged");

    const again = io({ FERRY_JOIN: join });
    assert.equal(await runCli(["enrol", "--state-dir", stateDir], again), EXIT.usage);
    assert.match(again.err(), /ALREADY_ENROLLED.*--force/);
  });

  it("exits 3 when enrolment is refused", async () => {
    harness.enrolHandler = () => wireError("JOIN_TOKEN_EXPIRED", "expired 3 minutes ago");
    const t = io();
    const dir = path.join(await harness.tempDir("cli"), "state");
    assert.equal(await runCli(["enrol", "--join", harness.joinString(), "--state-dir", dir], t), EXIT.refused);
    assert.match(t.err(), /JOIN_TOKEN_EXPIRED: enrolment refused.*create a new one/);
  });

  it("exits 2 on a malformed join string", async () => {
    const t = io();
    const dir = path.join(await harness.tempDir("cli"), "state");
    assert.equal(await runCli(["enrol", "--join", "ferry-join-v1.bogus!", "--state-dir", dir], t), EXIT.usage);
    assert.match(t.err(), /JOIN_STRING_MALFORMED/);
  });

  it("runs until SIGTERM, then stops cleanly with 0", async () => {
    const { stateDir } = await harness.enrolDirect();
    const t = io();
    const streams = harness.streams.length;
    const exit = runCli(["run", "--state-dir", stateDir.path], t);
    let stream;
    try {
      stream = await harness.waitForStream(streams + 1);
      await stream.waitForMessage((m) => m.body.case === "heartbeat");
    } finally {
      t.signals.emit("SIGTERM", "SIGTERM");
    }
    assert.equal(await exit, EXIT.ok);
    assert.equal(stream.halfClosed, true);
    assert.equal(t.signals.listenerCount("SIGTERM"), 0, "signal handlers removed");
  });

  it("exits 4 with re-enrol guidance when the agent is revoked", async () => {
    const { stateDir } = await harness.enrolDirect();
    const t = io({ FERRY_AGENT_STATE_DIR: stateDir.path });
    const streams = harness.streams.length;
    const exit = runCli(["run"], t);
    try {
      const stream = await harness.waitForStream(streams + 1);
      await stream.waitForMessage((m) => m.body.case === "hello");
      stream.disconnect("AGENT_REVOKED", "revoked by an operator");
    } catch (err) {
      t.signals.emit("SIGTERM", "SIGTERM");
      await exit;
      throw err;
    }
    assert.equal(await exit, EXIT.reenrol);
    assert.match(t.err(), /AGENT_REVOKED: .*revoked.*ferry-agent enrol --force/);
  });
});
