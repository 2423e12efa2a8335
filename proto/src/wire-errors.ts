// Errors on the wire between agents and the control plane: the catalogue and the reading side, without grpc-js.
//
// A gRPC status code says what class of failure happened; the Ferry code (metadata "ferry-error-code") says
// exactly which, and stays stable across releases so agents and operators can act on it. The status details
// carry "CODE: human message". A retry hint travels as "ferry-retry-after-ms".
//
// The building side (wireError(), which makes a grpc-js ServiceError for the control plane's handlers) is in
// errors.ts; this file is what the agent imports through @ferry/proto/wire.
import { GrpcStatus, type GrpcStatusCode } from "./status.js";

/** Every code the agent protocol can answer with. Documented in docs/errors.md. */
export const WireErrorCodes = {
  CERT_REQUIRED: GrpcStatus.UNAUTHENTICATED,
  CERT_UNTRUSTED: GrpcStatus.UNAUTHENTICATED,
  CERT_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  CERT_NOT_YET_VALID: GrpcStatus.UNAUTHENTICATED,
  CERT_REVOKED: GrpcStatus.PERMISSION_DENIED,
  AGENT_REVOKED: GrpcStatus.PERMISSION_DENIED,
  AGENT_UNKNOWN: GrpcStatus.PERMISSION_DENIED,
  IDENTITY_MISMATCH: GrpcStatus.PERMISSION_DENIED,
  JOIN_TOKEN_INVALID: GrpcStatus.UNAUTHENTICATED,
  JOIN_TOKEN_MALFORMED: GrpcStatus.INVALID_ARGUMENT,
  JOIN_TOKEN_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  JOIN_TOKEN_USED: GrpcStatus.UNAUTHENTICATED,
  CSR_INVALID: GrpcStatus.INVALID_ARGUMENT,
  CSR_KEY_NOT_ALLOWED: GrpcStatus.INVALID_ARGUMENT,
  CSR_KEY_REUSED: GrpcStatus.INVALID_ARGUMENT,
  MALFORMED_MESSAGE: GrpcStatus.INVALID_ARGUMENT,
  MESSAGE_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  PROTOCOL_VIOLATION: GrpcStatus.FAILED_PRECONDITION,
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  SUPERSEDED: GrpcStatus.ABORTED,
  SERVER_SHUTTING_DOWN: GrpcStatus.UNAVAILABLE,
  INTERNAL: GrpcStatus.INTERNAL,
} as const satisfies Record<string, GrpcStatusCode>;

export type WireErrorCode = keyof typeof WireErrorCodes;

export const ERROR_CODE_KEY = "ferry-error-code";
export const RETRY_AFTER_KEY = "ferry-retry-after-ms";

export interface WireError {
  code: WireErrorCode | "UNKNOWN";
  /** The gRPC status (a GrpcStatus value; equal to grpc-js's status enum). */
  status: number;
  message: string;
  retryAfterMs?: number;
}

/**
 * What parseWireError reads: a grpc-js ServiceError or StatusObject, or an error of the agent's own client. Both
 * carry a numeric `code`, the status `details` and metadata whose get(key) returns the values of a key.
 */
export interface StatusLike {
  code?: unknown;
  details?: unknown;
  message?: unknown;
  metadata?: { get(key: string): ReadonlyArray<string | Buffer> } | undefined;
}

function isWireCode(code: string): code is WireErrorCode {
  return Object.hasOwn(WireErrorCodes, code);
}

/** Reads a Ferry error back from a call error (grpc-js's or the agent client's) or a call status. */
export function parseWireError(err: unknown): WireError {
  const e = (typeof err === "object" && err !== null ? err : {}) as StatusLike;
  const status = typeof e.code === "number" ? e.code : GrpcStatus.UNKNOWN;
  const raw = e.metadata?.get(ERROR_CODE_KEY)[0];
  const fromMeta = typeof raw === "string" ? raw : undefined;
  const details = typeof e.details === "string" ? e.details : String(e.message ?? err);
  const prefix = /^([A-Z_]+): /.exec(details)?.[1];
  const candidate = fromMeta ?? prefix ?? "";
  const code = isWireCode(candidate) ? candidate : "UNKNOWN";
  const message = code !== "UNKNOWN" && details.startsWith(`${code}: `) ? details.slice(code.length + 2) : details;
  const retry = e.metadata?.get(RETRY_AFTER_KEY)[0];
  const out: WireError = { code, status, message };
  if (typeof retry === "string" && /^\d+$/.test(retry)) out.retryAfterMs = Number(retry);
  return out;
}

/** What each wire code means and what to do about it; rendered into docs/errors.md. */
export const WIRE_ERROR_DESCRIPTIONS: Record<WireErrorCode, string> = {
  CERT_REQUIRED: "The agent listener got a connection without a client certificate. Agents present the certificate from enrolment.",
  CERT_UNTRUSTED: "The client certificate was not issued by a CA this fleet trusts, or carries no agent identity.",
  CERT_EXPIRED: "The client certificate has expired. The agent missed its renewals; enrol it again.",
  CERT_NOT_YET_VALID: "The client certificate is not valid yet: the agent's clock is far behind.",
  CERT_REVOKED: "This certificate serial was revoked. The agent must re-enrol.",
  AGENT_REVOKED: "The agent was revoked. It must be enrolled again with a new join token.",
  AGENT_UNKNOWN: "The certificate names an agent this control plane does not know.",
  IDENTITY_MISMATCH: "A message claimed an agent id other than the one in the peer certificate. The stream is closed.",
  JOIN_TOKEN_INVALID: "The join token is unknown or was revoked.",
  JOIN_TOKEN_MALFORMED: "The join token is not of the right form.",
  JOIN_TOKEN_EXPIRED: "The join token's time to live has passed. Create a new one.",
  JOIN_TOKEN_USED: "The join token has no uses left.",
  CSR_INVALID: "The certificate signing request does not parse or its signature does not verify.",
  CSR_KEY_NOT_ALLOWED: "The certificate signing request's key is not ECDSA P-256.",
  CSR_KEY_REUSED: "A renewal's CSR carries a public key this agent has had certified before; renew with a new key pair (Ferry's agent always does).",
  MALFORMED_MESSAGE: "A protobuf message could not be decoded.",
  MESSAGE_TOO_LARGE: "A message is larger than the server accepts (--max-message-bytes).",
  PROTOCOL_VIOLATION: "The stream broke the protocol (no Hello first, a second Hello, silence past the liveness window).",
  RATE_LIMITED: "Admission limit reached (new streams, enrolments, or certificate renewals of one agent); retry after ferry-retry-after-ms.",
  SUPERSEDED: "A newer stream from the same agent replaced this one.",
  SERVER_SHUTTING_DOWN: "The control plane is stopping; reconnect after the retry delay.",
  INTERNAL: "An unexpected fault on the server; its log has the details.",
};
