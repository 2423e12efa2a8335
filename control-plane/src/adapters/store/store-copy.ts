// Copies every row of the control plane's tables from one store to another: how an estate that outgrew the embedded
// database moves to a PostgreSQL server (`ferry store copy`, docs/operations.md "Moving to a PostgreSQL server").
//
// A PGlite data directory cannot be opened by a PostgreSQL server (it is a 32-bit WebAssembly build's cluster), and
// PGlite ships no pg_dump, so the rows travel through SQL: each batch is read from the source as JSON
// (`row_to_json`) and written with `json_populate_recordset`, so every value goes through PostgreSQL's own text
// input and output on both sides — no JavaScript type conversion in between — and the audit chain's hashes, the
// evidence envelopes and the timestamps arrive byte for byte.
//
// - Both stores must be migrated to the same version first (the caller opens them with openStore, which migrates);
//   the table list and column order come from the schema, not from a list here, so tables added by later
//   migrations are copied too.
// - The target must be empty: a copy never merges into a database that has a control plane's data.
// - All writes happen in one transaction on the target: a failed copy leaves it as it was. Rows are staged on disk
//   between the two stores, in a private temporary directory that is removed afterwards.
// - Tables are written parents first (foreign keys); a table that refers to itself (a retry's deployment) is written
//   in creation order. Sequences (bigserial) are set past the copied values. Row counts are checked at the end.
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Queryable, Store } from "../../ports/store.js";

const BATCH_ROWS = 500;

export interface CopyProgress {
  (table: string, rows: number): void;
}

export interface CopyReport {
  tables: Array<{ table: string; rows: number }>;
  sequences: number;
}

/** A copy refused before anything was written (target not empty, schema versions or tables differ). */
export class StoreCopyError extends Error {
  override readonly name = "StoreCopyError";
  readonly code = "STORE_COPY_REFUSED";
}

interface TableInfo {
  name: string;
  columns: string[];
  selfReferencing: boolean;
}

const quote = (ident: string): string => `"${ident.replace(/"/g, '""')}"`;

async function tablesInOrder(q: Queryable): Promise<TableInfo[]> {
  const tables = await q.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname <> 'ferry_migrations' ORDER BY 1`,
  );
  const edges = await q.query<{ child: string; parent: string }>(
    `SELECT cl.relname AS child, pl.relname AS parent FROM pg_constraint k
       JOIN pg_class cl ON cl.oid = k.conrelid JOIN pg_class pl ON pl.oid = k.confrelid
       JOIN pg_namespace n ON n.oid = cl.relnamespace
      WHERE k.contype = 'f' AND n.nspname = current_schema()`,
  );
  const columns = await q.query<{ table: string; column: string }>(
    `SELECT table_name AS "table", column_name AS "column" FROM information_schema.columns
      WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`,
  );
  const parents = new Map<string, Set<string>>(tables.rows.map((t) => [t.name, new Set<string>()]));
  const self = new Set<string>();
  for (const e of edges.rows) {
    if (e.child === e.parent) self.add(e.child);
    else parents.get(e.child)?.add(e.parent);
  }
  const order: string[] = [];
  const done = new Set<string>();
  while (order.length < parents.size) {
    const ready = [...parents.keys()].filter((t) => !done.has(t) && [...(parents.get(t) ?? [])].every((p) => done.has(p) || !parents.has(p)));
    if (ready.length === 0) throw new StoreCopyError(`the tables' foreign keys form a cycle: ${[...parents.keys()].filter((t) => !done.has(t)).join(", ")}`);
    for (const t of ready) {
      done.add(t);
      order.push(t);
    }
  }
  return order.map((name) => ({
    name,
    columns: columns.rows.filter((c) => c.table === name).map((c) => c.column),
    selfReferencing: self.has(name),
  }));
}

async function migrationsOf(q: Queryable): Promise<string[]> {
  const exists = await q.query<{ ok: boolean }>("SELECT to_regclass('ferry_migrations') IS NOT NULL AS ok");
  if (!exists.rows[0]?.ok) return [];
  const r = await q.query<{ id: string }>("SELECT id::text AS id FROM ferry_migrations ORDER BY 1");
  return r.rows.map((x) => x.id);
}

/**
 * Copies every row of `source` into `target` (both migrated, target empty) in one transaction on the target.
 * Rows are staged in a private temporary directory between the two (a store cannot be read from inside another
 * store's transaction callback: transaction-scope.ts), so memory stays at one batch whatever the database's size.
 * `progress` is called after each batch read and written.
 */
export async function copyStore(source: Store, target: Store, progress: CopyProgress = () => {}): Promise<CopyReport> {
  const [fromMigrations, toMigrations] = await Promise.all([migrationsOf(source), migrationsOf(target)]);
  if (fromMigrations.join(",") !== toMigrations.join(",")) {
    throw new StoreCopyError(`the two databases are at different schema versions (source ${fromMigrations.at(-1) ?? "none"}, target ${toMigrations.at(-1) ?? "none"}); open both with this build first`);
  }
  const tables = await tablesInOrder(source);
  const shape = (ts: TableInfo[]) => ts.map((t) => `${t.name}(${t.columns.join(",")})`).sort().join(";");
  if (shape(tables) !== shape(await tablesInOrder(target))) {
    throw new StoreCopyError("the two databases' tables differ although their migrations match; was one of them changed by hand?");
  }
  for (const t of tables) {
    const r = await target.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quote(t.name)}) AS any`);
    if (r.rows[0]?.any) throw new StoreCopyError(`the target database is not empty (table ${t.name} has rows); copy only into a new database`);
  }
  // The staged rows hold what the tables hold (token hashes, keys' metadata): a private directory, removed after.
  const stage = mkdtempSync(join(tmpdir(), "ferry-store-copy-"));
  try {
    const counts = new Map<string, number>();
    for (const t of tables) counts.set(t.name, await stageTable(source, t, join(stage, `${t.name}.ndjson`), (n) => progress(t.name, n)));
    return await target.transaction(async (tx) => {
      const report: CopyReport = { tables: [], sequences: 0 };
      for (const t of tables) {
        const cols = t.columns.map(quote).join(", ");
        let copied = 0;
        const lines = createInterface({ input: createReadStream(join(stage, `${t.name}.ndjson`), { encoding: "utf8" }), crlfDelay: Infinity });
        for await (const line of lines) {
          if (line === "") continue;
          const batch = JSON.parse(line) as string;
          const r = await tx.query(`INSERT INTO ${quote(t.name)} (${cols}) SELECT ${cols} FROM json_populate_recordset(NULL::${quote(t.name)}, $1::json)`, [batch]);
          copied += r.rowCount;
        }
        const check = await tx.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${quote(t.name)}`);
        if (copied !== counts.get(t.name) || Number(check.rows[0]?.n) !== copied) {
          throw new StoreCopyError(`table ${t.name}: read ${counts.get(t.name)} rows from the source, wrote ${copied}, the target holds ${check.rows[0]?.n}`);
        }
        report.tables.push({ table: t.name, rows: copied });
      }
      // bigserial columns: the next value must follow the copied ones, or the next insert collides.
      const serials = await tx.query<{ table: string; column: string; seq: string | null }>(
        `SELECT c.table_name AS "table", c.column_name AS "column", pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) AS seq
           FROM information_schema.columns c
          WHERE c.table_schema = current_schema() AND c.column_default LIKE 'nextval(%'`,
      );
      for (const s of serials.rows) {
        if (!s.seq) continue;
        await tx.query(
          `SELECT setval($1::regclass, COALESCE((SELECT max(${quote(s.column)}) FROM ${quote(s.table)}), 1), (SELECT max(${quote(s.column)}) FROM ${quote(s.table)}) IS NOT NULL)`,
          [s.seq],
        );
        report.sequences += 1;
      }
      return report;
    });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * Writes a table's rows as JSON arrays of BATCH_ROWS, each as a JSON string on a line of its own (json_agg's text
 * has newlines between elements, and a string literal keeps every byte as PostgreSQL wrote it); returns the row count.
 */
async function stageTable(source: Store, t: TableInfo, file: string, progress: (rows: number) => void): Promise<number> {
  const cols = t.columns.map(quote).join(", ");
  const fd = openSync(file, "wx", 0o600);
  let rows = 0;
  try {
    if (t.selfReferencing) {
      // A self-referencing row (a retry naming the deployment it retries) must follow its parent: creation order if
      // the table has it. The source is not written to while it is copied, so OFFSET pages are stable.
      const order = t.columns.includes("created_at") ? "created_at, ctid" : "ctid";
      for (let offset = 0; ; offset += BATCH_ROWS) {
        const r = await source.query<{ rows: string | null; n: number }>(
          `SELECT json_agg(row_to_json(s))::text AS rows, count(*)::int AS n FROM (SELECT ${cols} FROM ${quote(t.name)} ORDER BY ${order} LIMIT ${BATCH_ROWS} OFFSET ${offset}) s`,
        );
        const b = r.rows[0];
        if (!b || b.n === 0 || b.rows === null) break;
        writeSync(fd, `${JSON.stringify(b.rows)}\n`);
        rows += b.n;
        progress(rows);
        if (b.n < BATCH_ROWS) break;
      }
      return rows;
    }
    // Everything else in physical order, a page at a time by tuple id (a TID range scan, no sort).
    let after = "(0,0)";
    for (;;) {
      const r = await source.query<{ rows: string | null; n: number; last: string | null }>(
        `SELECT json_agg(row_to_json(s) ORDER BY s.ferry_copy_ctid)::text AS rows, count(*)::int AS n, max(s.ferry_copy_ctid)::text AS last
           FROM (SELECT ctid AS ferry_copy_ctid, ${cols} FROM ${quote(t.name)} WHERE ctid > $1::tid ORDER BY ctid LIMIT ${BATCH_ROWS}) s`,
        [after],
      );
      const b = r.rows[0];
      if (!b || b.n === 0 || b.rows === null || b.last === null) break;
      writeSync(fd, `${JSON.stringify(b.rows)}\n`);
      rows += b.n;
      after = b.last;
      progress(rows);
      if (b.n < BATCH_ROWS) break;
    }
    return rows;
  } finally {
    closeSync(fd);
  }
}
