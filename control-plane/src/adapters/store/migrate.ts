// Schema migrations: numbered plain-SQL files, one set for both backends.
//
// Files are `migrations/NNNN_name.sql` next to this module (the build copies the .sql files into dist, so the same
// URL works from src and dist). Each is applied in a transaction of its own and recorded in ferry_migrations with a
// checksum of its content.
//
// Safe when several replicas start at once against one PostgreSQL server: every migration transaction first takes
// a transaction-scoped advisory lock, and only then creates ferry_migrations (IF NOT EXISTS) and reads what is
// applied. Under READ COMMITTED each statement sees what was committed before it started, so the second replica,
// once it gets the lock, sees the first one's work and skips it. Each migration therefore runs exactly once.
//
// Refusals, checked every time before anything is applied:
// - MIGRATION_CHANGED: an applied migration's file now has a different checksum (or was deleted). Applied
//   migrations are history; a change must be a new migration.
// - DATABASE_NEWER: the database has a migration newer than any this build knows: a newer Ferry upgraded it, and
//   this one must not run against a schema it does not understand.
//
// Migration files must not contain BEGIN/COMMIT: they would end the transaction the runner opened.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Store } from "../../ports/store.js";
import { StoreError } from "./store-error.js";
import type { StoreLogger } from "./store-logger.js";

/** pg_advisory_xact_lock key serialising migrations ("FERM"). Other keys in use: audit log, admin bootstrap. */
export const MIGRATION_LOCK_KEY = 0x4645_524d;

const FILE_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  id: number;
  /** File name without extension, e.g. "0001_fleet". */
  name: string;
  sql: string;
  /** sha256 (hex) of the file with line endings normalised to \n. */
  checksum: string;
}

export interface MigrateOptions {
  log?: StoreLogger;
  /** Folder of migration files; defaults to ./migrations/ beside this module. Tests point it elsewhere. */
  dir?: string | URL;
}

const DEFAULT_DIR = new URL("./migrations/", import.meta.url);

/** Reads and orders the migration files; a stray or misnamed .sql file is an error rather than silently skipped. */
export function loadMigrations(dir: string | URL = DEFAULT_DIR): Migration[] {
  const path = typeof dir === "string" ? dir : fileURLToPath(dir);
  const out: Migration[] = [];
  const seen = new Map<number, string>();
  for (const file of readdirSync(path).sort()) {
    if (!file.endsWith(".sql")) continue;
    const m = FILE_RE.exec(file);
    if (!m) throw new Error(`migration file ${file} is not named NNNN_name.sql (four digits, then [a-z0-9_])`);
    const id = Number(m[1]);
    const other = seen.get(id);
    if (other) throw new Error(`migrations ${other} and ${file} have the same number`);
    seen.set(id, file);
    const text = readFileSync(join(path, file), "utf8");
    out.push({ id, name: file.slice(0, -".sql".length), sql: text, checksum: checksum(text) });
  }
  return out.sort((a, b) => a.id - b.id);
}

export function checksum(sql: string): string {
  // A checkout with CRLF line endings (git autocrlf on Windows) is the same migration.
  return createHash("sha256").update(sql.replace(/\r\n/g, "\n")).digest("hex");
}

interface AppliedRow {
  id: number;
  name: string;
  checksum: string;
}

/** Applies pending migrations in order; returns the ids this call applied (empty when the schema was current). */
export async function migrate(store: Store, opts: MigrateOptions = {}): Promise<number[]> {
  const migrations = loadMigrations(opts.dir);
  const applied: number[] = [];
  for (;;) {
    const done = await store.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
      await tx.query(
        `CREATE TABLE IF NOT EXISTS ferry_migrations (
           id         int PRIMARY KEY,
           name       text NOT NULL,
           checksum   text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const rows = (await tx.query<AppliedRow>("SELECT id, name, checksum FROM ferry_migrations ORDER BY id")).rows;
      check(rows, migrations);
      const appliedIds = new Set(rows.map((r) => r.id));
      const next = migrations.find((m) => !appliedIds.has(m.id));
      if (!next) return undefined;
      try {
        await tx.query(next.sql);
      } catch (err) {
        const e = err as Error & { code?: string };
        throw new Error(`migration ${next.name}.sql failed: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ""}`, { cause: err });
      }
      await tx.query("INSERT INTO ferry_migrations (id, name, checksum) VALUES ($1, $2, $3)", [next.id, next.name, next.checksum]);
      return next;
    });
    if (!done) return applied;
    applied.push(done.id);
    opts.log?.info?.({ migration: done.name }, "applied database migration");
  }
}

function check(rows: AppliedRow[], migrations: Migration[]): void {
  const known = new Map(migrations.map((m) => [m.id, m]));
  const newest = migrations.reduce((max, m) => Math.max(max, m.id), 0);
  const newer = rows.filter((r) => r.id > newest);
  if (newer.length > 0) {
    throw new StoreError(
      "DATABASE_NEWER",
      `the database has migration(s) ${newer.map((r) => r.name).join(", ")} that this build of Ferry does not know ` +
        `(its newest is ${newest === 0 ? "none" : pad(newest)}): a newer Ferry has upgraded it. Run that version (or newer), ` +
        `or restore a backup taken before the upgrade; refusing to start.`,
      { databaseIds: newer.map((r) => r.id), newestKnown: newest },
    );
  }
  for (const r of rows) {
    const m = known.get(r.id);
    if (!m) {
      throw new StoreError(
        "MIGRATION_CHANGED",
        `migration ${r.name} is recorded as applied but is missing from this build; applied migrations must never be removed`,
        { id: r.id, name: r.name },
      );
    }
    if (m.checksum !== r.checksum) {
      throw new StoreError(
        "MIGRATION_CHANGED",
        `migration ${m.name}.sql was applied with checksum ${r.checksum.slice(0, 12)}… but the file now has ` +
          `${m.checksum.slice(0, 12)}…; applied migrations must never be edited — put the change in a new migration`,
        { id: r.id, name: m.name, appliedChecksum: r.checksum, fileChecksum: m.checksum },
      );
    }
  }
}

function pad(id: number): string {
  return String(id).padStart(4, "0");
}
