// Real TLS handshakes on loopback with certificates from the fleet CA, as the agent listener will use them.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import { FleetCa } from "./ca.js";
import { certificateInfo } from "./certificate-info.js";
import { controlPlaneIdentityCheck } from "./control-plane-identity-check.js";
import { createCsr } from "./csr.js";
import { generateKeyPair } from "./key-pair.js";
import { derToPem } from "./pem.js";
import { PkiError } from "./pki-error.js";
import { loadX509, webcrypto } from "./x509.js";

const x509 = await loadX509();

const HOUR = 3600_000;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-pki-mtls-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

interface ServerSide {
  authorized: boolean;
  authorizationError: string | undefined;
  agentId: string | null;
}

/** An mTLS server like the agent listener, but recording instead of refusing, so both outcomes can be observed. */
async function startRecordingServer(ca: FleetCa): Promise<{ port: number; seen: Promise<ServerSide>; close: () => Promise<void> }> {
  const serverCert = await ca.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: HOUR });
  let resolveSeen: (s: ServerSide) => void = () => {};
  const seen = new Promise<ServerSide>((resolve) => (resolveSeen = resolve));
  const server = tls.createServer(
    {
      key: serverCert.keyPem,
      cert: serverCert.certPem + ca.certPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: false,
    },
    (socket) => {
      const peer = socket.getPeerCertificate();
      resolveSeen({
        authorized: socket.authorized,
        authorizationError: socket.authorizationError?.toString(),
        agentId: peer.raw ? certificateInfo(peer.raw).agentId : null,
      });
      socket.end();
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { port, seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function agentCredentials(ca: FleetCa, agentId: string): Promise<{ key: string; cert: string }> {
  const { privateKeyPem } = await generateKeyPair();
  const issued = await ca.issueAgentCertificate(await createCsr(privateKeyPem, { commonName: agentId }), {
    agentId,
    lifetimeMs: HOUR,
  });
  return { key: privateKeyPem, cert: issued.certPem };
}

function connect(port: number, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options }, () => resolve(socket));
    socket.once("error", reject);
  });
}

describe("mutual TLS with fleet certificates", () => {
  let ca: FleetCa;
  let otherCa: FleetCa;
  before(async () => {
    ca = await FleetCa.loadOrCreate(path.join(tmpRoot, "ca"));
    otherCa = await FleetCa.loadOrCreate(path.join(tmpRoot, "other-ca"));
  });

  test("an agent certificate from the fleet CA is authorized, and both sides see who the other is", async () => {
    const server = await startRecordingServer(ca);
    try {
      const creds = await agentCredentials(ca, "agent-42");
      const socket = await connect(server.port, {
        ...creds,
        ca: [ca.certPem],
        checkServerIdentity: controlPlaneIdentityCheck(),
      });
      assert.equal(socket.authorized, true, "the agent trusts the control plane through the CA bundle");
      assert.equal(certificateInfo(socket.getPeerCertificate().raw).isControlPlane, true);
      // With TLS 1.3 the client finishes first; the server sees the client certificate a moment later.
      const seen = await server.seen;
      socket.destroy();
      assert.equal(seen.authorized, true, seen.authorizationError);
      assert.equal(seen.agentId, "agent-42");
    } finally {
      await server.close();
    }
  });

  test("an agent certificate from another CA is not authorized", async () => {
    const server = await startRecordingServer(ca);
    try {
      const creds = await agentCredentials(otherCa, "intruder");
      const socket = await connect(server.port, {
        ...creds,
        ca: [ca.certPem],
        checkServerIdentity: controlPlaneIdentityCheck(),
      });
      const seen = await server.seen;
      socket.destroy();
      assert.equal(seen.authorized, false);
      assert.match(seen.authorizationError ?? "", /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    } finally {
      await server.close();
    }
  });

  test("the control plane's own server certificate cannot be used as a client certificate", async () => {
    const server = await startRecordingServer(ca);
    try {
      const stolen = await ca.issueServerCertificate({ hosts: ["127.0.0.1"], lifetimeMs: HOUR });
      const socket = await connect(server.port, { key: stolen.keyPem, cert: stolen.certPem, ca: [ca.certPem] });
      const seen = await server.seen;
      socket.destroy();
      assert.equal(seen.authorized, false, "EKU serverAuth only: OpenSSL refuses it for a client");
      assert.match(seen.authorizationError ?? "", /PURPOSE/);
      assert.equal(seen.agentId, null);
    } finally {
      await server.close();
    }
  });

  test("an agent refuses a server presenting an agent certificate of the same CA", async () => {
    const impostor = await agentCredentials(ca, "compromised-agent");
    const server = tls.createServer({ key: impostor.key, cert: impostor.cert + ca.certPem }, (s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      // OpenSSL already refuses a clientAuth-only certificate from a server; the identity check is the second wall.
      await assert.rejects(
        connect(port, { ca: [ca.certPem], checkServerIdentity: controlPlaneIdentityCheck() }),
        /unsuitable certificate purpose/,
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("the identity check refuses a server whose chain is valid but which is not the control plane", async () => {
    // A CA made by hand, since the fleet CA never issues a serverAuth certificate without the control-plane URI.
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const caKeys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]));
    const rootCert = await x509.X509CertificateGenerator.createSelfSigned(
      { name: "CN=Some other service CA", keys: caKeys, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(true)] },
      webcrypto,
    );
    const leafKeys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]));
    const leafCert = await x509.X509CertificateGenerator.create(
      {
        subject: "CN=web",
        issuer: rootCert.subjectName,
        publicKey: leafKeys.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: alg,
        notBefore: new Date(Date.now() - HOUR),
        notAfter: new Date(Date.now() + HOUR),
        extensions: [
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: "ip", value: "127.0.0.1" }]),
        ],
      },
      webcrypto,
    );
    const keyPem = derToPem("PRIVATE KEY", new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", leafKeys.privateKey)));
    const rootPem = derToPem("CERTIFICATE", new Uint8Array(rootCert.rawData));
    const server = tls.createServer(
      { key: keyPem, cert: derToPem("CERTIFICATE", new Uint8Array(leafCert.rawData)) + rootPem },
      (s) => s.end(),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      // Without the check, the default hostname check accepts it (IP SAN 127.0.0.1 matches).
      const plain = await connect(port, { ca: [rootPem] });
      assert.equal(plain.authorized, true);
      plain.destroy();
      await assert.rejects(
        connect(port, { ca: [rootPem], checkServerIdentity: controlPlaneIdentityCheck() }),
        (err: unknown) => err instanceof PkiError && err.code === "CERT_INVALID" && /urn:ferry:control-plane/.test(err.message),
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
