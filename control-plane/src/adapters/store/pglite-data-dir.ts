// Guards around PGlite's data directory, applied at every open.
//
// Integrity: PGlite runs initdb whenever PG_VERSION is missing — even over a directory full of data, which it then
// silently replaces (everything gone, and a fresh admin token minted on top). So a non-empty directory is only ever
// opened as an existing database: it must carry PG_VERSION (a PostgreSQL major version number), global/pg_control and
// base/. Anything else is refused as STORE_CORRUPT with what was found and what to do; PGlite's own failures on a
// damaged directory ("Aborted()", a WASM trap) are turned into the same code and message.
//
// Privacy: PGlite creates its files 0666 whatever the umask (its WASM file system does not pass the mode through).
// Every directory of the database is made 0700 and every file 0600 before PGlite opens it and again once it has
// started (initdb may just have created them); files PGlite creates later land in 0700 directories, which no other
// user can enter, so their mode does not matter.
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { StoreError } from "./store-error.js";

const REQUIRED = ["PG_VERSION", "global/pg_control", "base"];

function corrupt(dir: string, what: string, cause?: unknown): StoreError {
  return new StoreError(
    "STORE_CORRUPT",
    `the embedded database in ${dir} is damaged: ${what}. Ferry never initialises over a non-empty database directory; ` +
      `restore the directory from a backup, or move it away to start with an empty database (all data, agents and tokens are then lost)`,
    { dataDir: dir },
    cause === undefined ? undefined : { cause },
  );
}

/** "new" for a directory PGlite may initialise (missing or empty); "existing" for a database that looks whole. */
export async function checkDataDir(dir: string): Promise<"new" | "existing"> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "new";
    throw err;
  }
  if (entries.length === 0) return "new";
  for (const rel of REQUIRED) {
    const st = await fs.stat(join(dir, rel)).catch(() => undefined);
    if (!st) throw corrupt(dir, `${rel} is missing`);
  }
  const version = (await fs.readFile(join(dir, "PG_VERSION"), "utf8")).trim();
  if (!/^\d{1,3}$/.test(version)) throw corrupt(dir, `PG_VERSION holds ${JSON.stringify(version.slice(0, 20))}, not a PostgreSQL major version`);
  return "existing";
}

/** Wraps an error PGlite raised while opening an existing directory. */
export function openFailed(dir: string, err: unknown): StoreError {
  const message = err instanceof Error ? err.message : String(err);
  return corrupt(dir, `PostgreSQL could not start on it (${message.slice(0, 200) || "aborted"})`, err);
}

/** Makes the directory tree private (directories 0700, files 0600); returns how many modes were changed. */
export async function makePrivate(dir: string): Promise<number> {
  if (process.platform === "win32") return 0;
  let changed = 0;
  const walk = async (d: string): Promise<void> => {
    const st = await fs.lstat(d);
    if ((st.mode & 0o077) !== 0) {
      await fs.chmod(d, 0o700);
      changed++;
    }
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const fst = await fs.lstat(p);
        if ((fst.mode & 0o077) !== 0) {
          await fs.chmod(p, 0o600);
          changed++;
        }
      }
    }
  };
  await walk(dir);
  return changed;
}
