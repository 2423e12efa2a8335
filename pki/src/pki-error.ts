// Failures of the PKI package, each with a stable code that callers map once to their wire (gRPC, HTTP, CLI).
//
// Messages are written for the operator who has to fix the problem: they say what was expected and what was
// found. They never contain key material or join-token secrets.

export type PkiErrorCode =
  /** Not a parseable PKCS#10 PEM, or its self-signature does not verify. */
  | "CSR_INVALID"
  /** The CSR's key is not ECDSA P-256 (RSA, P-384, Ed25519... are refused; the message names what was given). */
  | "CSR_KEY_NOT_ALLOWED"
  /** A private key handed to the package is unreadable or not ECDSA P-256. */
  | "KEY_INVALID"
  /** A join string that does not decode; the message says which part is wrong. */
  | "JOIN_STRING_MALFORMED"
  /** The on-disk CA is unreadable or inconsistent, or its key file is accessible to group/others. */
  | "CA_FILES_INVALID"
  /** A certificate that does not parse, or (first contact) a server certificate the pinned CA does not vouch for. */
  | "CERT_INVALID"
  /** First contact: no certificate presented by the server matches the CA fingerprint from the join string. */
  | "CA_PIN_MISMATCH"
  /** First contact: the enrolment endpoint could not be reached or the TLS handshake failed (retryable). */
  | "CA_UNREACHABLE";

export class PkiError extends Error {
  readonly code: PkiErrorCode;

  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PkiError";
    this.code = code;
  }
}
