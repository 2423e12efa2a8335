// Errors the store adapters raise themselves, with stable codes the composition root and CLI match on.
// Errors that PostgreSQL reports about a statement (unique violation, syntax error, …) are passed through unchanged
// from both adapters, with the SQLSTATE in `code`, so callers can match e.g. `err.code === "23505"` on either backend.

export type StoreErrorCode =
  /** A PGlite data directory is already open in another process (or earlier in this one). */
  | "STORE_LOCKED"
  /** A migration that the database recorded as applied has different content in this build. */
  | "MIGRATION_CHANGED"
  /** The database carries migrations this build does not know: it was upgraded by a newer Ferry. */
  | "DATABASE_NEWER"
  /** The PostgreSQL server could not be reached (refused, timed out, unknown host, rejected the login). */
  | "STORE_UNAVAILABLE"
  /** A PGlite data directory is not a whole database (files missing or damaged); Ferry will not initialise over it. */
  | "STORE_CORRUPT";

export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}
