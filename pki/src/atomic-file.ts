// Durable, atomic placement of secret and public files (CA, task-signing keyring, evidence key, the agent's state).
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";

export function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

/** Makes a rename or link in `dir` durable. Windows cannot open a directory for syncing; NTFS journals renames. */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const fh = await fs.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `data` to dir/name through a temp file in the same directory (created exclusively with its final mode, so
 * a key is never readable by others even for a moment; written, fsynced), then moves it into place and fsyncs the
 * directory: readers see either no file or the complete one. With `noClobber` the move is a hard link, which fails
 * when the target exists: then "exists" is returned and nothing changes — how two processes starting together
 * agree on one key. Filesystems without hard links (SMB, FAT, some FUSE) fall back to check-then-rename.
 */
export async function placeFile(dir: string, name: string, data: string, mode: number, noClobber: boolean): Promise<"written" | "exists"> {
  const finalPath = path.join(dir, name);
  const tmpPath = path.join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
  const fh = await fs.open(tmpPath, "wx", mode);
  try {
    try {
      await fh.chmod(mode);
      await fh.writeFile(data, "utf8");
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (noClobber) {
      try {
        await fs.link(tmpPath, finalPath);
      } catch (err) {
        const code = errnoCode(err);
        if (code === "EEXIST") return "exists";
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw err;
        try {
          await fs.stat(finalPath);
          return "exists";
        } catch {
          await fs.rename(tmpPath, finalPath);
        }
      }
    } else {
      await fs.rename(tmpPath, finalPath);
    }
    await fsyncDir(dir);
    return "written";
  } finally {
    await fs.rm(tmpPath, { force: true }).catch(() => undefined);
  }
}

/** placeFile for a full path, replacing whatever is there. */
export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  await placeFile(path.dirname(file), path.basename(file), data, mode, false);
}

/**
 * Creates a directory for private keys (mode 0700 when created, however the umask is set) or accepts an existing
 * one; returns its absolute path. Throws a plain Error saying what is wrong; callers wrap it in their own error.
 */
export async function ensurePrivateDir(dir: string): Promise<string> {
  const abs = path.resolve(dir);
  const created = await fs.mkdir(abs, { recursive: true, mode: 0o700 });
  if (created !== undefined) await fs.chmod(abs, 0o700);
  if (!(await fs.stat(abs)).isDirectory()) throw new Error("not a directory");
  return abs;
}
