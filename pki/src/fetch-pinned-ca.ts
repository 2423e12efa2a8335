// Agent side, first contact with the enrolment endpoint: learn the fleet CA without trusting on first use.
//
// The agent has no CA yet, only the fingerprint from the join string. It completes a TLS handshake that
// verifies nothing, then checks what the server presented against the pin. This is safe because the handshake
// still proves the server holds the private key of the leaf certificate it sent (TLS CertificateVerify), and
// the checks below tie that leaf to the pinned CA and to the control-plane role. A man in the middle can copy
// the CA certificate, but not produce a leaf signed by the CA's key.
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import * as tls from "node:tls";
import { certificateInfo } from "./certificate-info.js";
import type { CertificateInfo } from "./certificate-info.js";
import { parseEndpoint } from "./endpoint.js";
import { FINGERPRINT_PATTERN, fingerprintOfDer } from "./fingerprint.js";
import { CONTROL_PLANE_URI } from "./identity.js";
import { derToPem } from "./pem.js";
import { PkiError } from "./pki-error.js";

const DEFAULT_TIMEOUT_MS = 10_000;
// The server sends leaf + CA; anything much longer is not a Ferry control plane.
const MAX_CHAIN_LENGTH = 10;

/** The certificates the server presented, leaf first, as DER. */
function presentedChain(peer: tls.DetailedPeerCertificate): Buffer[] {
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  // Node links issuerCertificate by issuer name and key id among the presented certificates (falling back to its
  // default trust store), without checking signatures; a presented certificate that issued nothing in the chain
  // is not linked. A self-signed root is its own issuer, so the walk stops at the first repeat.
  let cert: tls.DetailedPeerCertificate | undefined = peer;
  for (; cert?.raw !== undefined; cert = cert.issuerCertificate) {
    const fp = fingerprintOfDer(cert.raw);
    if (seen.has(fp) || chain.length >= MAX_CHAIN_LENGTH) break;
    seen.add(fp);
    chain.push(cert.raw);
  }
  return chain;
}

function readChain(host: string, port: number, servername: string | undefined, timeoutMs: number, alpn: string[]): Promise<Buffer[]> {
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      // SNI may carry a DNS name only (RFC 6066).
      ...(servername !== undefined ? { servername } : isIP(host) === 0 ? { servername: host } : {}),
      // Deliberately verifies nothing: the pin check below replaces chain validation for this one connection,
      // and nothing but certificates is read from it.
      rejectUnauthorized: false,
      // The enrolment listener is gRPC (HTTP/2): offering h2 makes this an ordinary connection to it. The API over
      // HTTPS speaks HTTP/1.1 and refuses a handshake offering only h2, so its callers ask for that.
      ALPNProtocols: alpn,
      minVersion: "TLSv1.2",
    });
    const finish = (err: Error | undefined, chain?: Buffer[]) => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.on("error", () => {});
      socket.destroy();
      if (err !== undefined) reject(err);
      else resolve(chain ?? []);
    };
    const timer = setTimeout(() => {
      finish(new PkiError("CA_UNREACHABLE", `no TLS handshake with ${where} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("secureConnect", () => finish(undefined, presentedChain(socket.getPeerCertificate(true))));
    socket.once("error", (err: Error) => {
      const message = `cannot complete a TLS handshake with ${where}: ${err.message}`;
      finish(new PkiError("CA_UNREACHABLE", message, { cause: err }));
    });
  });
}

function describeValidity(info: CertificateInfo): string {
  return `valid ${info.notBefore.toISOString()} to ${info.notAfter.toISOString()}`;
}

function isCurrentlyValid(info: CertificateInfo, now: Date): boolean {
  return info.notBefore <= now && now <= info.notAfter;
}

/**
 * Connects to endpoint (host:port) without trusting anything, finds the presented certificate whose fingerprint
 * equals the pin, checks that it is a CA and that the server's leaf certificate is signed by it, currently valid
 * and carries the control-plane SAN URI, and returns that CA certificate as PEM.
 *
 * Throws PkiError CA_PIN_MISMATCH when no presented certificate matches the pin, CERT_INVALID when the pinned
 * CA does not vouch for the server, CA_UNREACHABLE on connection failure or timeout (default 10 s).
 */
export async function fetchPinnedCa(
  endpoint: string,
  pinnedFingerprint: string,
  opts: { timeoutMs?: number; servername?: string; alpnProtocols?: string[] } = {},
): Promise<string> {
  const target = parseEndpoint(endpoint);
  if (!target.ok) throw new RangeError(`enrolment endpoint: ${target.reason}`);
  const pin = pinnedFingerprint.toLowerCase();
  if (!FINGERPRINT_PATTERN.test(pin)) {
    const got = JSON.stringify(pinnedFingerprint);
    throw new RangeError(`pinned fingerprint must be "sha256:" followed by 64 hex digits, got ${got}`);
  }
  const chain = await readChain(target.host, target.port, opts.servername, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, opts.alpnProtocols ?? ["h2"]);
  const leafDer = chain[0];
  if (leafDer === undefined) throw new PkiError("CERT_INVALID", `${endpoint} presented no certificate`);

  const fingerprints = chain.map((der) => fingerprintOfDer(der));
  const caDer = chain[fingerprints.indexOf(pin)];
  if (caDer === undefined) {
    throw new PkiError(
      "CA_PIN_MISMATCH",
      `no certificate presented by ${endpoint} matches the pinned CA fingerprint ${pin}; it presented ` +
        `${fingerprints.join(", ")}. Check that the join string was made for this control plane, and suspect ` +
        `interception if it was.`,
    );
  }
  const now = new Date();
  const ca = new X509Certificate(caDer);
  if (!ca.ca) {
    throw new PkiError("CERT_INVALID", `the pinned certificate presented by ${endpoint} is not a CA certificate`);
  }
  const caInfo = certificateInfo(ca);
  if (!isCurrentlyValid(caInfo, now)) {
    throw new PkiError(
      "CERT_INVALID",
      `the pinned CA is not valid now (${describeValidity(caInfo)}); check this host's clock`,
    );
  }
  const leaf = new X509Certificate(leafDer);
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) {
    throw new PkiError(
      "CERT_INVALID",
      `the server certificate presented by ${endpoint} is not signed by the pinned CA`,
    );
  }
  const leafInfo = certificateInfo(leaf);
  if (!isCurrentlyValid(leafInfo, now)) {
    throw new PkiError(
      "CERT_INVALID",
      `the server certificate presented by ${endpoint} is not valid now (${describeValidity(leafInfo)}); ` +
        `check this host's clock`,
    );
  }
  if (!leafInfo.isControlPlane) {
    throw new PkiError(
      "CERT_INVALID",
      `the server certificate presented by ${endpoint} does not carry ${CONTROL_PLANE_URI}: ` +
        `it is not a Ferry control plane`,
    );
  }
  return derToPem("CERTIFICATE", caDer);
}
