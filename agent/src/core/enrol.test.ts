import { strict as assert } from "node:assert";
import { readdir, readFile, stat } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { certificateInfo, FleetCa } from "@ferry/pki";
import { wireError } from "@ferry/proto";

import { ControlPlaneHarness } from "../test-support/control-plane-harness.js";
import { logSink } from "../test-support/log-sink.js";
import { StaticDriverRegistry } from "../drivers/registry.js";
import { AgentError } from "./agent-error.js";
import { enrol, type EnrolOptions } from "./enrol.js";
import { collectFacts } from "./facts.js";
import { StateDir, STATE_FILES } from "./state-dir.js";

let harness: ControlPlaneHarness;

before(async () => {
  harness = await ControlPlaneHarness.start({ heartbeatIntervalMs: 1234 });
});
after(async () => {
  await harness.close();
});

async function options(overrides: Partial<EnrolOptions> = {}): Promise<EnrolOptions & { sink: ReturnType<typeof logSink> }> {
  const sink = logSink();
  return {
    joinString: harness.joinString(),
    stateDir: new StateDir(path.join(await harness.tempDir("enrol"), "state")),
    facts: collectFacts(new StaticDriverRegistry(["docker"])),
    logger: sink.logger,
    backoff: { baseMs: 10, capMs: 50 },
    ...overrides,
    sink,
  };
}

async function refusedWith(p: Promise<unknown>, code: string): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof AgentError)) return assert.fail(`expected AgentError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  return assert.fail(`expected ${code}`);
}

describe("enrol", () => {
  it("pins the CA, sends a CSR and persists the identity", async () => {
    const before = harness.enrolRequests.length;
    const opts = await options({ name: "web-1" });
    const result = await enrol(opts);

    assert.equal(harness.enrolRequests.length, before + 1);
    const req = harness.enrolRequests.at(-1)!;
    assert.equal(req.joinToken, harness.token);
    assert.equal(req.name, "web-1");
    assert.match(req.csrPem, /BEGIN CERTIFICATE REQUEST/);
    assert.doesNotMatch(req.csrPem, /PRIVATE KEY/);
    assert.deepEqual(req.facts?.drivers, ["docker"]);
    assert.ok((req.facts?.cpus ?? 0) > 0);

    assert.equal(result.identity.environment, "test");
    assert.deepEqual(result.identity.labels, { role: "web" });
    assert.equal(result.identity.agentEndpoint, harness.agentEndpoint);
    assert.equal(result.identity.caFingerprint, harness.ca.fingerprint);
    assert.equal(result.identity.heartbeatIntervalMs, 1234);

    const dir = opts.stateDir;
    assert.deepEqual((await readdir(dir.path)).sort(), ["agent.crt", "agent.key", "ca-bundle.pem", "identity.json", "task-signing-keys.json"]);
    assert.equal((await stat(dir.file(STATE_FILES.key))).mode & 0o777, 0o600);
    const loaded = await dir.load();
    assert.equal(certificateInfo(loaded.credentials.certPem).agentId, result.identity.agentId);
    assert.equal(loaded.credentials.caBundlePem.trim(), harness.ca.certPem.trim());
    const identityFile = JSON.parse(await readFile(dir.file(STATE_FILES.identity), "utf8")) as Record<string, unknown>;
    assert.equal(identityFile.agentId, result.identity.agentId);

    // The join token never reaches the logs or the state directory.
    assert.ok(!opts.sink.text().includes(harness.token), "token logged");
    for (const f of await readdir(dir.path)) {
      assert.ok(!(await readFile(path.join(dir.path, f), "utf8")).includes(harness.token), `token in ${f}`);
    }
  });

  it("refuses a CA that does not match the pin before sending the token", async () => {
    const other = await FleetCa.loadOrCreate(await harness.tempDir("other-ca"));
    const before = harness.enrolRequests.length;
    const opts = await options({ joinString: harness.joinString({ fingerprint: other.fingerprint }) });
    const err = await refusedWith(enrol(opts), "CA_PIN_MISMATCH");
    assert.equal(err.kind, "refused");
    assert.match(err.message, /Nothing secret was sent/);
    assert.equal(harness.enrolRequests.length, before, "the harness must never see an Enrol");
    assert.equal(await opts.stateDir.isEnrolled(), false);
  });

  it("refuses to replace an existing identity unless forced, without spending the token", async () => {
    const opts = await options();
    const first = await enrol(opts);
    const before = harness.enrolRequests.length;
    const err = await refusedWith(enrol(opts), "ALREADY_ENROLLED");
    assert.equal(err.kind, "usage");
    assert.equal(harness.enrolRequests.length, before);
    const second = await enrol({ ...opts, force: true });
    assert.notEqual(second.identity.agentId, first.identity.agentId);
    assert.equal((await opts.stateDir.load()).identity.agentId, second.identity.agentId);
  });

  it("maps refusals to clear messages", async () => {
    const cases = [
      ["JOIN_TOKEN_EXPIRED", /expired; create a new one/],
      ["JOIN_TOKEN_USED", /already been used/],
      ["JOIN_TOKEN_INVALID", /unknown or has been revoked/],
      ["CSR_KEY_NOT_ALLOWED", /key type/],
    ] as const;
    try {
      for (const [code, message] of cases) {
        harness.enrolHandler = () => wireError(code, "scripted");
        const opts = await options();
        const err = await refusedWith(enrol(opts), code);
        assert.equal(err.kind, "refused");
        assert.match(err.message, message);
        assert.equal(await opts.stateDir.isEnrolled(), false);
        assert.ok(!err.message.includes(harness.token));
      }
    } finally {
      harness.enrolHandler = undefined;
    }
  });

  it("honours RATE_LIMITED retry-after and retries a bounded number of times", async () => {
    try {
      const started = harness.enrolRequests.length;
      harness.enrolHandler = (_req, n) => (n - started <= 2 ? wireError("RATE_LIMITED", "slow down", 120) : undefined);
      const t0 = Date.now();
      const opts = await options({ maxAttempts: 5 });
      await enrol(opts);
      assert.equal(harness.enrolRequests.length - started, 3);
      assert.ok(Date.now() - t0 >= 240, "two retry-after floors of 120 ms were honoured");

      const base = harness.enrolRequests.length;
      harness.enrolHandler = () => wireError("RATE_LIMITED", "slow down", 20);
      const err = await refusedWith(enrol(await options({ maxAttempts: 3 })), "RATE_LIMITED");
      assert.equal(err.kind, "refused");
      assert.equal(harness.enrolRequests.length - base, 3);
    } finally {
      harness.enrolHandler = undefined;
    }
  });

  it("reports a malformed join string without echoing it", async () => {
    const secret = harness.joinString().slice(0, -5);
    const err = await refusedWith(enrol(await options({ joinString: secret })), "JOIN_STRING_MALFORMED");
    assert.equal(err.kind, "usage");
    assert.ok(!err.message.includes(secret.slice(20)));
  });

  it("reports an unreachable endpoint as unavailable", async () => {
    const join = harness.joinString();
    // Same CA and token, but a port nothing listens on.
    const payload = JSON.parse(Buffer.from(join.slice("ferry-join-v1.".length), "base64url").toString()) as Record<string, string>;
    payload.e = "127.0.0.1:1";
    const unreachable = "ferry-join-v1." + Buffer.from(JSON.stringify(payload)).toString("base64url");
    const err = await refusedWith(enrol(await options({ joinString: unreachable })), "ENROL_UNAVAILABLE");
    assert.equal(err.kind, "unavailable");
  });
});
