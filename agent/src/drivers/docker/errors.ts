// The Docker driver's failure codes. They are part of the task result the control plane records and operators see,
// so they are stable: add codes, never rename or reuse one.
import { DriverError } from "../types.js";

export const DOCKER_ERROR_CODES = [
  /** The target config (or how it fits the task's images) is wrong; names the field. Nothing was touched. */
  "INVALID_TARGET_CONFIG",
  /** The Docker Engine did not answer on its socket. */
  "DOCKER_UNAVAILABLE",
  /** The registry refused or failed the pull (auth, unknown manifest, network). Nothing was touched. */
  "IMAGE_PULL_FAILED",
  /** What was pulled or started does not carry the pinned digest (tampered registry, moved image, bad pin). */
  "DIGEST_MISMATCH",
  "CONTAINER_CREATE_FAILED",
  "CONTAINER_START_FAILED",
  /** The new container did not become healthy in time; details.health carries the check's output. */
  "HEALTH_CHECK_FAILED",
  /** Putting the previous container back failed too: the target needs an operator. Never `restored`. */
  "RESTORE_FAILED",
  /** The task was cancelled; the previous container was put back. */
  "ABORTED",
] as const;

export type DockerErrorCode = (typeof DOCKER_ERROR_CODES)[number];

export function dockerError(code: DockerErrorCode, message: string, details: Record<string, unknown> = {}, restored = false): DriverError {
  return new DriverError(code, message, details, restored);
}

/** Socket-level failures: the engine is not there (as opposed to the engine answering with an error). */
const UNREACHABLE = new Set(["ENOENT", "ECONNREFUSED", "EACCES", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTSOCK"]);

export function isEngineUnreachable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && UNREACHABLE.has(code);
}

/** HTTP status of an Engine API error from dockerode (404 no such container, 409 conflict, ...), if it has one. */
export function engineStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** The Engine's own message for an API error, without dockerode's "(HTTP code 404) no such container -" prefix. */
export function engineMessage(err: unknown): string {
  const e = err as { json?: { message?: unknown }; reason?: unknown; message?: unknown } | null;
  if (e?.json && typeof e.json.message === "string") return e.json.message;
  if (typeof e?.message === "string") return e.message;
  return String(err);
}
