// First contact against real TLS servers on loopback.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import { FleetCa } from "./ca.js";
import { createCsr } from "./csr.js";
import { fetchPinnedCa } from "./fetch-pinned-ca.js";
import { generateKeyPair } from "./key-pair.js";
import { derToPem } from "./pem.js";
import { PkiError } from "./pki-error.js";
import type { PkiErrorCode } from "./pki-error.js";
import { loadX509, webcrypto } from "./x509.js";

const x509 = await loadX509();

const HOUR = 3600_000;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-pki-pin-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

function isPkiError(code: PkiErrorCode, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected PkiError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

/** A TLS server presenting `cert` (a PEM chain) with `key`; returns its endpoint and a closer. */
async function serve(key: string, cert: string): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const server = tls.createServer({ key, cert }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function withServer(key: string, cert: string, f: (endpoint: string) => Promise<void>): Promise<void> {
  const server = await serve(key, cert);
  try {
    await f(server.endpoint);
  } finally {
    await server.close();
  }
}

describe("fetchPinnedCa", () => {
  let ca: FleetCa;
  let otherCa: FleetCa;
  let leaf: { certPem: string; keyPem: string };
  before(async () => {
    ca = await FleetCa.loadOrCreate(path.join(tmpRoot, "ca"));
    otherCa = await FleetCa.loadOrCreate(path.join(tmpRoot, "other"));
    leaf = await ca.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: HOUR });
  });

  test("returns the CA whose fingerprint matches the pin", async () => {
    await withServer(leaf.keyPem, leaf.certPem + "\n" + ca.certPem, async (endpoint) => {
      assert.equal(await fetchPinnedCa(endpoint, ca.fingerprint), ca.certPem);
      // Pins are compared case-insensitively (people retype them).
      assert.equal(await fetchPinnedCa(endpoint, ca.fingerprint.toUpperCase().replace("SHA256", "sha256")), ca.certPem);
    });
  });

  test("throws CA_PIN_MISMATCH naming the expected and presented fingerprints", async () => {
    await withServer(leaf.keyPem, leaf.certPem + ca.certPem, async (endpoint) => {
      await assert.rejects(fetchPinnedCa(endpoint, otherCa.fingerprint), (err: unknown) => {
        isPkiError("CA_PIN_MISMATCH")(err);
        const message = (err as Error).message;
        assert.ok(message.includes(otherCa.fingerprint), "names the expected pin");
        assert.ok(message.includes(ca.fingerprint), "names what was seen");
        return true;
      });
    });
  });

  test("throws CA_PIN_MISMATCH for a server whose chain comes from another fleet CA", async () => {
    const foreign = await otherCa.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: HOUR });
    await withServer(foreign.keyPem, foreign.certPem + otherCa.certPem, async (endpoint) => {
      await assert.rejects(fetchPinnedCa(endpoint, ca.fingerprint), isPkiError("CA_PIN_MISMATCH"));
    });
  });

  test("refuses a server that presents a copy of the pinned CA with a leaf the CA did not sign", async () => {
    // What an interceptor can do: the CA certificate is public, its key is not. Node links a presented
    // certificate into the chain only if it names the leaf's issuer, so an unrelated leaf leaves the copy unseen.
    const foreign = await otherCa.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: HOUR });
    await withServer(foreign.keyPem, foreign.certPem + ca.certPem, async (endpoint) => {
      await assert.rejects(fetchPinnedCa(endpoint, ca.fingerprint), isPkiError("CA_PIN_MISMATCH"));
    });

    // A forged leaf that names the pinned CA as issuer (same issuer name and key id), signed with another key:
    // the chain links up, and only the signature check can tell.
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const attacker = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]));
    const pinned = new x509.X509Certificate(ca.certPem);
    const caKeyId = pinned.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    assert.ok(caKeyId);
    const forged = await x509.X509CertificateGenerator.create(
      {
        subject: "CN=Ferry control plane",
        issuer: pinned.subjectName,
        publicKey: attacker.publicKey,
        signingKey: attacker.privateKey,
        signingAlgorithm: alg,
        notBefore: new Date(Date.now() - HOUR),
        notAfter: new Date(Date.now() + HOUR),
        extensions: [
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: "url", value: "urn:ferry:control-plane" }]),
          new x509.AuthorityKeyIdentifierExtension(caKeyId),
        ],
      },
      webcrypto,
    );
    const forgedKey = derToPem("PRIVATE KEY", new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", attacker.privateKey)));
    const forgedCert = derToPem("CERTIFICATE", new Uint8Array(forged.rawData));
    await withServer(forgedKey, forgedCert + ca.certPem, async (endpoint) => {
      await assert.rejects(
        fetchPinnedCa(endpoint, ca.fingerprint),
        isPkiError("CERT_INVALID", /not signed by the pinned CA/),
      );
    });
  });

  test("refuses a leaf from the pinned CA that is not a control-plane certificate", async () => {
    const { privateKeyPem } = await generateKeyPair();
    const agent = await ca.issueAgentCertificate(await createCsr(privateKeyPem, { commonName: "a" }), {
      agentId: "agent-7",
      lifetimeMs: HOUR,
    });
    await withServer(privateKeyPem, agent.certPem + ca.certPem, async (endpoint) => {
      await assert.rejects(fetchPinnedCa(endpoint, ca.fingerprint), isPkiError("CERT_INVALID", /urn:ferry:control-plane/));
    });
  });

  test("refuses an expired server certificate", async () => {
    const expired = await ca.issueServerCertificate({
      hosts: ["127.0.0.1"],
      lifetimeMs: HOUR,
      now: new Date(Date.now() - 3 * HOUR),
    });
    await withServer(expired.keyPem, expired.certPem + ca.certPem, async (endpoint) => {
      await assert.rejects(fetchPinnedCa(endpoint, ca.fingerprint), isPkiError("CERT_INVALID", /not valid now/));
    });
  });

  test("reports a refused connection as CA_UNREACHABLE", async () => {
    const { endpoint, close } = await serve(leaf.keyPem, leaf.certPem + ca.certPem);
    await close();
    await assert.rejects(fetchPinnedCa(endpoint, ca.fingerprint), isPkiError("CA_UNREACHABLE", /ECONNREFUSED/));
  });

  test("gives up after the timeout when the server never answers the handshake", async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const started = Date.now();
      await assert.rejects(
        fetchPinnedCa(`127.0.0.1:${port}`, ca.fingerprint, { timeoutMs: 200 }),
        isPkiError("CA_UNREACHABLE", /within 200 ms/),
      );
      assert.ok(Date.now() - started < 5000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test("rejects a malformed endpoint or pin before connecting", async () => {
    await assert.rejects(fetchPinnedCa("no-port", ca.fingerprint), RangeError);
    await assert.rejects(fetchPinnedCa("127.0.0.1:1", "sha1:abcd"), RangeError);
  });
});
