// Keyset pagination: a cursor is the sort key of the last item returned, opaque to clients. Stable under inserts,
// unlike offsets, and cheap at any depth.
import { FerryError } from "../errors.js";

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export function encodeCursor(key: Record<string, string>): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

export function decodeCursor(cursor: string, fields: readonly string[]): Record<string, string> {
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Record<string, unknown>;
    const out: Record<string, string> = {};
    for (const f of fields) {
      const x = v[f];
      if (typeof x !== "string") throw new Error(f);
      out[f] = x;
    }
    return out;
  } catch {
    throw new FerryError("VALIDATION_FAILED", "cursor: not a cursor returned by this API", { field: "cursor" });
  }
}

export function checkLimit(limit: number | undefined, max = 500, dflt = 50): number {
  if (limit === undefined) return dflt;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new FerryError("VALIDATION_FAILED", `limit: must be a whole number from 1 to ${max}`, { field: "limit" });
  }
  return limit;
}

/**
 * A timestamptz column as the text a cursor carries: UTC ISO 8601 with microseconds, PostgreSQL's own precision.
 * A cursor made from a JavaScript Date would keep milliseconds only, and a page would then skip the rows created in
 * the same millisecond as its last row but a few microseconds before it. The text is fixed-width, so it also sorts
 * as the timestamps do.
 */
export function cursorTimeSql(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

const CURSOR_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

/**
 * A cursor's time field, checked before it reaches SQL and brought to cursorTimeSql()'s fixed width (cursors made
 * before microsecond cursors carry milliseconds).
 */
export function cursorTime(value: string): string {
  const m = CURSOR_TIME.exec(value);
  if (!m || Number.isNaN(Date.parse(value))) {
    throw new FerryError("VALIDATION_FAILED", "cursor: not a cursor returned by this API", { field: "cursor" });
  }
  return `${value.slice(0, 19)}.${(m[1] ?? ".").slice(1).padEnd(6, "0")}Z`;
}
