// Rollouts as operators see and steer them: created from a deployment request whose strategy is not all-at-once,
// read as a plan of steps with their state, paused, resumed, promoted (end a wait or give an approval now) and
// aborted (roll back what was updated). The engine (rollout-stepper.ts, run by runtime/rollout-engine.ts) moves
// them along; everything here writes under the rollout's row lock, so an operator's action and an engine tick
// never interleave.
import { randomBytes } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import type { TaskImage } from "../../ports/signer.js";
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit } from "../audit/audit-log.js";
import type { Principal } from "../auth/roles.js";
import type { CatalogService, EnvironmentView, ReleaseView } from "../catalog/catalog-service.js";
import { checkLimit, cursorTime, cursorTimeSql, decodeCursor, encodeCursor, type Page } from "../catalog/pagination.js";
import type { DeploymentService, DeploymentView } from "../deploy/deployment-service.js";
import { imagesForTarget, requireRouted, requireV2 } from "../deploy/deployment-service.js";
import { FerryError } from "../errors.js";
import { planRollout, type RolloutPlan } from "./planner.js";
import { parseStrategy, strategyNeeds, type Strategy } from "./strategy.js";

export type RolloutState = "running" | "halted" | "rolling_back" | "succeeded" | "failed" | "rolled_back";
export type StepState = "pending" | "running" | "succeeded" | "failed" | "skipped";
export const ACTIVE_ROLLOUT_STATES: readonly RolloutState[] = ["running", "halted", "rolling_back"];

/** Strategies the engine runs (all-at-once deploys take the plain deployment path, with no rollout row). */
export const ENGINE_STRATEGIES: readonly Strategy["kind"][] = ["all-at-once", "rolling", "blue-green", "canary", "ab"];

/** Refuses (ROLLOUT_STRATEGY_UNSUPPORTED) a strategy the engine does not run yet; all-at-once needs no engine. */
export function checkEngineRuns(strategy: Strategy): void {
  if (strategy.kind === "all-at-once" || ENGINE_STRATEGIES.includes(strategy.kind)) return;
  throw new FerryError(
    "ROLLOUT_STRATEGY_UNSUPPORTED",
    `the ${strategy.kind} strategy is planned but the rollout engine does not run it yet (it runs: ${ENGINE_STRATEGIES.join(", ")}, and all-at-once)`,
    { strategy: strategy.kind },
  );
}

export interface RolloutStepView {
  index: number;
  phase: "forward" | "rollback";
  kind: RolloutPlan["steps"][number]["kind"];
  name: string;
  state: StepState;
  attempts: number;
  spec: Record<string, unknown>;
  startedAt: string | null;
  finishedAt: string | null;
  deadlineAt: string | null;
  wakeAt: string | null;
  result: Record<string, unknown>;
}

export interface RolloutView {
  id: string;
  deploymentId: string;
  environment: string;
  releaseId: string;
  strategy: Strategy;
  state: RolloutState;
  currentStep: number;
  paused: boolean;
  abortRequested: boolean;
  reason: Record<string, unknown> | null;
  requestedBy: string;
  targets: { id: string; name: string }[];
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  steps: RolloutStepView[];
}

export interface RolloutRow {
  id: string;
  deployment_id: string;
  environment: string;
  release_id: string;
  strategy: Strategy;
  targets: { id: string; name: string }[];
  previous: Record<string, { releaseId: string; images: TaskImage[] }>;
  state: RolloutState;
  current_step: number;
  paused: boolean;
  abort_requested: boolean;
  reason: Record<string, unknown> | null;
  requested_by: string;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  lease_owner: string | null;
  lease_expires_at: Date | null;
}

export interface StepRow {
  rollout_id: string;
  idx: number;
  phase: "forward" | "rollback";
  kind: RolloutStepView["kind"];
  name: string;
  spec: RolloutPlan["steps"][number];
  state: StepState;
  attempts: number;
  deadline_at: Date | null;
  wake_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  result: Record<string, unknown>;
}

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null);

export function stepView(s: StepRow): RolloutStepView {
  return {
    index: s.idx,
    phase: s.phase,
    kind: s.kind,
    name: s.name,
    state: s.state,
    attempts: s.attempts,
    spec: s.spec as unknown as Record<string, unknown>,
    startedAt: iso(s.started_at),
    finishedAt: iso(s.finished_at),
    deadlineAt: iso(s.deadline_at),
    wakeAt: iso(s.wake_at),
    result: s.result,
  };
}

function rolloutView(r: RolloutRow, steps: StepRow[]): RolloutView {
  return {
    id: r.id,
    deploymentId: r.deployment_id,
    environment: r.environment,
    releaseId: r.release_id,
    strategy: r.strategy,
    state: r.state,
    currentStep: r.current_step,
    paused: r.paused,
    abortRequested: r.abort_requested,
    reason: r.reason,
    requestedBy: r.requested_by,
    targets: r.targets,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    finishedAt: iso(r.finished_at),
    steps: steps.map(stepView),
  };
}

/** Inserts the steps of a plan from index `from`, all pending. */
export async function insertSteps(tx: Queryable, rolloutId: string, phase: "forward" | "rollback", plan: RolloutPlan, from: number): Promise<void> {
  for (const [i, s] of plan.steps.entries()) {
    await tx.query(
      `INSERT INTO rollout_steps (rollout_id, idx, phase, kind, name, spec, state) VALUES ($1, $2, $3, $4, $5, $6, 'pending')`,
      [rolloutId, from + i, phase, s.kind, s.name, JSON.stringify(s)],
    );
  }
}

/** Locks a rollout's row for an operator's action or an engine transition. */
export async function lockRollout(tx: Queryable, id: string): Promise<RolloutRow> {
  const r = await tx.query<RolloutRow>("SELECT * FROM rollouts WHERE id = $1 FOR UPDATE", [id]);
  const row = r.rows[0];
  if (!row) throw new FerryError("ROLLOUT_NOT_FOUND", `no rollout ${id}`);
  return row;
}

export interface RolloutDeps {
  store: Store;
  catalog: CatalogService;
  deployments: DeploymentService;
  clock: Clock;
}

export class RolloutService {
  constructor(private readonly d: RolloutDeps) {}

  /**
   * The strategy a deployment to `env` uses: the request's own, else the environment's `settings.strategy`, else
   * all-at-once. Checked by the strategy parser; the error names the field it came from.
   */
  resolveStrategy(env: Pick<EnvironmentView, "settings">, requested: unknown): Strategy {
    if (requested !== undefined && requested !== null) return parseStrategy(requested, "strategy");
    const configured = env.settings["strategy"];
    if (configured !== undefined && configured !== null) return parseStrategy(configured, "settings.strategy");
    return parseStrategy("all-at-once");
  }

  /**
   * Creates a rollout and queues its first wave, in one transaction: the rollout row, its plan and the first wave's
   * deployment exist together or not at all. The first wave is an ordinary deploy(), so the environment's governance
   * (gates, overrides) applies to the rollout exactly as to an all-at-once deployment.
   */
  /**
   * Refuses now, naming every target concerned, a rollout of `release` with `strategy` that could not run to its end:
   * a strategy the engine does not run, targets whose agents lack what it needs (side-by-side and a router for the
   * slot strategies, which also need routed targets and payload v2), a component a target cannot find. Used by
   * create, and by a promotion's request, before any approval is collected.
   */
  async preflight(environment: string, targetNames: string[] | undefined, strategy: Strategy, release: ReleaseView): Promise<Awaited<ReturnType<DeploymentService["selectTargets"]>>> {
    checkEngineRuns(strategy);
    if (strategy.kind === "all-at-once") throw new FerryError("ROLLOUT_STRATEGY_UNSUPPORTED", "an all-at-once deployment is not a rollout: it is deployed directly", { strategy: strategy.kind });
    const needs = strategyNeeds(strategy);
    const selected = await this.d.deployments.selectTargets(environment, targetNames, needs);
    if (needs.length > 0) {
      // Slot strategies run phases as separate tasks with carried state, and router operations: routed targets
      // whose agents read payload v2, every one of them checked now.
      requireRouted(selected.map((s) => s.target), `the ${strategy.kind} strategy`);
      requireV2(selected, `the ${strategy.kind} strategy`);
    }
    // Every target is checked now, not when its wave comes: a release that cannot reach the last batch is refused
    // before the first batch changes anything.
    for (const { target } of selected) imagesForTarget(target, release);
    return selected;
  }

  async create(
    input: { release: string; environment: string; targets?: string[]; strategy: Strategy; override?: { reason: string } },
    actor: string,
    by: { principal?: Principal | null; promotion?: string; within?: (tx: Queryable, rolloutId: string, deploymentId: string) => Promise<void> } = {},
  ): Promise<{ rollout: RolloutView; deployment: DeploymentView }> {
    const strategy = input.strategy;
    await this.d.catalog.getEnvironment(input.environment);
    const release = await this.d.catalog.getRelease(input.release);
    const selected = await this.preflight(input.environment, input.targets, strategy, release);
    const targets = selected.map(({ target }) => ({ id: target.id, name: target.name }));
    const plan = planRollout(strategy, targets);
    const first = plan.steps[0];
    if (!first || first.kind !== "wave") throw new FerryError("INTERNAL", `a ${strategy.kind} plan must begin with a wave`);
    const previous: RolloutRow["previous"] = {};
    const cur = await this.d.store.query<{ target_id: string; release_id: string; images: TaskImage[] }>(
      `SELECT DISTINCT ON (target_id) target_id, release_id, images FROM target_deployments WHERE target_id = ANY($1) ORDER BY target_id, seq DESC`,
      [targets.map((t) => t.id)],
    );
    for (const c of cur.rows) previous[c.target_id] = { releaseId: c.release_id, images: c.images };
    const id = `rol_${randomBytes(8).toString("hex")}`;
    const now = new Date(this.d.clock.now());
    const names = first.targets.map((tid) => targets.find((t) => t.id === tid)!.name);
    const deployment = await this.d.deployments.deploy(
      { release: release.id, environment: input.environment, targets: names, ...(input.override ? { override: input.override } : {}) },
      actor,
      {
        principal: by.principal,
        promotion: by.promotion,
        phases: first.phases,
        within: async (tx, deploymentId) => {
          await tx.query(
            `INSERT INTO rollouts (id, deployment_id, environment, release_id, strategy, targets, previous, state, current_step, requested_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', 0, $8, $9, $9)`,
            [id, deploymentId, input.environment, release.id, JSON.stringify(strategy), JSON.stringify(targets), JSON.stringify(previous), actor, now],
          );
          await insertSteps(tx, id, "forward", plan, 0);
          // The first wave is queued by this very transaction: its step is running from the start.
          await tx.query(
            `UPDATE rollout_steps SET state = 'running', attempts = 1, started_at = $3, deadline_at = $4, result = $5 WHERE rollout_id = $1 AND idx = $2`,
            [id, 0, now, new Date(now.getTime() + first.timeoutSeconds * 1000), JSON.stringify({ deployments: [deploymentId] })],
          );
          await appendAudit(tx, { actor, action: "rollout.create", object: id, outcome: "ok", details: { environment: input.environment, releaseId: release.id, strategy: strategy.kind, steps: plan.steps.length, deployment: deploymentId, ...(by.promotion ? { promotion: by.promotion } : {}) } }, now);
          // The caller's own writes (a promotion moving to deploying) commit with the rollout, or not at all.
          if (by.within) await by.within(tx, id, deploymentId);
        },
      },
    );
    return { rollout: await this.get(id), deployment };
  }

  async get(id: string): Promise<RolloutView> {
    const r = await this.d.store.query<RolloutRow>("SELECT * FROM rollouts WHERE id = $1", [id]);
    const row = r.rows[0];
    if (!row) throw new FerryError("ROLLOUT_NOT_FOUND", `no rollout ${id}`);
    const steps = await this.d.store.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = $1 ORDER BY idx", [id]);
    return rolloutView(row, steps.rows);
  }

  async list(q: { environment?: string; state?: string; limit?: number; cursor?: string }): Promise<Page<RolloutView>> {
    const limit = checkLimit(q.limit, 200);
    const params: unknown[] = [];
    const where: string[] = [];
    if (q.environment) where.push(`environment = $${params.push(q.environment)}`);
    if (q.state) where.push(`state = $${params.push(q.state)}`);
    if (q.cursor) {
      const c = decodeCursor(q.cursor, ["t", "id"]);
      where.push(`(created_at, id) < ($${params.push(cursorTime(c["t"] as string))}::timestamptz, $${params.push(c["id"])})`);
    }
    const r = await this.d.store.query<RolloutRow & { cursor_at: string }>(
      `SELECT *, ${cursorTimeSql("created_at")} AS cursor_at FROM rollouts ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY created_at DESC, id DESC LIMIT ${limit + 1}`,
      params,
    );
    const rows = r.rows.slice(0, limit);
    const steps = await this.d.store.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = ANY($1) ORDER BY rollout_id, idx", [rows.map((x) => x.id)]);
    const items = rows.map((row) => rolloutView(row, steps.rows.filter((s) => s.rollout_id === row.id)));
    const last = rows[rows.length - 1];
    return { items, nextCursor: r.rows.length > limit && last ? encodeCursor({ t: last.cursor_at, id: last.id }) : null };
  }

  /** The engine starts no new step of a paused rollout; a wave already queued runs to its end. */
  async pause(id: string, actor: string): Promise<RolloutView> {
    return this.act(id, actor, "rollout.pause", (r) => {
      if (r.state !== "running") throw notNow(r, "pause");
      if (r.paused) throw new FerryError("ROLLOUT_STATE_CONFLICT", `rollout ${id} is already paused`, { rollout: id, state: r.state });
      return { set: "paused = true" };
    });
  }

  async resume(id: string, actor: string): Promise<RolloutView> {
    return this.act(id, actor, "rollout.resume", (r) => {
      if (r.state !== "running" || !r.paused) throw new FerryError("ROLLOUT_STATE_CONFLICT", `rollout ${id} is not paused (it is ${r.state})`, { rollout: id, state: r.state });
      return { set: "paused = false" };
    });
  }

  /** Ends the current wait (a soak or bake) now, or gives the current approval; the step must have begun. */
  async promote(id: string, actor: string): Promise<RolloutView> {
    return this.act(id, actor, "rollout.promote", async (r, tx) => {
      // rolling_back: the approval a rollback of a release not safe to roll back waits for (docs/rollouts.md).
      if (r.state !== "running" && r.state !== "rolling_back") throw notNow(r, "promote");
      const s = await tx.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = $1 AND idx = $2", [id, r.current_step]);
      const step = s.rows[0];
      const promotable = step && ((step.kind === "wait" && step.spec.kind === "wait" && step.spec.promotable) || step.kind === "approval");
      if (!step || !promotable || step.state !== "running") {
        throw new FerryError("ROLLOUT_STATE_CONFLICT", `rollout ${id}'s current step is not a wait or an approval that can be promoted${step ? ` (it is ${step.kind} "${step.name}", ${step.state})` : ""}`, { rollout: id, state: r.state });
      }
      await tx.query(`UPDATE rollout_steps SET result = result || $3 WHERE rollout_id = $1 AND idx = $2`, [id, step.idx, JSON.stringify({ promotedBy: actor, promotedAt: new Date(this.d.clock.now()).toISOString() })]);
      return { set: null, details: { step: step.idx, kind: step.kind, name: step.name } };
    });
  }

  /** Stops the rollout and rolls back every target it updated (the engine does the rolling back). */
  async abort(id: string, actor: string, reason = ""): Promise<RolloutView> {
    return this.act(id, actor, "rollout.abort", async (r, tx) => {
      if (r.state === "rolling_back") return declineRollback(tx, r, actor, reason, new Date(this.d.clock.now()));
      if (r.state !== "running" && r.state !== "halted") throw notNow(r, "abort");
      if (r.abort_requested) throw new FerryError("ROLLOUT_STATE_CONFLICT", `rollout ${id} is already being aborted`, { rollout: id, state: r.state });
      // A halted rollout keeps the failure that halted it as its reason; the abort is added to it.
      const why = r.state === "halted" ? { ...r.reason, abortedBy: actor } : { code: "ROLLOUT_ABORTED", message: reason.slice(0, 1024) || "aborted by an operator", by: actor };
      await tx.query("UPDATE rollouts SET reason = $2 WHERE id = $1", [id, JSON.stringify(why)]);
      return { set: "abort_requested = true, paused = false", details: { reason: reason.slice(0, 1024) } };
    });
  }

  private async act(
    id: string,
    actor: string,
    action: string,
    decide: (r: RolloutRow, tx: Queryable) => { set: string | null; details?: Record<string, unknown> } | Promise<{ set: string | null; details?: Record<string, unknown> }>,
  ): Promise<RolloutView> {
    const now = new Date(this.d.clock.now());
    await this.d.store.transaction(async (tx) => {
      const r = await lockRollout(tx, id);
      const { set, details } = await decide(r, tx);
      await tx.query(`UPDATE rollouts SET ${set ? `${set}, ` : ""}updated_at = $2 WHERE id = $1`, [id, now]);
      await appendAudit(tx, { actor, action, object: id, outcome: "ok", details: { environment: r.environment, step: r.current_step, ...details } }, now);
    });
    return this.get(id);
  }
}

/**
 * An abort while a rollback waits for its approval (a release not safe to roll back) declines the rollback: the
 * engine then ends the rollout failed, leaving the updated targets on the new release. Any other rolling back runs on.
 */
async function declineRollback(tx: Queryable, r: RolloutRow, actor: string, reason: string, now: Date): Promise<{ set: string; details: Record<string, unknown> }> {
  const step = (await tx.query<StepRow>("SELECT * FROM rollout_steps WHERE rollout_id = $1 AND idx = $2", [r.id, r.current_step])).rows[0];
  if (!step || step.phase !== "rollback" || step.kind !== "approval" || r.abort_requested) throw notNow(r, "abort");
  const declined = { by: actor, reason: reason.slice(0, 1024), at: now.toISOString() };
  await tx.query("UPDATE rollouts SET reason = coalesce(reason, '{}'::jsonb) || $2 WHERE id = $1", [r.id, JSON.stringify({ rollbackDeclined: declined })]);
  return { set: "abort_requested = true", details: { reason: declined.reason, rollbackDeclined: true } };
}

function notNow(r: RolloutRow, what: string): FerryError {
  return new FerryError("ROLLOUT_STATE_CONFLICT", `rollout ${r.id} is ${r.state}${r.paused ? " (paused)" : ""}; it cannot ${what} now`, { rollout: r.id, state: r.state });
}
