// Turning what the Docker Engine answers into the driver's failures. The codes themselves are @ferry/contract's
// RESULT_CODES (docs/errors.md), shared by every driver.
import type { ResultCode } from "@ferry/contract";

import { DriverError } from "../driver.js";

export function dockerError(code: ResultCode, message: string, details: Record<string, unknown> = {}): DriverError {
  return new DriverError(code, message, details);
}

/**
 * Socket-level failures: the engine is not there (as opposed to the engine answering with an error). The engine
 * client (engine/client.ts) leaves the socket's errno code on these, and names a request the engine left unanswered
 * for too long ETIMEDOUT.
 */
const UNREACHABLE = new Set(["ENOENT", "ECONNREFUSED", "EACCES", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTSOCK"]);

export function isEngineUnreachable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && UNREACHABLE.has(code);
}

/** HTTP status of an Engine API error answer (404 no such container, 409 conflict, 304 not modified, ...), if it is one. */
export function engineStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** The Engine's own message for an API error (the client's EngineError carries it as its message), else the error's. */
export function engineMessage(err: unknown): string {
  const e = err as { message?: unknown } | null;
  if (typeof e?.message === "string") return e.message;
  return String(err);
}
