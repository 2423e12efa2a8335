import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import type { PeerCertificate } from "node:tls";
import { FleetCa } from "./ca.js";
import { certificateInfo, peerIdentity, sanUris } from "./certificate-info.js";
import { controlPlaneIdentityCheck } from "./control-plane-identity-check.js";
import { createCsr } from "./csr.js";
import { fingerprintOf } from "./fingerprint.js";
import { generateKeyPair } from "./key-pair.js";
import { splitPemBundle } from "./pem.js";
import { PkiError } from "./pki-error.js";
import type { PkiErrorCode } from "./pki-error.js";
import { loadX509, webcrypto } from "./x509.js";

const x509 = await loadX509();

const HOUR = 3600_000;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-pki-info-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

function isPkiError(code: PkiErrorCode, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected PkiError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

/** The SAN URIs as a DER parser reads them: the independent reading node's text is checked against. */
function derUris(pem: string): string[] {
  const san = new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension);
  return san ? san.names.items.filter((n) => n.type === "url").map((n) => n.value) : [];
}

let ca: FleetCa;
let agentPem: string;
let serverPem: string;
before(async () => {
  ca = await FleetCa.loadOrCreate(path.join(tmpRoot, "ca"));
  const { privateKeyPem } = await generateKeyPair();
  agentPem = (
    await ca.issueAgentCertificate(await createCsr(privateKeyPem, { commonName: "host" }), {
      agentId: "agent-9",
      lifetimeMs: HOUR,
      now: new Date("2026-01-01T00:00:00Z"),
    })
  ).certPem;
  serverPem = (await ca.issueServerCertificate({ hosts: ["localhost"], lifetimeMs: HOUR })).certPem;
});

describe("certificateInfo", () => {
  test("reads an agent certificate given as PEM, DER or X509Certificate alike", () => {
    const nodeCert = new X509Certificate(agentPem);
    const fromPem = certificateInfo(agentPem);
    assert.deepEqual(certificateInfo(nodeCert.raw), fromPem);
    assert.deepEqual(certificateInfo(nodeCert), fromPem);
    assert.equal(fromPem.agentId, "agent-9");
    assert.equal(fromPem.subjectCommonName, "agent-9");
    assert.equal(fromPem.isControlPlane, false);
    assert.equal(fromPem.serial, nodeCert.serialNumber.toLowerCase());
    assert.equal(fromPem.notBefore.toISOString(), "2025-12-31T23:55:00.000Z");
    assert.equal(fromPem.notAfter.toISOString(), "2026-01-01T01:00:00.000Z");
    assert.equal(fromPem.fingerprint, fingerprintOf(agentPem));
    assert.equal(fromPem.issuer, new X509Certificate(ca.certPem).subject);
  });

  test("recognises the control plane's certificate and the CA", () => {
    const server = certificateInfo(serverPem);
    assert.equal(server.isControlPlane, true);
    assert.equal(server.agentId, null);
    assert.equal(server.subjectCommonName, "Ferry control plane");
    const root = certificateInfo(ca.certPem);
    assert.equal(root.agentId, null);
    assert.equal(root.isControlPlane, false);
    assert.equal(root.fingerprint, ca.fingerprint);
  });

  test("throws CERT_INVALID for anything that is not exactly one certificate", () => {
    assert.throws(() => certificateInfo("hello"), isPkiError("CERT_INVALID"));
    assert.throws(() => certificateInfo(Buffer.from("not der")), isPkiError("CERT_INVALID"));
    assert.throws(() => certificateInfo(agentPem + serverPem), isPkiError("CERT_INVALID", /exactly one/));
    const broken = agentPem.replace(/\n[A-Za-z0-9+/]{10}/, "\nAAAAAAAAAA");
    assert.throws(() => certificateInfo(broken), isPkiError("CERT_INVALID"));
  });

  test("refuses a certificate naming two agents rather than choosing one", async () => {
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        name: "CN=two",
        keys: (await webcrypto.subtle.generateKey(alg, false, ["sign", "verify"])),
        signingAlgorithm: alg,
        extensions: [
          new x509.SubjectAlternativeNameExtension([
            { type: "url", value: "urn:ferry:agent:a" },
            { type: "url", value: "urn:ferry:agent:b" },
          ]),
        ],
      },
      webcrypto,
    );
    assert.throws(() => certificateInfo(cert.toString("pem")), isPkiError("CERT_INVALID", /more than one agent/));
  });
});

describe("peerIdentity", () => {
  /** The fields node:tls gives for a peer certificate; X509Certificate prints them with the same OpenSSL code. */
  const fields = (pem: string) => {
    const c = new X509Certificate(pem);
    return { raw: c.raw, serialNumber: c.serialNumber, valid_from: c.validFrom, valid_to: c.validTo, subjectaltname: c.subjectAltName };
  };
  const identity = (pem: string) => {
    const i = certificateInfo(pem);
    return { serial: i.serial, notBefore: i.notBefore, notAfter: i.notAfter, agentId: i.agentId, isControlPlane: i.isControlPlane };
  };
  const selfSigned = async (names: { type: "url" | "dns"; value: string }[]) => {
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        name: "CN=peer",
        serialNumber: "0a1b2c",
        keys: await webcrypto.subtle.generateKey(alg, false, ["sign", "verify"]),
        signingAlgorithm: alg,
        extensions: [new x509.SubjectAlternativeNameExtension(names)],
      },
      webcrypto,
    );
    return cert.toString("pem");
  };

  test("reads what the DER parse reads, for agent and control-plane certificates", async () => {
    assert.deepEqual(peerIdentity(fields(agentPem)), identity(agentPem));
    assert.deepEqual(peerIdentity(fields(serverPem)), identity(serverPem));
    assert.equal(peerIdentity(fields(agentPem)).agentId, "agent-9");
    assert.equal(peerIdentity(fields(serverPem)).isControlPlane, true);
    // a serial with a leading zero nibble, other names around the URI
    const mixed = await selfSigned([{ type: "dns", value: "host.example" }, { type: "url", value: "urn:ferry:agent:agt_7" }, { type: "dns", value: "b.example" }]);
    assert.deepEqual(peerIdentity(fields(mixed)), identity(mixed));
    assert.equal(peerIdentity(fields(mixed)).serial, "0a1b2c");
    assert.equal(peerIdentity(fields(mixed)).agentId, "agt_7");
  });

  test("reads names node quotes as JSON strings the same as a DER parser does, and still refuses two agents", async () => {
    const tricky = ["urn:ferry:agent:a, URI:urn:ferry:agent:b", 'urn:ferry:x"y\\z', "urn:ferry:it's", "urn:ferry:tab\tin"];
    const quoted = await selfSigned([{ type: "dns", value: "host.example" }, ...tricky.map((value) => ({ type: "url" as const, value }))]);
    assert.match(fields(quoted).subjectaltname ?? "", /"/, "node quotes a value with a comma in it");
    assert.deepEqual(sanUris(fields(quoted).subjectaltname), derUris(quoted));
    assert.deepEqual(sanUris(fields(quoted).subjectaltname), tricky);
    assert.deepEqual(peerIdentity(fields(quoted)), identity(quoted));
    assert.equal(peerIdentity(fields(quoted)).agentId, "a, URI:urn:ferry:agent:b");
    const two = await selfSigned([{ type: "url", value: "urn:ferry:agent:a" }, { type: "url", value: "urn:ferry:agent:b" }]);
    assert.throws(() => peerIdentity(fields(two)), isPkiError("CERT_INVALID", /more than one agent/));
    const none = await selfSigned([{ type: "dns", value: "host.example" }]);
    assert.deepEqual(peerIdentity(fields(none)), identity(none));
    assert.equal(peerIdentity(fields(none)).agentId, null);
  });

  test("refuses fields it cannot read instead of guessing", () => {
    const f = fields(agentPem);
    assert.throws(() => peerIdentity({ ...f, serialNumber: "not hex" }), isPkiError("CERT_INVALID", /serial/));
    assert.throws(() => peerIdentity({ ...f, valid_to: "sometime" }), isPkiError("CERT_INVALID", /notAfter/));
    assert.throws(() => sanUris('URI:"unterminated'), isPkiError("CERT_INVALID", /subjectAltName/));
  });
});

describe("certificateInfo against a DER parser", () => {
  test("serial, validity, common name and SAN URIs read with node:crypto equal @peculiar/x509's reading", () => {
    for (const pem of [agentPem, serverPem]) {
      const der = new x509.X509Certificate(pem);
      const info = certificateInfo(pem);
      assert.equal(info.serial, der.serialNumber.toLowerCase());
      assert.equal(info.notBefore.getTime(), der.notBefore.getTime());
      assert.equal(info.notAfter.getTime(), der.notAfter.getTime());
      assert.equal(info.subjectCommonName, der.subjectName.getField("CN")[0]);
      assert.deepEqual(sanUris(new X509Certificate(pem).subjectAltName), derUris(pem));
    }
  });

  test("reading a certificate does not load @peculiar/x509; creating a CSR does", () => {
    // A fresh process: this one loaded the library for the tests above. reflect-metadata, loaded only just before
    // the library, defines Reflect.getMetadata.
    const script = [
      `const pki = await import(${JSON.stringify(new URL("./index.ts", import.meta.url).href)});`,
      `pki.certificateInfo(${JSON.stringify(agentPem)});`,
      `const before = typeof Reflect.getMetadata;`,
      `await pki.createCsr((await pki.generateKeyPair()).privateKeyPem, { commonName: "h" });`,
      `console.log(before, typeof Reflect.getMetadata);`,
    ].join("\n");
    const out = execFileSync(process.execPath, ["--conditions=ferry-source", "--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
    assert.equal(out.trim(), "undefined function");
  });
});

describe("fingerprintOf", () => {
  test("is sha256 of the DER, the same from PEM or DER, and matches the CA's", () => {
    const der = new X509Certificate(ca.certPem).raw;
    assert.equal(fingerprintOf(ca.certPem), ca.fingerprint);
    assert.equal(fingerprintOf(der), ca.fingerprint);
    assert.match(ca.fingerprint, /^sha256:[0-9a-f]{64}$/);
  });

  test("throws CERT_INVALID for bytes that are not a certificate", () => {
    assert.throws(() => fingerprintOf(Buffer.from([1, 2, 3])), isPkiError("CERT_INVALID"));
    assert.throws(() => fingerprintOf("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), isPkiError("CERT_INVALID"));
  });
});

describe("splitPemBundle", () => {
  test("splits a bundle with CRLF, comments and other blocks into canonical certificate PEMs", () => {
    const otherBlock = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    const messy =
      "subject=CN = agent-9\r\n" +
      agentPem.replaceAll("\n", "\r\n") +
      "\r\n\r\n" +
      otherBlock +
      "issuer=CN = Ferry fleet CA\n" +
      ca.certPem.trimEnd();
    const parts = splitPemBundle(messy);
    assert.deepEqual(parts, [agentPem, ca.certPem]);
    for (const p of parts) assert.ok(new X509Certificate(p));
    assert.deepEqual(splitPemBundle(""), []);
  });

  test("throws CERT_INVALID on a truncated bundle rather than dropping a certificate", () => {
    const truncated = agentPem + ca.certPem.slice(0, 100);
    assert.throws(() => splitPemBundle(truncated), isPkiError("CERT_INVALID", /no END line/));
  });
});

describe("controlPlaneIdentityCheck", () => {
  const asPeer = (pem: string) => ({ raw: new X509Certificate(pem).raw }) as PeerCertificate;

  test("accepts a certificate carrying urn:ferry:control-plane, whatever the host name", () => {
    const check = controlPlaneIdentityCheck();
    assert.equal(check("10.9.8.7", asPeer(serverPem)), undefined);
    assert.equal(check("some-load-balancer.example", asPeer(serverPem)), undefined);
  });

  test("refuses agent and CA certificates, and a missing certificate", () => {
    const check = controlPlaneIdentityCheck();
    const refusal = check("cp.example", asPeer(agentPem));
    assert.ok(refusal instanceof PkiError);
    assert.equal(refusal.code, "CERT_INVALID");
    assert.match(refusal.message, /agent-9.*urn:ferry:control-plane/);
    assert.ok(check("cp.example", asPeer(ca.certPem)) instanceof Error);
    assert.ok(check("cp.example", {} as PeerCertificate) instanceof Error);
  });
});

describe("generateKeyPair and createCsr", () => {
  test("make a P-256 PKCS#8/SPKI pair and a CSR signed by it", async () => {
    const { privateKeyPem, publicKeyPem } = await generateKeyPair();
    assert.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.ok(createPublicKey(createPrivateKey(privateKeyPem)).equals(createPublicKey(publicKeyPem)));
    assert.equal(createPublicKey(publicKeyPem).asymmetricKeyDetails?.namedCurve, "prime256v1");

    const csrPem = await createCsr(privateKeyPem, { commonName: "web-01" });
    assert.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+-----END CERTIFICATE REQUEST-----\n$/);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    assert.equal(csr.subject, "CN=web-01");
    assert.ok(await csr.verify(webcrypto));
    assert.ok(createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: "der", type: "spki" }).equals(createPublicKey(publicKeyPem)));
  });

  test("createCsr refuses keys that are not P-256 or not keys", async () => {
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ type: "pkcs8", format: "pem" });
    await assert.rejects(createCsr(String(p384), { commonName: "x" }), isPkiError("KEY_INVALID", /P-384/));
    const ed = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" });
    await assert.rejects(createCsr(String(ed), { commonName: "x" }), isPkiError("KEY_INVALID", /Ed25519/));
    await assert.rejects(createCsr("nonsense", { commonName: "x" }), isPkiError("KEY_INVALID"));
    const { privateKeyPem } = await generateKeyPair();
    await assert.rejects(createCsr(privateKeyPem, { commonName: "" }), RangeError);
    await assert.rejects(createCsr(privateKeyPem, { commonName: "x".repeat(256) }), RangeError);
  });

  test("a long fully qualified host name is fine as the CSR's common name", async () => {
    const { privateKeyPem } = await generateKeyPair();
    const fqdn = `${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(60)}.example.com`;
    const csrPem = await createCsr(privateKeyPem, { commonName: fqdn });
    assert.equal(new x509.Pkcs10CertificateRequest(csrPem).subject, `CN=${fqdn}`);
    const issued = await ca.issueAgentCertificate(csrPem, { agentId: "long-name", lifetimeMs: HOUR });
    assert.equal(certificateInfo(issued.certPem).subjectCommonName, "long-name");
  });
});
