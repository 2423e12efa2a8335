// An exclusive, cross-process lock on a PGlite data directory.
//
// PGlite is PostgreSQL in single-user mode inside this process: nothing stops a second process from opening the same
// files, and two of them writing one data directory corrupt it. The lock is a file next to the directory,
// `<dataDir>.lock` (for `openStore({ dataDir })` that is `<dataDir>/pglite.lock`), holding the owner's pid. It sits
// beside rather than inside the data directory so that PGlite/initdb find the directory exactly as they left it, and
// it is named after the directory so two stores in one parent folder do not contend.
//
// - Created atomically: the pid is written to a private temporary file which is then hard-linked to the lock path;
//   link() fails if the lock exists, and a reader never sees a half-written pid.
// - A lock whose pid is not a live process is stale (the owner crashed) and is taken over. Takeover happens under a
//   short-lived guard file, so two processes finding the same stale lock cannot both win.
// - The lock is removed on close and, as a last resort, when the process exits normally.
// - A lock holding this process' own pid that this process did not take is stale too: it was left by an earlier
//   process with the same pid, as happens when a container whose server runs as pid 1 is restarted after a crash.
// Limits: the check is per host (the pid is meaningless elsewhere), and a stale lock whose pid has been reused by an
// unrelated process reads as held; the error message says to delete the file in that case.
import { linkSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { StoreError } from "./store-error.js";

export interface DirLock {
  readonly path: string;
  release(): void;
}

const GUARD_STALE_MS = 10_000;

/** Lock files this process holds, to tell "open here already" from "left by an earlier process with our pid". */
const heldHere = new Set<string>();

export function lockPathFor(dataDir: string): string {
  return `${resolve(dataDir)}.lock`;
}

export async function acquireDirLock(dataDir: string): Promise<DirLock> {
  const path = lockPathFor(dataDir);
  let busy = false;
  for (let attempt = 0; attempt < 50; attempt++) {
    // Another process is in the middle of taking over a stale lock: give it a moment.
    if (busy) await new Promise((r) => setTimeout(r, 20));
    if (tryCreate(path)) return held(path);
    const holder = readPid(path);
    if (holder === undefined) continue; // vanished between our attempt and the read: try again
    if (holder === process.pid && heldHere.has(path)) {
      throw new StoreError("STORE_LOCKED", `PGlite data directory ${dataDir} is already open in this process (lock file ${path})`, {
        pid: holder,
        lockPath: path,
      });
    }
    // Our own pid without our own lock: an earlier process that had the same pid — typically a container restarted
    // after a crash, where the server runs as pid 1 both times. It is stale.
    if (holder !== process.pid && isAlive(holder)) {
      throw new StoreError(
        "STORE_LOCKED",
        `PGlite data directory ${dataDir} is in use by process ${holder} (lock file ${path}); stop that process first. ` +
          `If no Ferry process has that pid, the lock is left over: delete the lock file.`,
        { pid: holder, lockPath: path },
      );
    }
    busy = !takeOverStale(path, holder);
  }
  throw new Error(`could not take the lock ${path}: another process keeps taking it over`);
}

function held(path: string): DirLock {
  heldHere.add(path);
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    heldHere.delete(path);
    process.removeListener("exit", release);
    // Only remove what is still ours: if someone judged it stale and took it over, it is theirs now.
    if (readPid(path) === process.pid) rmSync(path, { force: true });
  };
  process.on("exit", release);
  return { path, release };
}

function tryCreate(path: string): boolean {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Removes the stale lock; false when another process holds the takeover guard (try again shortly). */
function takeOverStale(path: string, stalePid: number): boolean {
  const guard = `${path}.takeover`;
  if (!tryCreate(guard)) {
    // Another process is taking over right now; if it died doing so, its guard is old and can go.
    try {
      if (Date.now() - statSync(guard).mtimeMs > GUARD_STALE_MS) rmSync(guard, { force: true });
    } catch {
      // gone already
    }
    return false;
  }
  try {
    // Re-read under the guard: only the stale lock we judged may be removed, never one a racer just created.
    if (readPid(path) === stalePid) rmSync(path, { force: true });
  } finally {
    rmSync(guard, { force: true });
  }
  return true;
}

function readPid(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const pid = Number.parseInt(text.trim(), 10);
  // Unreadable content cannot name a live owner; pid 0 makes isAlive() false, so it is treated as stale.
  return Number.isSafeInteger(pid) && pid > 0 ? pid : 0;
}

function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by another user
  }
}
