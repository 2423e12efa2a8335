// Script mode: the operator's scripts do the deploying; Ferry uploads them, runs them with the release in their
// environment, streams their output into the task log, bounds them in time, and judges them by their exit code.
//
//   prepare  connect (host key, key auth), read the sticker on the host: what ran before (for the rollback script)
//   start    upload and run script.deploy                                    the target changes here
//   health   run script.health when given; otherwise the deploy script's exit 0 is the verdict
//   switch   write the sticker file on the host
//   retire   nothing to retire: the deploy script replaced what ran
//   restore  run script.rollback with the previous release in its environment; without one, restore fails
//            (RESTORE_FAILED: what the deploy script changed stays, and only an operator knows how to undo it)
//
// Exit codes: 0 passes; 127 is COMMAND_NOT_FOUND (the shell's "not found", also for sudo or sh missing); any other
// is SCRIPT_FAILED with the code and the last lines of output. A run past script.timeoutSeconds is killed:
// SCRIPT_TIMEOUT. A connection that drops before the script reports its exit: CONNECTION_LOST.
import type { ImagePin, SshTargetConfig } from "@ferry/contract";

import { DriverError, type PhaseContext } from "../driver.js";
import type { SshSession } from "./connection.js";
import type { HostSticker } from "./host-sticker.js";
import { describeEnd } from "./host-sticker.js";
import { runRemote, shQuote, type RemoteRun } from "./remote-command.js";
import { sudoFailure, sudoPrefix } from "./sudo.js";

export const DEFAULT_SCRIPT_TIMEOUT_SECONDS = 300;
const NEVER_ABORTS = new AbortController().signal;

export type ScriptName = "deploy" | "health" | "rollback";

/** The environment every script gets: the release, its digests, the target, and (for rollback) what ran before. */
export function scriptEnv(ctx: PhaseContext<SshTargetConfig>, image: ImagePin, previous: HostSticker | null, script: ScriptName): Record<string, string> {
  const env: Record<string, string> = {
    ...(ctx.config.script?.env ?? {}),
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
 * Uploads `text` and runs it with sh in the work directory, with `env`; removes the file afterwards. The script goes
 * through stdin into a file of its own (mode 0700, name with the task id), never onto a command line, so neither its
 * size nor its quoting matter. With sudo, everything that touches the work directory runs as `sudo -n sh -c …`: one
 * command for sudoers to allow. `onStarted` is called once the script is on the host, just before it runs (an upload
 * that failed changed nothing).
 */
export async function runScript(
  session: SshSession,
  ctx: PhaseContext<SshTargetConfig>,
  name: ScriptName,
  text: string,
  env: Record<string, string>,
  onStarted?: () => void,
): Promise<RemoteRun> {
  const config = ctx.config;
  const dir = config.script?.workDir ?? "/tmp";
  const file = `${dir}/ferry-${ctx.taskId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 80)}-${name}.sh`;
  const timeoutMs = (config.script?.timeoutSeconds ?? DEFAULT_SCRIPT_TIMEOUT_SECONDS) * 1000;
  const sudo = sudoPrefix(config);
  const log = (line: string) => ctx.progress.log(line);

  const upload = await runRemote(session, `${sudo}sh -c ${shQuote(`umask 077 && cat > ${shQuote(file)}`)}`, { stdin: text, timeoutMs: 60_000, signal: ctx.signal });
  if (upload.exitCode !== 0) {
    const what = `uploading the ${name} script to ${file} on ${session.where}`;
    throw sudoFailure(upload, config, what, session.where) ?? endError(upload, what, name);
  }
  onStarted?.();
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${shQuote(v)}`).join(" ");
  // sshd starts an exec session's shell in a session of its own (setsid), so that shell's pid ($$, handed to the
  // inner shell as $1) is the process group of everything the script starts, sudo included: on a timeout or an
  // abort the whole group is killed, not just the shell.
  const pidFile = `${file}.pid`;
  const inner = `echo "$1" > ${shQuote(pidFile)} && cd ${shQuote(dir)} && exec env ${assignments} sh ${shQuote(file)}`;
  const cleanup = `${sudo}sh -c ${shQuote(`rm -f ${shQuote(file)} ${shQuote(pidFile)}`)}`;
  const command = `${sudo}sh -c ${shQuote(inner)} ferry-${name} $$; status=$?; ${cleanup}; exit $status`;
  const stop = async () => {
    const kill = `pg=$(cat ${shQuote(pidFile)} 2>/dev/null) && [ -n "$pg" ] && kill -s KILL -- "-$pg"; rm -f ${shQuote(file)} ${shQuote(pidFile)}`;
    await runRemote(session, `${sudo}sh -c ${shQuote(kill)}`, { timeoutMs: 10_000, signal: NEVER_ABORTS });
  };
  log(`${name}: running the ${name} script on ${session.where} (${file}, timeout ${timeoutMs / 1000} s${config.sudo ? ", sudo" : ""})`);
  const run = await runRemote(session, command, { timeoutMs, signal: ctx.signal, stop, onLine: (line, stream) => log(`${name}: ${stream === "stderr" ? "!" : "|"} ${line}`) });
  log(`${name}: the ${name} script ended: ${describeEnd(run)} after ${(run.durationMs / 1000).toFixed(1)} s`);
  return run;
}

/** The failure a script run that did not exit 0 is, or undefined when it passed. */
export function scriptFailure(run: RemoteRun, what: string, name: ScriptName): DriverError | undefined {
  if (run.exitCode === 0 && !run.timedOut && !run.aborted) return undefined;
  return endError(run, what, name);
}

function endError(run: RemoteRun, what: string, name: ScriptName): DriverError {
  const details = { script: name, exitCode: run.exitCode ?? null, ...(run.exitSignal ? { exitSignal: run.exitSignal } : {}), output: run.tail, durationMs: run.durationMs };
  if (run.aborted) return new DriverError("ABORTED", `${what} was cancelled`, details);
  if (run.timedOut) return new DriverError("SCRIPT_TIMEOUT", `${what} did not finish within its timeout and was killed`, details);
  if (run.lost) return new DriverError("CONNECTION_LOST", `the connection dropped while ${what} ran; it may or may not have finished on the host`, details);
  if (run.exitCode === 127) return new DriverError("COMMAND_NOT_FOUND", `${what}: a command was not found on the host (exit code 127): ${run.tail.slice(-3).join(" ")}`, details);
  return new DriverError("SCRIPT_FAILED", `${what} failed: ${describeEnd(run)}${run.tail.length > 0 ? `: ${run.tail[run.tail.length - 1]}` : ""}`, details);
}
