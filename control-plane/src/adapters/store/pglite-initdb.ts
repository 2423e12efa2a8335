// First start of an embedded data directory: initdb in a short-lived child process.
//
// PGlite runs initdb inside the process that opens the directory, with a second PostgreSQL instance, a copy of that
// instance's whole WebAssembly memory and a tarball of the new cluster: 600–900 MB at the peak, released only at the
// next full garbage collection, and even then the C heap stays fragmented at about 300 MB (measured; docs/performance.md
// "Footprint"). Done in a child, all of it goes back to the OS when the child exits, and the server opens a directory
// that already holds a cluster, exactly as on every later start.
//
// The child initialises a private sibling directory (`<dataDir>.init-<pid>`, mode 0700) and it is renamed onto the
// data directory only once initdb has finished, so an interrupted first start leaves no half-made cluster where the
// server would take it for a real one; a leftover sibling from a crashed attempt is removed on the next try. The
// caller holds the data directory's lock (pglite-lock.ts) throughout.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, rmdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { pgliteInitdbParams, pgliteStartParams, WASM_COMPILER_FLAG } from "./pglite-settings.js";

/** How long initdb may take (about 5–15 s on a small shared machine). */
const INITDB_TIMEOUT_MS = 180_000;

// Plain JavaScript run with `node --input-type=module -e`, so it needs neither the TypeScript loader nor a build:
// argv is [PGlite module URL, directory, options JSON].
const CHILD_SOURCE = `
const [moduleUrl, dir, optionsJson] = process.argv.slice(1);
const { PGlite } = await import(moduleUrl);
const db = new PGlite({ dataDir: dir, ...JSON.parse(optionsJson) });
await db.waitReady;
await db.close();
`;

/** True when `dataDir` already holds a cluster (PostgreSQL writes PG_VERSION first and never removes it). */
export function holdsCluster(dataDir: string): boolean {
  return existsSync(join(dataDir, "PG_VERSION"));
}

/**
 * Creates the cluster for a new data directory in a child process. `dataDir` must not exist, or be an empty
 * directory (as PGlite leaves one it created and then failed in).
 */
export async function initialiseDataDir(dataDir: string): Promise<void> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(`cannot initialise the PGlite data directory ${dataDir}: it is not empty but holds no cluster (no PG_VERSION); move it aside`);
  }
  const parent = dirname(dataDir);
  for (const name of readdirSync(parent)) {
    // Left by an initialisation that was interrupted (the process was killed): never renamed, so never used.
    if (name.startsWith(`${basename(dataDir)}.init-`)) rmSync(join(parent, name), { recursive: true, force: true });
  }
  const scratch = `${dataDir}.init-${process.pid}`;
  mkdirSync(scratch, { mode: 0o700 });
  try {
    await runChild(scratch);
    if (!holdsCluster(scratch)) throw new Error(`initdb finished without creating a cluster in ${scratch}`);
    if (existsSync(dataDir)) rmdirSync(dataDir); // empty (checked above); rename() cannot replace it portably
    renameSync(scratch, dataDir);
  } catch (err) {
    rmSync(scratch, { recursive: true, force: true });
    throw err;
  }
}

function runChild(dir: string): Promise<void> {
  const moduleUrl = import.meta.resolve("@electric-sql/pglite");
  const options = JSON.stringify({ initDbStartParams: pgliteInitdbParams(), startParams: pgliteStartParams() });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WASM_COMPILER_FLAG, "--input-type=module", "-e", CHILD_SOURCE, moduleUrl, dir, options], {
      stdio: ["ignore", "ignore", "pipe"],
      // NODE_OPTIONS may carry a loader or inspector meant for the server, not for this child.
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), INITDB_TIMEOUT_MS);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start the PGlite initdb process: ${err.message}`, { cause: err }));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`initialising the PGlite data directory failed (${signal ?? `exit ${code}`}): ${stderr.trim().split("\n").slice(-5).join(" | ")}`));
    });
  });
}
