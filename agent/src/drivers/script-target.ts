// Script targets of the agentless drivers (ssh, winrm): everything about running an operator's script on a host that
// does not depend on how it gets there —
//   - its environment: the release, its digests, the target, and what the host's sticker says ran before;
//   - its output: stdout and stderr line by line into the task log as they come (lines cut at 1000 characters, at
//     most 10,000 lines logged per run), the last 20 lines kept for the result;
//   - what its end means: exit 0 passes; a command not found, any other exit, a timeout, an abort and a dropped
//     connection each have their stable code;
//   - the health and rollback verdicts the script phases give.
// A driver brings a ScriptHost: how one script is put on its host and run there (ssh: an exec channel and sh;
// winrm: WS-Management and PowerShell).
import { StringDecoder } from "node:string_decoder";

import type { ImagePin } from "@ferry/contract";

import { DriverError, type HealthReport, type PhaseContext, type ProgressSink } from "./driver.js";
import type { HostStickerFile } from "./host-sticker-file.js";

export const DEFAULT_SCRIPT_TIMEOUT_SECONDS = 300;
const MAX_LINE_CHARS = 1000;
const MAX_LOGGED_LINES = 10_000;
const TAIL_LINES = 20;

export type OutputStream = "stdout" | "stderr";
export type OnLine = (line: string, stream: OutputStream) => void;

/** The environment every script gets (besides the target's own `env`, which it cannot override). */
export function scriptEnv(ctx: PhaseContext<unknown>, image: ImagePin, previous: HostStickerFile | null, script: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    ...extra,
    FERRY_SCRIPT: script,
    FERRY_ACTION: ctx.action,
    FERRY_TASK_ID: ctx.taskId,
    FERRY_DEPLOYMENT_ID: ctx.deploymentId,
    FERRY_TARGET_ID: ctx.target.id,
    FERRY_TARGET_NAME: ctx.target.name,
    FERRY_RELEASE_ID: ctx.release.id,
    FERRY_RELEASE_NAME: ctx.release.name,
    FERRY_RELEASE_VERSION: ctx.release.version,
    FERRY_COMPONENT: image.component,
    FERRY_REPOSITORY: image.repository,
    FERRY_DIGEST: image.digest,
    FERRY_IMAGE: image.ref,
    FERRY_IMAGES: ctx.images.map((i) => `${i.component}=${i.ref}`).join(" "),
  };
  if (previous) {
    const prev = previous.images.find((i) => i.component === image.component) ?? previous.images[0];
    env["FERRY_PREVIOUS_RELEASE_ID"] = previous.releaseId;
    env["FERRY_PREVIOUS_RELEASE_NAME"] = previous.releaseName;
    env["FERRY_PREVIOUS_RELEASE_VERSION"] = previous.releaseVersion;
    env["FERRY_PREVIOUS_DEPLOYMENT_ID"] = previous.deploymentId;
    if (prev) {
      env["FERRY_PREVIOUS_DIGEST"] = prev.digest;
      env["FERRY_PREVIOUS_IMAGE"] = `${prev.repository}@${prev.digest}`;
    }
  }
  return env;
}

/**
 * A command's output turned into lines as it arrives: each line (cut at MAX_LINE_CHARS) goes to `onLine` — the first
 * MAX_LOGGED_LINES of them, then one note — and the last TAIL_LINES are kept, both streams interleaved as received.
 */
export class OutputLines {
  readonly tail: string[] = [];
  #logged = 0;
  readonly #pending = { stdout: "", stderr: "" };
  readonly #decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
  readonly #onLine: OnLine | undefined;

  constructor(onLine?: OnLine) {
    this.#onLine = onLine;
  }

  feed(stream: OutputStream, chunk: Buffer): void {
    const lines = (this.#pending[stream] + this.#decoders[stream].write(chunk)).split("\n");
    this.#pending[stream] = lines.pop() ?? "";
    for (const line of lines) this.#emit(line.replace(/\r$/, ""), stream);
  }

  /** The last, unterminated line of each stream (at the command's end). */
  flush(): void {
    for (const s of ["stdout", "stderr"] as const) {
      const rest = (this.#pending[s] + this.#decoders[s].end()).replace(/\r$/, "");
      this.#pending[s] = "";
      if (rest !== "") this.#emit(rest, s);
    }
  }

  #emit(line: string, stream: OutputStream): void {
    const l = line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line;
    this.tail.push(l);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    if (this.#onLine && this.#logged < MAX_LOGGED_LINES) this.#onLine(l, stream);
    else if (this.#onLine && this.#logged === MAX_LOGGED_LINES) this.#onLine(`(output beyond ${MAX_LOGGED_LINES} lines is not logged)`, "stderr");
    this.#logged++;
  }
}

/** How a command on the host ended. */
export interface ScriptEnd {
  /** undefined when it did not end by itself (timeout, abort, lost connection). */
  exitCode: number | undefined;
  /** The signal that ended it, when the host reports one. */
  exitSignal?: string;
  timedOut: boolean;
  aborted: boolean;
  /** The connection dropped before the command reported how it ended. */
  lost: boolean;
  /** The last lines of output. */
  tail: string[];
  durationMs: number;
}

export function describeEnd(run: Pick<ScriptEnd, "exitCode" | "exitSignal" | "timedOut" | "lost" | "aborted">): string {
  if (run.timedOut) return "timed out";
  if (run.aborted) return "aborted";
  if (run.lost) return "the connection dropped";
  if (run.exitSignal) return `killed by SIG${run.exitSignal}`;
  return `exit code ${run.exitCode}`;
}

/** How one driver puts a script on its host and runs it there. */
export interface ScriptHost<R extends ScriptEnd> {
  /** Where the scripts run, for messages. */
  where: string;
  /** Runs `text` with `env`; `onStarted` is called once it is on the host, just before it runs. */
  run(name: string, text: string, env: Record<string, string>, opts: { timeoutMs: number; signal: AbortSignal; onLine: OnLine; onStarted?: () => void }): Promise<R>;
  /** Whether a run that did not exit 0 says a command was not found (sh: exit code 127). */
  commandNotFound(run: R): boolean;
  /** A failure the host's protocol reported mid-run, judged before the exit code (a WS-Man fault). */
  fault?(run: R): DriverError | undefined;
  /** Extra words for the "running" log line (the script's file, sudo). */
  describe?(name: string): string;
}

export interface ScriptRun<R extends ScriptEnd> {
  run: R;
  /** Set when the run did not exit 0. */
  failure?: DriverError;
}

/** Runs one script on the host, its output in the task log, and judges its end. */
export async function runHostScript<R extends ScriptEnd>(
  host: ScriptHost<R>,
  ctx: { progress: ProgressSink; signal: AbortSignal },
  name: string,
  text: string,
  env: Record<string, string>,
  timeoutSeconds: number,
  onStarted?: () => void,
): Promise<ScriptRun<R>> {
  const log = (line: string) => ctx.progress.log(line);
  const extra = host.describe?.(name);
  log(`${name}: running the ${name} script on ${host.where} (${extra ? `${extra}, ` : ""}timeout ${timeoutSeconds} s)`);
  const run = await host.run(name, text, env, {
    timeoutMs: timeoutSeconds * 1000,
    signal: ctx.signal,
    onLine: (line, stream) => log(`${name}: ${stream === "stderr" ? "!" : "|"} ${line}`),
    ...(onStarted ? { onStarted } : {}),
  });
  log(`${name}: the ${name} script ended: ${describeEnd(run)} after ${(run.durationMs / 1000).toFixed(1)} s`);
  const failure = scriptFailure(host, run, `the ${name} script on ${host.where}`, name, timeoutSeconds);
  return failure ? { run, failure } : { run };
}

/** The failure a run that did not exit 0 is, or undefined when it passed. */
export function scriptFailure<R extends ScriptEnd>(host: ScriptHost<R>, run: R, what: string, name: string, timeoutSeconds: number): DriverError | undefined {
  if (run.exitCode === 0 && !run.timedOut && !run.aborted) return undefined;
  const details = { script: name, exitCode: run.exitCode ?? null, ...(run.exitSignal ? { exitSignal: run.exitSignal } : {}), output: run.tail, durationMs: run.durationMs };
  if (run.aborted) return new DriverError("ABORTED", `${what} was cancelled`, details);
  if (run.timedOut) return new DriverError("SCRIPT_TIMEOUT", `${what} did not finish within ${timeoutSeconds} s and was stopped`, details);
  if (run.lost) return new DriverError("CONNECTION_LOST", `the connection dropped while ${what} ran; it may or may not have finished on the host`, details);
  const fault = host.fault?.(run);
  if (fault) return fault;
  if (host.commandNotFound(run)) return new DriverError("COMMAND_NOT_FOUND", `${what}: a command was not found on the host (${describeEnd(run)}): ${run.tail.slice(-3).join(" ")}`, details);
  return new DriverError("SCRIPT_FAILED", `${what} failed: ${describeEnd(run)}${run.tail.length > 0 ? `: ${run.tail[run.tail.length - 1]}` : ""}`, details);
}

/** The health report of a target without a health script: the deploy script's exit 0 is the verdict. */
export function noHealthScript(): HealthReport {
  return { ok: true, summary: "no health script; the deploy script exited 0", details: { type: "script" } };
}

/**
 * The health phase's verdict from a check script's run: passed on exit 0; `failedCode` (HEALTH_CHECK_FAILED, or
 * INSTANCE_CRASHED when the driver reads the exit code so) on another exit; anything else (a timeout, an abort, a dropped
 * connection, a protocol fault) is thrown as the phase's failure.
 */
export function healthVerdict<R extends ScriptEnd>(result: ScriptRun<R>, name: string, type: string, failedCode: HealthReport["code"] = "HEALTH_CHECK_FAILED"): HealthReport {
  const { run, failure } = result;
  if (!failure) return { ok: true, summary: `the ${name} script exited 0`, details: { type, output: run.tail } };
  if (failure.code !== "SCRIPT_FAILED") throw failure;
  return { ok: false, code: failedCode, summary: failure.message, details: { type, ...failure.details } };
}

/**
 * Restore of a script target: the rollback script, with what ran before in its environment. Without one, what the
 * deploy script changed stays (the task ends RESTORE_FAILED: only the operator knows how to undo it).
 */
export async function runRollback<R extends ScriptEnd>(
  host: ScriptHost<R>,
  ctx: { progress: ProgressSink; signal: AbortSignal },
  rollback: { field: string; changedBy: string; text: string | undefined },
  env: Record<string, string>,
  timeoutSeconds: number,
  previous: HostStickerFile | null,
): Promise<Record<string, unknown>> {
  if (!rollback.text) throw new Error(`the target has no rollback script (${rollback.field}): what the ${rollback.changedBy} script changed stays on the host`);
  const { failure } = await runHostScript(host, ctx, "rollback", rollback.text, env, timeoutSeconds);
  if (failure) throw new Error(failure.message);
  return { rollbackScript: "exited 0", previousRelease: previous?.releaseId ?? null };
}
