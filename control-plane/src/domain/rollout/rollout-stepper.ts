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
import { FINAL_TASK_STATES, refreshDeploymentState, type TaskState } from "../deploy/deployment-service.js";
import { FerryError } from "../errors.js";
import { planRollback } from "./planner.js";
import { insertSteps, lockRollout, type RolloutRow, type StepRow } from "./rollout-service.js";

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
}

const ENGINE = "rollout-engine";
/** Transitions one advance() makes at most, so one busy rollout cannot hold a replica's loop. */
const MAX_TRANSITIONS = 16;

type Next = { kind: "done" } | { kind: "moved" } | { kind: "queue"; step: StepRow; targets: string[]; retry: boolean };

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
      if (next.kind === "queue" && !(await this.queue(id, owner, next.step, next.targets, next.retry))) break;
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
      default:
        await this.fail(tx, r, step, { code: "ROLLOUT_STRATEGY_UNSUPPORTED", message: `the engine does not run ${step.kind} steps yet` }, {}, events);
        return { kind: "moved" };
    }
  }

  private async start(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    const now = this.now();
    const deadline = new Date(now.getTime() + step.spec.timeoutSeconds * 1000);
    switch (step.spec.kind) {
      case "wave": {
        let targets = step.spec.targets;
        if (step.spec.action === "rollback") {
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
      default:
        await this.fail(tx, r, step, { code: "ROLLOUT_STRATEGY_UNSUPPORTED", message: `the engine does not run ${step.kind} steps yet` }, {}, events);
        return { kind: "moved" };
    }
    await tx.query("UPDATE rollouts SET updated_at = $2 WHERE id = $1", [r.id, now]);
    await appendAudit(tx, { actor: ENGINE, action: "rollout.step.start", object: r.id, outcome: "ok", details: { step: step.idx, kind: step.kind, name: step.name } }, now);
    events.push(["rollout.step", { rollout: r.id, step: step.idx, name: step.name, kind: step.kind, state: "running" }]);
    return { kind: "moved" };
  }

  /**
   * Queues a wave (or its retry) for `targets`. The step becomes running — with the deployment recorded — in the same
   * transaction that queues the tasks, after checking that this replica still holds the lease and the step is still
   * where it was: a wave is never queued twice and never lost. Returns false when nothing was queued.
   */
  private async queue(id: string, owner: string, step: StepRow, targets: string[], retry: boolean): Promise<boolean> {
    const r = (await this.d.store.query<RolloutRow>("SELECT * FROM rollouts WHERE id = $1", [id])).rows[0]!;
    if (step.spec.kind !== "wave") return false;
    const spec = step.spec;
    const now = this.now();
    try {
      await this.d.deployments.enqueueWave(
        {
          rolloutId: id,
          environment: r.environment,
          action: spec.action,
          releaseId: spec.action === "deploy" ? r.release_id : null,
          targets: targets.map((t) => (spec.action === "rollback" ? { name: nameOf(r, t), releaseId: r.previous[t]!.releaseId, images: r.previous[t]!.images } : { name: nameOf(r, t) })),
        },
        r.requested_by,
        async (tx, deploymentId) => {
          const cur = await lockRollout(tx, id);
          const s = (await tx.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = $1 AND idx = $2 FOR UPDATE", [id, step.idx])).rows[0];
          if (cur.lease_owner !== owner || cur.current_step !== step.idx || !s || s.state !== step.state || s.attempts !== step.attempts) {
            throw new FerryError("ROLLOUT_STATE_CONFLICT", `rollout ${id} moved on while its wave was being queued`);
          }
          const deployments = [...((s.result["deployments"] as string[] | undefined) ?? []), deploymentId];
          await tx.query(
            `UPDATE rollout_steps SET state = 'running', attempts = attempts + 1, started_at = coalesce(started_at, $3), deadline_at = $4, result = result || $5
              WHERE rollout_id = $1 AND idx = $2`,
            [id, step.idx, now, new Date(now.getTime() + spec.timeoutSeconds * 1000), JSON.stringify({ deployments })],
          );
          await tx.query("UPDATE rollouts SET updated_at = $2 WHERE id = $1", [id, now]);
          await appendAudit(tx, { actor: ENGINE, action: retry ? "rollout.step.retry" : "rollout.step.start", object: id, outcome: "ok", details: { step: step.idx, kind: step.kind, name: step.name, deployment: deploymentId, targets: targets.map((t) => nameOf(r, t)), attempt: s.attempts + 1 } }, now);
        },
      );
      this.d.events?.emit("rollout.step", { rollout: id, step: step.idx, name: step.name, kind: step.kind, state: "running", attempt: step.attempts + 1 });
      return true;
    } catch (err) {
      if (!(err instanceof FerryError)) throw err;
      if (err.code === "ROLLOUT_STATE_CONFLICT") return false;
      // A target still busy (a task of the failed wave still running when a rollback is due) clears by itself:
      // the wave is tried again on the next tick, until the step's deadline.
      const deadline = step.deadline_at ?? new Date(now.getTime() + step.spec.timeoutSeconds * 1000);
      if (err.code === "DEPLOYMENT_IN_PROGRESS" && now <= new Date(deadline)) {
        if (!step.deadline_at) await this.d.store.query("UPDATE rollout_steps SET deadline_at = $3 WHERE rollout_id = $1 AND idx = $2 AND deadline_at IS NULL", [id, step.idx, deadline]);
        return false;
      }
      const events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][] = [];
      await this.d.store.transaction(async (tx) => {
        const cur = await lockRollout(tx, id);
        if (cur.lease_owner !== owner || cur.current_step !== step.idx) return;
        await this.fail(tx, cur, step, { code: err.code, message: `the wave could not be queued: ${err.message}` }, {}, events);
      });
      for (const [type, data] of events) this.d.events?.emit(type, data);
      return true;
    }
  }

  /** Reads a running wave's tasks: still running, retry the retryable failures, or finish the step. */
  private async checkWave(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    if (step.spec.kind !== "wave") return { kind: "done" };
    const now = this.now();
    const outcomes = await waveOutcomes(tx, r, step);
    const active = Object.entries(outcomes).filter(([, o]) => !FINAL_TASK_STATES.includes(o.state));
    if (active.length > 0) {
      if (!step.deadline_at || now <= new Date(step.deadline_at)) return { kind: "done" };
      // Timed out: what has not been delivered is cancelled; what is running may still finish, so it is counted as
      // updated (a rollback then puts its previous digests back, which is harmless if its task fails after all).
      await cancelQueued(tx, step, now);
      await this.fail(tx, r, step, { code: "ROLLOUT_STEP_TIMEOUT", message: `the wave did not finish within ${step.spec.timeoutSeconds} s` }, { targets: await waveOutcomes(tx, r, step) }, events);
      return { kind: "moved" };
    }
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

  /** An abort: the running wave is left to finish (its undelivered tasks cancelled), then the rollback starts. */
  private async abortNow(tx: Queryable, r: RolloutRow, step: StepRow, events: [Parameters<RolloutEvents["emit"]>[0], Record<string, unknown>][]): Promise<Next> {
    const now = this.now();
    let result: Record<string, unknown> = { aborted: true };
    if (step.kind === "wave" && step.state === "running") {
      await cancelQueued(tx, step, now);
      const outcomes = await waveOutcomes(tx, r, step);
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
    const updated: string[] = [];
    for (const s of steps.rows) {
      if (s.phase !== "forward" || s.kind !== "wave") continue;
      const targets = (s.result["targets"] ?? {}) as Record<string, TargetOutcome>;
      for (const [t, o] of Object.entries(targets)) {
        // Succeeded, or still running when the step gave up on it: either way it may run the new release now.
        if ((o.state === "succeeded" || !FINAL_TASK_STATES.includes(o.state)) && !updated.includes(t)) updated.push(t);
      }
    }
    // A release not safe to roll back unattended waits for an operator's go-ahead when the rollback is automatic (a
    // failed step); an operator's abort is that go-ahead already.
    const approval = r.abort_requested ? undefined : await rollbackApproval(tx, r.release_id);
    const plan = planRollback(r.strategy, updated, [], { approval });
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
async function waveOutcomes(tx: Queryable, r: RolloutRow, step: StepRow): Promise<Record<string, TargetOutcome>> {
  const deployments = (step.result["deployments"] as string[] | undefined) ?? [];
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
