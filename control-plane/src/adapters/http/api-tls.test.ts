// The API's TLS material: operator files checked at start and swapped when they change; Ferry's own certificate.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FleetCa } from "@ferry/pki";
import pino from "pino";
import { FerryError } from "../../domain/errors.js";
import { apiTlsMaterial, readOperatorTls, watchOperatorTls } from "./api-tls.js";

const dir = mkdtempSync(join(tmpdir(), "ferry-api-tls-"));
let ca: FleetCa;
before(async () => {
  ca = await FleetCa.loadOrCreate(join(dir, "ca"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function pair(name: string): Promise<{ cert: string; key: string }> {
  const leaf = await ca.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: 3_600_000 });
  writeFileSync(join(dir, `${name}.crt`), leaf.certPem);
  writeFileSync(join(dir, `${name}.key`), leaf.keyPem);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof FerryError);
    return `${err.code}: ${err.message}`;
  }
  return "ok";
};

describe("API TLS material", () => {
  it("uses Ferry's certificate for auto and nothing for off", () => {
    assert.equal(apiTlsMaterial({ mode: "off" }, { keyPem: "k", certChainPem: "c" }), null);
    assert.deepEqual(apiTlsMaterial({ mode: "auto" }, { keyPem: "k", certChainPem: "c" }), { key: "k", cert: "c", source: "ferry-ca" });
  });

  it("refuses unreadable, non-PEM and mismatched operator files, naming them", async () => {
    const a = await pair("a");
    const b = await pair("b");
    assert.equal(readOperatorTls(a.cert, a.key).source, "operator");
    assert.match(code(() => readOperatorTls(join(dir, "missing.crt"), a.key)), /VALIDATION_FAILED: api-tls-cert: cannot read .*missing\.crt: ENOENT/);
    writeFileSync(join(dir, "junk.key"), "not a key");
    assert.match(code(() => readOperatorTls(a.cert, join(dir, "junk.key"))), /api-tls-key: .*junk\.key is not PEM/);
    assert.match(code(() => readOperatorTls(a.cert, b.key)), /a\.crt and .*b\.key cannot be used together/);
  });

  it("swaps the certificate when the files change, and keeps the old one when the new pair is bad", async () => {
    const a = await pair("w");
    const contexts: string[] = [];
    const stop = watchOperatorTls({ setSecureContext: (o) => contexts.push(String(o.cert)) }, { mode: "files", certFile: a.cert, keyFile: a.key }, pino({ level: "silent" }), 20);
    try {
      const fresh = await ca.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: 3_600_000 });
      writeFileSync(a.cert, fresh.certPem);
      writeFileSync(a.key, fresh.keyPem);
      const later = new Date(Date.now() + 5000);
      utimesSync(a.cert, later, later);
      const deadline = Date.now() + 5000;
      while (contexts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(contexts, [fresh.certPem]);
      writeFileSync(a.key, "broken");
      const later2 = new Date(Date.now() + 10_000);
      utimesSync(a.key, later2, later2);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(contexts.length, 1, "a bad pair is not installed");
    } finally {
      stop();
    }
  });
});
