// The API over HTTPS (--api-tls auto, --api-tls-cert/--api-tls-key) with the real server and the real CLI: what a
// remote operator does to trust it (--ca, --ca-fingerprint), and the clear refusals when trust is missing or wrong.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FleetCa } from "@ferry/pki";
import { TestControlPlane } from "../helpers/control-plane.js";

// No local data dir: the CLI must not find a CA or token next to it, as on a remote machine.
const remote = mkdtempSync(join(tmpdir(), "ferry-remote-"));
after(() => rmSync(remote, { recursive: true, force: true }));

describe("API over HTTPS with a certificate from Ferry's CA (--api-tls auto)", () => {
  let cp: TestControlPlane;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    cp = await TestControlPlane.start({ extraArgs: ["--api-tls", "auto"] });
    env = { FERRY_DATA_DIR: remote, FERRY_CLI_CONFIG: join(remote, "none.json") };
  });
  after(async () => {
    await cp?.stop();
  });

  it("serves https:// only", async () => {
    assert.match(cp.runtime.api, /^https:\/\/127\.0\.0\.1:\d+$/);
    const plain = await cp.cli(["agents", "--json"], { ...env, FERRY_URL: cp.runtime.api.replace("https:", "http:") });
    assert.equal(plain.code, 3, plain.stderr);
    assert.match(plain.stderr, /use https:\/\//);
  });

  it("is trusted through --ca with the fleet CA's certificate", async () => {
    const r = await cp.cli(["agents", "--json", "--ca", join(cp.dataDir, "ca", "ca.crt")], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
    const viaEnv = await cp.cli(["env", "list", "--json"], { ...env, FERRY_CA: join(cp.dataDir, "ca", "ca.crt") });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
  });

  it("is trusted through the pinned CA fingerprint, reached by any name", async () => {
    const r = await cp.cli(["agents", "--json", "--ca-fingerprint", cp.runtime.caFingerprint], env);
    assert.equal(r.code, 0, r.stderr);
    const byName = await cp.cli(["agents", "--json"], { ...env, FERRY_CA_FINGERPRINT: cp.runtime.caFingerprint, FERRY_URL: cp.runtime.api.replace("127.0.0.1", "localhost") });
    assert.equal(byName.code, 0, byName.stderr);
  });

  it("refuses without trust, and with a wrong pin, saying what to do", async () => {
    const untrusted = await cp.cli(["agents", "--json"], env);
    assert.equal(untrusted.code, 3);
    assert.match(untrusted.stderr, /does not trust[\s\S]*--ca[\s\S]*--ca-fingerprint/);
    const wrong = await cp.cli(["agents", "--json", "--ca-fingerprint", `sha256:${"0".repeat(64)}`], env);
    assert.equal(wrong.code, 3);
    assert.match(wrong.stderr, /pinned CA fingerprint/);
  });

  it("uses the local fleet CA on the control-plane host without flags", async () => {
    const r = await cp.cli(["agents", "--json"], { FERRY_DATA_DIR: cp.dataDir, FERRY_CLI_CONFIG: join(remote, "none.json") });
    assert.equal(r.code, 0, r.stderr);
  });
});

describe("API over HTTPS with the operator's certificate (--api-tls-cert/--api-tls-key)", () => {
  let cp: TestControlPlane;
  const dir = mkdtempSync(join(tmpdir(), "ferry-operator-tls-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(async () => {
    // The operator's own CA (here a second Ferry CA stands in for the company CA) and a certificate for 127.0.0.1.
    const companyCa = await FleetCa.loadOrCreate(join(dir, "company-ca"));
    const leaf = await companyCa.issueServerCertificate({ hosts: ["127.0.0.1", "localhost"], lifetimeMs: 86_400_000 });
    writeFileSync(join(dir, "api.crt"), `${leaf.certPem.trim()}\n${companyCa.certPem.trim()}\n`);
    writeFileSync(join(dir, "api.key"), leaf.keyPem, { mode: 0o600 });
    cp = await TestControlPlane.start({ extraArgs: ["--api-tls-cert", join(dir, "api.crt"), "--api-tls-key", join(dir, "api.key")] });
  });
  after(async () => {
    await cp?.stop();
  });

  it("serves the operator's certificate, trusted with --ca of its issuer and not with the fleet CA", async () => {
    assert.match(cp.runtime.api, /^https:/);
    const env = { FERRY_DATA_DIR: remote, FERRY_CLI_CONFIG: join(remote, "none.json") };
    const ok = await cp.cli(["agents", "--json", "--ca", join(dir, "company-ca", "ca.crt")], env);
    assert.equal(ok.code, 0, ok.stderr);
    const fleet = await cp.cli(["agents", "--json", "--ca", join(cp.dataDir, "ca", "ca.crt")], env);
    assert.equal(fleet.code, 3);
  });

  it("refuses to start with a key that does not belong to the certificate, naming the files", async () => {
    const other = await FleetCa.loadOrCreate(join(dir, "other-ca"));
    const stray = await other.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: 86_400_000 });
    writeFileSync(join(dir, "stray.key"), stray.keyPem, { mode: 0o600 });
    await assert.rejects(
      TestControlPlane.start({ extraArgs: ["--api-tls-cert", join(dir, "api.crt"), "--api-tls-key", join(dir, "stray.key")] }),
      /api-tls-cert\/api-tls-key: .*api\.crt and .*stray\.key cannot be used together/,
    );
  });
});
