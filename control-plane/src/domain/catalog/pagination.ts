// Keyset pagination: a cursor is the sort key of the last item returned, opaque to clients. Stable under inserts,
// unlike offsets, and cheap at any depth.
//
// Cursors are tamper-evident: base64url(JSON key) + "." + base64url(HMAC-SHA256(server key, that text), 16 bytes).
// A cursor this API did not make — hand-made, edited, or from another installation — is refused with
// VALIDATION_FAILED before any of it reaches SQL. The key is one per installation, kept in the store
// (control_plane_settings, created at first start by loadCursorKey), so every replica accepts every other's cursors;
// until it is set (tests, tools) a random per-process key is used.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Queryable } from "../../ports/store.js";
import { FerryError } from "../errors.js";

let cursorKey: Buffer = randomBytes(32);

/** Makes `key` the one cursors are signed and checked with (at start, from loadCursorKey). */
export function useCursorKey(key: Buffer): void {
  if (key.length < 32) throw new RangeError("a cursor key needs at least 32 bytes");
  cursorKey = Buffer.from(key);
}

/** The installation's cursor key, created on first use; concurrent first starts agree on one (ON CONFLICT). */
export async function loadCursorKey(db: Queryable): Promise<Buffer> {
  await db.query("INSERT INTO control_plane_settings (key, value) VALUES ('cursor_hmac_key', $1) ON CONFLICT (key) DO NOTHING", [JSON.stringify(randomBytes(32).toString("base64"))]);
  const r = await db.query<{ value: unknown }>("SELECT value FROM control_plane_settings WHERE key = 'cursor_hmac_key'");
  const v = r.rows[0]?.value;
  if (typeof v !== "string") throw new Error("control_plane_settings.cursor_hmac_key is not a base64 string");
  return Buffer.from(v, "base64");
}

const mac = (text: string): Buffer => createHmac("sha256", cursorKey).update(text).digest().subarray(0, 16);
const refused = () => new FerryError("VALIDATION_FAILED", "cursor: not a cursor returned by this API (cursors are signed; an edited or hand-made one is refused)", { field: "cursor" });

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export function encodeCursor(key: Record<string, string>): string {
  const text = Buffer.from(JSON.stringify(key)).toString("base64url");
  return `${text}.${mac(text).toString("base64url")}`;
}

export function decodeCursor(cursor: string, fields: readonly string[]): Record<string, string> {
  const dot = cursor.lastIndexOf(".");
  if (dot <= 0) throw refused();
  const text = cursor.slice(0, dot);
  const given = Buffer.from(cursor.slice(dot + 1), "base64url");
  const want = mac(text);
  if (given.length !== want.length || !timingSafeEqual(given, want)) throw refused();
  try {
    const v = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as Record<string, unknown>;
    const out: Record<string, string> = {};
    for (const f of fields) {
      const x = v[f];
      if (typeof x !== "string") throw new Error(f);
      out[f] = x;
    }
    return out;
  } catch {
    throw refused();
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
