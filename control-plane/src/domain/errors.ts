// Terms (fleet):
//   agent         — a process on or next to targets, identified only by its certificate (SAN urn:ferry:agent:<id>)
//   join token    — one-time secret that lets a new agent enrol; stored as a SHA-256 hash, scoped to an environment
//   API token     — bearer secret for the JSON API and CLI, with a subject and roles; stored hashed
//   replica       — one control-plane process; replicas share PostgreSQL and nothing else
//
// Domain code throws FerryError with a stable code. Each wire (HTTP, gRPC) maps codes to its status once; the
// original error travels as `cause`. The catalogue with HTTP statuses and descriptions lives in error-catalogue.ts.
import type { ErrorCode } from "./error-catalogue.js";

export class FerryError extends Error {
  override readonly name = "FerryError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isFerryError(err: unknown): err is FerryError {
  return err instanceof FerryError;
}
