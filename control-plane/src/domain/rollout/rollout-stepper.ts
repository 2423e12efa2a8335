// Moves one rollout along, one transition at a time, reading everything it decides on from the database.
//
// Nothing lives in memory between two calls: a wave's deployments are recorded in its step (in the transaction that
// queues them), a wait's end and every step's deadline are columns, an operator's promote is in the step's result.
// So a control plane killed between any two transitions — or a replica taking the rollout over when the lease of the
// one that held it runs out — resumes exactly where the rows say. Each transition locks the rollout's row and checks
// that this replica still holds its lease, so two replicas never both move one rollout.
//
// Life of a step: pending → running → succeeded | failed | skipped. A wave fails when more of its targets fail than
// the strategy's failureThreshold; a target whose task failed with a retryable code (not delivered, lease expired,
// a registry or engine that was unavailable) is queued again, up to the step's retries. A failed forward step stops
// the rollout: with rollback auto, every target the rollout updated goes back to the digests it ran before the
// rollout (planRollback; for a release marked not safe to roll back, only after an operator's approval: promote
// runs the rollback, abort declines it); with manual, the rollout halts until an operator aborts it.
import { isRetryable } from "@ferry/contract";
import type { Clock } from "../../ports/clock.js";
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit } from "../audit/audit-log.js";
import type { DeploymentService } from "../deploy/deployment-service.js";
import { FINAL_TASK_STATES, refreshDeploymentState, type RouteOp, type TaskState } from "../deploy/deployment-service.js";
import { FerryError } from "../errors.js";
import { analyse, combine, type AnalysisResult, type CounterRead, type ExternalCheck } from "./analysis.js";
import { runExternalChecks } from "./external-checks.js";
import { planRollback, type AnalysisStep, type StepLimits } from "./planner.js";
import { insertSteps, lockRollout, type RolloutRow, type StepRow } from "./rollout-service.js";
import type { AnalysisConfig } from "./strategy.js";

/** What became of one target in a wave: its last task's state and code. */
export interface TargetOutcome {
  name: string;
  state: TaskState;
  code: string | null;
  message: string | null;
  task: string;
  deployment: string;
}

export interface RolloutEvents {
  emit(type: "rollout.step" | "rollout.succeeded" | "rollout.halted" | "rollout.rolling_back" | "rollout.rolled_back" | "rollout.failed", data: Record<string, unknown>): void;
}

/** Signs and chains an evidence packet in the transaction given (the promotion evidence store). */
export interface RolloutEvidence {
  record(tx: Queryable, kind: string, subjectId: string, doc: Record<string, unknown>): Promise<{ id: string; hash: string }>;
}

export interface StepperDeps {
  store: Store;
  deployments: DeploymentService;
  clock: Clock;
  events?: RolloutEvents;
  /** When set, every step's outcome and every decision of the engine is a signed evidence packet (docs/evidence.md). */
  evidence?: RolloutEvidence;
  /**
   * Runs an analysis' external checks (HTTP probe, Prometheus query) when its bake ends, outside any transaction.
   * Default: runExternalChecks (external-checks.ts) with its own timeout.
   */
  externalChecks?: (config: AnalysisConfig) => Promise<ExternalCheck[]>;
}

const ENGINE = "rollout-engine";
/** Transitions one advance() makes at most, so one busy rollout cannot hold a replica's loop. */
const MAX_TRANSITIONS = 16;

/**
 * "queue": queue tasks for a step. start: the step's first tasks; retry: the retryable failures again; stage: the
 * next stage of a router step (a weights step's measure after its weights, an analysis' measure after a re-bake).
 */
type QueueMode = "start" | "retry" | "stage";
type Next = { kind: "done" } | { kind: "moved" } | { kind: "queue"; step: StepRow; targets: string[]; retry: boolean; mode?: QueueMode; stage?: RouteStage };

/** What a router step is doing: setting weights, reading counters, or (an analysis after an inconclusive one) baking again. */
type RouteStage = "weights" | "measure" | "bake";

/** Per target, one router read in the result of a weights step (`baseline`) or an analysis. */
type Reads = Record<string, CounterRead>;

export class RolloutStepper {
  constructor(private readonly d: StepperDeps) {}

  /** Advances rollout `id` as far as it can go now, as `owner` (the replica holding its lease). */
  async advance(id: string, owner: string): Promise<number> {
    let moved = 0;
    for (let i = 0; i < MAX_TRANSITIONS; i++) {
      const events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][] = [];
      const next = await this.d.store.transaction((tx) => this.decide(tx, id, owner, events));
      for (const [type, data] of events) this.d.events?.emit(type, data);
      if (next.kind === "done") break;
      if (next.kind === "queue" && !(await this.queue(id, owner, next.step, next.targets, next.mode ?? (next.retry ? "retry" : "start"), next.stage))) break;
      moved++;
    }
    return moved;
  }

  private now(): Date {
    return new Date(this.d.clock.now());
  }

  /** One transition inside the rollout's row lock, or "queue" when a wave must be queued (its own transaction). */
  private async decide(tx: Queryable, id: string, owner: string, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    const r = await lockRollout(tx, id);
    if (r.lease_owner !== owner) return { kind: "done" };
    const now = this.now();
    if (r.state === "halted") {
      if (!r.abort_requested) return { kind: "done" };
      await this.startRollback(tx, r, events);
      return { kind: "moved" };
    }
    if (r.state !== "running" && r.state !== "rolling_back") return { kind: "done" };
    const s = await tx.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = $1 AND idx = $2", [id, r.current_step]);
    const step = s.rows[0];
    if (!step) {
      // Past the last step: the plan (or the rollback plan) is done.
      const state = r.state === "running" ? "succeeded" : "rolled_back";
      await tx.query("UPDATE rollouts SET state = $2, finished_at = $3, updated_at = $3, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1", [id, state, now]);
      const ev = await this.decision(tx, r, state, { reason: r.reason });
      await appendAudit(tx, { actor: ENGINE, action: `rollout.${state}`, object: id, outcome: state === "succeeded" ? "ok" : "failed", details: { environment: r.environment, reason: r.reason, evidence: ev } }, now);
      events.push([`rollout.${state}`, { rollout: id, environment: r.environment, release: r.release_id, reason: r.reason }]);
      return { kind: "done" };
    }

    if (r.state === "running" && r.abort_requested) return this.abortNow(tx, r, step, events);

    if (step.state === "pending") {
      if (r.paused) return { kind: "done" };
      return this.start(tx, r, step, events);
    }
    if (step.state !== "running") {
      // A finished step whose rollout did not move on (cannot happen through this code; repaired rather than stuck).
      await tx.query("UPDATE rollouts SET current_step = current_step + 1, updated_at = $2 WHERE id = $1", [id, now]);
      return { kind: "moved" };
    }
    switch (step.kind) {
      case "wave":
        return this.checkWave(tx, r, step, events);
      case "weights":
      case "analysis":
        return this.checkRoute(tx, r, step, events);
      case "wait": {
        const promoted = typeof step.result["promotedBy"] === "string";
        if (!promoted && step.wake_at && now < new Date(step.wake_at)) return { kind: "done" };
        await this.finishStep(tx, r, step, "succeeded", promoted ? { endedBy: "promote" } : { endedBy: "time" }, events);
        return { kind: "moved" };
      }
      case "approval": {
        if (step.phase === "rollback" && r.abort_requested) return this.declineRollback(tx, r, step, events);
        if (typeof step.result["promotedBy"] === "string") {
          await this.finishStep(tx, r, step, "succeeded", { approvedBy: step.result["promotedBy"] }, events);
          return { kind: "moved" };
        }
        if (step.deadline_at && now > new Date(step.deadline_at)) {
          await this.fail(tx, r, step, { code: "ROLLOUT_STEP_TIMEOUT", message: `no approval before ${new Date(step.deadline_at).toISOString()}` }, {}, events);
          return { kind: "moved" };
        }
        return { kind: "done" };
      }
    }
  }

  private async start(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    const now = this.now();
    const deadline = new Date(now.getTime() + step.spec.timeoutSeconds * 1000);
    switch (step.spec.kind) {
      case "wave": {
        let targets = step.spec.targets;
        if (step.spec.action === "rollback" && step.spec.phases[0] === "prepare") {
          // A target the rollout found with nothing deployed has nothing to go back to; the evidence says so.
          const none = targets.filter((t) => !r.previous[t]);
          targets = targets.filter((t) => r.previous[t]);
          if (none.length > 0) await tx.query("UPDATE rollout_steps SET result = result || $3 WHERE rollout_id = $1 AND idx = $2", [r.id, step.idx, JSON.stringify({ nothingToRestore: none.map((t) => nameOf(r, t)) })]);
          if (targets.length === 0) {
            await this.finishStep(tx, r, step, "succeeded", {}, events);
            return { kind: "moved" };
          }
        }
        return { kind: "queue", step, targets, retry: false };
      }
      case "wait":
        await tx.query(
          "UPDATE rollout_steps SET state = 'running', attempts = attempts + 1, started_at = $3, wake_at = $4, deadline_at = $5 WHERE rollout_id = $1 AND idx = $2",
          [r.id, step.idx, now, new Date(now.getTime() + step.spec.seconds * 1000), deadline],
        );
        break;
      case "approval":
        await tx.query("UPDATE rollout_steps SET state = 'running', attempts = attempts + 1, started_at = $3, deadline_at = $4 WHERE rollout_id = $1 AND idx = $2", [r.id, step.idx, now, deadline]);
        break;
      case "weights":
        return { kind: "queue", step, targets: step.spec.targets, retry: false, mode: "start", stage: "weights" };
      case "analysis":
        return { kind: "queue", step, targets: step.spec.targets, retry: false, mode: "start", stage: "measure" };
    }
    await tx.query("UPDATE rollouts SET updated_at = $2 WHERE id = $1", [r.id, now]);
    await appendAudit(tx, { actor: ENGINE, action: "rollout.step.start", object: r.id, outcome: "ok", details: { step: step.idx, kind: step.kind, name: step.name } }, now);
    events.push(["rollout.step", { rollout: r.id, step: step.idx, name: step.name, kind: step.kind, state: "running" }]);
    return { kind: "moved" };
  }

  /**
   * Queues a wave, a router step's tasks (or a retry, or a router step's next stage) for `targets`. The step becomes
   * running — with the deployment recorded — in the same transaction that queues the tasks, after checking that this
   * replica still holds the lease and the step is still where it was: tasks are never queued twice and never lost.
   * A run that picks up from an earlier step (every router operation, a wave not beginning with prepare) carries
   * each target's driver state from the newest successful task of this rollout on it; a target with none is left
   * out (its start failed within the threshold, or its agent restored it) and listed under `withoutState`.
   * Returns false when nothing was queued.
   */
  private async queue(id: string, owner: string, step: StepRow, targets: string[], mode: QueueMode, stage?: RouteStage): Promise<boolean> {
    const r = (await this.d.store.query<RolloutRow>("SELECT * FROM rollouts WHERE id = $1", [id])).rows[0]!;
    const spec = step.spec;
    const now = this.now();
    const stateful = spec.kind !== "wave" || spec.phases[0] !== "prepare";
    const carried = stateful ? await carriedStates(this.d.store, r, targets) : {};
    const withoutState = stateful ? targets.filter((t) => !carried[t]) : [];
    const going = targets.filter((t) => !withoutState.includes(t));
    const known = (step.result["deployments"] as string[] | undefined) ?? [];
    // An analysis runs its external checks as its bake ends, beside the counter reads and outside any transaction;
    // their outcome is recorded with the measure stage, so a restart re-reads it rather than asking again.
    const external = spec.kind === "analysis" && stage === "measure" && mode !== "retry" ? await (this.d.externalChecks ?? runExternalChecks)(spec.config) : null;
    const within = async (tx: Queryable, deploymentId: string): Promise<void> => {
      const cur = await lockRollout(tx, id);
      const s = (await tx.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = $1 AND idx = $2 FOR UPDATE", [id, step.idx])).rows[0];
      const had = (s?.result["deployments"] as string[] | undefined) ?? [];
      if (cur.lease_owner !== owner || cur.current_step !== step.idx || !s || s.state !== step.state || s.attempts !== step.attempts || had.length !== known.length) {
        throw new FerryError("ROLLOUT_STATE_CONFLICT", `rollout ${id} moved on while its step was being queued`);
      }
      const deployments = [...had, deploymentId];
      const patch: Record<string, unknown> = { deployments };
      if (stateful) patch["carriedFrom"] = { ...(s.result["carriedFrom"] ?? {}), ...Object.fromEntries(going.map((t) => [nameOf(r, t), carried[t]!.task])) };
      if (withoutState.length > 0) patch["withoutState"] = withoutState.map((t) => nameOf(r, t));
      if (external) patch["external"] = external;
      if (stage) {
        patch["stage"] = stage;
        if (mode !== "retry") patch["stageFrom"] = had.length;
        patch["stageTries"] = mode === "retry" ? Number(s.result["stageTries"] ?? 1) + 1 : 1;
      }
      const bump = mode === "stage" ? 0 : 1;
      await tx.query(
        `UPDATE rollout_steps SET state = 'running', attempts = attempts + $6, started_at = coalesce(started_at, $3), deadline_at = $4, result = result || $5
          WHERE rollout_id = $1 AND idx = $2`,
        [id, step.idx, now, new Date(now.getTime() + spec.timeoutSeconds * 1000), JSON.stringify(patch), bump],
      );
      await tx.query("UPDATE rollouts SET updated_at = $2 WHERE id = $1", [id, now]);
      await appendAudit(tx, { actor: ENGINE, action: mode === "retry" ? "rollout.step.retry" : "rollout.step.start", object: id, outcome: "ok", details: { step: step.idx, kind: step.kind, name: step.name, deployment: deploymentId, targets: going.map((t) => nameOf(r, t)), attempt: s.attempts + bump, ...(stage ? { stage } : {}) } }, now);
    };
    try {
      if (going.length === 0) {
        // Nobody left to run it on: the step is done with what it has (a rollback restore of targets that were
        // already restored by their agent, say).
        const events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][] = [];
        await this.d.store.transaction(async (tx) => {
          const cur = await lockRollout(tx, id);
          if (cur.lease_owner !== owner || cur.current_step !== step.idx) return;
          await this.finishStep(tx, cur, step, "succeeded", { withoutState: withoutState.map((t) => nameOf(r, t)) }, events);
        });
        for (const [type, data] of events) this.d.events?.emit(type, data);
        return true;
      }
      if (spec.kind === "wave") {
        await this.d.deployments.enqueueWave(
          {
            rolloutId: id,
            environment: r.environment,
            action: spec.action,
            releaseId: spec.action === "deploy" ? r.release_id : null,
            phases: spec.phases,
            targets: going.map((t) => {
              // A rollback that redeploys puts the recorded previous digests back; one that restores or flips runs
              // on what the rollout itself started (its release), from the carried state.
              if (spec.action === "rollback" && !stateful) return { name: nameOf(r, t), releaseId: r.previous[t]!.releaseId, images: r.previous[t]!.images };
              return { name: nameOf(r, t), ...(spec.action === "rollback" ? { releaseId: r.release_id } : {}), ...(carried[t] ? { state: carried[t].state } : {}) };
            }),
          },
          r.requested_by,
          within,
        );
      } else {
        await this.d.deployments.enqueueRoute(
          { rolloutId: id, environment: r.environment, releaseId: r.release_id, targets: going.map((t) => ({ name: nameOf(r, t), state: carried[t]!.state, route: routeOpFor(spec, stage ?? "measure") })) },
          r.requested_by,
          within,
        );
      }
      this.d.events?.emit("rollout.step", { rollout: id, step: step.idx, name: step.name, kind: step.kind, state: "running", attempt: step.attempts + (mode === "stage" ? 0 : 1), ...(stage ? { stage } : {}) });
      return true;
    } catch (err) {
      if (!(err instanceof FerryError)) throw err;
      if (err.code === "ROLLOUT_STATE_CONFLICT") return false;
      // A target still busy (a task of the failed wave still running when a rollback is due) clears by itself:
      // the step is tried again on the next tick, until its deadline.
      const deadline = step.deadline_at ?? new Date(now.getTime() + step.spec.timeoutSeconds * 1000);
      if (err.code === "DEPLOYMENT_IN_PROGRESS" && now <= new Date(deadline)) {
        if (!step.deadline_at) await this.d.store.query("UPDATE rollout_steps SET deadline_at = $3 WHERE rollout_id = $1 AND idx = $2 AND deadline_at IS NULL", [id, step.idx, deadline]);
        return false;
      }
      const events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][] = [];
      await this.d.store.transaction(async (tx) => {
        const cur = await lockRollout(tx, id);
        if (cur.lease_owner !== owner || cur.current_step !== step.idx) return;
        await this.fail(tx, cur, step, { code: err.code, message: `the step's tasks could not be queued: ${err.message}` }, {}, events);
      });
      for (const [type, data] of events) this.d.events?.emit(type, data);
      return true;
    }
  }

  /**
   * The tasks of a step that are not final yet: "done" while its deadline holds; past it, undelivered tasks are
   * cancelled and the step fails (ROLLOUT_STEP_TIMEOUT). Null when every task is final.
   */
  private async unfinished(tx: Queryable, r: RolloutRow, step: StepRow, outcomes: Record<string, TargetOutcome>, from: number, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next | null> {
    if (Object.values(outcomes).every((o) => FINAL_TASK_STATES.includes(o.state))) return null;
    const now = this.now();
    if (!step.deadline_at || now <= new Date(step.deadline_at)) return { kind: "done" };
    // Timed out: what has not been delivered is cancelled; what is running may still finish, so it is counted as
    // updated (a rollback then puts its previous digests back, which is harmless if its task fails after all).
    await cancelQueued(tx, step, now);
    await this.fail(tx, r, step, { code: "ROLLOUT_STEP_TIMEOUT", message: `the ${step.kind} step did not finish within ${step.spec.timeoutSeconds} s` }, { targets: await waveOutcomes(tx, r, step, from) }, events);
    return { kind: "moved" };
  }

  /** Reads a running wave's tasks: still running, retry the retryable failures, or finish the step. */
  private async checkWave(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    if (step.spec.kind !== "wave") return { kind: "done" };
    const outcomes = await waveOutcomes(tx, r, step);
    const pending = await this.unfinished(tx, r, step, outcomes, 0, events);
    if (pending) return pending;
    const failed = Object.entries(outcomes).filter(([, o]) => o.state !== "succeeded");
    const retryable = failed.filter(([, o]) => o.code !== null && isRetryable(o.code));
    if (failed.length > 0 && retryable.length === failed.length && step.attempts <= step.spec.retries) {
      return { kind: "queue", step, targets: retryable.map(([t]) => t), retry: true };
    }
    const threshold = step.phase === "forward" ? r.strategy.failureThreshold : 0;
    if (failed.length > threshold) {
      const list = failed.map(([, o]) => `${o.name}: ${o.code ?? o.state}${o.message ? ` (${o.message})` : ""}`).join("; ");
      await this.fail(tx, r, step, { code: "ROLLOUT_WAVE_FAILED", message: `${failed.length} of ${Object.keys(outcomes).length} targets failed (at most ${threshold} may): ${list}` }, { targets: outcomes, failed: failed.length, threshold }, events);
      return { kind: "moved" };
    }
    await this.finishStep(tx, r, step, "succeeded", { targets: outcomes, failed: failed.length, threshold }, events);
    return { kind: "moved" };
  }

  /**
   * Reads a running router step's tasks (weights, measure). A failed target fails the step (after the retries of a
   * retryable failure): traffic must never be left where the engine does not know it. Weights then measure: the
   * weights each target's router reports, and the counters read right after, which are the baseline of the next
   * analysis. An analysis compares its read with that baseline.
   */
  private async checkRoute(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    const spec = step.spec;
    if (spec.kind !== "weights" && spec.kind !== "analysis") return { kind: "done" };
    const stage = (step.result["stage"] as RouteStage | undefined) ?? (spec.kind === "weights" ? "weights" : "measure");
    if (stage === "bake") {
      if (step.wake_at && this.now() < new Date(step.wake_at)) return { kind: "done" };
      return { kind: "queue", step, targets: spec.targets, retry: false, mode: "stage", stage: "measure" };
    }
    const from = Number(step.result["stageFrom"] ?? 0);
    const outcomes = await waveOutcomes(tx, r, step, from);
    const pending = await this.unfinished(tx, r, step, outcomes, from, events);
    if (pending) return pending;
    const failed = Object.entries(outcomes).filter(([, o]) => o.state !== "succeeded");
    if (failed.length > 0) {
      const tries = Number(step.result["stageTries"] ?? 1);
      if (failed.every(([, o]) => o.code !== null && isRetryable(o.code)) && tries <= spec.retries) {
        return { kind: "queue", step, targets: failed.map(([t]) => t), retry: true, mode: "retry", stage };
      }
      const list = failed.map(([, o]) => `${o.name}: ${o.code ?? o.state}${o.message ? ` (${o.message})` : ""}`).join("; ");
      await this.fail(tx, r, step, { code: "ROLLOUT_ROUTE_FAILED", message: `the router operation failed on ${failed.length} of ${Object.keys(outcomes).length} targets: ${list}` }, { targets: outcomes }, events);
      return { kind: "moved" };
    }
    const details = await stageDetails(tx, step, from);
    const targets = withWeights(outcomes, details);
    if (spec.kind === "weights") {
      // The rollback's weight 0 needs no baseline: nothing is analysed after it.
      if (stage === "weights" && step.phase === "forward") {
        await tx.query("UPDATE rollout_steps SET result = result || $3 WHERE rollout_id = $1 AND idx = $2", [r.id, step.idx, JSON.stringify({ targets })]);
        return { kind: "queue", step, targets: Object.keys(outcomes), retry: false, mode: "stage", stage: "measure" };
      }
      const baseline = stage === "measure" ? readsOf(details) : undefined;
      await this.finishStep(tx, r, step, "succeeded", { targets, ...(baseline ? { baseline: baseline.reads } : {}) }, events);
      return { kind: "moved" };
    }
    return this.concludeAnalysis(tx, r, step, spec, targets, details, events);
  }

  /** An analysis' verdict over its targets: pass moves on, fail rolls back, inconclusive bakes again (bounded). */
  private async concludeAnalysis(
    tx: Queryable,
    r: RolloutRow,
    step: StepRow,
    spec: AnalysisStep & StepLimits,
    targets: Record<string, TargetOutcome>,
    details: Record<string, Record<string, unknown>>,
    events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][],
  ): Promise<Next> {
    const now = this.now();
    const attempt = Number(step.result["attempt"] ?? 1);
    const baseline = (step.result["baseline"] as Reads | undefined) ?? (await weightsBaseline(tx, r.id, step.idx));
    const after = readsOf(details);
    // The HTTP probe and the Prometheus query, run when the bake ended (queue(), stage "measure").
    const external = (step.result["external"] as ExternalCheck[] | undefined) ?? [];
    const perTarget = Object.keys(targets).map((t) => {
      const res = analyseTarget(spec.config, baseline[t], after.reads[t], after.problems[t], external);
      return { target: nameOf(r, t), verdict: res.verdict, measurements: res.measurements, deltas: res.deltas };
    });
    const verdict = combine(perTarget.map((p) => ({ verdict: p.verdict, measurements: p.measurements, deltas: p.deltas })));
    const analysis = { verdict, attempt, perTarget, external };
    const earlier = (step.result["earlier"] as unknown[] | undefined) ?? [];
    if (verdict === "pass") {
      await this.finishStep(tx, r, step, "succeeded", { targets, analysis }, events);
      return { kind: "moved" };
    }
    const failing = perTarget.filter((p) => p.verdict === verdict).map((p) => `${p.target}: ${p.measurements.filter((m) => m.verdict === verdict).map((m) => m.detail).join("; ")}`).join(" | ");
    if (verdict === "fail") {
      await this.fail(tx, r, step, { code: "ROLLOUT_ANALYSIS_FAILED", message: `the analysis at ${spec.weight}% failed: ${failing}` }, { targets, analysis }, events);
      return { kind: "moved" };
    }
    if (attempt > spec.config.maxInconclusive) {
      await this.fail(tx, r, step, { code: "ROLLOUT_ANALYSIS_INCONCLUSIVE", message: `the analysis at ${spec.weight}% was inconclusive ${attempt} time(s) (at most ${spec.config.maxInconclusive} retries): ${failing}` }, { targets, analysis }, events);
      return { kind: "moved" };
    }
    // Inconclusive: bake again from a fresh baseline (this read), then measure again.
    const bake = await bakeSeconds(tx, r.id, step.idx);
    const wake = new Date(now.getTime() + bake * 1000);
    await tx.query(
      "UPDATE rollout_steps SET wake_at = $3, deadline_at = $4, result = result || $5 WHERE rollout_id = $1 AND idx = $2",
      [r.id, step.idx, wake, new Date(wake.getTime() + spec.timeoutSeconds * 1000), JSON.stringify({ analysis, earlier: [...earlier, analysis], attempt: attempt + 1, baseline: after.reads, stage: "bake", targets })],
    );
    await tx.query("UPDATE rollouts SET updated_at = $2 WHERE id = $1", [r.id, now]);
    await appendAudit(tx, { actor: ENGINE, action: "rollout.step.retry", object: r.id, outcome: "ok", details: { step: step.idx, kind: step.kind, name: step.name, verdict, attempt, bakeSeconds: bake } }, now);
    events.push(["rollout.step", { rollout: r.id, step: step.idx, name: step.name, kind: step.kind, state: "running", verdict, attempt: attempt + 1 }]);
    return { kind: "moved" };
  }

  /** An abort: the running wave is left to finish (its undelivered tasks cancelled), then the rollback starts. */
  private async abortNow(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    const now = this.now();
    let result: Record<string, unknown> = { aborted: true };
    if ((step.kind === "wave" || step.kind === "weights" || step.kind === "analysis") && step.state === "running") {
      await cancelQueued(tx, step, now);
      const outcomes = await waveOutcomes(tx, r, step, step.kind === "wave" ? 0 : Number(step.result["stageFrom"] ?? 0));
      if (Object.values(outcomes).some((o) => !FINAL_TASK_STATES.includes(o.state))) return { kind: "done" };
      result = { ...result, targets: outcomes };
    }
    await tx.query("UPDATE rollout_steps SET state = 'skipped', finished_at = $3, result = result || $4 WHERE rollout_id = $1 AND idx = $2", [r.id, step.idx, now, JSON.stringify(result)]);
    await tx.query("UPDATE rollout_steps SET state = 'skipped' WHERE rollout_id = $1 AND phase = 'forward' AND state = 'pending'", [r.id]);
    await this.startRollback(tx, { ...r }, events);
    return { kind: "moved" };
  }

  private async finishStep(tx: Queryable, r: RolloutRow, step: StepRow, state: "succeeded", result: Record<string, unknown>, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<void> {
    const now = this.now();
    const ev = await this.stepEvidence(tx, r, step, state, result);
    await tx.query("UPDATE rollout_steps SET state = $3, finished_at = $4, result = result || $5 WHERE rollout_id = $1 AND idx = $2", [r.id, step.idx, state, now, JSON.stringify({ ...result, evidence: ev })]);
    await tx.query("UPDATE rollouts SET current_step = $2, updated_at = $3 WHERE id = $1", [r.id, step.idx + 1, now]);
    await appendAudit(tx, { actor: ENGINE, action: "rollout.step.succeeded", object: r.id, outcome: "ok", details: { step: step.idx, kind: step.kind, name: step.name, ...summary(result), evidence: ev } }, now);
    events.push(["rollout.step", { rollout: r.id, step: step.idx, name: step.name, kind: step.kind, state }]);
  }

  /** A step failed: a forward step stops the rollout (rolls back, or halts when rollback is manual); a rollback step fails it. */
  private async fail(tx: Queryable, r: RolloutRow, step: StepRow, why: { code: string; message: string }, result: Record<string, unknown>, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<void> {
    const now = this.now();
    const ev = await this.stepEvidence(tx, r, step, "failed", { ...result, error: why });
    await tx.query("UPDATE rollout_steps SET state = 'failed', finished_at = $3, result = result || $4 WHERE rollout_id = $1 AND idx = $2", [r.id, step.idx, now, JSON.stringify({ ...result, error: why, evidence: ev })]);
    await appendAudit(tx, { actor: ENGINE, action: "rollout.step.failed", object: r.id, outcome: "failed", details: { step: step.idx, kind: step.kind, name: step.name, ...why, evidence: ev } }, now);
    events.push(["rollout.step", { rollout: r.id, step: step.idx, name: step.name, kind: step.kind, state: "failed", code: why.code }]);
    const reason = { step: step.idx, stepName: step.name, ...why };
    if (step.phase === "rollback") {
      await tx.query("UPDATE rollouts SET state = 'failed', reason = coalesce(reason, '{}'::jsonb) || $2, finished_at = $3, updated_at = $3, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1", [r.id, JSON.stringify({ rollbackFailed: reason }), now]);
      const dev = await this.decision(tx, r, "failed", { reason: { ...r.reason, rollbackFailed: reason } });
      await appendAudit(tx, { actor: ENGINE, action: "rollout.failed", object: r.id, outcome: "failed", details: { environment: r.environment, rollbackFailed: reason, evidence: dev } }, now);
      events.push(["rollout.failed", { rollout: r.id, environment: r.environment, reason }]);
      return;
    }
    await tx.query("UPDATE rollout_steps SET state = 'skipped' WHERE rollout_id = $1 AND phase = 'forward' AND state = 'pending'", [r.id]);
    await tx.query("UPDATE rollouts SET reason = $2, updated_at = $3 WHERE id = $1", [r.id, JSON.stringify(reason), now]);
    if (r.strategy.rollback === "manual") {
      await tx.query("UPDATE rollouts SET state = 'halted' WHERE id = $1", [r.id]);
      const dev = await this.decision(tx, r, "halted", { reason, failedStep: { index: step.idx, name: step.name }, measured: result["targets"] ?? null });
      await appendAudit(tx, { actor: ENGINE, action: "rollout.halted", object: r.id, outcome: "failed", details: { environment: r.environment, reason, evidence: dev } }, now);
      events.push(["rollout.halted", { rollout: r.id, environment: r.environment, reason }]);
      return;
    }
    await this.startRollback(tx, { ...r, reason }, events);
  }

  /** Appends the rollback plan for every target this rollout updated, and switches the rollout to it. */
  private async startRollback(tx: Queryable, r: RolloutRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<void> {
    const now = this.now();
    const steps = await tx.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = $1 ORDER BY idx", [r.id]);
    const { updated, switched } = touchedTargets(steps.rows);
    // A release not safe to roll back unattended waits for an operator's go-ahead when the rollback is automatic (a
    // failed step); an operator's abort is that go-ahead already.
    const approval = r.abort_requested ? undefined : await rollbackApproval(tx, r.release_id);
    const plan = planRollback(r.strategy, updated, switched, { approval });
    const from = steps.rows.length;
    await insertSteps(tx, r.id, "rollback", plan, from);
    const reason = r.reason ?? (r.abort_requested ? { code: "ROLLOUT_ABORTED", message: "aborted by an operator" } : null);
    await tx.query("UPDATE rollouts SET state = 'rolling_back', current_step = $2, reason = $3, paused = false, updated_at = $4 WHERE id = $1", [r.id, from, JSON.stringify(reason), now]);
    const names = updated.map((t) => nameOf(r, t));
    // The decision's evidence: why (the failed step and what its targets reported, or the abort), and exactly what
    // each updated target goes back to.
    const failedStep = steps.rows.filter((x) => x.phase === "forward" && (x.state === "failed" || x.state === "skipped") && x.result["targets"]).pop();
    const ev = await this.decision(tx, r, "rollback", {
      reason,
      failedStep: failedStep ? { index: failedStep.idx, name: failedStep.name, state: failedStep.state } : null,
      measured: failedStep?.result["targets"] ?? null,
      rollingBack: updated.map((t) => ({ target: nameOf(r, t), releaseId: r.previous[t]?.releaseId ?? null, images: (r.previous[t]?.images ?? []).map((i) => i.ref) })),
      approvalRequired: approval && updated.length > 0 ? approval : null,
    });
    await appendAudit(tx, { actor: ENGINE, action: "rollout.rollback", object: r.id, outcome: "ok", details: { environment: r.environment, reason, rollingBack: names, evidence: ev, ...(approval && updated.length > 0 ? { approvalRequired: approval } : {}) } }, now);
    events.push(["rollout.rolling_back", { rollout: r.id, environment: r.environment, reason, targets: names }]);
  }

  /**
   * An operator aborted while the rollback waited for approval: the rollback is declined. Nothing is rolled back, the
   * updated targets keep the new release, and the rollout fails (its reason names who declined) for an operator to
   * take over: roll forward with a fixed release, or roll back by hand.
   */
  private async declineRollback(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    const now = this.now();
    const declined = (r.reason?.["rollbackDeclined"] as Record<string, unknown> | undefined) ?? { by: "unknown" };
    await tx.query("UPDATE rollout_steps SET state = 'skipped', finished_at = $3, result = result || $4 WHERE rollout_id = $1 AND idx = $2", [r.id, step.idx, now, JSON.stringify({ declinedBy: declined["by"] })]);
    await tx.query("UPDATE rollout_steps SET state = 'skipped' WHERE rollout_id = $1 AND phase = 'rollback' AND state = 'pending'", [r.id]);
    await tx.query("UPDATE rollouts SET state = 'failed', finished_at = $2, updated_at = $2, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1", [r.id, now]);
    const ev = await this.decision(tx, r, "failed", { reason: r.reason, rollbackDeclined: declined });
    await appendAudit(tx, { actor: ENGINE, action: "rollout.failed", object: r.id, outcome: "failed", details: { environment: r.environment, rollbackDeclined: declined, evidence: ev } }, now);
    events.push(["rollout.failed", { rollout: r.id, environment: r.environment, reason: r.reason }]);
    return { kind: "done" };
  }

  /** A signed packet for one step's outcome (kind rollout.step); its id, or null without an evidence store. */
  private async stepEvidence(tx: Queryable, r: RolloutRow, step: StepRow, outcome: string, result: Record<string, unknown>): Promise<string | null> {
    if (!this.d.evidence) return null;
    const targets = result["targets"] as Record<string, TargetOutcome> | undefined;
    const doc = {
      rollout: { id: r.id, environment: r.environment, releaseId: r.release_id, strategy: r.strategy.kind },
      step: { index: step.idx, phase: step.phase, kind: step.kind, name: step.name, attempts: step.attempts, startedAt: step.started_at ? new Date(step.started_at).toISOString() : null, finishedAt: this.now().toISOString() },
      outcome,
      targets: targets ? Object.values(targets).map((o) => ({ target: o.name, state: o.state, code: o.code, message: o.message, task: o.task, deployment: o.deployment })) : [],
      error: (result["error"] as Record<string, unknown> | undefined) ?? null,
      // An analysis' verdict with every measurement (value, threshold, sentence): what the decision rests on.
      ...(result["analysis"] ? { analysis: result["analysis"] } : {}),
      promotedBy: typeof step.result["promotedBy"] === "string" ? step.result["promotedBy"] : null,
    };
    return (await this.d.evidence.record(tx, "rollout.step", r.id, doc)).id;
  }

  /** A signed packet for a decision of the engine (kind rollout.decision): rollback, halted, succeeded, rolled_back, failed. */
  private async decision(tx: Queryable, r: RolloutRow, decision: string, facts: Record<string, unknown>): Promise<string | null> {
    if (!this.d.evidence) return null;
    const doc = { rollout: { id: r.id, environment: r.environment, releaseId: r.release_id, strategy: r.strategy.kind, requestedBy: r.requested_by }, decision, ...facts };
    return (await this.d.evidence.record(tx, "rollout.decision", r.id, doc)).id;
  }
}

const nameOf = (r: RolloutRow, id: string): string => r.targets.find((t) => t.id === id)?.name ?? id;

/** Per target of a wave step, the state of its newest task across the step's deployments (retries come later). */
async function waveOutcomes(tx: Queryable, r: RolloutRow, step: StepRow, from = 0): Promise<Record<string, TargetOutcome>> {
  const deployments = ((step.result["deployments"] as string[] | undefined) ?? []).slice(from);
  const tasks = await tx.query<{ id: string; deployment_id: string; target_id: string; state: TaskState; code: string | null; message: string | null }>(
    "SELECT id, deployment_id, target_id, state, code, message FROM tasks WHERE deployment_id = ANY($1)",
    [deployments],
  );
  const out: Record<string, TargetOutcome> = {};
  for (const dep of deployments) {
    for (const t of tasks.rows.filter((x) => x.deployment_id === dep)) {
      out[t.target_id] = { name: nameOf(r, t.target_id), state: t.state, code: t.code, message: t.message ? t.message.slice(0, 512) : null, task: t.id, deployment: dep };
    }
  }
  return out;
}

/** Why a rollback of `releaseId` must wait for an approval, or undefined when the release is safe to roll back. */
async function rollbackApproval(tx: Queryable, releaseId: string): Promise<string | undefined> {
  const rel = (await tx.query<{ name: string; version: string; rollback_safe: boolean; rollback_note: string | null }>("SELECT name, version, rollback_safe, rollback_note FROM releases WHERE id = $1", [releaseId])).rows[0];
  if (!rel || rel.rollback_safe) return undefined;
  return `release ${rel.name}@${rel.version} is marked not safe to roll back automatically${rel.rollback_note ? ` (${rel.rollback_note})` : ""}: promote the rollout to roll back, or abort it to keep the new release on the updated targets`;
}

async function cancelQueued(tx: Queryable, step: StepRow, now: Date): Promise<void> {
  const deployments = (step.result["deployments"] as string[] | undefined) ?? [];
  const r = await tx.query<{ deployment_id: string }>(
    `UPDATE tasks SET state = 'cancelled', finished_at = $2, updated_at = $2, code = 'CANCELLED', message = 'cancelled by the rollout engine (the step timed out or the rollout was aborted)'
      WHERE deployment_id = ANY($1) AND state = 'queued' RETURNING deployment_id`,
    [deployments, now],
  );
  for (const dep of new Set(r.rows.map((x) => x.deployment_id))) await refreshDeploymentState(tx, dep);
}

function summary(result: Record<string, unknown>): Record<string, unknown> {
  const { targets, ...rest } = result;
  if (!targets) return rest;
  return { ...rest, targets: Object.values(targets as Record<string, TargetOutcome>).map((o) => ({ target: o.name, state: o.state, code: o.code })) };
}

/**
 * The targets a rollout's forward waves touched: `updated` ran (or may have run: still running when the step gave
 * up on it) a deploy wave; `switched` ran one whose phases include switch, so its stable slot is the retained one.
 */
function touchedTargets(steps: readonly StepRow[]): { updated: string[]; switched: string[] } {
  const updated: string[] = [];
  const switched: string[] = [];
  for (const s of steps) {
    if (s.phase !== "forward" || s.spec.kind !== "wave") continue;
    const switches = s.spec.phases.includes("switch");
    const targets = (s.result["targets"] ?? {}) as Record<string, TargetOutcome>;
    for (const [t, o] of Object.entries(targets)) {
      if (o.state !== "succeeded" && FINAL_TASK_STATES.includes(o.state)) continue;
      if (!updated.includes(t)) updated.push(t);
      if (switches && !switched.includes(t)) switched.push(t);
    }
  }
  return { updated, switched };
}

/**
 * Per target, the driver state of the newest successful phase task of this rollout (its result's details.state) and
 * that task's id. The tasks are rows, so a restarted control plane or another replica finds exactly the same.
 */
async function carriedStates(db: Queryable, r: RolloutRow, targets: readonly string[]): Promise<Record<string, { state: Record<string, unknown>; task: string }>> {
  const steps = await db.query<{ result: Record<string, unknown> }>("SELECT result FROM rollout_steps WHERE rollout_id = $1 ORDER BY idx", [r.id]);
  const order = [r.deployment_id, ...steps.rows.flatMap((s) => (s.result["deployments"] as string[] | undefined) ?? [])];
  const tasks = await db.query<{ id: string; deployment_id: string; target_id: string; state: Record<string, unknown> }>(
    `SELECT id, deployment_id, target_id, details->'state' AS state FROM tasks
      WHERE deployment_id = ANY($1) AND target_id = ANY($2) AND state = 'succeeded' AND action <> 'route' AND jsonb_typeof(details->'state') = 'object'`,
    [order, [...targets]],
  );
  const out: Record<string, { state: Record<string, unknown>; task: string; at: number }> = {};
  for (const t of tasks.rows) {
    const at = order.lastIndexOf(t.deployment_id);
    if (!out[t.target_id] || at > out[t.target_id]!.at) out[t.target_id] = { state: t.state, task: t.id, at };
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { state: v.state, task: v.task }]));
}

/** The router operation a weights or analysis step sends in `stage`; an A/B weights step carries its split. */
function routeOpFor(spec: StepRow["spec"], stage: RouteStage): RouteOp {
  if (spec.kind === "weights" && stage === "weights") return spec.split ? { op: "weights", newWeight: spec.newWeight, split: spec.split } : { op: "weights", newWeight: spec.newWeight };
  return { op: "measure" };
}

/** Per target, the details of its newest task of the current stage (what the agent's router answered). */
async function stageDetails(tx: Queryable, step: StepRow, from: number): Promise<Record<string, Record<string, unknown>>> {
  const deployments = ((step.result["deployments"] as string[] | undefined) ?? []).slice(from);
  const r = await tx.query<{ target_id: string; deployment_id: string; details: Record<string, unknown> | null }>(
    "SELECT target_id, deployment_id, details FROM tasks WHERE deployment_id = ANY($1) AND state = 'succeeded'",
    [deployments],
  );
  const out: Record<string, Record<string, unknown>> = {};
  for (const dep of deployments) for (const t of r.rows.filter((x) => x.deployment_id === dep)) out[t.target_id] = t.details ?? {};
  return out;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const count = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : null);

/** The weights a router reported (weights and measure results carry them), as {stable, new}; null when unreadable. */
function slotWeights(d: Record<string, unknown> | undefined): { stable: number; new: number } | null {
  if (!d || !isObj(d["weights"]) || typeof d["newSlot"] !== "string" || typeof d["stableSlot"] !== "string") return null;
  const w = d["weights"];
  const stable = count(w[d["stableSlot"]]);
  const fresh = count(w[d["newSlot"]]);
  return stable === null || fresh === null ? null : { stable, new: fresh };
}

function withWeights(outcomes: Record<string, TargetOutcome>, details: Record<string, Record<string, unknown>>): Record<string, TargetOutcome> {
  return Object.fromEntries(Object.entries(outcomes).map(([t, o]) => {
    const w = slotWeights(details[t]);
    return [t, w ? { ...o, weights: w } : o];
  }));
}

/** Counter reads from measure results; an agent's answer is checked, never trusted: a bad one is a problem, not a read. */
function readsOf(details: Record<string, Record<string, unknown>>): { reads: Reads; problems: Record<string, string> } {
  const reads: Reads = {};
  const problems: Record<string, string> = {};
  const slot = (v: unknown) => {
    if (!isObj(v)) return null;
    const requests = count(v["requests"]);
    const errors5xx = count(v["errors5xx"]);
    const avgResponseMs = count(v["avgResponseMs"]);
    return requests === null || errors5xx === null || avgResponseMs === null ? null : { requests, errors5xx, avgResponseMs };
  };
  for (const [t, d] of Object.entries(details)) {
    const stable = slot(d["stable"]);
    const fresh = slot(d["new"]);
    if (typeof d["epoch"] !== "string" || d["epoch"].length > 256 || !stable || !fresh) problems[t] = "the agent's measure answer has no readable counters (epoch, stable and new slots)";
    else reads[t] = { epoch: d["epoch"], stable, new: fresh };
  }
  return { reads, problems };
}

/** One target's verdict; a missing baseline or an unreadable read is inconclusive, never a pass. */
function analyseTarget(config: AnalysisConfig, before: CounterRead | undefined, after: CounterRead | undefined, problem: string | undefined, external: readonly ExternalCheck[]): AnalysisResult {
  if (before && after) return analyse(config, before, after, external);
  const detail = problem ?? (before ? "no counters were read after the bake" : "no baseline was read when the weights were set");
  return { verdict: "inconclusive", measurements: [{ name: "epoch", verdict: "inconclusive", value: null, threshold: null, detail }], deltas: null };
}

/** The baseline the weights step before an analysis read when it set the weights. */
async function weightsBaseline(tx: Queryable, rolloutId: string, idx: number): Promise<Reads> {
  const r = await tx.query<{ result: Record<string, unknown> }>(
    "SELECT result FROM rollout_steps WHERE rollout_id = $1 AND idx < $2 AND kind = 'weights' AND phase = 'forward' ORDER BY idx DESC LIMIT 1",
    [rolloutId, idx],
  );
  return (r.rows[0]?.result["baseline"] as Reads | undefined) ?? {};
}

/** How long an analysis bakes again after an inconclusive verdict: the bake (wait step) before it. */
async function bakeSeconds(tx: Queryable, rolloutId: string, idx: number): Promise<number> {
  const r = await tx.query<{ spec: StepRow["spec"] }>("SELECT spec FROM rollout_steps WHERE rollout_id = $1 AND idx < $2 AND kind = 'wait' ORDER BY idx DESC LIMIT 1", [rolloutId, idx]);
  const spec = r.rows[0]?.spec;
  return spec && spec.kind === "wait" ? spec.seconds : 60;
}
