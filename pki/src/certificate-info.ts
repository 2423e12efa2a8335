// What Ferry reads out of a certificate. This is parsing, not trust: the fields mean something only for a
// certificate whose chain TLS (or the caller) has already verified against the fleet CA.
import { X509Certificate } from "node:crypto";
import { fingerprintOfDer } from "./fingerprint.js";
import { AGENT_URI_PREFIX, CONTROL_PLANE_URI } from "./identity.js";
import { decodeSinglePem } from "./pem.js";
import { PkiError } from "./pki-error.js";
import { x509 } from "./x509.js";

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

/** The URIs in a certificate's subjectAltName, read from the DER (node's text form quotes and escapes). */
export function sanUris(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return [];
  return san.names.items.filter((n) => n.type === "url").map((n) => n.value);
}

export function certificateInfo(cert: string | Buffer | X509Certificate): CertificateInfo {
  const nodeCert = toX509Certificate(cert);
  let parsed: x509.X509Certificate;
  let uris: string[];
  try {
    parsed = new x509.X509Certificate(nodeCert.raw);
    uris = sanUris(parsed);
  } catch (err) {
    throw new PkiError("CERT_INVALID", "the certificate's extensions cannot be parsed", { cause: err });
  }
  const agentIds = uris.filter((u) => u.startsWith(AGENT_URI_PREFIX)).map((u) => u.slice(AGENT_URI_PREFIX.length));
  // The fleet CA never issues this; refusing is safer than picking one identity out of two.
  if (new Set(agentIds).size > 1) {
    throw new PkiError("CERT_INVALID", `the certificate names more than one agent: ${agentIds.join(", ")}`);
  }
  return {
    serial: parsed.serialNumber.toLowerCase(),
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    subjectCommonName: parsed.subjectName.getField("CN")[0] ?? "",
    agentId: agentIds[0] || null,
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
 * parsing the DER again: certificateInfo() costs about 1.3 ms of CPU per certificate (a JavaScript ASN.1 parser),
 * which made it a third of the agent listener's CPU in a reconnect storm; this costs microseconds. Node prints the
 * subjectAltName as "TYPE:value" entries joined by ", " and JSON-quotes any value with a comma, quote or
 * non-printable character in it, so text without a quote splits unambiguously. Anything this cannot read plainly
 * (a quote in the text, a date or serial not in OpenSSL's usual form) is read from the DER by certificateInfo().
 * Same result either way; it is parsing, not trust (see above).
 */
export function peerIdentity(peer: PeerCertificateFields): PeerIdentity {
  const san = peer.subjectaltname ?? "";
  const notBefore = Date.parse(peer.valid_from);
  const notAfter = Date.parse(peer.valid_to);
  if (san.includes('"') || !HEX.test(peer.serialNumber) || Number.isNaN(notBefore) || Number.isNaN(notAfter)) {
    const info = certificateInfo(peer.raw);
    return { serial: info.serial, notBefore: info.notBefore, notAfter: info.notAfter, agentId: info.agentId, isControlPlane: info.isControlPlane };
  }
  const uris = san === "" ? [] : san.split(", ").filter((e) => e.startsWith("URI:")).map((e) => e.slice(4));
  const agentIds = uris.filter((u) => u.startsWith(AGENT_URI_PREFIX)).map((u) => u.slice(AGENT_URI_PREFIX.length));
  if (new Set(agentIds).size > 1) {
    throw new PkiError("CERT_INVALID", `the certificate names more than one agent: ${agentIds.join(", ")}`);
  }
  return {
    serial: peer.serialNumber.toLowerCase(),
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    agentId: agentIds[0] || null,
    isControlPlane: uris.includes(CONTROL_PLANE_URI),
  };
}
