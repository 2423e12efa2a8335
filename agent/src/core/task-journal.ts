// The task journal: what this agent accepted, ran and finished, kept on disk so that a crash mid-task is reported
// ("interrupted"), never silently repeated, and a redelivered task is answered from the record instead of run again.
// See docs/task-signing.md, "Journal and replays".
//
// Layout: <state>/tasks/ (0700), one file per task, <taskId>.json (0600; a task id that is not a safe file name is
// stored as sha256-<hex of the id>.json). Each write replaces the whole file atomically (temp file, fsync, rename,
// fsync the directory) before the call resolves, so after a crash every file holds one complete record. A file that
// does not parse is moved to tasks/quarantine/ with a warning instead of stopping the agent: losing one record is
// bad, but an agent that cannot start cannot report anything at all.
//
// Lifecycle of a record:
//
//   accept ──> accepted ──markRunning──> running ──finish──> finished ──markResultAcked──> (acked) ──prune──> gone
//                 └───────────────────────────────finish──────┘
//   refuse ──> refused ───────────────────────────────────────────────────────────────────────────prune──> gone
//
// Replay rules (checkReplay), for a payload whose signature, audience and expiry already checked out:
//
//   same task id, same nonce                    redelivery: do not run; re-report the stored state or result
//   same task id, other nonce, not finished     redelivery: the task is already in hand (re-signed by a retry)
//   same task id, other nonce, finished         replay (TASK_REPLAYED): the task ran; its result is in the journal
//   other task id, nonce already used           replay (TASK_REPLAYED): a nonce is good for one task only
//   otherwise                                   new
//
// Retention: the nonce index is only needed while a task carrying that nonce could still pass verification, i.e.
// until its notAfter (plus the verifier's clock-skew leeway). After that the signature check refuses the task as
// expired whatever the journal says. prune() keeps records a further 7 days past notAfter, so a clock that jumps
// backwards by less than that still finds the nonce, and it never deletes a record whose result the control plane
// has not acknowledged, nor a task that never finished.
//
// Memory: a record still in play (accepted, running, or finished with its result not yet acknowledged) is held whole;
// a settled one (finished and acknowledged, or refused) only as its summary — task id, nonce, expiry, state, times —
// which is all the replay checks and pruning read. Its payload and result stay on disk and are read back when a
// redelivery asks for them (get()). So what the agent holds grows with the tasks in play, not with the tasks it ran
// in the retention window (docs/performance.md, "Footprint").
import { createHash } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";

import { payloadTypeOf, TASK_PAYLOAD_VERSIONS } from "@ferry/contract";
import { parseTaskPayload, type TaskPayload } from "@ferry/pki";
import type { Logger } from "pino";

import { writeFileAtomic } from "@ferry/pki";

/** Sub-directory of the agent state directory that holds the journal. */
export const TASK_JOURNAL_DIR = "tasks";
/** How long past a task's notAfter its record (and nonce) is kept. */
export const JOURNAL_RETENTION_MS = 7 * 24 * 3600_000;

export type TaskRecordState = "accepted" | "running" | "finished" | "refused";

/** TaskResult.outcome on the wire. */
export type TaskOutcome = "succeeded" | "failed" | "errored" | "interrupted";

export interface TaskRecordResult {
  outcome: TaskOutcome;
  code: string;
  message: string;
  detailsJson: string;
  /** The sticker written for the target, in the wire Sticker's JSON form (protobuf toJson). */
  sticker?: Record<string, unknown>;
  /** Total length of the task's log when it finished. */
  logBytes?: number;
}

export interface TaskRecord {
  taskId: string;
  nonce: string;
  /** ms since the epoch, from the payload. */
  notAfter: number;
  /** The control plane's attempt number of the offer that was accepted (or refused). */
  attempt: number;
  state: TaskRecordState;
  /** The verified payload. */
  payload: TaskPayload;
  /** When the agent accepted (or refused) the task; ms. */
  startedAt: number;
  /** When markRunning was called; ms. */
  runningAt?: number;
  finishedAt?: number;
  result?: TaskRecordResult;
  /** For state "refused": the refusal reported in TaskAck (a TaskRefusalCode, or an agent-side code). */
  refusal?: { code: string; message: string };
  /** The control plane acknowledged the result (ResultAck). */
  resultAcked: boolean;
}

/** What the journal keeps in memory of every record, settled ones included. */
export type TaskRecordSummary = Pick<TaskRecord, "taskId" | "nonce" | "notAfter" | "attempt" | "state" | "startedAt" | "runningAt" | "finishedAt" | "resultAcked">;

export type ReplayCheck = "new" | { kind: "replay"; record: TaskRecordSummary } | { kind: "redelivery"; record: TaskRecordSummary };

export class TaskJournalError extends Error {
  readonly code: "TASK_JOURNAL_CONFLICT" | "TASK_JOURNAL_UNKNOWN_TASK" | "TASK_JOURNAL_BAD_STATE";

  constructor(code: TaskJournalError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TaskJournalError";
    this.code = code;
  }
}

export interface TaskJournalOptions {
  logger?: Pick<Logger, "warn">;
  /** Clock, ms since the epoch; tests pass their own. */
  now?: () => number;
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const QUARANTINE_DIR = "quarantine";
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const STATES: readonly string[] = ["accepted", "running", "finished", "refused"];
const OUTCOMES: readonly string[] = ["succeeded", "failed", "errored", "interrupted"];

/** The file name of a task's record. */
export function journalFileName(taskId: string): string {
  if (SAFE_NAME.test(taskId) && !taskId.endsWith(".tmp")) return `${taskId}.json`;
  return `sha256-${createHash("sha256").update(taskId, "utf8").digest("hex")}.json`;
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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const optNumber = (v: unknown): boolean => v === undefined || (typeof v === "number" && Number.isFinite(v));

/** Validates a stored record; throws with the reason when it is not one. */
function parseRecord(raw: string): TaskRecord {
  const v: unknown = JSON.parse(raw);
  if (!isObject(v)) throw new Error("not an object");
  if (v.v !== 1) throw new Error(`unknown record version ${JSON.stringify(v.v)}`);
  if (typeof v.taskId !== "string" || typeof v.nonce !== "string") throw new Error("no taskId or nonce");
  if (typeof v.state !== "string" || !STATES.includes(v.state)) throw new Error(`unknown state ${String(v.state)}`);
  if (typeof v.attempt !== "number" || typeof v.startedAt !== "number" || typeof v.resultAcked !== "boolean") {
    throw new Error("attempt, startedAt or resultAcked missing");
  }
  if (!optNumber(v.runningAt) || !optNumber(v.finishedAt)) throw new Error("bad runningAt or finishedAt");
  // A record keeps the payload as the task carried it, in whichever version it was signed; read it back as that version.
  const stored = (v.payload as { v?: unknown } | null)?.v;
  const payload = parseTaskPayload(v.payload, payloadTypeOf(TASK_PAYLOAD_VERSIONS.find((x) => x === stored) ?? 1));
  if (payload.taskId !== v.taskId || payload.nonce !== v.nonce) throw new Error("payload does not match the record");
  const record: TaskRecord = {
    taskId: v.taskId,
    nonce: v.nonce,
    notAfter: payload.notAfter,
    attempt: v.attempt,
    state: v.state as TaskRecordState,
    payload,
    startedAt: v.startedAt,
    resultAcked: v.resultAcked,
  };
  if (typeof v.runningAt === "number") record.runningAt = v.runningAt;
  if (typeof v.finishedAt === "number") record.finishedAt = v.finishedAt;
  if (v.result !== undefined) {
    const r = v.result;
    if (
      !isObject(r) ||
      typeof r.outcome !== "string" ||
      !OUTCOMES.includes(r.outcome) ||
      typeof r.code !== "string" ||
      typeof r.message !== "string" ||
      typeof r.detailsJson !== "string" ||
      !(r.sticker === undefined || isObject(r.sticker)) ||
      !optNumber(r.logBytes)
    ) {
      throw new Error("bad result");
    }
    record.result = {
      outcome: r.outcome as TaskOutcome,
      code: r.code,
      message: r.message,
      detailsJson: r.detailsJson,
    };
    if (r.sticker !== undefined) record.result.sticker = r.sticker;
    if (typeof r.logBytes === "number") record.result.logBytes = r.logBytes;
  }
  if (v.refusal !== undefined) {
    const f = v.refusal;
    if (!isObject(f) || typeof f.code !== "string" || typeof f.message !== "string") throw new Error("bad refusal");
    record.refusal = { code: f.code, message: f.message };
  }
  if (record.state === "finished" && record.result === undefined) throw new Error("finished without a result");
  return record;
}

function copy(record: TaskRecord): TaskRecord {
  return structuredClone(record);
}

/** Done with: nothing will change it again but its removal, and nothing but a redelivery reads its payload or result. */
function isSettled(r: TaskRecordSummary): boolean {
  return (r.state === "finished" && r.resultAcked) || r.state === "refused";
}

function summaryOf(r: TaskRecordSummary): TaskRecordSummary {
  const s: TaskRecordSummary = { taskId: r.taskId, nonce: r.nonce, notAfter: r.notAfter, attempt: r.attempt, state: r.state, startedAt: r.startedAt, resultAcked: r.resultAcked };
  if (r.runningAt !== undefined) s.runningAt = r.runningAt;
  if (r.finishedAt !== undefined) s.finishedAt = r.finishedAt;
  return s;
}

/** What a record is held as: whole while in play, its summary once settled. */
function held(r: TaskRecord): TaskRecord | TaskRecordSummary {
  return isSettled(r) ? summaryOf(r) : r;
}

function isWhole(r: TaskRecord | TaskRecordSummary): r is TaskRecord {
  return "payload" in r;
}

export class TaskJournal {
  readonly dir: string;
  /** Whole records in play; summaries of settled ones (see the header). */
  readonly #records = new Map<string, TaskRecord | TaskRecordSummary>();
  /** nonce -> task id of the record that owns it (refused records never take a nonce from another task). */
  readonly #nonces = new Map<string, string>();
  /** Task ids that were accepted or running when the journal was opened: the agent died while they ran. */
  readonly #interruptedAtOpen: string[];
  /** Per-task write chains, so two updates of one record reach the disk in call order. */
  readonly #writes = new Map<string, Promise<void>>();
  readonly #now: () => number;

  private constructor(dir: string, interrupted: string[], now: () => number) {
    this.dir = dir;
    this.#interruptedAtOpen = interrupted;
    this.#now = now;
  }

  /**
   * Opens (creating when missing) the journal directory and loads every record. Corrupt files are quarantined with a
   * warning; leftover temp files from a crash are removed.
   */
  static async open(dir: string, opts: TaskJournalOptions = {}): Promise<TaskJournal> {
    const abs = path.resolve(dir);
    const created = await fs.mkdir(abs, { recursive: true, mode: DIR_MODE });
    if (created !== undefined) await fs.chmod(abs, DIR_MODE);
    const loaded: TaskRecord[] = [];
    for (const entry of await fs.readdir(abs, { withFileTypes: true })) {
      const file = path.join(abs, entry.name);
      if (entry.name.startsWith(".") && entry.name.endsWith(".tmp")) {
        // A write the agent died in the middle of; the record's previous version is still in place.
        await fs.rm(file, { force: true });
        continue;
      }
      if (!entry.isFile() || !entry.name.endsWith(".json")) continue;
      let record: TaskRecord;
      try {
        record = parseRecord(await fs.readFile(file, "utf8"));
        if (journalFileName(record.taskId) !== entry.name) throw new Error(`holds task ${record.taskId}`);
      } catch (err) {
        const quarantineDir = path.join(abs, QUARANTINE_DIR);
        await fs.mkdir(quarantineDir, { recursive: true, mode: DIR_MODE });
        const dest = path.join(quarantineDir, `${entry.name}.${Date.now()}`);
        await fs.rename(file, dest);
        await fsyncDir(abs);
        opts.logger?.warn(
          { file, quarantinedTo: dest, err: (err as Error).message },
          "task journal: unreadable record moved to quarantine; that task's state is lost",
        );
        continue;
      }
      loaded.push(record);
    }
    // Oldest first, so that if two records ever claim one nonce, the first task keeps it.
    loaded.sort((a, b) => a.startedAt - b.startedAt);
    const interrupted = loaded.filter((r) => r.state === "accepted" || r.state === "running").map((r) => r.taskId);
    const journal = new TaskJournal(abs, interrupted, opts.now ?? Date.now);
    for (const r of loaded) journal.#index(r);
    return journal;
  }

  #index(record: TaskRecord): void {
    this.#records.set(record.taskId, held(record));
    // First come owns the nonce; a refused replay never takes it over.
    if (!this.#nonces.has(record.nonce)) this.#nonces.set(record.nonce, record.taskId);
  }

  /** What is known of a task without reading its file: its summary, if the journal has the task. */
  summary(taskId: string): TaskRecordSummary | undefined {
    const r = this.#records.get(taskId);
    return r === undefined ? undefined : summaryOf(r);
  }

  /**
   * The whole record of a task, if any: from memory while in play, from its file once settled (undefined if pruned
   * meanwhile). Throws if a settled record's file no longer reads as the record it was.
   */
  async get(taskId: string): Promise<TaskRecord | undefined> {
    const r = this.#records.get(taskId);
    if (r === undefined) return undefined;
    if (isWhole(r)) return copy(r);
    await this.#writes.get(taskId);
    let raw: string;
    try {
      raw = await fs.readFile(path.join(this.dir, journalFileName(taskId)), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" && !this.#records.has(taskId)) return undefined;
      throw err;
    }
    const record = parseRecord(raw);
    if (record.taskId !== taskId) throw new Error(`task journal: the file of task ${taskId} holds task ${record.taskId}`);
    return record;
  }

  /** The summary of the record with this task id, else of the record that used this nonce, else undefined. */
  seen(taskId: string, nonce: string): TaskRecordSummary | undefined {
    const byTask = this.#records.get(taskId);
    if (byTask !== undefined) return summaryOf(byTask);
    const owner = this.#nonces.get(nonce);
    const byNonce = owner === undefined ? undefined : this.#records.get(owner);
    return byNonce === undefined ? undefined : summaryOf(byNonce);
  }

  /**
   * Classifies a verified payload against the journal (see the table at the top of this file). Synchronous, from
   * memory alone: nothing can slip in between the check and accept(). A redelivery's whole record is get(record.taskId).
   */
  checkReplay(payload: Pick<TaskPayload, "taskId" | "nonce">): ReplayCheck {
    const byTask = this.#records.get(payload.taskId);
    if (byTask !== undefined) {
      if (byTask.nonce === payload.nonce || byTask.state !== "finished") return { kind: "redelivery", record: summaryOf(byTask) };
      return { kind: "replay", record: summaryOf(byTask) };
    }
    const owner = this.#nonces.get(payload.nonce);
    const byNonce = owner === undefined ? undefined : this.#records.get(owner);
    if (byNonce !== undefined) return { kind: "replay", record: summaryOf(byNonce) };
    return "new";
  }

  /** Records that the agent took the task on. Throws TASK_JOURNAL_CONFLICT unless checkReplay said "new". */
  async accept(payload: TaskPayload, attempt: number): Promise<TaskRecord> {
    if (this.#records.has(payload.taskId)) {
      throw new TaskJournalError("TASK_JOURNAL_CONFLICT", `task ${payload.taskId} is already in the journal`);
    }
    const owner = this.#nonces.get(payload.nonce);
    if (owner !== undefined) {
      throw new TaskJournalError("TASK_JOURNAL_CONFLICT", `nonce of task ${payload.taskId} was used by task ${owner}`);
    }
    const record: TaskRecord = {
      taskId: payload.taskId,
      nonce: payload.nonce,
      notAfter: payload.notAfter,
      attempt,
      state: "accepted",
      payload: structuredClone(payload),
      startedAt: this.#now(),
      resultAcked: false,
    };
    return this.#create(record);
  }

  /**
   * Records the refusal of a verified task (for example a replayed nonce, or a target this agent does not serve), so
   * a redelivery gets the same answer. Refused records never claim a nonce already owned by another task.
   */
  async refuse(payload: TaskPayload, attempt: number, refusal: { code: string; message: string }): Promise<TaskRecord> {
    if (this.#records.has(payload.taskId)) {
      throw new TaskJournalError("TASK_JOURNAL_CONFLICT", `task ${payload.taskId} is already in the journal`);
    }
    const record: TaskRecord = {
      taskId: payload.taskId,
      nonce: payload.nonce,
      notAfter: payload.notAfter,
      attempt,
      state: "refused",
      payload: structuredClone(payload),
      startedAt: this.#now(),
      refusal: { code: refusal.code, message: refusal.message },
      resultAcked: false,
    };
    return this.#create(record);
  }

  async #create(record: TaskRecord): Promise<TaskRecord> {
    // Indexed before the write so a concurrent check already sees the task; undone if the write fails.
    const ownedNonce = !this.#nonces.has(record.nonce);
    this.#index(record);
    // Held whole until it is on disk (a refused record is settled from the start).
    this.#records.set(record.taskId, record);
    try {
      await this.#write(record);
    } catch (err) {
      this.#records.delete(record.taskId);
      if (ownedNonce && this.#nonces.get(record.nonce) === record.taskId) this.#nonces.delete(record.nonce);
      throw err;
    }
    if (this.#records.get(record.taskId) === record) this.#records.set(record.taskId, held(record));
    return copy(record);
  }

  /** accepted -> running. */
  async markRunning(taskId: string): Promise<TaskRecord> {
    return this.#update(taskId, ["accepted"], (r) => {
      r.state = "running";
      r.runningAt = this.#now();
    });
  }

  /** accepted | running -> finished, with the result to report. Also how an interrupted task is closed. */
  async finish(taskId: string, result: TaskRecordResult): Promise<TaskRecord> {
    return this.#update(taskId, ["accepted", "running"], (r) => {
      r.state = "finished";
      r.finishedAt = this.#now();
      r.result = structuredClone(result);
      r.resultAcked = false;
    });
  }

  /** The control plane stored the result. Idempotent; an unknown (already pruned) task is ignored. */
  async markResultAcked(taskId: string): Promise<TaskRecord | undefined> {
    const r = this.#records.get(taskId);
    if (r === undefined) return undefined;
    if (r.state === "finished" && r.resultAcked) return this.get(taskId);
    return this.#update(taskId, ["finished"], (rec) => {
      rec.resultAcked = true;
    });
  }

  async #update(taskId: string, from: readonly TaskRecordState[], change: (r: TaskRecord) => void): Promise<TaskRecord> {
    const current = this.#records.get(taskId);
    if (current === undefined) throw new TaskJournalError("TASK_JOURNAL_UNKNOWN_TASK", `task ${taskId} is not in the journal`);
    if (!from.includes(current.state) || !isWhole(current)) {
      throw new TaskJournalError(
        "TASK_JOURNAL_BAD_STATE",
        `task ${taskId} is ${current.state}; expected ${from.join(" or ")}`,
      );
    }
    const next = copy(current);
    // The copy's id and nonce are equal strings of their own; keep the instances the indexes already hold, so a
    // settled summary does not hold a second copy of each.
    next.taskId = current.taskId;
    next.nonce = current.nonce;
    change(next);
    this.#records.set(taskId, next);
    try {
      await this.#write(next);
    } catch (err) {
      // Only roll back if no later update replaced it meanwhile.
      if (this.#records.get(taskId) === next) this.#records.set(taskId, current);
      throw err;
    }
    // Settled and on disk: from now on only its summary is held.
    if (this.#records.get(taskId) === next) this.#records.set(taskId, held(next));
    return copy(next);
  }

  #write(record: TaskRecord): Promise<void> {
    const file = path.join(this.dir, journalFileName(record.taskId));
    const data = `${JSON.stringify({ v: 1, ...record }, null, 2)}\n`;
    return this.#chain(record.taskId, () => writeFileAtomic(file, data, FILE_MODE));
  }

  #chain(taskId: string, op: () => Promise<void>): Promise<void> {
    const prev = this.#writes.get(taskId) ?? Promise.resolve();
    const run = prev.then(op, op);
    const tail = run.catch(() => undefined);
    this.#writes.set(taskId, tail);
    void tail.then(() => {
      if (this.#writes.get(taskId) === tail) this.#writes.delete(taskId);
    });
    return run;
  }

  /** Tasks that were accepted or running when the journal was opened and have not been finished since. */
  interrupted(): TaskRecord[] {
    return this.#interruptedAtOpen
      .map((id) => this.#records.get(id))
      .filter((r): r is TaskRecord => r !== undefined && isWhole(r) && (r.state === "accepted" || r.state === "running"))
      .map(copy);
  }

  /** Finished tasks whose result the control plane has not acknowledged yet, oldest first. */
  pendingResults(): TaskRecord[] {
    return [...this.#records.values()]
      .filter((r): r is TaskRecord => isWhole(r) && r.state === "finished" && !r.resultAcked)
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0))
      .map(copy);
  }

  /** Every record's summary, oldest first. */
  all(): TaskRecordSummary[] {
    return [...this.#records.values()].sort((a, b) => a.startedAt - b.startedAt).map(summaryOf);
  }

  /**
   * Deletes records whose notAfter is more than JOURNAL_RETENTION_MS in the past and which are done: finished with
   * the result acknowledged, or refused. Returns the pruned task ids. See the header for why this is safe.
   */
  async prune(now: number = this.#now()): Promise<string[]> {
    const pruned: string[] = [];
    for (const r of [...this.#records.values()]) {
      if (r.notAfter + JOURNAL_RETENTION_MS >= now) continue;
      if (!isSettled(r)) continue;
      await this.#chain(r.taskId, () => fs.rm(path.join(this.dir, journalFileName(r.taskId)), { force: true }));
      this.#records.delete(r.taskId);
      if (this.#nonces.get(r.nonce) === r.taskId) this.#nonces.delete(r.nonce);
      pruned.push(r.taskId);
    }
    if (pruned.length > 0) await fsyncDir(this.dir);
    return pruned;
  }

  /** Resolves once every write started so far has reached the disk (or failed). */
  async settled(): Promise<void> {
    await Promise.all([...this.#writes.values()]);
  }
}
