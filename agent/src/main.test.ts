import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { readRegistryAuthFile } from "./main.js";

describe("agent registry credentials file", () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-agent-auth-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads Docker's config.json form: auth (base64 user:pass) or username/password, keyed by host", async () => {
    const f = join(dir, "auth.json");
    writeFileSync(
      f,
      JSON.stringify({
        auths: {
          "https://reg.example:5000": { auth: Buffer.from("robot:s3:cret").toString("base64") },
          "127.0.0.1:5001": { username: "ci", password: "pw" },
        },
      }),
      { mode: 0o600 },
    );
    const m = await readRegistryAuthFile(f);
    assert.deepEqual(m.get("reg.example:5000"), { username: "robot", password: "s3:cret" });
    assert.deepEqual(m.get("127.0.0.1:5001"), { username: "ci", password: "pw" });
  });

  it("refuses a file others can read, and one that is not JSON, with stable codes", async () => {
    const open = join(dir, "open.json");
    writeFileSync(open, "{}", { mode: 0o644 });
    await assert.rejects(readRegistryAuthFile(open), (e: { code?: string }) => e.code === "REGISTRY_AUTH_INSECURE");
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{nope", { mode: 0o600 });
    await assert.rejects(readRegistryAuthFile(bad), (e: { code?: string }) => e.code === "REGISTRY_AUTH_INVALID");
  });
});
