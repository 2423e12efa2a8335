// Terms (fleet):
//   agent         — a process on or next to targets, identified only by its certificate (SAN urn:ferry:agent:<id>)
//   join token    — one-time secret that lets a new agent enrol; stored as a SHA-256 hash, scoped to an environment
//   API token     — bearer secret for the JSON API and CLI, with a subject and roles; stored hashed
//   replica       — one control-plane process; replicas share PostgreSQL and nothing else
//
// Domain code throws FerryError with a stable code. Each code belongs to a transport-neutral category
// (error-category.ts); each wire (HTTP, gRPC) maps categories to its statuses once, in its adapter. The original error
// travels as `cause`. The catalogue of codes, categories and descriptions lives in error-catalogue.ts.
import { ERROR_CATALOGUE, type ErrorCode } from "./error-catalogue.js";
import type { ErrorCategory } from "./error-category.js";

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

  get category(): ErrorCategory {
    return ERROR_CATALOGUE[this.code].category;
  }
}

export function isFerryError(err: unknown): err is FerryError {
  return err instanceof FerryError;
}
