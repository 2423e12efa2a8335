// Certificate fingerprints as Ferry writes them everywhere (join strings, pins, logs, dashboard):
// "sha256:" + lowercase hex SHA-256 of the certificate's DER.
import { createHash, X509Certificate } from "node:crypto";
import { decodeSinglePem } from "./pem.js";
import { PkiError } from "./pki-error.js";

export const FINGERPRINT_PATTERN = /^sha256:[0-9a-f]{64}$/;

export function fingerprintOfDer(der: Uint8Array): string {
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

/** Fingerprint of a certificate given as PEM (exactly one certificate) or DER. Throws CERT_INVALID. */
export function fingerprintOf(cert: string | Buffer): string {
  const der =
    typeof cert === "string" ? decodeSinglePem(cert, ["CERTIFICATE"], "certificate", "CERT_INVALID") : cert;
  try {
    // Parsing is only a check: hashing bytes that are not a certificate would produce a pin that matches nothing.
    new X509Certificate(der);
  } catch (err) {
    throw new PkiError("CERT_INVALID", "not a parseable X.509 certificate", { cause: err });
  }
  return fingerprintOfDer(der);
}
