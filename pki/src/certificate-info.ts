// What Ferry reads out of a certificate. This is parsing, not trust: the fields mean something only for a
// certificate whose chain TLS (or the caller) has already verified against the fleet CA.
import { X509Certificate } from "node:crypto";
import { fingerprintOfDer } from "./fingerprint.js";
import { AGENT_URI_PREFIX, CONTROL_PLANE_URI } from "./identity.js";
import { decodeSinglePem } from "./pem.js";
import { PkiError } from "./pki-error.js";

export interface CertificateInfo {
  /** Lowercase hex, no colons. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  subjectCommonName: string;
  /** From the SAN URI "urn:ferry:agent:<id>"; null if the certificate has none. */
  agentId: string | null;
  /** The certificate carries the SAN URI "urn:ferry:control-plane". */
  isControlPlane: boolean;
  fingerprint: string;
  /** The issuer's distinguished name as node:crypto prints it, e.g. "CN=Ferry fleet CA 1a2b3c4d". */
  issuer: string;
}

/** A PEM string (exactly one certificate), a DER (or PEM) Buffer, or an X509Certificate. Throws CERT_INVALID. */
export function toX509Certificate(cert: string | Buffer | X509Certificate): X509Certificate {
  if (cert instanceof X509Certificate) return cert;
  const input = typeof cert === "string" ? decodeSinglePem(cert, ["CERTIFICATE"], "certificate", "CERT_INVALID") : cert;
  try {
    return new X509Certificate(input);
  } catch (err) {
    throw new PkiError("CERT_INVALID", "not a parseable X.509 certificate", { cause: err });
  }
}

/**
 * The URIs in a subjectAltName as node prints it (X509Certificate#subjectAltName, TLSSocket#getPeerCertificate()):
 * "TYPE:value" entries joined by ", ", where a value with a comma, quote, backslash, apostrophe or control
 * character in it is written as a JSON string (commas inside as \u002c), so no raw ", " occurs inside an entry and
 * the text splits unambiguously. Throws CERT_INVALID for a quoted value that is not a JSON string.
 */
export function sanUris(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const uris: string[] = [];
  for (const entry of subjectAltName.split(", ")) {
    if (!entry.startsWith("URI:")) continue;
    const value = entry.slice(4);
    if (!value.startsWith('"')) {
      uris.push(value);
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch (err) {
      throw new PkiError("CERT_INVALID", "the certificate's subjectAltName cannot be read", { cause: err });
    }
    if (typeof parsed !== "string") throw new PkiError("CERT_INVALID", "the certificate's subjectAltName cannot be read");
    uris.push(parsed);
  }
  return uris;
}

/** The agent id a certificate names in its SAN URIs (null if none); refuses a certificate naming two. */
function agentIdOf(uris: readonly string[]): string | null {
  const agentIds = uris.filter((u) => u.startsWith(AGENT_URI_PREFIX)).map((u) => u.slice(AGENT_URI_PREFIX.length));
  // The fleet CA never issues this; refusing is safer than picking one identity out of two.
  if (new Set(agentIds).size > 1) {
    throw new PkiError("CERT_INVALID", `the certificate names more than one agent: ${agentIds.join(", ")}`);
  }
  return agentIds[0] || null;
}

/**
 * The subject's common name from node's multi-line subject text ("CN=name", one attribute a line; RFC 2253
 * specials escaped with a backslash, control characters as \XX), or "" when there is none.
 */
function commonNameOf(subject: string): string {
  const line = subject.split("\n").find((l) => l.startsWith("CN="));
  if (line === undefined) return "";
  return line.slice(3).replace(/\\([0-9A-Fa-f]{2}|.)/g, (_m, c: string) => (c.length === 2 ? String.fromCharCode(parseInt(c, 16)) : c));
}

/** A time as node prints a certificate's validity ("Dec 22 08:06:05 2026 GMT"); CERT_INVALID if unreadable. */
function certificateTime(text: string, field: string): Date {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new PkiError("CERT_INVALID", `the certificate's ${field} time cannot be read: ${text}`);
  return new Date(ms);
}

/** Parsed with node:crypto alone (no ASN.1 library loaded): what a running agent reads of its own certificate. */
export function certificateInfo(cert: string | Buffer | X509Certificate): CertificateInfo {
  const nodeCert = toX509Certificate(cert);
  const uris = sanUris(nodeCert.subjectAltName);
  return {
    serial: nodeCert.serialNumber.toLowerCase(),
    notBefore: certificateTime(nodeCert.validFrom, "notBefore"),
    notAfter: certificateTime(nodeCert.validTo, "notAfter"),
    subjectCommonName: commonNameOf(nodeCert.subject),
    agentId: agentIdOf(uris),
    isControlPlane: uris.includes(CONTROL_PLANE_URI),
    fingerprint: fingerprintOfDer(nodeCert.raw),
    issuer: nodeCert.issuer,
  };
}

/** What node:tls already parsed out of a peer's certificate (TLSSocket.getPeerCertificate()), as far as Ferry reads it. */
export interface PeerCertificateFields {
  raw: Buffer;
  /** Uppercase hex, as OpenSSL prints it. */
  serialNumber: string;
  /** e.g. "Dec 22 08:06:05 2026 GMT" */
  valid_from: string;
  valid_to: string;
  /** e.g. "URI:urn:ferry:agent:agt_1, DNS:host"; entries with special characters are JSON-quoted by node. */
  subjectaltname?: string | undefined;
}

export type PeerIdentity = Pick<CertificateInfo, "serial" | "notBefore" | "notAfter" | "agentId" | "isControlPlane">;

const HEX = /^[0-9A-Fa-f]+$/;

/**
 * The identity fields of a TLS peer's certificate, read from what node:tls parsed during the handshake instead of
 * parsing the DER again (microseconds; a reconnect storm makes this a hot path on the agent listener). The same
 * reading as certificateInfo(), which takes the same fields from node:crypto's X509Certificate. It is parsing, not
 * trust (see above).
 */
export function peerIdentity(peer: PeerCertificateFields): PeerIdentity {
  if (!HEX.test(peer.serialNumber)) throw new PkiError("CERT_INVALID", `the certificate's serial number cannot be read: ${peer.serialNumber}`);
  const uris = sanUris(peer.subjectaltname);
  return {
    serial: peer.serialNumber.toLowerCase(),
    notBefore: certificateTime(peer.valid_from, "notBefore"),
    notAfter: certificateTime(peer.valid_to, "notAfter"),
    agentId: agentIdOf(uris),
    isControlPlane: uris.includes(CONTROL_PLANE_URI),
  };
}
