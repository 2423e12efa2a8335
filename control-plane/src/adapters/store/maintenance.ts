// Statistics and vacuuming, where nobody else does them.
//
// PGlite runs no autovacuum; a PostgreSQL server may have it turned off. Without statistics the planner picks plans
// that grow with the data (measured: listing releases by component, a hash join over every pin instead of a walk
// down the newest releases: 3 ms instead of 0.2 ms at 10,000 releases, and worse with every release); without
// vacuum, the tables updated in place all the time (agents: liveness; tasks: leases) keep every old row version.
// So when the database does not maintain itself, the control plane does: ANALYZE of its own tables (those of its
// schema) at start and every 10 minutes, VACUUM of those two tables every minute (milliseconds at this size). The
// append-only tables (audit, evidence, logs) leave nothing to reclaim. On a shared server every replica does it;
// that is harmless.
import type { Store } from "../../ports/store.js";

export interface MaintenanceLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface MaintenanceOptions {
  analyzeEveryMs?: number;
  vacuumEveryMs?: number;
}

/** Whether the control plane must analyze and vacuum this database itself. */
export async function needsOwnMaintenance(store: Store): Promise<boolean> {
  if (store.kind === "pglite") return true;
  const r = await store.query<{ on: boolean }>("SELECT current_setting('autovacuum') = 'on' AS on");
  return r.rows[0]?.on !== true;
}

/**
 * Starts maintenance if the database needs it (see above). Returns the function that stops it, which waits for a
 * statement under way. Statements never overlap: a tick that finds the previous one still running is skipped.
 */
export async function startMaintenance(store: Store, log: MaintenanceLog, o: MaintenanceOptions = {}): Promise<() => Promise<void>> {
  if (!(await needsOwnMaintenance(store))) return async () => {};
  if (store.kind === "postgres") {
    log.warn({}, "autovacuum is off on this PostgreSQL server: the control plane analyzes its tables and vacuums agents and tasks itself");
  }
  // Ferry's own tables only: the database may hold others that are not Ferry's to maintain.
  const tables = (
    await store.query<{ t: string }>(`SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`)
  ).rows.map((r) => r.t);
  const analyzeSql = tables.length ? `ANALYZE ${tables.join(", ")}` : "SELECT 1";
  await store.query(analyzeSql);
  let running: Promise<void> | null = null;
  const run = (sql: string) => {
    if (running) return;
    running = store
      .query(sql)
      .then(() => undefined, (err: unknown) => log.warn({ err }, `${sql} failed`))
      .finally(() => (running = null));
  };
  const analyze = setInterval(() => run(analyzeSql), o.analyzeEveryMs ?? 10 * 60_000);
  const vacuum = setInterval(() => run("VACUUM agents, tasks"), o.vacuumEveryMs ?? 60_000);
  analyze.unref();
  vacuum.unref();
  return async () => {
    clearInterval(analyze);
    clearInterval(vacuum);
    await running;
  };
}
