// Runs a driver's phases for one task, in order, and puts the target back when one fails.
//
//   prepare → start → health → switch → retire
//
// Each phase is one progress step. Until start begins nothing that serves has changed, so a failure in prepare is
// reported with restored = true and no restore runs. From start on, any failure — a phase's own error, a health
// verdict that is not ok, an abort — runs the driver's restore with the state the last phase left (or, when a phase
// threw half-way, the state the driver recorded for it; see `PhaseFailure`), and the original failure is reported with
// restored = true. Only when restore fails too is the result RESTORE_FAILED (restored = false), with both errors.
// A failure in retire is not a failed deploy: the new instance serves and is healthy; the outcome carries a warning.
import { ALL_AT_ONCE_PHASES, type Phase } from "@ferry/contract";
import type { Logger } from "pino";

import { DriverError, PhaseFailure, type DeployOutcome, type Driver, type PhaseContext, type PhaseState } from "../drivers/driver.js";

export interface PhaseRunOptions {
  logger: Logger;
  /** The phases to run; default all-at-once. */
  phases?: readonly Phase[];
  /**
   * The state an earlier step of the same rollout returned (task payload v2 `state`). A run that begins after
   * prepare picks up from it, and counts the target as already touched: a failure restores from it.
   */
  state?: PhaseState;
  /** Turns a driver's unexpected error into a DriverError with a stable code (e.g. an engine that went away). */
  classify?: (err: unknown, phase: Phase) => DriverError;
}

const NEVER_ABORTS = new AbortController().signal;

function defaultClassify(err: unknown, phase: Phase): DriverError {
  return new DriverError("AGENT_ERROR", `${phase} failed: ${(err as Error)?.message ?? String(err)}`, { phase });
}

/**
 * Runs `phases` of `driver` for one task; resolves with the outcome and the state the last phase left (which a later
 * step of a rollout is given back), or throws a DriverError with `restored` set.
 */
export async function runPhases<C>(driver: Driver<C>, ctx: PhaseContext<C>, opts: PhaseRunOptions): Promise<DeployOutcome & { state: PhaseState }> {
  const phases = opts.phases ?? ALL_AT_ONCE_PHASES;
  const classify = opts.classify ?? defaultClassify;
  const log = opts.logger;
  let state: PhaseState = opts.state ?? {};
  // A later step of a rollout (switch, retire, ...) starts on a target an earlier step's start already changed.
  let touched = opts.state !== undefined && phases[0] !== "prepare";
  let phase: Phase = phases[0] ?? "prepare";
  const warnings: string[] = [];

  try {
    for (const p of phases) {
      phase = p;
      ctx.signal.throwIfAborted();
      ctx.progress.step(p);
      switch (p) {
        case "prepare":
          state = await driver.prepare(ctx);
          break;
        case "start":
          touched = true;
          state = await driver.start(ctx, state);
          break;
        case "health": {
          const report = await driver.health(ctx, state);
          if (!report.ok) {
            throw new DriverError(report.code ?? "HEALTH_CHECK_FAILED", `${ctx.target.name} is not healthy: ${report.summary}`, { health: report.details });
          }
          ctx.progress.log(`health: ${report.summary}`);
          state = { ...state, health: report.details };
          break;
        }
        case "switch":
          touched = true;
          state = await driver.switch(ctx, state);
          break;
        case "retire":
          try {
            state = await driver.retire(ctx, state);
          } catch (err) {
            // The new instance serves and passed its health check; what is left of the old one is untidy, not a failure.
            const message = err instanceof PhaseFailure ? err.error.message : (err as Error).message;
            warnings.push(`retire: ${message}`);
            ctx.progress.log(`retire: could not retire what served before: ${message}`);
            log.warn({ taskId: ctx.taskId, err: message }, "retire failed; the new instance serves");
          }
          break;
        case "restore":
          state = { ...state, restore: await driver.restore({ ...ctx, signal: NEVER_ABORTS }, state) };
          break;
      }
    }
  } catch (err) {
    throw await fail(driver, ctx, err, phase, state, touched, classify, log);
  }
  const outcome = driver.outcome(ctx, state);
  if (warnings.length > 0) outcome.details = { ...outcome.details, warnings };
  return { ...outcome, state };
}

async function fail<C>(
  driver: Driver<C>,
  ctx: PhaseContext<C>,
  err: unknown,
  phase: Phase,
  state: PhaseState,
  touched: boolean,
  classify: (err: unknown, phase: Phase) => DriverError,
  log: Logger,
): Promise<DriverError> {
  let failure: DriverError;
  let restoreFrom = state;
  if (err instanceof PhaseFailure) {
    failure = err.error;
    restoreFrom = err.state;
  } else if (ctx.signal.aborted) {
    failure = new DriverError("ABORTED", `the task was cancelled during ${phase}`, { reason: String(ctx.signal.reason) });
  } else if (err instanceof DriverError) {
    failure = err;
  } else {
    failure = classify(err, phase);
  }
  const details = { ...failure.details, phase: failure.details["phase"] ?? phase };
  if (!touched) {
    log.warn({ taskId: ctx.taskId, code: failure.code, phase }, "task failed before the target was changed");
    return new DriverError(failure.code, failure.message, details, failure.code !== "RESTORE_FAILED");
  }
  ctx.progress.step("restore");
  try {
    const restored = await driver.restore({ ...ctx, signal: NEVER_ABORTS }, restoreFrom);
    log.warn({ taskId: ctx.taskId, code: failure.code, phase }, "task failed; what ran before was put back");
    return new DriverError(failure.code, failure.message, { ...details, restore: restored }, true);
  } catch (restoreErr) {
    const message = restoreErr instanceof PhaseFailure ? restoreErr.error.message : (restoreErr as Error)?.message ?? String(restoreErr);
    ctx.progress.log(`restore: failed: ${message}`);
    log.error({ taskId: ctx.taskId, code: failure.code, restoreError: message }, "task failed and restoring what ran before failed too");
    return new DriverError(
      "RESTORE_FAILED",
      `${failure.message}; putting back what ran before failed too: ${message}`,
      { failure: { code: failure.code, message: failure.message, details }, restoreError: message },
      false,
    );
  }
}
