import { strict as assert } from "node:assert";
import { X509Certificate, createHash, createPrivateKey, createPublicKey } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { FleetCa } from "./ca.js";
import { certificateInfo } from "./certificate-info.js";
import { createCsr } from "./csr.js";
import { CONTROL_PLANE_URI } from "./identity.js";
import { generateKeyPair } from "./key-pair.js";
import { derToPem, parsePemBlocks } from "./pem.js";
import { PkiError } from "./pki-error.js";
import type { PkiErrorCode } from "./pki-error.js";
import { loadX509, webcrypto } from "./x509.js";

const x509 = await loadX509();

const HOUR = 3600_000;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-pki-ca-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => path.join(tmpRoot, `ca-${++dirCount}`, "nested");

function isPkiError(code: PkiErrorCode, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected PkiError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

/** A CSR made directly with WebCrypto, so any key type and any subject/extensions can be requested. */
async function csrWith(
  algorithm: RsaHashedKeyGenParamsLike | EcKeyGenParamsLike,
  signingAlgorithm: object,
  extensions: InstanceType<typeof x509.Extension>[] = [],
): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(algorithm, false, ["sign", "verify"]));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ CN: ["requested-name"] }], keys, signingAlgorithm, extensions },
    webcrypto,
  );
  return derToPem("CERTIFICATE REQUEST", new Uint8Array(csr.rawData));
}
type RsaHashedKeyGenParamsLike = { name: "RSASSA-PKCS1-v1_5"; modulusLength: number; publicExponent: Uint8Array; hash: string };
type EcKeyGenParamsLike = { name: "ECDSA"; namedCurve: string };

function csrDer(csrPem: string): Buffer {
  const block = parsePemBlocks(csrPem, "CSR_INVALID")[0];
  assert.ok(block);
  return block.der;
}

describe("FleetCa.loadOrCreate", () => {
  test("creates a P-256 root with the documented extensions, files and permissions", async () => {
    const dir = freshDir();
    const now = new Date("2026-03-01T12:00:00.500Z");
    const ca = await FleetCa.loadOrCreate(dir, { now });

    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, "ca.key")).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dir, "ca.crt")).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["ca.crt", "ca.key"], "no temp files left behind");
    assert.equal(fs.readFileSync(path.join(dir, "ca.crt"), "utf8"), ca.certPem);

    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, true);
    assert.ok(cert.verify(cert.publicKey), "self-signed");
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.match(cert.subject, /^CN=Ferry fleet CA [0-9a-f]{8}$/);
    assert.equal(cert.issuer, cert.subject);
    assert.equal(new Date(cert.validFrom).toISOString(), "2026-03-01T11:55:00.000Z", "back-dated 5 minutes");
    assert.equal(new Date(cert.validTo).toISOString(), "2036-03-01T12:00:00.000Z", "valid 10 years");

    const parsed = new x509.X509Certificate(cert.raw);
    const bc = parsed.getExtension(x509.BasicConstraintsExtension);
    assert.equal(bc?.ca, true);
    assert.equal(bc?.pathLength, 0);
    assert.equal(bc?.critical, true);
    const ku = parsed.getExtension(x509.KeyUsagesExtension);
    assert.equal(ku?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);

    assert.equal(ca.fingerprint, `sha256:${createHash("sha256").update(cert.raw).digest("hex")}`);
    // The key file is PKCS#8 P-256 and matches the certificate.
    const key = createPrivateKey(fs.readFileSync(path.join(dir, "ca.key"), "utf8"));
    assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.ok(createPublicKey(key).equals(cert.publicKey));
  });

  test("exposes no key material on the instance", async () => {
    const dir = freshDir();
    const ca = await FleetCa.loadOrCreate(dir);
    const keyBody = fs.readFileSync(path.join(dir, "ca.key"), "utf8").split("\n")[1] ?? "";
    assert.ok(keyBody.length > 20);
    const shown = JSON.stringify(ca) + (await import("node:util")).inspect(ca, { depth: 5, showHidden: true });
    assert.ok(!shown.includes(keyBody));
    assert.deepEqual(Object.keys(ca).sort(), ["certPem", "fingerprint"]);
  });

  test("loads the same CA again, and certificates issued by either instance chain to it", async () => {
    const dir = freshDir();
    const first = await FleetCa.loadOrCreate(dir);
    const again = await FleetCa.loadOrCreate(dir);
    assert.equal(again.fingerprint, first.fingerprint);
    assert.equal(again.certPem, first.certPem);
    const { privateKeyPem } = await generateKeyPair();
    const issued = await again.issueAgentCertificate(await createCsr(privateKeyPem, { commonName: "h" }), {
      agentId: "agent-1",
      lifetimeMs: HOUR,
    });
    const leaf = new X509Certificate(issued.certPem);
    const caCert = new X509Certificate(first.certPem);
    assert.ok(leaf.checkIssued(caCert));
    assert.ok(leaf.verify(caCert.publicKey));
  });

  test("refuses a key file readable by group or others", async () => {
    const dir = freshDir();
    await FleetCa.loadOrCreate(dir);
    const keyFile = path.join(dir, "ca.key");
    for (const mode of [0o644, 0o640, 0o604, 0o620]) {
      fs.chmodSync(keyFile, mode);
      await assert.rejects(FleetCa.loadOrCreate(dir), isPkiError("CA_FILES_INVALID", /chmod 600/));
    }
    fs.chmodSync(keyFile, 0o600);
    await FleetCa.loadOrCreate(dir);
  });

  test("refuses a key that does not match the certificate", async () => {
    const dirA = freshDir();
    const dirB = freshDir();
    await FleetCa.loadOrCreate(dirA);
    await FleetCa.loadOrCreate(dirB);
    fs.copyFileSync(path.join(dirB, "ca.key"), path.join(dirA, "ca.key"));
    await assert.rejects(FleetCa.loadOrCreate(dirA), isPkiError("CA_FILES_INVALID", /does not match/));
  });

  test("refuses a directory holding only one of the two files, and leaves it untouched", async () => {
    const dir = freshDir();
    await FleetCa.loadOrCreate(dir);
    const key = fs.readFileSync(path.join(dir, "ca.key"));
    fs.rmSync(path.join(dir, "ca.crt"));
    await assert.rejects(FleetCa.loadOrCreate(dir), isPkiError("CA_FILES_INVALID", /ca\.crt/));
    assert.deepEqual(fs.readFileSync(path.join(dir, "ca.key")), key);
    assert.ok(!fs.existsSync(path.join(dir, "ca.crt")));
  });

  test("refuses corrupt files", async () => {
    const dir = freshDir();
    await FleetCa.loadOrCreate(dir);
    const certFile = path.join(dir, "ca.crt");
    const good = fs.readFileSync(certFile, "utf8");
    fs.writeFileSync(certFile, "not a certificate\n");
    await assert.rejects(FleetCa.loadOrCreate(dir), isPkiError("CA_FILES_INVALID", /ca\.crt/));
    fs.writeFileSync(certFile, good);
    fs.writeFileSync(path.join(dir, "ca.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    await assert.rejects(FleetCa.loadOrCreate(dir), isPkiError("CA_FILES_INVALID", /ca\.key/));
  });

  test("processes creating the same CA at once all end up with one CA", async () => {
    const dir = freshDir();
    const cas = await Promise.all([1, 2, 3, 4, 5].map(() => FleetCa.loadOrCreate(dir)));
    assert.equal(new Set(cas.map((c) => c.fingerprint)).size, 1);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["ca.crt", "ca.key"]);
  });
});

describe("FleetCa.issueAgentCertificate", () => {
  let ca: FleetCa;
  let caCert: X509Certificate;
  let csr: string;
  before(async () => {
    ca = await FleetCa.loadOrCreate(freshDir());
    caCert = new X509Certificate(ca.certPem);
    csr = await createCsr((await generateKeyPair()).privateKeyPem, { commonName: "web-01.example" });
  });

  test("issues a client certificate whose identity comes only from agentId", async () => {
    const now = new Date("2026-05-05T10:00:00.250Z");
    const issued = await ca.issueAgentCertificate(csr, { agentId: "01HZX3V5K9", lifetimeMs: 24 * HOUR, now });
    const cert = new X509Certificate(issued.certPem);

    assert.ok(cert.verify(caCert.publicKey), "signed by the CA");
    assert.ok(cert.checkIssued(caCert));
    assert.equal(cert.ca, false);
    assert.equal(cert.subject, "CN=01HZX3V5K9");
    assert.equal(cert.subjectAltName, "URI:urn:ferry:agent:01HZX3V5K9");
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2"], "EKU clientAuth only");
    const parsed = new x509.X509Certificate(cert.raw);
    assert.equal(parsed.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(parsed.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    const aki = parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    const caSki = new x509.X509Certificate(caCert.raw).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    assert.ok(aki !== undefined && aki === caSki, "AKI names the CA key");

    assert.equal(issued.notBefore.toISOString(), "2026-05-05T09:55:00.000Z", "back-dated 5 minutes");
    assert.equal(issued.notAfter.toISOString(), "2026-05-06T10:00:00.000Z", "lifetime honoured");
    assert.equal(new Date(cert.validFrom).getTime(), issued.notBefore.getTime());
    assert.equal(new Date(cert.validTo).getTime(), issued.notAfter.getTime());

    assert.match(issued.serial, /^[0-7][0-9a-f]{31}$/, "16 bytes, top bit clear");
    assert.equal(issued.serial, cert.serialNumber.toLowerCase());
    const info = certificateInfo(issued.certPem);
    assert.equal(info.agentId, "01HZX3V5K9");
    assert.equal(info.isControlPlane, false);
  });

  test("honours backdateMs and gives every certificate a distinct serial", async () => {
    const now = new Date("2026-05-05T10:00:00Z");
    const serials = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const issued = await ca.issueAgentCertificate(csr, { agentId: "a", lifetimeMs: HOUR, backdateMs: 0, now });
      assert.equal(issued.notBefore.getTime(), now.getTime());
      serials.add(issued.serial);
    }
    assert.equal(serials.size, 10);
  });

  test("ignores the subject and SANs requested in the CSR", async () => {
    const san = new x509.SubjectAlternativeNameExtension([
      { type: "url", value: CONTROL_PLANE_URI },
      { type: "url", value: "urn:ferry:agent:someone-else" },
      { type: "dns", value: "control-plane.example" },
    ]);
    const sneaky = await csrWith({ name: "ECDSA", namedCurve: "P-256" }, { name: "ECDSA", hash: "SHA-256" }, [san]);
    const issued = await ca.issueAgentCertificate(sneaky, { agentId: "honest", lifetimeMs: HOUR });
    const info = certificateInfo(issued.certPem);
    assert.equal(info.isControlPlane, false);
    assert.equal(info.agentId, "honest");
    assert.equal(info.subjectCommonName, "honest");
    assert.equal(new X509Certificate(issued.certPem).subjectAltName, "URI:urn:ferry:agent:honest");
  });

  test("refuses CSRs whose key is not ECDSA P-256, naming the key given", async () => {
    const rsa = await csrWith(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      { name: "RSASSA-PKCS1-v1_5" },
    );
    await assert.rejects(
      ca.issueAgentCertificate(rsa, { agentId: "a", lifetimeMs: HOUR }),
      isPkiError("CSR_KEY_NOT_ALLOWED", /RSA-2048/),
    );
    const p384 = await csrWith({ name: "ECDSA", namedCurve: "P-384" }, { name: "ECDSA", hash: "SHA-384" });
    await assert.rejects(
      ca.issueAgentCertificate(p384, { agentId: "a", lifetimeMs: HOUR }),
      isPkiError("CSR_KEY_NOT_ALLOWED", /P-384/),
    );
  });

  test("refuses input that is not a PKCS#10 PEM", async () => {
    const cases = [
      "",
      "garbage",
      "-----BEGIN CERTIFICATE REQUEST-----\n!!!not base64!!!\n-----END CERTIFICATE REQUEST-----\n",
      "-----BEGIN CERTIFICATE REQUEST-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE REQUEST-----\n",
      "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n", // no END line
      ca.certPem, // a certificate, not a request
      csr + csr, // two requests
      "x".repeat(20_000),
    ];
    for (const input of cases) {
      await assert.rejects(
        ca.issueAgentCertificate(input, { agentId: "a", lifetimeMs: HOUR }),
        isPkiError("CSR_INVALID"),
        JSON.stringify(input.slice(0, 40)),
      );
    }
  });

  test("refuses a CSR whose signature was tampered with, or whose signed content was altered", async () => {
    const der = csrDer(csr);
    const badSignature = Buffer.from(der);
    badSignature[badSignature.length - 1] = (badSignature[badSignature.length - 1] ?? 0) ^ 0x01;
    await assert.rejects(
      ca.issueAgentCertificate(derToPem("CERTIFICATE REQUEST", badSignature), { agentId: "a", lifetimeMs: HOUR }),
      isPkiError("CSR_INVALID", /signature/),
    );
    const alteredSubject = Buffer.from(der);
    const at = alteredSubject.indexOf(Buffer.from("web-01"));
    assert.ok(at > 0);
    alteredSubject.write("web-02", at, "latin1");
    await assert.rejects(
      ca.issueAgentCertificate(derToPem("CERTIFICATE REQUEST", alteredSubject), { agentId: "a", lifetimeMs: HOUR }),
      isPkiError("CSR_INVALID", /signature/),
    );
  });

  test("accepts the old NEW CERTIFICATE REQUEST armour", async () => {
    const legacy = csr.replaceAll("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    const issued = await ca.issueAgentCertificate(legacy, { agentId: "a", lifetimeMs: HOUR });
    assert.equal(certificateInfo(issued.certPem).agentId, "a");
  });

  test("treats a bad agent id or lifetime as a programming error", async () => {
    for (const agentId of ["", "has space", "a/b", "-lead", "x".repeat(65), "urn:ferry:control-plane"]) {
      await assert.rejects(ca.issueAgentCertificate(csr, { agentId, lifetimeMs: HOUR }), RangeError, agentId);
    }
    await assert.rejects(ca.issueAgentCertificate(csr, { agentId: "a", lifetimeMs: 0 }), RangeError);
    await assert.rejects(ca.issueAgentCertificate(csr, { agentId: "a", lifetimeMs: HOUR, backdateMs: -1 }), RangeError);
  });
});

describe("FleetCa.issueServerCertificate", () => {
  test("issues a serverAuth certificate with the control-plane URI and DNS/IP SANs, plus its fresh key", async () => {
    const ca = await FleetCa.loadOrCreate(freshDir());
    const now = new Date("2026-07-01T00:00:00Z");
    const issued = await ca.issueServerCertificate({
      hosts: ["Control.Example.COM", "127.0.0.1", "::1", "[fd00::1]", "localhost", "control.example.com"],
      lifetimeMs: 90 * 24 * HOUR,
      now,
    });
    const cert = new X509Certificate(issued.certPem);
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.equal(
      cert.subjectAltName,
      "URI:urn:ferry:control-plane, DNS:control.example.com, IP Address:127.0.0.1, " +
        "IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:0:1, DNS:localhost",
    );
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.1"], "EKU serverAuth only");
    assert.equal(cert.ca, false);
    assert.equal(issued.notBefore.toISOString(), "2026-06-30T23:55:00.000Z");
    assert.equal(issued.notAfter.toISOString(), "2026-09-29T00:00:00.000Z");
    assert.equal(issued.serial, cert.serialNumber.toLowerCase());

    const key = createPrivateKey(issued.keyPem);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.ok(createPublicKey(key).equals(cert.publicKey), "keyPem is the certificate's key");
    assert.ok(certificateInfo(cert).isControlPlane);
  });

  test("refuses hosts that are neither DNS names nor IP addresses", async () => {
    const ca = await FleetCa.loadOrCreate(freshDir());
    for (const host of ["", "bad host", "300.1.1.1", "[127.0.0.1]", "a..b"]) {
      await assert.rejects(ca.issueServerCertificate({ hosts: [host], lifetimeMs: HOUR }), RangeError, host);
    }
  });
});
