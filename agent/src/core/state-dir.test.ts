import { strict as assert } from "node:assert";
import { mkdtemp, readdir, readFile, rm, stat, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { createCsr, FleetCa, generateKeyPair } from "@ferry/pki";

import { AgentError } from "./agent-error.js";
import { writeFileAtomic } from "@ferry/pki";
import { StateDir, STATE_FILES, type Identity } from "./state-dir.js";

let root: string;
let ca: FleetCa;

async function issue(agentId: string): Promise<{ keyPem: string; certPem: string }> {
  const keys = await generateKeyPair();
  const issued = await ca.issueAgentCertificate(await createCsr(keys.privateKeyPem, { commonName: agentId }), {
    agentId,
    lifetimeMs: 3_600_000,
  });
  return { keyPem: keys.privateKeyPem, certPem: issued.certPem };
}

function identity(agentId: string): Identity {
  return {
    agentId,
    name: "web-1",
    environment: "prod",
    labels: { role: "web" },
    agentEndpoint: "127.0.0.1:7071",
    enrolEndpoint: "127.0.0.1:7072",
    caFingerprint: ca.fingerprint,
    enrolledAt: new Date().toISOString(),
  };
}

async function enrolled(name: string, agentId = "agent-a"): Promise<StateDir> {
  const dir = new StateDir(path.join(root, name));
  await dir.prepareForEnrolment();
  const pair = await issue(agentId);
  await dir.writeEnrolment({ identity: identity(agentId), credentials: { ...pair, caBundlePem: ca.certPem } });
  return dir;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof AgentError)) return assert.fail(`expected AgentError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  return assert.fail(`expected ${code}`);
}

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), "ferry-state-dir-"));
  ca = await FleetCa.loadOrCreate(path.join(root, "ca"));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("writeFileAtomic", () => {
  it("writes with the exact mode whatever the umask and leaves no temp file", async () => {
    const dir = await mkdtemp(path.join(root, "atomic-"));
    const file = path.join(dir, "secret");
    const old = process.umask(0);
    try {
      await writeFileAtomic(file, "one", 0o600);
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    await writeFileAtomic(file, "two", 0o600);
    assert.equal(await readFile(file, "utf8"), "two");
    assert.deepEqual(await readdir(dir), ["secret"]);
  });

  it("keeps the old content and removes the temp file when the write fails", async () => {
    const dir = await mkdtemp(path.join(root, "atomic-"));
    const file = path.join(dir, "data");
    await writeFileAtomic(file, "old", 0o644);
    // A directory in the way makes the rename fail after the temp file was written.
    const blocked = path.join(dir, "blocked");
    await import("node:fs/promises").then((fs) => fs.mkdir(path.join(blocked, "x"), { recursive: true }));
    await assert.rejects(writeFileAtomic(blocked, "new", 0o644));
    assert.equal(await readFile(file, "utf8"), "old");
    assert.deepEqual((await readdir(dir)).sort(), ["blocked", "data"]);
  });
});

describe("StateDir", () => {
  it("writes the documented layout with safe permissions and loads it back", async () => {
    const dir = await enrolled("layout");
    assert.deepEqual((await readdir(dir.path)).sort(), ["agent.crt", "agent.key", "ca-bundle.pem", "identity.json"]);
    assert.equal((await stat(dir.path)).mode & 0o777, 0o700);
    assert.equal((await stat(dir.file(STATE_FILES.key))).mode & 0o777, 0o600);
    const loaded = await dir.load();
    assert.equal(loaded.identity.agentId, "agent-a");
    assert.deepEqual(loaded.identity.labels, { role: "web" });
    assert.match(loaded.credentials.caBundlePem, /BEGIN CERTIFICATE/);
  });

  it("refuses to overwrite an enrolled identity unless forced", async () => {
    const dir = await enrolled("force");
    await rejectsWith(dir.prepareForEnrolment(), "ALREADY_ENROLLED");
    await dir.prepareForEnrolment({ force: true });
  });

  it("reports a missing directory, a missing identity and a corrupt identity with stable codes", async () => {
    await rejectsWith(new StateDir(path.join(root, "nope")).load(), "STATE_DIR_MISSING");
    const empty = new StateDir(await mkdtemp(path.join(root, "empty-")));
    const notEnrolled = await rejectsWith(empty.load(), "NOT_ENROLLED");
    assert.equal(notEnrolled.kind, "usage");
    const dir = await enrolled("corrupt");
    await writeFile(dir.file(STATE_FILES.identity), "{ not json");
    await rejectsWith(dir.load(), "STATE_DIR_CORRUPT");
    await writeFile(dir.file(STATE_FILES.identity), JSON.stringify({ agentId: "agent-a" }));
    await rejectsWith(dir.load(), "STATE_DIR_CORRUPT");
  });

  it("refuses a key readable by others", async () => {
    const dir = await enrolled("insecure");
    await chmod(dir.file(STATE_FILES.key), 0o644);
    await rejectsWith(dir.load(), "STATE_DIR_INSECURE");
  });

  it("refuses a key that does not belong to the certificate, or a certificate for another agent", async () => {
    const dir = await enrolled("mismatch");
    const other = await issue("agent-a");
    await writeFile(dir.file(STATE_FILES.cert), other.certPem);
    await rejectsWith(dir.load(), "STATE_DIR_CORRUPT");
    const foreign = await issue("agent-b");
    await writeFileAtomic(dir.file(STATE_FILES.key), foreign.keyPem, 0o600);
    await writeFile(dir.file(STATE_FILES.cert), foreign.certPem);
    const err = await rejectsWith(dir.load(), "STATE_DIR_CORRUPT");
    assert.match(err.message, /agent-b/);
  });

  it("replaces key and certificate together on renewal", async () => {
    const dir = await enrolled("renew");
    const next = await issue("agent-a");
    await dir.writeRenewal(next);
    const loaded = await dir.load();
    assert.equal(loaded.credentials.certPem, next.certPem);
    assert.equal(loaded.credentials.keyPem, next.keyPem);
    assert.equal((await stat(dir.file(STATE_FILES.key))).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir.path)).sort(), ["agent.crt", "agent.key", "ca-bundle.pem", "identity.json"]);
  });

  it("finishes a renewal interrupted after staging, or after the key rename", async () => {
    const dir = await enrolled("crash");
    // Crash after both staged files were written, before any rename.
    const next = await issue("agent-a");
    await writeFileAtomic(dir.file(STATE_FILES.stagedKey), next.keyPem, 0o600);
    await writeFileAtomic(dir.file(STATE_FILES.stagedCert), next.certPem, 0o644);
    assert.equal((await dir.load()).credentials.certPem, next.certPem);

    // Crash after the key rename: agent.key is new, agent.crt is old, agent.crt.new is waiting.
    const third = await issue("agent-a");
    await writeFileAtomic(dir.file(STATE_FILES.key), third.keyPem, 0o600);
    await writeFileAtomic(dir.file(STATE_FILES.stagedCert), third.certPem, 0o644);
    const loaded = await dir.load();
    assert.equal(loaded.credentials.certPem, third.certPem);
    assert.equal(loaded.credentials.keyPem, third.keyPem);
  });

  it("discards a staged key whose certificate was never staged", async () => {
    const dir = await enrolled("crash-early");
    const before = (await dir.load()).credentials;
    const next = await issue("agent-a");
    await writeFileAtomic(dir.file(STATE_FILES.stagedKey), next.keyPem, 0o600);
    const loaded = await dir.load();
    assert.equal(loaded.credentials.keyPem, before.keyPem);
    assert.ok(!(await readdir(dir.path)).includes(STATE_FILES.stagedKey));
  });
});
