// How the embedded PostgreSQL is configured and compiled: its memory, and what its first start costs. Kept apart
// from pglite.ts (the adapter) so the adapter's open/close logic and these numbers change independently.
//
// Where an idle embedded control plane's memory went (one agent, measured on Node 20, PGlite 0.5, docs/performance.md
// "Footprint"): PostgreSQL's defaults sized for a server of its own — shared_buffers = 128 MB, which PGlite allocates
// inside the WebAssembly memory and zero-fills at start, so every page of it is resident from the first second
// (pg_shmem_allocations: 146 MB in all); V8's baseline WebAssembly compiler (Liftoff), whose code for the 9 MB
// postgres module is several times the size of the optimised code it is later replaced by; and, on a first start,
// the initdb run, which PGlite does in this process with a second PostgreSQL instance, a 128 MB copy of its memory
// and a tarball of the new cluster — freed only at the next full garbage collection (the 800 MB that some runs showed
// 40–60 s after a first start), and leaving the C heap fragmented at about 300 MB even then.
//
// What is chosen, and why it costs no durability and no speed:
// - shared_buffers = 16 MB. A cache only: nothing committed lives only there, and PGlite already writes every page
//   through Node's fs, so a page PostgreSQL evicts is one read() from the OS page cache away. Ferry's working set
//   (agents, tasks, the newest releases) fits; large reads are served from Ferry's own caches (release cache, release
//   index). WAL buffers follow it (the default, 1/32 of it).
// - maintenance_work_mem = 16 MB (default 64 MB). VACUUM's dead-tuple store and index builds use it; whatever part
//   of the WebAssembly memory they touch stays resident for the life of the process, as WebAssembly memory never
//   shrinks. 16 MB of dead-tuple ids is far more than Ferry's minutely vacuums of agents and tasks meet; a larger
//   VACUUM simply makes more passes over the indexes.
// - default_statistics_target = 10 (default 100). ANALYZE (which the control plane runs itself, maintenance.ts) keeps
//   a sample of 300 × the target rows of each table in memory, whole rows up to PostgreSQL's 2 KB inline limit: at
//   100 that is up to 30,000 rows, and measured, ANALYZE of 20,000 task-log chunks of 1.5 KB left 40 MB more of the
//   WebAssembly memory resident for good (5.9 MB at 10). With 3,000-row samples the planner picks the same plans for
//   Ferry's queries (key lookups and keyset pages; `npm run bench:api:plans` shows them), and a table's statistics
//   cost at most about 6 MB once.
// - work_mem stays 4 MB: per sort or hash, released to PostgreSQL's allocator after each query, so the high-water
//   mark is one query's worth.
// - WebAssembly compiled by the optimising compiler only (--no-liftoff): 15–40 MB less resident code, queries as
//   fast or faster from the first minute on (the baseline code is 2–4× slower until hot functions are tiered up),
//   for about 1–2 s more start-up. Applied once, before the first PGlite instance compiles its module; it affects
//   only WebAssembly compiled afterwards in this process.
// - A new data directory is initialised by a short-lived child process (pglite-initdb.ts), so the first start's
//   initdb garbage is returned to the OS when the child exits instead of staying in this process.
// - Durability is untouched: fsync behaviour, WAL and full_page_writes are PGlite's defaults (see pglite.ts).
import { setFlagsFromString } from "node:v8";
import { PGlite } from "@electric-sql/pglite";

/** PostgreSQL settings for the embedded server, as `-c name=value` start parameters (they win over postgresql.conf). */
export const PGLITE_SERVER_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  shared_buffers: "16MB",
  maintenance_work_mem: "16MB",
  default_statistics_target: "10",
  // After a start that needed recovery (a loaded dump, a crash), PostgreSQL arms its startup-progress timer, which in
  // the WASM runtime is a referenced setTimeout that re-arms itself: it wakes the process every 10 s and keeps Node
  // from exiting. PGlite never shows that progress log anyway.
  log_startup_progress_interval: "0",
});

function asParams(settings: Readonly<Record<string, string>>, flag: string): string[] {
  return Object.entries(settings).flatMap(([k, v]) => [flag, `${k}=${v}`]);
}

/** PGlite's own start parameters (single-user mode, fsync off, no parallel workers, …) plus Ferry's settings. */
export function pgliteStartParams(): string[] {
  return [...PGlite.defaultStartParams, ...asParams(PGLITE_SERVER_SETTINGS, "-c")];
}

/**
 * initdb options: the same memory settings, written into the new cluster's postgresql.conf and used by initdb's own
 * bootstrap run, which otherwise zero-fills 128 MB of buffers once more.
 */
export function pgliteInitdbParams(): string[] {
  return asParams({ shared_buffers: PGLITE_SERVER_SETTINGS.shared_buffers as string }, "--set");
}

/** The V8 flag for WebAssembly code generation (see the header); also given to the initdb child process. */
export const WASM_COMPILER_FLAG = "--no-liftoff";

let compilerChosen = false;

/**
 * Makes V8 compile WebAssembly with its optimising compiler only. Idempotent; call before the first PGlite instance
 * is created (compiled modules are cached per process, so later calls would change nothing for PGlite anyway).
 */
export function useOptimisingWasmCompiler(): void {
  if (compilerChosen) return;
  compilerChosen = true;
  setFlagsFromString(WASM_COMPILER_FLAG);
}
