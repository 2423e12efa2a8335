// Turning what the Docker Engine answers into the driver's failures. The codes themselves are @ferry/contract's
// RESULT_CODES (docs/errors.md), shared by every driver.
import type { ResultCode } from "@ferry/contract";

import { DriverError } from "../driver.js";

export function dockerError(code: ResultCode, message: string, details: Record<string, unknown> = {}): DriverError {
  return new DriverError(code, message, details);
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
