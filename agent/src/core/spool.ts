// The log spool: each task's output on disk until the control plane has acknowledged it (docs/task-signing.md,
// "Log spool").
//
// Layout: <state>/spool/ (0700) with, per task,
//   <name>.log   the task's whole log, append-only (0600: deploy output can contain anything)
//   <name>.ack   the offset up to which the control plane has stored the log, decimal text, replaced atomically
// where <name> is the task id when it is a safe file name, else "b64-" + its base64url.
//
// Offsets are byte offsets into the task's whole log, the same numbers LogChunk.offset and LogAck.offset carry.
// Appends to one task are serialised, so offsets are handed out in call order with no gaps or overlaps.
//
// Durability: appends are written at once but fsynced in batches (every `syncIntervalMs`, and by flush()). Only
// fsynced bytes are ever read back for sending (readFrom/chunks flush first), so the control plane can never hold
// (and acknowledge) a byte that a power loss could take back from the agent's disk; otherwise a later append would
// reuse an offset the control plane already stored with different content.
//
// Bound: each log is capped (default 8 MiB). An append that would cross the cap stores what fits, then one marker
// line saying the log was truncated; everything after is dropped (and counted in the return value). A runaway
// process cannot fill the agent's disk, and the control plane sees plainly where the log stops.
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";

import type { Logger } from "pino";

import { writeFileAtomic } from "@ferry/pki";

/** Sub-directory of the agent state directory that holds the spool. */
export const SPOOL_DIR = "spool";
export const DEFAULT_MAX_LOG_BYTES = 8 * 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 32 * 1024;
export const DEFAULT_SYNC_INTERVAL_MS = 1000;

export function truncationMarker(maxBytes: number): string {
  return `\n[ferry-agent: log truncated at ${maxBytes} bytes; further output dropped]\n`;
}

export interface SpoolOptions {
  /** Cap per task log, marker included. Default 8 MiB. */
  maxLogBytes?: number;
  /** Appends are fsynced at most this long after they were written. Default 1 s. */
  syncIntervalMs?: number;
  logger?: Pick<Logger, "warn">;
}

export interface AppendResult {
  /** Offset of the first stored byte. */
  offset: number;
  /** Bytes stored (the marker included when this append hit the cap). */
  length: number;
  /** Bytes of this append that were dropped because the log is at its cap. */
  dropped: number;
}

export interface UnackedLog {
  taskId: string;
  ackedOffset: number;
  size: number;
}

interface TaskLog {
  taskId: string;
  name: string;
  fh: FileHandle | undefined;
  size: number;
  /** Bytes known to be on stable storage. */
  synced: number;
  acked: number;
  truncated: boolean;
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const MAX_NAME_LENGTH = 200;

/** The file stem of a task's spool files; reversible (see taskIdOfSpoolName). */
export function spoolName(taskId: string): string {
  if (SAFE_NAME.test(taskId) && !taskId.startsWith("b64-")) return taskId;
  const name = `b64-${Buffer.from(taskId, "utf8").toString("base64url")}`;
  if (name.length > MAX_NAME_LENGTH) throw new RangeError(`task id is too long for the spool (${taskId.length} characters)`);
  return name;
}

function taskIdOfSpoolName(name: string): string {
  return name.startsWith("b64-") ? Buffer.from(name.slice(4), "base64url").toString("utf8") : name;
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const fh = await fs.open(dir, fsConstants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done);
    done += bytesWritten;
  }
}

export class TaskSpool {
  readonly dir: string;
  readonly #maxLogBytes: number;
  readonly #marker: Buffer;
  readonly #syncIntervalMs: number;
  readonly #logger: Pick<Logger, "warn"> | undefined;
  readonly #logs = new Map<string, TaskLog>();
  readonly #queues = new Map<string, Promise<unknown>>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(dir: string, opts: SpoolOptions) {
    this.dir = dir;
    this.#maxLogBytes = opts.maxLogBytes ?? DEFAULT_MAX_LOG_BYTES;
    this.#marker = Buffer.from(truncationMarker(this.#maxLogBytes), "utf8");
    if (this.#maxLogBytes <= this.#marker.length) throw new RangeError(`maxLogBytes ${this.#maxLogBytes} is too small`);
    this.#syncIntervalMs = opts.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    this.#logger = opts.logger;
  }

  /** Opens (creating when missing) the spool directory and finds every task log in it. */
  static async open(dir: string, opts: SpoolOptions = {}): Promise<TaskSpool> {
    const abs = path.resolve(dir);
    const created = await fs.mkdir(abs, { recursive: true, mode: DIR_MODE });
    if (created !== undefined) await fs.chmod(abs, DIR_MODE);
    const spool = new TaskSpool(abs, opts);
    const entries = await fs.readdir(abs);
    for (const entry of entries) {
      if (entry.startsWith(".") && entry.endsWith(".tmp")) {
        await fs.rm(path.join(abs, entry), { force: true });
        continue;
      }
      if (entry.endsWith(".ack") && !entries.includes(`${entry.slice(0, -4)}.log`)) {
        // remove() deletes the log first; a crash before the ack went leaves this behind.
        await fs.rm(path.join(abs, entry), { force: true });
        continue;
      }
      if (!entry.endsWith(".log")) continue;
      const name = entry.slice(0, -4);
      await spool.#load(taskIdOfSpoolName(name), name);
    }
    return spool;
  }

  async #load(taskId: string, name: string): Promise<TaskLog> {
    const logFile = path.join(this.dir, `${name}.log`);
    let size = 0;
    try {
      // Whatever a crashed process wrote is in the page cache; make it durable before any of it is sent.
      const fh = await fs.open(logFile, "r+");
      try {
        await fh.sync();
        size = (await fh.stat()).size;
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
    }
    let acked = 0;
    try {
      const raw = (await fs.readFile(path.join(this.dir, `${name}.ack`), "utf8")).trim();
      const n = Number(raw);
      if (/^\d+$/.test(raw) && Number.isSafeInteger(n)) acked = n;
      else this.#logger?.warn({ taskId, file: `${name}.ack` }, "spool: unreadable ack offset, resending the whole log");
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
    }
    if (acked > size) {
      this.#logger?.warn({ taskId, acked, size }, "spool: acknowledged offset beyond the end of the log");
      acked = size;
    }
    const log: TaskLog = {
      taskId,
      name,
      fh: undefined,
      size,
      synced: size,
      acked,
      // Only the marker takes a log past cap - marker length, so this means "the marker is there".
      truncated: size > this.#maxLogBytes - this.#marker.length,
    };
    this.#logs.set(taskId, log);
    return log;
  }

  async #get(taskId: string): Promise<TaskLog> {
    const existing = this.#logs.get(taskId);
    if (existing !== undefined) return existing;
    const log: TaskLog = { taskId, name: spoolName(taskId), fh: undefined, size: 0, synced: 0, acked: 0, truncated: false };
    this.#logs.set(taskId, log);
    return log;
  }

  async #handle(log: TaskLog): Promise<FileHandle> {
    if (log.fh !== undefined) return log.fh;
    const file = path.join(this.dir, `${log.name}.log`);
    let isNew = false;
    try {
      await fs.stat(file);
    } catch {
      isNew = true;
    }
    log.fh = await fs.open(file, "a", FILE_MODE);
    if (isNew) {
      await log.fh.chmod(FILE_MODE);
      await fsyncDir(this.dir);
    }
    return log.fh;
  }

  /** Runs `op` after every earlier operation on the same task. */
  #serial<T>(taskId: string, op: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(taskId) ?? Promise.resolve();
    const run = prev.then(op, op);
    const tail = run.catch(() => undefined);
    this.#queues.set(taskId, tail);
    void tail.then(() => {
      if (this.#queues.get(taskId) === tail) this.#queues.delete(taskId);
    });
    return run;
  }

  #scheduleSync(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch((err: unknown) => {
        this.#logger?.warn({ err: (err as Error).message }, "spool: background fsync failed");
      });
    }, this.#syncIntervalMs);
    this.#timer.unref();
  }

  /** Appends to a task's log. Writes are serialised per task; see the header for the cap. */
  append(taskId: string, data: Buffer | string): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error("spool is closed"));
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    return this.#serial(taskId, async () => {
      const log = await this.#get(taskId);
      const offset = log.size;
      if (log.truncated) return { offset, length: 0, dropped: buf.length };
      const room = this.#maxLogBytes - this.#marker.length - log.size;
      const fits = buf.length <= room;
      const out = fits ? buf : Buffer.concat([buf.subarray(0, Math.max(0, room)), this.#marker]);
      const fh = await this.#handle(log);
      try {
        await writeAll(fh, out);
        log.size += out.length;
      } catch (err) {
        // A partial write (ENOSPC...) leaves the size unknown: take it from the file.
        log.size = (await fh.stat()).size;
        throw err;
      }
      if (!fits) {
        log.truncated = true;
        this.#logger?.warn({ taskId, maxLogBytes: this.#maxLogBytes }, "spool: task log reached its cap; output dropped");
      }
      this.#scheduleSync();
      return { offset, length: out.length, dropped: fits ? 0 : buf.length - Math.max(0, room) };
    });
  }

  /** fsyncs the appends made so far, to one task's log or to all of them. */
  async flush(taskId?: string): Promise<void> {
    const ids = taskId === undefined ? [...this.#logs.keys()] : [taskId];
    await Promise.all(
      ids.map((id) =>
        this.#serial(id, async () => {
          const log = this.#logs.get(id);
          if (log?.fh === undefined || log.synced === log.size) return;
          const target = log.size;
          await log.fh.sync();
          log.synced = target;
        }),
      ),
    );
  }

  /** Bytes in a task's log (0 for an unknown task). */
  size(taskId: string): number {
    return this.#logs.get(taskId)?.size ?? 0;
  }

  /** The acknowledged offset of a task's log (0 for an unknown task). */
  ackedOffset(taskId: string): number {
    return this.#logs.get(taskId)?.acked ?? 0;
  }

  /** True once the task's log hit its cap. */
  isTruncated(taskId: string): boolean {
    return this.#logs.get(taskId)?.truncated ?? false;
  }

  /** Up to `maxBytes` of durable log from `offset` (flushes first). Empty at or beyond the end. */
  async readFrom(taskId: string, offset: number, maxBytes: number): Promise<Buffer> {
    await this.flush(taskId);
    const log = this.#logs.get(taskId);
    if (log === undefined) return Buffer.alloc(0);
    return this.#read(log, offset, Math.min(maxBytes, log.synced - offset));
  }

  async #read(log: TaskLog, offset: number, length: number): Promise<Buffer> {
    if (length <= 0 || offset < 0) return Buffer.alloc(0);
    const fh = await fs.open(path.join(this.dir, `${log.name}.log`), "r");
    try {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  /**
   * The durable log from `fromOffset` to its end at the time of the call, in pieces of at most `chunkSize` bytes,
   * ready to become LogChunks. Flushes first, so everything appended before the call is included.
   */
  async *chunks(
    taskId: string,
    fromOffset: number,
    chunkSize: number = DEFAULT_CHUNK_BYTES,
  ): AsyncGenerator<{ offset: number; data: Buffer }> {
    if (!(chunkSize > 0)) throw new RangeError(`chunkSize must be > 0, got ${chunkSize}`);
    await this.flush(taskId);
    const log = this.#logs.get(taskId);
    if (log === undefined) return;
    const end = log.synced;
    let offset = fromOffset;
    while (offset < end) {
      const data = await this.#read(log, offset, Math.min(chunkSize, end - offset));
      if (data.length === 0) return;
      yield { offset, data };
      offset += data.length;
    }
  }

  /**
   * Records that the control plane stored the log up to `offset`. Monotonic: a smaller offset than the current one
   * is ignored; an offset beyond what was written is clamped. Persisted (fsynced) before it resolves.
   */
  ack(taskId: string, offset: number): Promise<void> {
    return this.#serial(taskId, async () => {
      const log = this.#logs.get(taskId);
      if (log === undefined) return;
      const next = Math.min(Math.max(0, Math.floor(offset)), log.synced);
      if (next <= log.acked) return;
      await writeFileAtomic(path.join(this.dir, `${log.name}.ack`), `${next}\n`, FILE_MODE);
      log.acked = next;
    });
  }

  /** Task logs holding bytes the control plane has not acknowledged. */
  unacked(): UnackedLog[] {
    return [...this.#logs.values()]
      .filter((l) => l.size > l.acked)
      .map((l) => ({ taskId: l.taskId, ackedOffset: l.acked, size: l.size }));
  }

  /** Every task with a log in the spool. */
  tasks(): string[] {
    return [...this.#logs.keys()];
  }

  /** Deletes a task's spool files, once its result and its whole log are acknowledged. */
  remove(taskId: string): Promise<void> {
    return this.#serial(taskId, async () => {
      const log = this.#logs.get(taskId);
      if (log === undefined) return;
      await log.fh?.close();
      log.fh = undefined;
      // The log goes first: an .ack without a .log is cleaned up at open, a .log without an .ack would be resent.
      await fs.rm(path.join(this.dir, `${log.name}.log`), { force: true });
      await fs.rm(path.join(this.dir, `${log.name}.ack`), { force: true });
      await fsyncDir(this.dir);
      this.#logs.delete(taskId);
    });
  }

  /** Flushes and closes every file; further appends are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
    await Promise.all([...this.#queues.values()]);
    for (const log of this.#logs.values()) {
      await log.fh?.close();
      log.fh = undefined;
    }
  }
}
