// Store failures in Ferry's error vocabulary, decided in one place for every caller that answers a client.
//
//  - The store's own errors (StoreError: unreachable, locked, migrated by a newer build) mean this replica cannot use
//    its database now: STORE_UNAVAILABLE, with the store's code as details.reason.
//  - PostgreSQL's connection-class failures (SQLSTATE 08xxx, 53xxx, 57P01-57P03) and a socket that broke under a
//    query mean the same.
//  - Data exceptions (class 22: a NUL byte or invalid UTF-8 in text, a number out of a column's range, text that is
//    not a valid value of its type) and program limits hit by a value (54xxx: JSON nested past the server's stack
//    depth) are caused by a value the client sent: VALIDATION_FAILED. The HTTP layer refuses such values before
//    they reach SQL; this is the backstop for any it does not know about, so they never surface as INTERNAL.
//
// Anything else (a unique violation the domain did not expect, a syntax error) is a fault, and stays unmapped.
import { FerryError } from "../../domain/errors.js";
import { isStoreError } from "./store-error.js";

const BROKEN_CONNECTION = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

export function foldDatabaseError(err: unknown): FerryError | null {
  if (isStoreError(err)) {
    return new FerryError("STORE_UNAVAILABLE", "the database cannot be used now; retry shortly", { reason: err.code }, { cause: err });
  }
  if (typeof err !== "object" || err === null) return null;
  const code = (err as { code?: unknown }).code;
  const message = (err as { message?: unknown }).message;
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) {
    const cls = code.slice(0, 2);
    if (cls === "22" || cls === "54") {
      return new FerryError("VALIDATION_FAILED", `a value in the request cannot be stored: ${typeof message === "string" ? message : code}`, { sqlstate: code }, { cause: err });
    }
    if (cls === "08" || cls === "53" || code === "57P01" || code === "57P02" || code === "57P03") {
      return new FerryError("STORE_UNAVAILABLE", "the database cannot be used now; retry shortly", { reason: code }, { cause: err });
    }
    return null;
  }
  if ((typeof code === "string" && BROKEN_CONNECTION.has(code)) || (typeof message === "string" && /^Connection terminated/.test(message))) {
    return new FerryError("STORE_UNAVAILABLE", "the connection to the database broke; retry shortly", { reason: typeof code === "string" ? code : "CONNECTION_TERMINATED" }, { cause: err });
  }
  return null;
}
