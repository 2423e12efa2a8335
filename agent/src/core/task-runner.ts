// The agent's task loop: verify, journal, run, report — and never lose or repeat anything.
//
//   offer ─▶ verify signature, key, audience, expiry (pki) ─▶ journal check (replayed nonce? seen task id?)
//         ─▶ journal "accepted" (fsynced) ─▶ TaskAck ─▶ driver.deploy with progress and log lines
//         ─▶ sticker written atomically ─▶ journal "finished" with the result ─▶ TaskResult ─▶ ResultAck
//
// Everything a task says goes through the journal and the log spool on disk first, then onto the stream when there
// is one. After a reconnect, unacknowledged results are sent again and logs resume from the acknowledged offset.
// A task the journal shows as accepted or running at start-up was cut off by the agent's death: it is reported as
// interrupted, with what the driver finds on the target now, and never re-run blindly.
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  LogChunkSchema,
  TaskAckSchema,
  TaskProgressSchema,
  TaskResultSchema,
  type ConnectRequest,
  type RegistryCredential,
  type Sticker,
  type TaskOffer,
  type TaskSigningKey,
} from "@ferry/proto/wire";
import { ConfigError, ImageSelectionError, isAllAtOnce, MAX_STATE_BYTES, parseTargetConfig, pinProblem, taskPhases, type ImagePin } from "@ferry/contract";
import { TaskRefusal, verifySignedTask, type TaskPayload, type TrustedTaskKey } from "@ferry/pki";
import type { Logger } from "pino";
import { DriverError, type Driver, type PhaseContext, type ProgressSink } from "../drivers/driver.js";
import type { DriverRegistry } from "../drivers/registry.js";
import { runPhases } from "./phase-runner.js";
import type { SessionEvents, SessionReports } from "./session.js";
import { SPOOL_DIR, TaskSpool } from "./spool.js";
import { readTrustedKeys, writeTrustedKeys } from "./trusted-keys.js";
import { StickerStore, stickerMessage, type Observation, type StickerFile } from "./stickers.js";
import { TASK_JOURNAL_DIR, TaskJournal, type TaskRecord, type TaskRecordResult } from "./task-journal.js";

const CHUNK_BYTES = 32 * 1024;
/** Bound on what a route task reports (weights, counters of two slots, a message): small. */
const MAX_ROUTE_DETAILS = 16 * 1024;
/** Heartbeats between full sticker reports when nothing changed. */
const STICKER_REPORT_EVERY = 20;
const PRUNE_EVERY_MS = 3_600_000;

/** What the runner needs of the session: its events, a way to send, the pull fallback and the agent's identity. */
export interface TaskSession {
  on<K extends keyof SessionEvents>(event: K, listener: (...args: SessionEvents[K]) => void): unknown;
  send(body: ConnectRequest["body"]): boolean;
  pullTasks(): Promise<TaskOffer[]>;
  readonly agentId: string | undefined;
  readonly streamReady: boolean;
}

export interface TaskRunnerOptions {
  stateDir: string;
  session: TaskSession;
  drivers: DriverRegistry;
  logger: Logger;
  /** Registry credentials configured on the agent, by registry host (used when the task carries none). */
  agentCredentials?: (registry: string) => { username?: string; password?: string; identityToken?: string } | undefined;
  /** How often what runs on each stickered target is observed for drift. Default 60 s. */
  observeEveryMs?: number;
  /** How often the journal drops records past their retention while the agent runs. Default 1 h. */
  pruneEveryMs?: number;
  now?: () => number;
}

/** A task the agent has checked and will run: its driver, the typed config and the images the target runs. */
interface Checked {
  driver: Driver<unknown>;
  config: unknown;
  images: ImagePin[];
}

interface LogCursor {
  sent: number;
}

export class TaskRunner {
  readonly #o: TaskRunnerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #journal!: TaskJournal;
  #spool!: TaskSpool;
  #stickers!: StickerStore;
  #trusted: TrustedTaskKey[] = [];
  readonly #running = new Map<string, AbortController>();
  /** Per-target chains: tasks for one target run one after another. */
  readonly #targetChains = new Map<string, Promise<void>>();
  readonly #cursors = new Map<string, LogCursor>();
  /** Tasks whose log is being pumped now → whether another round was requested meanwhile. */
  readonly #pumping = new Map<string, boolean>();
  readonly #observed = new Map<string, Observation>();
  #stickersDirty = true;
  #heartbeats = 0;
  #offerChain: Promise<void> = Promise.resolve();
  #observeTimer: NodeJS.Timeout | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #pruning: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(o: TaskRunnerOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: "tasks" });
    this.#now = o.now ?? Date.now;
  }

  /** Opens the journal, spool and stickers; reports tasks the agent died in; wires itself to the session. */
  async start(): Promise<this> {
    this.#journal = await TaskJournal.open(path.join(this.#o.stateDir, TASK_JOURNAL_DIR), { logger: this.#log });
    this.#spool = await TaskSpool.open(path.join(this.#o.stateDir, SPOOL_DIR), { logger: this.#log });
    this.#stickers = await StickerStore.open(this.#o.stateDir);
    this.#trusted = await readTrustedKeys(this.#o.stateDir);
    await this.#closeInterrupted();
    await this.prune();
    const s = this.#o.session;
    s.on("welcome", (w) => {
      if (w.taskSigningKeys.length > 0) void this.#setTrusted(w.taskSigningKeys);
      this.#resendAll();
      void this.#pull();
    });
    s.on("signingKeys", (keys) => void this.#setTrusted(keys));
    s.on("taskOffer", (offer) => this.#enqueueOffer(offer));
    s.on("logAck", (a) => void this.#onLogAck(a.taskId, Number(a.offset)));
    s.on("resultAck", (a) => void this.#onResultAck(a.taskId));
    await this.#observeAll();
    this.#observeTimer = setInterval(() => void this.#observeAll(), this.#o.observeEveryMs ?? 60_000);
    this.#observeTimer.unref();
    // The journal holds a summary of every task in its retention window (task-journal.ts, "Memory"): without pruning
    // while the agent runs, an agent that is never restarted would keep every task it ever ran.
    this.#pruneTimer = setInterval(() => void this.prune(), this.#o.pruneEveryMs ?? PRUNE_EVERY_MS);
    this.#pruneTimer.unref();
    return this;
  }

  /** Drops journal records past their retention (one pass at a time); a failure is logged and retried next time. */
  prune(): Promise<unknown> {
    this.#pruning = this.#pruning.then(() =>
      this.#journal.prune(this.#now()).then(
        (pruned) => {
          if (pruned.length > 0) this.#log.debug({ pruned: pruned.length }, "pruned the task journal");
        },
        (err: unknown) => this.#log.warn({ err }, "could not prune the task journal"),
      ),
    );
    return this.#pruning;
  }

  /**
   * How many entries the runner's per-task structures hold now: what must stay flat however many tasks ran (tests
   * and diagnostics; docs/performance.md, "What the agent keeps after tasks").
   */
  held(): { running: number; targetChains: number; cursors: number; pumping: number; observed: number; journal: number; spool: number } {
    return {
      running: this.#running.size,
      targetChains: this.#targetChains.size,
      cursors: this.#cursors.size,
      pumping: this.#pumping.size,
      observed: this.#observed.size,
      journal: this.#journal.all().length,
      spool: this.#spool.tasks().length,
    };
  }

  /** Stops observing and aborts running tasks (their drivers restore the target); waits for them to settle. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#observeTimer) clearInterval(this.#observeTimer);
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    for (const controller of this.#running.values()) controller.abort(new Error("the agent is stopping"));
    await Promise.allSettled([...this.#targetChains.values()]);
    await this.#pruning;
    await this.#spool.flush().catch(() => undefined);
  }

  /** What Hello and heartbeats report (Session's `reports` option). */
  readonly reports: SessionReports = {
    hello: (): { stickers: Sticker[]; runningTaskIds: string[] } => {
      this.#stickersDirty = false;
      return { stickers: this.#stickerMessages(), runningTaskIds: [...this.#running.keys()] };
    },
    heartbeat: (): { stickers?: Sticker[]; runningTaskIds: string[] } => {
      this.#heartbeats += 1;
      const include = this.#stickersDirty || this.#heartbeats % STICKER_REPORT_EVERY === 0;
      this.#stickersDirty = false;
      return { ...(include ? { stickers: this.#stickerMessages() } : {}), runningTaskIds: [...this.#running.keys()] };
    },
  };

  get journal(): TaskJournal {
    return this.#journal;
  }

  // ── offers ─────────────────────────────────────────────────────────────────────────────────────────────────

  #enqueueOffer(offer: TaskOffer): void {
    this.#offerChain = this.#offerChain.then(() => this.#onOffer(offer)).catch((err: unknown) => this.#log.error({ err }, "task offer handling failed"));
  }

  async #pull(): Promise<void> {
    try {
      const offers = await this.#o.session.pullTasks();
      for (const o of offers) this.#enqueueOffer(o);
    } catch (err) {
      this.#log.debug({ err }, "pulling tasks failed; offers on the stream still arrive");
    }
  }

  async #onOffer(offer: TaskOffer): Promise<void> {
    const env = offer.task!;
    const agentId = this.#o.session.agentId ?? "";
    let payload: TaskPayload;
    try {
      payload = verifySignedTask(
        { payload: env.payload, payloadType: env.payloadType, keyId: env.keyId, signature: env.signature },
        { trustedKeys: this.#trusted, agentId, now: this.#now() },
      );
    } catch (err) {
      const refusal = err instanceof TaskRefusal ? err : new TaskRefusal("TASK_MALFORMED", (err as Error).message);
      const taskId = bestEffortTaskId(env.payload);
      this.#log.warn({ taskId, code: refusal.code, keyId: env.keyId }, `refused a task: ${refusal.message}`);
      this.#ack(taskId, false, offer.attempt, refusal.code, refusal.message);
      return;
    }
    const log = this.#log.child({ taskId: payload.taskId });
    const check = this.#journal.checkReplay(payload);
    if (check !== "new") {
      const rec = check.record;
      if (check.kind === "replay") {
        const message = `nonce or task already used by task ${rec.taskId} (${rec.state})`;
        log.warn({ code: "TASK_REPLAYED" }, `refused a replayed task: ${message}`);
        this.#ack(payload.taskId, false, offer.attempt, "TASK_REPLAYED", message);
        return;
      }
      // Redelivery of a task already taken on: answer as before, never run it again. A settled record's refusal and
      // result are on disk only (task-journal.ts, "Memory").
      log.info({ state: rec.state }, "task offered again; not running it twice");
      const whole = rec.state === "refused" || rec.state === "finished" ? await this.#journal.get(rec.taskId) : undefined;
      if (rec.state === "refused") this.#ack(rec.taskId, false, offer.attempt, whole?.refusal?.code ?? "TASK_REFUSED", whole?.refusal?.message ?? "");
      else this.#ack(rec.taskId, true, offer.attempt);
      if (whole?.state === "finished") this.#sendResult(whole);
      return;
    }
    const checked = this.#check(payload);
    const refusal = "refusal" in checked ? checked.refusal : undefined;
    if (refusal) {
      await this.#journal.refuse(payload, offer.attempt, refusal);
      log.warn(refusal, "refused a task");
      this.#ack(payload.taskId, false, offer.attempt, refusal.code, refusal.message);
      return;
    }
    await this.#journal.accept(payload, offer.attempt);
    this.#ack(payload.taskId, true, offer.attempt);
    log.info({ action: payload.action, target: payload.target.name, images: payload.images.map((i) => i.ref) }, "task accepted");
    const controller = new AbortController();
    this.#running.set(payload.taskId, controller);
    const credentials = offer.credentials;
    const prev = this.#targetChains.get(payload.target.id) ?? Promise.resolve();
    const ready = checked as Checked;
    const next = prev.then(() => this.#run(payload, ready, credentials, controller.signal)).finally(() => {
      this.#running.delete(payload.taskId);
      if (this.#targetChains.get(payload.target.id) === next) this.#targetChains.delete(payload.target.id);
    });
    this.#targetChains.set(payload.target.id, next);
  }

  /**
   * What the agent decides before it takes a task on: it has a driver for the kind, the config fits the kind's schema,
   * the images fit the target, and the driver can run the phases asked for. A "no" here is a refusal: nothing runs.
   */
  #check(payload: TaskPayload): Checked | { refusal: { code: string; message: string } } {
    const driver = this.#o.drivers.get(payload.target.kind);
    if (!driver) return { refusal: { code: "TASK_NO_DRIVER", message: `this agent has no ${payload.target.kind} driver (it has: ${this.#o.drivers.availableDrivers().join(", ") || "none"})` } };
    let config: unknown;
    try {
      config = parseTargetConfig(driver.descriptor, payload.target.config);
    } catch (err) {
      if (err instanceof ConfigError) return { refusal: { code: "INVALID_TARGET_CONFIG", message: err.message } };
      throw err;
    }
    if (payload.action === "inspect") return { driver, config, images: [] };
    if (payload.action === "route") {
      if (!driver.route) return { refusal: { code: "TASK_ROUTE_UNSUPPORTED", message: `the ${payload.target.kind} driver of this agent has no router (docs/rollouts.md#setting-up-haproxy)` } };
      return { driver, config, images: [] };
    }
    let images: ImagePin[];
    try {
      images = driver.descriptor.imagesFor(config, payload.images);
    } catch (err) {
      if (err instanceof ImageSelectionError) return { refusal: { code: err.code, message: err.message } };
      throw err;
    }
    for (const pin of images) {
      const problem = pinProblem(pin);
      if (problem) return { refusal: { code: "TASK_MALFORMED", message: `image ${pin.component}: ${problem}` } };
    }
    const phases = taskPhases(payload);
    // Phases as separate steps need the driver to pick up the state an earlier task left (carried back in the
    // payload); a driver that does not say it can runs the whole run only.
    if (!isAllAtOnce(phases)) {
      if (!driver.separateSteps) {
        return { refusal: { code: "TASK_PHASES_UNSUPPORTED", message: `the ${payload.target.kind} driver runs all-at-once deploys only, not the phases ${phases.join(", ")} on their own` } };
      }
      if (phases[0] !== "prepare" && payload.state === undefined) {
        return { refusal: { code: "TASK_PHASES_UNSUPPORTED", message: `the phases ${phases.join(", ")} pick up from an earlier step, and the task carries no state from one` } };
      }
    }
    return { driver, config, images };
  }

  #ack(taskId: string, accepted: boolean, attempt: number, code = "", message = ""): void {
    this.#o.session.send({ case: "taskAck", value: create(TaskAckSchema, { taskId, accepted, attempt, refusalCode: code, refusalMessage: message }) });
  }

  // ── running ────────────────────────────────────────────────────────────────────────────────────────────────

  async #run(payload: TaskPayload, checked: Checked, credentials: RegistryCredential[], signal: AbortSignal): Promise<void> {
    const { driver } = checked;
    const taskId = payload.taskId;
    const log = this.#log.child({ taskId });
    const startedAt = this.#now();
    // What a crash is recovered from is the "accepted" record, fsynced before the ack: accepted and running are both
    // reported as interrupted and never run again. The running mark only adds when the run began, so its write goes
    // on beside the driver rather than in front of it, and is settled before the task's end is recorded.
    const marked = this.#journal.markRunning(taskId).catch((err: unknown) => log.warn({ err }, "could not record in the journal that the task runs"));
    const sink: ProgressSink = {
      step: (step, detail = "") => {
        this.#line(taskId, `[${step}] ${detail}`);
        this.#o.session.send({ case: "taskProgress", value: create(TaskProgressSchema, { taskId, step, detail, atMs: BigInt(this.#now()) }) });
      },
      log: (line) => this.#line(taskId, line),
    };
    const ctx: PhaseContext<unknown> = {
      taskId,
      deploymentId: payload.deploymentId,
      action: payload.action === "rollback" ? "rollback" : "deploy",
      release: payload.release ?? { id: "", name: "", version: "" },
      target: payload.target,
      config: checked.config,
      images: checked.images,
      credentials: (registry) => {
        const c = credentials.find((x) => x.registry === registry);
        if (c) return { registry, username: c.username, password: c.password, ...(c.identityToken ? { identityToken: c.identityToken } : {}) };
        const own = this.#o.agentCredentials?.(registry);
        return own ? { registry, ...own } : undefined;
      },
      signal,
      progress: sink,
    };
    let result: TaskRecordResult;
    sink.step("start", `${payload.action} ${payload.release ? `${payload.release.name}@${payload.release.version}` : ""} to ${payload.target.name}`);
    try {
      if (payload.action === "inspect") {
        const found = await driver.inspect(payload.target);
        result = { outcome: "succeeded", code: "", message: `${payload.target.name} is ${found.state}`, detailsJson: JSON.stringify(found) };
        await this.#spool.flush();
        result.logBytes = this.#spool.size(taskId);
        await marked;
        this.#sendResult(await this.#journal.finish(taskId, result));
        return;
      }
      if (payload.action === "route") {
        const found = await driver.route!({ taskId, target: payload.target, config: checked.config, signal, progress: sink }, payload.route!, payload.state);
        const detailsJson = JSON.stringify(found);
        if (detailsJson.length > MAX_ROUTE_DETAILS) throw new DriverError("AGENT_ERROR", `the router's answer is larger than ${MAX_ROUTE_DETAILS} bytes`);
        result = { outcome: "succeeded", code: "", message: `${payload.route!.op} on ${payload.target.name}`, detailsJson };
        await this.#spool.flush();
        result.logBytes = this.#spool.size(taskId);
        await marked;
        this.#sendResult(await this.#journal.finish(taskId, result));
        return;
      }
      const phases = taskPhases(payload);
      const outcome = await runPhases(driver, ctx, { logger: log, phases, ...(payload.state ? { state: payload.state } : {}) });
      const stateJson = JSON.stringify(outcome.state);
      // The state goes back to the control plane, which carries it to the next step: bounded like the payload.
      if (Buffer.byteLength(stateJson, "utf8") > MAX_STATE_BYTES) throw new DriverError("AGENT_ERROR", `the driver's state is larger than ${MAX_STATE_BYTES} bytes`);
      if (!phases.includes("switch")) {
        // A step that started the new version beside the old one (or retired the old) changes what the sticker says
        // only when traffic moves: the sticker is written by the step that switches.
        result = { outcome: "succeeded", code: "", message: outcome.message, detailsJson: JSON.stringify({ running: outcome.running, ...outcome.details, state: outcome.state }) };
        await this.#spool.flush();
        result.logBytes = this.#spool.size(taskId);
        await marked;
        this.#sendResult(await this.#journal.finish(taskId, result));
        return;
      }
      const sticker: StickerFile = {
        version: 1,
        targetId: payload.target.id,
        targetName: payload.target.name,
        targetKind: payload.target.kind,
        release: payload.release ?? { id: "", name: "", version: "" },
        images: payload.images.map((i) => ({ component: i.component, repository: i.repository, digest: i.digest })),
        deploymentId: payload.deploymentId,
        taskId,
        action: payload.action,
        writtenAt: new Date(this.#now()).toISOString(),
        agentId: payload.agentId,
        targetConfig: payload.target.config,
      };
      // Like the driver's steps, the event marks the start of the step. The log so far is fsynced while the sticker
      // is written; both are on disk before the journal records the end.
      sink.step("sticker", `writing ${this.#stickers.file(payload.target.id)}`);
      await Promise.all([this.#stickers.write(sticker), this.#spool.flush(taskId)]);
      this.#observed.set(payload.target.id, {
        state: "running",
        running: Object.fromEntries(outcome.running.map((r) => [r.component, r.digest])),
        at: this.#now(),
      });
      this.#stickersDirty = true;
      result = { outcome: "succeeded", code: "", message: outcome.message, detailsJson: JSON.stringify({ running: outcome.running, ...outcome.details, state: outcome.state }), sticker: { ...sticker } };
    } catch (err) {
      if (err instanceof DriverError) {
        this.#line(taskId, `failed: ${err.code}: ${err.message}`);
        result = {
          outcome: err.restored || err.code !== "RESTORE_FAILED" ? "failed" : "errored",
          code: err.code,
          message: err.message,
          detailsJson: JSON.stringify({ ...err.details, restored: err.restored }),
        };
      } else {
        log.error({ err }, "task errored");
        this.#line(taskId, `errored: ${(err as Error).message}`);
        result = { outcome: "errored", code: "AGENT_ERROR", message: (err as Error).message, detailsJson: "{}" };
      }
      void this.#observe(payload.target.id, payload.target.kind, payload.target);
    }
    await this.#spool.flush();
    result.logBytes = this.#spool.size(taskId);
    await marked;
    const rec = await this.#journal.finish(taskId, result);
    log.info({ outcome: result.outcome, code: result.code, ms: this.#now() - startedAt }, "task finished");
    this.#sendResult(rec);
  }

  #line(taskId: string, line: string): void {
    const text = `${new Date(this.#now()).toISOString()} ${line.replace(/\n+$/, "")}\n`;
    void this.#spool
      .append(taskId, text)
      .then(() => this.#pump(taskId))
      .catch((err: unknown) => this.#log.warn({ err, taskId }, "could not spool a log line"));
  }

  // ── reporting ──────────────────────────────────────────────────────────────────────────────────────────────

  #sendResult(rec: TaskRecord): void {
    const r = rec.result;
    if (!r) return;
    const sticker = r.sticker as StickerFile | undefined;
    this.#o.session.send({
      case: "taskResult",
      value: create(TaskResultSchema, {
        taskId: rec.taskId,
        outcome: r.outcome,
        code: r.code,
        message: r.message,
        detailsJson: r.detailsJson,
        ...(sticker?.targetId ? { sticker: stickerMessage(sticker, this.#observed.get(sticker.targetId)) } : {}),
        startedAtMs: BigInt(rec.runningAt ?? rec.startedAt),
        finishedAtMs: BigInt(rec.finishedAt ?? 0),
        logBytes: BigInt(r.logBytes ?? 0),
        attempt: rec.attempt,
      }),
    });
  }

  /**
   * Sends spooled log bytes of a task beyond what was sent on this stream. One pump per task at a time (a chunk's
   * offset and bytes must come from the same read); a request during a pump makes it go round once more.
   */
  async #pump(taskId: string): Promise<void> {
    if (this.#pumping.has(taskId)) {
      this.#pumping.set(taskId, true);
      return;
    }
    this.#pumping.set(taskId, false);
    try {
      for (;;) {
        await this.#pumpOnce(taskId);
        if (this.#pumping.get(taskId) !== true) break;
        this.#pumping.set(taskId, false);
      }
    } finally {
      this.#pumping.delete(taskId);
    }
  }

  async #pumpOnce(taskId: string): Promise<void> {
    if (!this.#o.session.streamReady) return;
    let cursor = this.#cursors.get(taskId);
    if (!cursor) {
      cursor = { sent: this.#spool.ackedOffset(taskId) };
      this.#cursors.set(taskId, cursor);
    }
    while (this.#o.session.streamReady) {
      const offset = cursor.sent;
      if (offset >= this.#spool.size(taskId)) break;
      const data = await this.#spool.readFrom(taskId, offset, CHUNK_BYTES);
      if (data.length === 0 || this.#cursors.get(taskId) !== cursor) break;
      cursor.sent = offset + data.length;
      this.#o.session.send({ case: "logChunk", value: create(LogChunkSchema, { taskId, offset: BigInt(offset), seq: BigInt(Math.floor(offset / CHUNK_BYTES)), data }) });
    }
  }

  /** After a (re)connect: results not acknowledged yet, and logs from their acknowledged offsets. */
  #resendAll(): void {
    this.#cursors.clear();
    for (const rec of this.#journal.pendingResults()) this.#sendResult(rec);
    void (async () => {
      for (const u of this.#spool.unacked()) await this.#pump(u.taskId);
    })().catch((err: unknown) => this.#log.warn({ err }, "could not resend spooled logs"));
  }

  async #onLogAck(taskId: string, offset: number): Promise<void> {
    await this.#spool.ack(taskId, offset);
    const cursor = this.#cursors.get(taskId);
    // The control plane keeps the log contiguous; if it has less than was sent, resend from what it has.
    if (cursor && offset < cursor.sent && offset === (this.#spool.ackedOffset(taskId))) {
      const rec = this.#journal.summary(taskId);
      if (rec?.state === "finished") {
        cursor.sent = offset;
        await this.#pump(taskId);
      }
    }
    await this.#maybeForget(taskId);
  }

  async #onResultAck(taskId: string): Promise<void> {
    await this.#journal.markResultAcked(taskId);
    await this.#maybeForget(taskId);
  }

  /** Drops the spool once both the result and the whole log are acknowledged (the journal keeps the record). */
  async #maybeForget(taskId: string): Promise<void> {
    const rec = this.#journal.summary(taskId);
    if (!rec || rec.state !== "finished" || !rec.resultAcked) return;
    if ((this.#spool.ackedOffset(taskId)) >= (this.#spool.size(taskId))) {
      await this.#spool.remove(taskId);
      this.#cursors.delete(taskId);
    }
  }

  async #closeInterrupted(): Promise<void> {
    for (const rec of this.#journal.interrupted()) {
      const p = rec.payload;
      const driver = this.#o.drivers.get(p.target.kind);
      let found: unknown = { error: `no ${p.target.kind} driver` };
      if (driver) {
        try {
          found = await driver.inspect(p.target);
        } catch (err) {
          found = { error: (err as Error).message };
        }
      }
      const text = `${new Date(this.#now()).toISOString()} [interrupted] the agent stopped while this task ran; found on the target: ${JSON.stringify(found)}\n`;
      await this.#spool.append(rec.taskId, text);
      await this.#spool.flush();
      await this.#journal.finish(rec.taskId, {
        outcome: "interrupted",
        code: "TASK_INTERRUPTED",
        message: "the agent stopped while the task ran; it was not run again — check the target state and retry the deployment",
        detailsJson: JSON.stringify({ found }),
        logBytes: this.#spool.size(rec.taskId),
      });
      this.#log.warn({ taskId: rec.taskId, found }, "task was interrupted by an agent stop; reporting it, not re-running it");
    }
  }

  // ── stickers and observation ───────────────────────────────────────────────────────────────────────────────

  #stickerMessages(): Sticker[] {
    return this.#stickers.all().map((s) => stickerMessage(s, this.#observed.get(s.targetId)));
  }

  async #observeAll(): Promise<void> {
    if (this.#stopped) return;
    for (const s of this.#stickers.all()) {
      // A target with a task queued or running is the task's to change; it is observed once the task is done.
      if (this.#targetChains.has(s.targetId)) continue;
      // The target's config as the task that wrote the sticker carried it: kept in the sticker (no journal read), else
      // read from that task's journal record; a sticker with neither is reported as written, without an observation.
      const config = s.targetConfig ?? (await this.#journal.get(s.taskId).catch(() => undefined))?.payload.target.config;
      if (!config) continue;
      await this.#observe(s.targetId, s.targetKind, { id: s.targetId, name: s.targetName, kind: s.targetKind, config });
    }
  }

  async #observe(targetId: string, kind: string, target: TaskPayload["target"]): Promise<void> {
    const driver = this.#o.drivers.get(kind);
    if (!driver) return;
    try {
      const i = await driver.inspect(target);
      const running = Object.fromEntries(i.running.map((r) => [r.component, r.digest]));
      const before = this.#observed.get(targetId);
      const next: Observation = { state: i.state, running, at: this.#now() };
      this.#observed.set(targetId, next);
      if (!before || before.state !== next.state || JSON.stringify(before.running) !== JSON.stringify(next.running)) this.#stickersDirty = true;
    } catch (err) {
      this.#log.debug({ err, targetId }, "could not observe a target");
    }
  }

  async #setTrusted(keys: TaskSigningKey[]): Promise<void> {
    this.#trusted = keys.map((k) => ({ keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: Number(k.notAfterMs) }));
    await writeTrustedKeys(this.#o.stateDir, keys).catch((err: unknown) => this.#log.warn({ err }, "could not persist the task-signing keys"));
  }
}

function bestEffortTaskId(payload: Uint8Array): string {
  try {
    const v = JSON.parse(Buffer.from(payload).toString("utf8")) as { taskId?: unknown };
    return typeof v.taskId === "string" ? v.taskId.slice(0, 64) : "";
  } catch {
    return "";
  }
}
