import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { CredentialStoreError, EnvAndFileCredentialStore, credentialsEnvName } from "./credential-store.js";

function tempFile(t: TestContext, content: string, mode: number): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-creds-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "registry-credentials.json");
  writeFileSync(file, content, { mode });
  chmodSync(file, mode); // the umask may have taken bits off
  return file;
}

async function refusal(p: Promise<unknown>): Promise<CredentialStoreError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CredentialStoreError, String(err));
    return err;
  }
  assert.fail("expected a refusal");
}

const FILE = JSON.stringify({ "ghcr-prod": { username: "bot", password: "file-secret" }, "quay.io/acme": { username: "robot", password: "p:w" } });

describe("EnvAndFileCredentialStore", () => {
  it("names the variable: prefix, reference uppercased, anything but A-Z0-9 as _", () => {
    assert.equal(credentialsEnvName("ghcr-prod"), "FERRY_REGISTRY_CREDENTIALS_GHCR_PROD");
    assert.equal(credentialsEnvName("quay.io/acme"), "FERRY_REGISTRY_CREDENTIALS_QUAY_IO_ACME");
  });

  it("reads username:password from the environment; the password may contain ':'", async () => {
    const store = new EnvAndFileCredentialStore({ env: { FERRY_REGISTRY_CREDENTIALS_GHCR_PROD: "ci:se:cret" } });
    assert.deepEqual(await store.get("ghcr-prod"), { username: "ci", password: "se:cret" });
    assert.equal(await store.get("other"), null);
    assert.equal(await store.get(""), null);
  });

  it("refuses a malformed variable without echoing its value", async (t) => {
    for (const value of ["no-colon-secret", ":only-password"]) {
      const err = await refusal(new EnvAndFileCredentialStore({ env: { FERRY_REGISTRY_CREDENTIALS_X: value } }).get("x"));
      assert.equal(err.code, "CREDENTIALS_ENV_INVALID");
      assert.match(err.message, /FERRY_REGISTRY_CREDENTIALS_X/);
      assert.doesNotMatch(err.message, /secret|only-password/);
    }
    t.diagnostic("an empty variable counts as unset");
    assert.equal(await new EnvAndFileCredentialStore({ env: { FERRY_REGISTRY_CREDENTIALS_X: "" } }).get("x"), null);
  });

  it("falls back to the 0600 JSON file, environment first", async (t) => {
    const file = tempFile(t, FILE, 0o600);
    const store = new EnvAndFileCredentialStore({ env: { FERRY_REGISTRY_CREDENTIALS_GHCR_PROD: "env:wins" }, file });
    assert.deepEqual(await store.get("ghcr-prod"), { username: "env", password: "wins" });
    assert.deepEqual(await store.get("quay.io/acme"), { username: "robot", password: "p:w" });
    assert.equal(await store.get("absent"), null);
    // Inherited object properties are not entries.
    assert.equal(await store.get("constructor"), null);
    assert.equal(await store.get("__proto__"), null);
    await store.check();
    const fileOnly = new EnvAndFileCredentialStore({ env: {}, file });
    assert.deepEqual(await fileOnly.get("ghcr-prod"), { username: "bot", password: "file-secret" });
  });

  it("re-reads the file, so a rotated password needs no restart", async (t) => {
    const file = tempFile(t, FILE, 0o600);
    const store = new EnvAndFileCredentialStore({ env: {}, file });
    assert.equal((await store.get("ghcr-prod"))?.password, "file-secret");
    writeFileSync(file, JSON.stringify({ "ghcr-prod": { username: "bot", password: "rotated" } }));
    assert.equal((await store.get("ghcr-prod"))?.password, "rotated");
  });

  it("refuses a file group or others can access, and says how to fix it", { skip: process.platform === "win32" }, async (t) => {
    for (const mode of [0o644, 0o640, 0o604, 0o620]) {
      const file = tempFile(t, FILE, mode);
      const store = new EnvAndFileCredentialStore({ env: {}, file });
      const err = await refusal(store.get("ghcr-prod"));
      assert.equal(err.code, "CREDENTIALS_FILE_INSECURE", mode.toString(8));
      assert.match(err.message, new RegExp(`mode 0${mode.toString(8)}.*chmod 600`));
      assert.doesNotMatch(err.message, /file-secret/);
      assert.equal((await refusal(store.check())).code, "CREDENTIALS_FILE_INSECURE");
    }
    // The environment is consulted first, so a variable still answers while the file is being fixed.
    const file = tempFile(t, FILE, 0o644);
    assert.deepEqual(await new EnvAndFileCredentialStore({ env: { FERRY_REGISTRY_CREDENTIALS_A: "u:p" }, file }).get("a"), { username: "u", password: "p" });
  });

  it("refuses missing, non-JSON and malformed files without quoting their content", async (t) => {
    const missing = await refusal(new EnvAndFileCredentialStore({ env: {}, file: join(tmpdir(), "ferry-no-such-file.json") }).get("a"));
    assert.equal(missing.code, "CREDENTIALS_FILE_UNREADABLE");
    assert.match(missing.message, /does not exist/);

    const notJson = await refusal(new EnvAndFileCredentialStore({ env: {}, file: tempFile(t, '{"a": {"username": "u", "password": "leaky-secret"', 0o600) }).get("a"));
    assert.equal(notJson.code, "CREDENTIALS_FILE_INVALID");
    assert.doesNotMatch(notJson.message, /leaky-secret/);

    const array = await refusal(new EnvAndFileCredentialStore({ env: {}, file: tempFile(t, "[]", 0o600) }).get("a"));
    assert.equal(array.code, "CREDENTIALS_FILE_INVALID");

    const badEntry = tempFile(t, JSON.stringify({ a: { username: "", password: "leaky-secret" }, b: { username: "u", password: "p" } }), 0o600);
    const store = new EnvAndFileCredentialStore({ env: {}, file: badEntry });
    assert.deepEqual(await store.get("b"), { username: "u", password: "p" });
    const err = await refusal(store.get("a"));
    assert.equal(err.code, "CREDENTIALS_FILE_INVALID");
    assert.match(err.message, /entry "a"/);
    assert.doesNotMatch(err.message, /leaky-secret/);
    assert.equal((await refusal(store.check())).code, "CREDENTIALS_FILE_INVALID");
  });
});
