// Typed errors of the agent.
//
// Every failure the agent reports to an operator carries a stable code (matching the wire catalogue where the
// control plane said it, agent-local otherwise) and a kind. The kind is what the CLI acts on: it decides the exit
// status, so "the operator mistyped a flag", "the control plane said no" and "this agent must be re-enrolled" stay
// distinguishable for installers and supervisors (systemd `RestartPreventExitStatus=4`, for example).
import type { WireErrorCode } from "@ferry/proto/wire";

/**
 * - `usage`: bad flags, missing or unusable state directory (exit 2).
 * - `refused`: the control plane (or the pinned CA check) refused enrolment (exit 3).
 * - `reenrol`: revoked, unknown or expired identity; retrying cannot help, the operator must re-enrol (exit 4).
 * - `unavailable`: the control plane could not be reached or answered with a transient failure (exit 1).
 * - `internal`: anything else (exit 1).
 */
export type AgentErrorKind = "usage" | "refused" | "reenrol" | "unavailable" | "internal";

/** Codes raised by the agent itself (the wire codes come from `@ferry/proto`). */
export type LocalErrorCode =
  | "STATE_DIR_MISSING"
  | "STATE_DIR_CORRUPT"
  | "STATE_DIR_INSECURE"
  | "REGISTRY_AUTH_INSECURE"
  | "REGISTRY_AUTH_INVALID"
  | "CONFIG_INVALID"
  | "CONFIG_INSECURE"
  | "NOT_ENROLLED"
  | "ALREADY_ENROLLED"
  | "JOIN_STRING_MALFORMED"
  | "CA_PIN_MISMATCH"
  | "ENROL_UNAVAILABLE"
  | "ENROL_RESPONSE_INVALID"
  | "RENEWAL_RESPONSE_INVALID"
  | "SESSION_STOPPED"
  | "RUNTIME_FLAGS_UNSUITABLE"
  | "USAGE";

export type AgentErrorCode = LocalErrorCode | WireErrorCode | "UNKNOWN";

export class AgentError extends Error {
  override readonly name = "AgentError";
  readonly code: AgentErrorCode;
  readonly kind: AgentErrorKind;
  /** Minimum wait before retrying, when the control plane gave one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: AgentErrorCode,
    kind: AgentErrorKind,
    message: string,
    opts: { cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.kind = kind;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export function isAgentError(err: unknown): err is AgentError {
  return err instanceof AgentError;
}

/**
 * Wire codes after which reconnecting cannot succeed: the identity in the state directory is dead. The session
 * stops as `failed` instead of spinning, and the CLI exits 4.
 */
export const REENROL_CODES: ReadonlySet<string> = new Set([
  "AGENT_REVOKED",
  "CERT_REVOKED",
  "CERT_EXPIRED",
  "AGENT_UNKNOWN",
  "IDENTITY_MISMATCH",
]);
