// Ferry's two files in the project directory, beside the operator's compose file:
//   ferry.lock.json          the lock: every mapped service pinned to repository@digest (contract compose-lock.ts)
//   ferry.lock.sticker.json  who wrote it: deployment, task, release, and the lock's SHA-256
// Both are replaced atomically (write a temporary file in the same directory, then rename), so a crash leaves the old
// file or the new one, never half of one.
import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { COMPOSE_LOCK_FILE } from "@ferry/contract";

import { DriverError } from "../driver.js";

export const STICKER_FILE = "ferry.lock.sticker.json";
/** A lock or sticker file larger than this is not one Ferry wrote. */
const MAX_FILE_BYTES = 1024 * 1024;

export const lockPath = (directory: string) => join(directory, COMPOSE_LOCK_FILE);
export const stickerPath = (directory: string) => join(directory, STICKER_FILE);

export function sha256(text: string): string {
  return `sha256:${createHash("sha256").update(text).digest("hex")}`;
}

export async function readOptional(path: string): Promise<string | null> {
  try {
    const s = await stat(path);
    if (s.size > MAX_FILE_BYTES) throw new DriverError("COMPOSE_PROJECT_INVALID", `${path} is ${s.size} bytes: not a file Ferry wrote`, { path });
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Replaces `path` with `text`, or removes it when `text` is null. */
export async function replaceFile(path: string, text: string | null): Promise<void> {
  if (text === null) {
    await rm(path, { force: true });
    return;
  }
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, path);
}

/** The project directory exists and is writable, and the compose file is there; else COMPOSE_PROJECT_INVALID. */
export async function checkProjectDirectory(directory: string, file: string): Promise<void> {
  try {
    const s = await stat(directory);
    if (!s.isDirectory()) throw new Error("not a directory");
    await access(directory, constants.W_OK);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : (err as NodeJS.ErrnoException).code === "EACCES" ? "is not writable by the agent" : (err as Error).message;
    throw new DriverError("COMPOSE_PROJECT_INVALID", `config.directory: ${directory} ${why}`, { field: "config.directory", directory });
  }
  try {
    await access(join(directory, file), constants.R_OK);
  } catch {
    throw new DriverError("COMPOSE_PROJECT_INVALID", `config.file: ${join(directory, file)} does not exist or is not readable`, { field: "config.file", path: join(directory, file) });
  }
}
