// What one ANALYZE leaves resident in the embedded PostgreSQL: a PGlite with the control plane's settings, a table
// shaped like task_logs filled with incompressible chunks, then VACUUM and ANALYZE, with the resident WebAssembly
// memory (memory.ts, from /proc/PID/smaps) read after each step. WebAssembly memory never shrinks, so what ANALYZE's
// row sample touched stays resident for the life of the process. Each statistics target runs in a fresh process.
//
//   node --conditions=ferry-source --import tsx bench/footprint/analyze-memory.ts [--rows N] [--bytes B] [TARGET ...]
//
// Defaults: 20,000 rows of 1,500 bytes, targets 100 (PostgreSQL's default) and the control plane's own setting.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { PGLITE_SERVER_SETTINGS, pgliteStartParams, useOptimisingWasmCompiler } from "../../control-plane/src/adapters/store/pglite-settings.js";
import { wasmResidentBytes } from "./memory.js";

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MB`;

async function child(target: string, rows: number, bytes: number): Promise<void> {
  useOptimisingWasmCompiler();
  const db = await PGlite.create({ startParams: [...pgliteStartParams(), "-c", `default_statistics_target=${target}`] });
  await db.exec(`CREATE TABLE task_logs (task_id text NOT NULL, "offset" bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (task_id, "offset"))`);
  await db.exec("BEGIN");
  for (let i = 0; i < rows; i++) await db.query(`INSERT INTO task_logs VALUES ($1, $2, $3)`, [`tsk_${Math.floor(i / 10)}`, i % 10, randomBytes(bytes)]);
  await db.exec("COMMIT");
  await db.exec("VACUUM task_logs");
  const before = wasmResidentBytes(process.pid);
  await db.exec("ANALYZE task_logs");
  const after = wasmResidentBytes(process.pid);
  process.stdout.write(`default_statistics_target ${target.padStart(3)}: WebAssembly memory resident ${mib(before)} before ANALYZE, ${mib(after)} after (+${mib(after - before)})\n`);
  await db.close();
}

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number, max: number): number => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(argv.splice(i, 2)[1]);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`--${name} is a whole number from 1 to ${max}`);
  return v;
};
const childIndex = argv.indexOf("--child");
if (childIndex >= 0) {
  const [target, rows, bytes] = argv.slice(childIndex + 1);
  await child(target!, Number(rows), Number(bytes));
} else {
  const rows = opt("rows", 20_000, 200_000);
  const bytes = opt("bytes", 1500, 8000);
  const targets = argv.length ? argv : ["100", PGLITE_SERVER_SETTINGS["default_statistics_target"] ?? "100"];
  for (const t of targets) if (!/^\d{1,5}$/.test(t) || Number(t) < 1 || Number(t) > 10_000) throw new Error(`a statistics target is 1 to 10000, not ${t}`);
  process.stdout.write(`ANALYZE of ${rows.toLocaleString("en")} task-log chunks of ${bytes} bytes, PGlite with the control plane's settings\n`);
  for (const t of targets) {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--child", t, String(rows), String(bytes)], { stdio: "inherit" });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}
