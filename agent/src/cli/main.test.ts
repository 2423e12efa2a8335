// The real binary entry point in a real process: argument parsing, signals and exit codes end to end.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";

import { agentVersion } from "../core/facts.js";
import { ControlPlaneHarness } from "../test-support/control-plane-harness.js";
import { waitForEvent } from "../test-support/wait.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const entry = fileURLToPath(new URL("./main.ts", import.meta.url));

function agent(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ["--conditions=ferry-source", "--import", "tsx", entry, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = waitForEvent<[number | null, NodeJS.Signals | null]>(child, "exit", () => true, 20_000);
  return { child, exited, out: () => stdout, err: () => stderr };
}

let harness: ControlPlaneHarness;
before(async () => {
  // Long enough that a loaded machine does not trip the agent's dead-stream rule (3 × interval).
  harness = await ControlPlaneHarness.start({ heartbeatIntervalMs: 300 });
});
after(async () => {
  await harness.close();
});

describe("ferry-agent process", () => {
  it("--version prints the version and exits 0", async () => {
    const p = agent(["--version"]);
    const [code] = await p.exited;
    assert.equal(code, 0, p.err());
    assert.equal(p.out().trim(), agentVersion());
  });

  it("stops on SIGTERM with a clean half-close and exit 0", async () => {
    const { stateDir } = await harness.enrolDirect();
    const streams = harness.streams.length;
    const p = agent(["run", "--state-dir", stateDir.path], { FERRY_AGENT_LOG_LEVEL: "debug" });
    const stream = await harness.waitForStream(streams + 1, 15_000).catch((err: unknown) => {
      p.child.kill("SIGKILL");
      throw err;
    });
    await stream.waitForMessage((m) => m.body.case === "hello");
    const t0 = Date.now();
    p.child.kill("SIGTERM");
    const [code] = await p.exited;
    assert.equal(code, 0, p.err());
    // Well under the 3 s backstop in cli/main.ts: the process ended because nothing was left open.
    assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms to exit`);
    assert.equal(stream.halfClosed, true);
    // JSON logs on stdout, with the agent id on the session's lines.
    const lines = p.out().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.msg === "session stopped" && typeof l.agentId === "string"));
  });

  it("exits 4 when revoked", async () => {
    const { stateDir } = await harness.enrolDirect();
    const streams = harness.streams.length;
    const p = agent(["run", "--state-dir", stateDir.path]);
    const stream = await harness.waitForStream(streams + 1, 15_000).catch((err: unknown) => {
      p.child.kill("SIGKILL");
      throw err;
    });
    await stream.waitForMessage((m) => m.body.case === "hello");
    stream.disconnect("CERT_REVOKED", "serial revoked");
    const [code] = await p.exited;
    assert.equal(code, 4);
    assert.match(p.err(), /re-enrolled/);
  });
});
