import { strict as assert } from "node:assert";
import { EventEmitter } from "node:events";
import { chmodSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, afterEach, before, describe, it } from "node:test";

import { wireError } from "@ferry/proto";

import { dockerEngine } from "../../../test/helpers/docker.js";
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

  it("prints the HAProxy config for a routed service, checked with the route schema", async () => {
    const t = io();
    assert.equal(await runCli(["router", "haproxy-config", "--service", "web", "--listen", "0.0.0.0:8080", "--blue", "8081", "--green", "8082"], t), EXIT.ok, t.err());
    assert.match(t.out(), /stats socket \/run\/haproxy\/ferry.sock mode 600 level admin/);
    assert.match(t.out(), /frontend ferry_web_in\n {2}bind 0\.0\.0\.0:8080/);
    assert.match(t.out(), /server blue 127\.0\.0\.1:8081 weight 100\n {2}server green 127\.0\.0\.1:8082 weight 0/);
    let bad = io();
    assert.equal(await runCli(["router", "haproxy-config", "--service", "web", "--listen", "0.0.0.0:8080", "--blue", "8081", "--green", "8081"], bad), EXIT.usage);
    assert.match(bad.err(), /route\.slots\.green: must differ from blue/);
    bad = io();
    assert.equal(await runCli(["router", "haproxy-config", "--service", "Web App", "--listen", "0.0.0.0:8080", "--blue", "8081", "--green", "8082"], bad), EXIT.usage);
    assert.match(bad.err(), /route\.service/);
    bad = io();
    assert.equal(await runCli(["router", "haproxy-config", "--service", "web", "--listen", "x:1", "--blue", "8081", "--green", "8082", "--socket", "relative.sock"], bad), EXIT.usage);
    assert.match(bad.err(), /--socket: must be an absolute path/);
  });

  it("prints the A/B split rules for a route split by a cookie or a header", async () => {
    const base = ["router", "haproxy-config", "--service", "web", "--listen", "0.0.0.0:8080", "--blue", "8081", "--green", "8082"];
    let t = io();
    assert.equal(await runCli([...base, "--split-cookie", "ab_uid"], t), EXIT.ok, t.err());
    assert.match(t.out(), /http-request set-var\(txn\.ferry_ab_key\) req\.cook\(ab_uid\)/);
    assert.match(t.out(), /str\(web\),map\(\/etc\/haproxy\/ferry-split\.map\)/);
    assert.match(t.out(), /use-server green if \{ var\(txn\.ferry_ab_to\) -m str green \}\n {2}server blue/);
    t = io();
    assert.equal(await runCli([...base, "--split-header", "X-User-Id", "--split-map", "/srv/split.map"], t), EXIT.ok, t.err());
    assert.match(t.out(), /req\.fhdr\(X-User-Id\)/);
    assert.match(t.out(), /map\(\/srv\/split\.map\)/);
    t = io();
    assert.equal(await runCli(base, t), EXIT.ok, t.err());
    assert.doesNotMatch(t.out(), /ferry_ab|split/);
    let bad = io();
    assert.equal(await runCli([...base, "--split-cookie", "a#b"], bad), EXIT.usage);
    assert.match(bad.err(), /route\.split\.name/);
    bad = io();
    assert.equal(await runCli([...base, "--split-cookie", "a", "--split-header", "b"], bad), EXIT.usage);
    assert.match(bad.err(), /not both/);
    bad = io();
    assert.equal(await runCli([...base, "--split-cookie", "a", "--split-map", "split.map"], bad), EXIT.usage);
    assert.match(bad.err(), /--split-map: must be an absolute path/);
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

  it("prints the resolved configuration with each value's source, as text or JSON", async () => {
    const dir = await harness.tempDir("config");
    writeFileSync(path.join(dir, "agent.json"), JSON.stringify({ observeIntervalSeconds: 30, drivers: { docker: { settleSeconds: 3 } } }), { mode: 0o600 });
    const env = { FERRY_AGENT_STATE_DIR: dir, FERRY_AGENT_DRIVER_DOCKER_STOP_TIMEOUT_SECONDS: "20" };
    let t = io(env);
    assert.equal(await runCli(["config", "--driver", "docker.socket=/run/a.sock", "--driver", "docker.socket=/run/b.sock", "--log-level", "warn"], t), EXIT.ok, t.err());
    const text = t.out();
    assert.match(text, new RegExp(`^configFile +${path.join(dir, "agent.json")} +agent\\.json in the state directory$`, "m"));
    assert.match(text, new RegExp(`^stateDir +${dir} +FERRY_AGENT_STATE_DIR$`, "m"));
    assert.match(text, /^logLevel +warn +--log-level$/m);
    assert.match(text, /^observeIntervalSeconds +30 +\S+agent\.json observeIntervalSeconds$/m);
    assert.match(text, /^drivers\.docker\.socket +\/run\/b\.sock +--driver docker\.socket$/m);
    assert.match(text, /^drivers\.docker\.stopTimeoutSeconds +20 +FERRY_AGENT_DRIVER_DOCKER_STOP_TIMEOUT_SECONDS$/m);
    assert.match(text, /^drivers\.docker\.settleSeconds +3 +\S+agent\.json drivers\.docker\.settleSeconds$/m);

    t = io(env);
    assert.equal(await runCli(["config", "--json", "--docker-socket", "off"], t), EXIT.ok, t.err());
    const rows = JSON.parse(t.out()) as Array<{ key: string; value: unknown; source: string; from: string }>;
    assert.deepEqual(rows.find((r) => r.key === "drivers.docker.enabled"), { key: "drivers.docker.enabled", value: false, source: "flag", from: "--docker-socket" });
    assert.deepEqual(rows.find((r) => r.key === "registryAuthFile"), { key: "registryAuthFile", value: null, source: "default", from: "default" });
  });

  it("exits 2 naming the source of a bad configuration value, before connecting anywhere", async () => {
    const dir = await harness.tempDir("config");
    let t = io({ FERRY_AGENT_OBSERVE_INTERVAL: "0" });
    assert.equal(await runCli(["run", "--state-dir", dir], t), EXIT.usage);
    assert.match(t.err(), /^ferry-agent: CONFIG_INVALID: FERRY_AGENT_OBSERVE_INTERVAL: "0" is not a number of seconds from 1 to 86400\n$/);
    t = io();
    assert.equal(await runCli(["run", "--state-dir", dir, "--driver", "docker.socket=docker.sock"], t), EXIT.usage);
    assert.match(t.err(), /CONFIG_INVALID: --driver docker\.socket: must be an absolute path/);
    writeFileSync(path.join(dir, "agent.json"), JSON.stringify({ drivers: { docker: { socket: "/x" } } }));
    chmodSync(path.join(dir, "agent.json"), 0o666);
    t = io();
    assert.equal(await runCli(["run", "--state-dir", dir], t), EXIT.usage);
    assert.match(t.err(), /CONFIG_INSECURE: .*agent\.json is writable by group or others/);
  });

  it("prints the node flags a command should run with: without --jitless when the ssh driver is enabled", async () => {
    const dir = await harness.tempDir("node-flags");
    const flags = "--no-opt --jitless --no-expose-wasm --expose-gc";
    let t = io({ FERRY_AGENT_NODE_FLAGS: flags });
    // The wrapper passes the command line it was given; the command's own options are ignored.
    assert.equal(await runCli(["node-flags", "enrol", "--join", "x", "--force", "--name", "a", "--state-dir", dir], t), EXIT.ok, t.err());
    assert.equal(t.out(), `${flags}\n`);
    t = io({ FERRY_AGENT_NODE_FLAGS: flags });
    assert.equal(await runCli(["node-flags", "run", "--state-dir", dir, "--driver", "ssh.enabled=true"], t), EXIT.ok, t.err());
    assert.equal(t.out(), "--no-opt --expose-gc\n");
    writeFileSync(path.join(dir, "agent.json"), JSON.stringify({ drivers: { ssh: { enabled: true } } }), { mode: 0o600 });
    t = io({ FERRY_AGENT_NODE_FLAGS: flags, FERRY_AGENT_STATE_DIR: dir });
    assert.equal(await runCli(["node-flags", "run"], t), EXIT.ok, t.err());
    assert.equal(t.out(), "--no-opt --expose-gc\n");
    // A bad configuration fails here as `run` would, so the wrapper stops with the same message.
    t = io({ FERRY_AGENT_NODE_FLAGS: flags, FERRY_AGENT_OBSERVE_INTERVAL: "0" });
    assert.equal(await runCli(["node-flags", "run", "--state-dir", dir], t), EXIT.usage);
    assert.match(t.err(), /CONFIG_INVALID: FERRY_AGENT_OBSERVE_INTERVAL/);
    assert.equal(t.out(), "");
  });

  it("enrols with the drivers its configuration enables", async () => {
    const off = io({ FERRY_JOIN: harness.joinString() });
    assert.equal(await runCli(["enrol", "--state-dir", path.join(await harness.tempDir("cli"), "state"), "--docker-socket", "off"], off), EXIT.ok, off.err());
    assert.deepEqual(harness.enrolRequests.at(-1)?.facts?.drivers, []);
    const engine = await dockerEngine();
    if (!engine.available) return; // the docker driver's own suite reports a missing engine loudly
    const on = io({ FERRY_JOIN: harness.joinString(), FERRY_AGENT_DRIVER_DOCKER_SOCKET: engine.socketPath });
    assert.equal(await runCli(["enrol", "--state-dir", path.join(await harness.tempDir("cli"), "state")], on), EXIT.ok, on.err());
    assert.deepEqual(harness.enrolRequests.at(-1)?.facts?.drivers, ["docker"]);
  });
});
