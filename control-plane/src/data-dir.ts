// The data directory's own files: made private, checked, and the files the server writes into it.
//
// The data directory holds the embedded database, the admin token and (by default) the CA and signing keys, so it
// must be 0700: in a 0755 directory any local user could read what is readable and, before PGlite's files were made
// private, write an admin token into the database. It is made 0700 at every start (a start that cannot, because
// another user owns it, fails with the reason). The admin-token file is a secret: like ca.key, one readable or
// writable by group or others is refused rather than silently fixed, because someone may already have read it.
import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { writeFileAtomic } from "@ferry/pki";

export class DataDirError extends Error {
  readonly code = "DATA_DIR_INSECURE";
}

export function adminTokenPath(dataDir: string): string {
  return join(dataDir, "admin-token");
}

export async function prepareDataDir(dataDir: string, log: Logger): Promise<void> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const st = await fs.stat(dataDir);
  if (!st.isDirectory()) throw new DataDirError(`${dataDir} is not a directory`);
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
    try {
      await fs.chmod(dataDir, 0o700);
    } catch (err) {
      throw new DataDirError(
        `${dataDir} has mode ${(st.mode & 0o777).toString(8)} and cannot be made private (${(err as Error).message}); run: chmod 700 ${dataDir}`,
      );
    }
    log.warn({ dataDir, was: (st.mode & 0o777).toString(8) }, "the data directory was accessible to other users; it is now 0700");
  }
  await checkAdminTokenFile(dataDir);
}

export async function checkAdminTokenFile(dataDir: string): Promise<void> {
  const file = adminTokenPath(dataDir);
  const st = await fs.lstat(file).catch(() => undefined);
  if (!st) return;
  if (!st.isFile()) throw new DataDirError(`${file} is not a regular file`);
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
    throw new DataDirError(
      `${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}: the admin token must not be accessible to group or others. ` +
        `Someone may have read it: run \`ferry admin-token reset --data-dir ${dataDir}\` (which also writes the new file 0600), or chmod 600 ${file} if you are sure nobody did`,
    );
  }
}

export async function writeAdminToken(dataDir: string, secret: string): Promise<string> {
  const file = adminTokenPath(dataDir);
  await writeFileAtomic(file, `${secret}\n`, 0o600);
  return file;
}

/** runtime.json: what the running process bound; removed on a clean stop (only if it is still this process's). */
export async function writeRuntime(dataDir: string, runtime: { pid: number } & Record<string, unknown>): Promise<void> {
  await writeFileAtomic(join(dataDir, "runtime.json"), `${JSON.stringify(runtime, null, 2)}\n`, 0o644);
}

export async function removeRuntime(dataDir: string, pid: number): Promise<void> {
  const file = join(dataDir, "runtime.json");
  try {
    const current = JSON.parse(await fs.readFile(file, "utf8")) as { pid?: number };
    if (current.pid === pid) await fs.rm(file, { force: true });
  } catch {
    // missing or unreadable: nothing of ours to remove
  }
}
