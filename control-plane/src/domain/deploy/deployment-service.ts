// Deployments: a release put on targets of one environment, as one signed task per target.
//
// Rules (docs/deployments.md):
//   - every target must be served by an agent of its environment that reports a driver for the target's kind;
//   - a target with an unfinished task (queued, leased, running) refuses a new deployment (DEPLOYMENT_IN_PROGRESS):
//     two deployments never race on one target. Target rows are locked for the check, so concurrent requests
//     through different replicas serialise on them;
//   - the task is signed once, when queued, with a not-after of queued time + task TTL; a task not delivered by then
//     expires (the agent would refuse it anyway);
//   - rollback puts back on each target the images of its newest successful deployment whose images differ from
//     the current ones (so repeated rollbacks toggle, and a redeployment of the same images is skipped).
import { randomBytes } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import { ALL_AT_ONCE_PHASES, ImageSelectionError, isAllAtOnce, negotiatePayloadVersion, type Capability, type Phase, type RouteOperation, type TaskPayloadVersion } from "@ferry/contract";
import type { TaskImage, TaskPayload, TaskSigner } from "../../ports/signer.js";
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit } from "../audit/audit-log.js";
import type { Principal } from "../auth/roles.js";
import type { CatalogService, ReleaseView, TargetView } from "../catalog/catalog-service.js";
import { FerryError } from "../errors.js";
import { targetKind } from "../catalog/target-kinds.js";
import { newestTaskEvents, taskEventsPage, type TaskEventView } from "./task-events.js";
import { recordTaskLock, taskLock, type TaskLockView } from "./compose-locks.js";
import { checkLimit, cursorTime, cursorTimeSql, decodeCursor, encodeCursor, type Page } from "../catalog/pagination.js";
import { auditRefusal, clearDirect, enforceWithin, type DeployAuthority, type DirectAction, type OverrideEvidenceRecorder, type OverrideRecord } from "./governance.js";

export const TASK_NOTIFY_CHANNEL = "ferry_tasks";

/** Refusals raised by the in-transaction governance re-check, told apart from other errors of the same code. */
const governanceRefusals = new WeakSet<FerryError>();

export type DeploymentState = "queued" | "running" | "succeeded" | "failed" | "cancelled";
/** deploy and rollback run phases; route runs one router operation per target (weights, measure, maintenance). */
export type DeploymentAction = "deploy" | "rollback" | "route";

/** The split of an A/B weights step: requests go by a hash of a cookie or header (docs/rollouts.md#strategies). */
export interface WeightsSplit {
  by: "cookie" | "header";
  name: string;
  allowlist: string[];
}
/** A router operation as the engine asks for it; an A/B weights step adds its split. */
export type RouteOp = RouteOperation | { op: "weights"; newWeight: number; split: WeightsSplit };

/** A maintenance message: what the router answers every request with (the contract's rule for route.message). */
const MAINTENANCE_MESSAGE = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,256}$/;
export const DEFAULT_MAINTENANCE_MESSAGE = "This service is down for maintenance";
export type TaskState = "queued" | "leased" | "running" | "succeeded" | "failed" | "errored" | "expired" | "cancelled";
export const ACTIVE_TASK_STATES: readonly TaskState[] = ["queued", "leased", "running"];
export const FINAL_TASK_STATES: readonly TaskState[] = ["succeeded", "failed", "errored", "expired", "cancelled"];

export type { TaskEventView } from "./task-events.js";

export interface TaskView {
  id: string;
  target: { id: string; name: string; kind: string };
  agentId: string;
  /** null for a maintenance route task. */
  releaseId: string | null;
  action: string;
  state: TaskState;
  images: TaskImage[];
  attempt: number;
  keyId: string;
  notAfter: string;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  logBytes: number;
  /** SHA-256 of the lock file the task writes on its target (compose targets; compose-locks.ts), else null. */
  lockSha256: string | null;
  /** The newest EVENTS_IN_VIEW progress events (task-events.ts), oldest first; present in the single-deployment view. */
  events?: TaskEventView[];
  /** How many events the task has in all; page through them with taskEvents(). */
  eventsTotal?: number;
}

export interface DeploymentView {
  id: string;
  environment: string;
  releaseId: string | null;
  release: { id: string; name: string; version: string } | null;
  action: DeploymentAction;
  state: DeploymentState;
  retryOf: string | null;
  requestedBy: string;
  /** The gate override that let this direct deployment into a gated environment (docs/gates.md), or null. */
  override: OverrideRecord | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  tasks: TaskView[];
  /** The rollout this deployment is a wave of (docs/rollouts.md#the-engine), or null; only on a single deployment's view. */
  rolloutId?: string | null;
}

interface DeploymentRow {
  id: string;
  environment: string;
  release_id: string | null;
  action: DeploymentAction;
  state: DeploymentState;
  retry_of: string | null;
  requested_by: string;
  override?: OverrideRecord | null;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  release_name?: string | null;
  release_version?: string | null;
}

export interface TaskRow {
  id: string;
  deployment_id: string;
  agent_id: string;
  target_id: string;
  target_name?: string;
  target_kind?: string;
  /** NULL for a maintenance route task, which names no release. */
  release_id: string | null;
  action: string;
  state: TaskState;
  payload: Uint8Array;
  payload_type: string;
  key_id: string;
  signature: Uint8Array;
  images: TaskImage[];
  not_after: Date;
  attempt: number;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  log_bytes: string | number;
  lock_sha256?: string | null;
}

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null);

export function taskView(r: TaskRow, events?: TaskEventView[]): TaskView {
  return {
    id: r.id,
    target: { id: r.target_id, name: r.target_name ?? "", kind: r.target_kind ?? "" },
    agentId: r.agent_id,
    releaseId: r.release_id,
    action: r.action,
    state: r.state,
    images: r.images,
    attempt: r.attempt,
    keyId: r.key_id,
    notAfter: iso(r.not_after)!,
    queuedAt: iso(r.queued_at)!,
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    code: r.code,
    message: r.message,
    details: r.details,
    logBytes: Number(r.log_bytes),
    lockSha256: r.lock_sha256 ?? null,
    ...(events ? { events } : {}),
  };
}

function deploymentView(r: DeploymentRow, tasks: TaskView[]): DeploymentView {
  return {
    id: r.id,
    environment: r.environment,
    releaseId: r.release_id,
    release: r.release_id && r.release_name ? { id: r.release_id, name: r.release_name, version: r.release_version ?? "" } : null,
    action: r.action,
    state: r.state,
    retryOf: r.retry_of,
    requestedBy: r.requested_by,
    override: r.override ?? null,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    finishedAt: iso(r.finished_at),
    tasks,
  };
}

const TASK_COLUMNS = `t.id, t.deployment_id, t.agent_id, t.target_id, tg.name AS target_name, tg.kind AS target_kind, t.release_id,
  t.action, t.state, t.payload, t.payload_type, t.key_id, t.signature, t.images, t.not_after, t.attempt, t.queued_at,
  t.started_at, t.finished_at, t.code, t.message, t.details, t.log_bytes,
  (SELECT l.sha256 FROM task_locks l WHERE l.task_id = t.id) AS lock_sha256`;

/** The images a target runs from a release, as its kind's descriptor chooses them (the agent's driver chooses alike). */
export function imagesForTarget(target: Pick<TargetView, "name" | "kind" | "config">, release: Pick<ReleaseView, "pins" | "name" | "version">): TaskImage[] {
  const descriptor = targetKind(target.kind);
  try {
    return descriptor.imagesFor(descriptor.typed(target.config), release.pins);
  } catch (err) {
    if (err instanceof ImageSelectionError) {
      throw new FerryError(err.code, `target ${target.name}, release ${release.name}@${release.version}: ${err.message}`, { target: target.name, field: err.field });
    }
    throw err;
  }
}

/** A target chosen for a deployment, with the task payload version its agent reads. */
interface SelectedTarget {
  target: TargetView;
  payloadVersion: TaskPayloadVersion;
}

interface AgentDriverRow {
  id: string;
  environment: string;
  revoked_at: Date | null;
  drivers: unknown;
  driver_facts: unknown;
  payload_versions: unknown;
}

/**
 * Why an agent cannot serve a target of `kind` needing `needs`, or undefined when it can. An agent that advertises
 * the kind but no driver facts (one from before they were reported) is taken to offer no capabilities.
 */
export function driverProblem(agent: Pick<AgentDriverRow, "id" | "drivers" | "driver_facts">, kind: string, needs: readonly Capability[]): string | undefined {
  const drivers = Array.isArray(agent.drivers) ? (agent.drivers as unknown[]).filter((d): d is string => typeof d === "string") : [];
  if (!drivers.includes(kind)) return `agent ${agent.id} has no ${kind} driver (it has: ${drivers.join(", ") || "none"})`;
  if (needs.length === 0) return undefined;
  const facts = Array.isArray(agent.driver_facts) ? (agent.driver_facts as { kind?: unknown; capabilities?: unknown }[]) : [];
  const mine = facts.find((f) => f.kind === kind);
  const offered = Array.isArray(mine?.capabilities) ? (mine.capabilities as unknown[]) : [];
  const missing = needs.filter((c) => !offered.includes(c));
  return missing.length > 0 ? `agent ${agent.id}'s ${kind} driver does not offer ${missing.join(", ")}` : undefined;
}

export interface DeploymentDeps {
  store: Store;
  catalog: CatalogService;
  signer: TaskSigner;
  clock: Clock;
  /** How long a signed task stays valid after it is queued. */
  taskTtlMs: number;
  /** Signs the evidence packet of a gate override (governance.ts); required for overrides to be possible. */
  evidence?: OverrideEvidenceRecorder;
}

interface PlannedTask {
  target: TargetView;
  agentId: string;
  /** null only for a route task that names no release (maintenance). */
  release: ReleaseView | null;
  images: TaskImage[];
  /** The payload version the task is signed as: the highest one its agent reads. */
  payloadVersion: TaskPayloadVersion;
  /** v2: the phases to run (all-at-once when absent). */
  phases?: readonly Phase[];
  /** v2: the driver state an earlier step of the same rollout left (its task result's details.state). */
  state?: Record<string, unknown>;
  /** v2, action route: the router operation. */
  route?: RouteOp;
}

/**
 * Refuses targets whose agent reads only task payload v1: separate phases, carried state and router operations need
 * v2. Every such target is named in one TARGET_DRIVER_UNAVAILABLE refusal.
 */
export function requireV2(selected: readonly SelectedTarget[], what: string): void {
  const old = selected.filter((s) => s.payloadVersion < 2);
  if (old.length === 0) return;
  throw new FerryError(
    "TARGET_DRIVER_UNAVAILABLE",
    old.map((o) => `target ${o.target.name} (${o.target.kind}): agent ${o.target.agentId ?? "?"} reads task payload v1 only, and ${what} needs v2`).join("; "),
    { targets: old.map((o) => ({ target: o.target.name, kind: o.target.kind, agent: o.target.agentId, problem: `reads task payload v1 only; ${what} needs v2` })) },
  );
}

/**
 * Whether a target's config puts it behind the host router (docs/rollouts.md#the-router): a docker target's
 * config.route, or a compose target's config.routes naming at least one service (docs/drivers/compose.md).
 */
export const isRouted = (t: Pick<TargetView, "config">): boolean =>
  (typeof t.config["route"] === "object" && t.config["route"] !== null) || (Array.isArray(t.config["routes"]) && t.config["routes"].length > 0);

/** Refuses every target of `targets` that is not routed, naming all of them. */
export function requireRouted(targets: readonly Pick<TargetView, "name" | "config">[], what: string): void {
  const plain = targets.filter((t) => !isRouted(t)).map((t) => t.name);
  if (plain.length === 0) return;
  throw new FerryError("TARGET_NOT_ROUTED", `${what} needs routed targets (a config.route, or a compose target's config.routes, behind the host router); not routed: ${plain.join(", ")}`, { targets: plain });
}

export class DeploymentService {
  constructor(private readonly d: DeploymentDeps) {}

  /** Deploys a release (id or name@version) to an environment's targets (all of them unless named). */
  async deploy(
    input: { release: string; environment: string; targets?: string[]; retryOf?: string; override?: { reason: string } },
    actor: string,
    opts: { within?: (tx: Queryable, deploymentId: string) => Promise<void>; phases?: readonly Phase[] } & Omit<DeployAuthority, "override"> = {},
  ): Promise<DeploymentView> {
    const who: DeployAuthority = { promotion: opts.promotion, principal: opts.principal, override: input.override };
    await this.governEarly(input.environment, "deploy", who, actor);
    const release = await this.d.catalog.getRelease(input.release);
    const targets = await this.selectTargets(input.environment, input.targets);
    const phases = opts.phases && !isAllAtOnce(opts.phases) ? opts.phases : undefined;
    if (phases) requireV2(targets, `running the phases ${phases.join(", ")} as a separate step`);
    const plan = targets.map(({ target: t, payloadVersion }) => ({ target: t, agentId: t.agentId ?? "", release, images: imagesForTarget(t, release), payloadVersion, ...(phases ? { phases } : {}) }));
    return this.governed("deploy", who, actor, () =>
      this.enqueue({ environment: input.environment, action: "deploy", releaseId: release.id, retryOf: input.retryOf ?? null }, plan, actor, opts.within, { action: "deploy", who }),
    );
  }

  /**
   * Refuses, exactly as deploy() would, a release that cannot go to the environment's targets — a target whose agent
   * lacks the driver, a component the release does not pin — without queuing anything. Promotions call it when they are
   * requested, so nobody approves a promotion that could never deploy; `needs` are the capabilities its strategy needs.
   */
  async checkDeployable(release: ReleaseView, environment: string, needs: readonly Capability[] = []): Promise<void> {
    const targets = await this.selectTargets(environment, undefined, needs);
    for (const { target } of targets) imagesForTarget(target, release);
  }

  /** Puts back, on each target, the images it ran before its current ones (newest earlier success with other images). */
  async rollback(input: { environment: string; targets?: string[]; override?: { reason: string } }, actor: string, by: { principal?: Principal | null } = {}): Promise<DeploymentView> {
    const who: DeployAuthority = { principal: by.principal, override: input.override };
    await this.governEarly(input.environment, "rollback", who, actor);
    const targets = await this.selectTargets(input.environment, input.targets);
    const plan: PlannedTask[] = [];
    const nothing: string[] = [];
    for (const { target: t, payloadVersion } of targets) {
      // The newest success whose images differ from the current ones: a redeployment of the same images (to repair
      // drift, say) is not what an operator rolls back to.
      const r = await this.d.store.query<{ release_id: string; images: TaskImage[] }>(
        `SELECT release_id, images FROM target_deployments
          WHERE target_id = $1 AND images <> (SELECT images FROM target_deployments WHERE target_id = $1 ORDER BY seq DESC LIMIT 1)
          ORDER BY seq DESC LIMIT 1`,
        [t.id],
      );
      const previous = r.rows[0];
      if (!previous) {
        nothing.push(t.name);
        continue;
      }
      plan.push({ target: t, agentId: t.agentId ?? "", release: await this.d.catalog.getRelease(previous.release_id), images: previous.images, payloadVersion });
    }
    if (plan.length === 0 || (input.targets?.length && nothing.length > 0)) {
      throw new FerryError(
        "NOTHING_TO_ROLL_BACK",
        `no earlier successful deployment of other images to put back on ${nothing.join(", ")} in ${input.environment}`,
        { targets: nothing },
      );
    }
    const releases = new Set(plan.map((p) => p.release!.id));
    return this.governed("rollback", who, actor, () =>
      this.enqueue({ environment: input.environment, action: "rollback", releaseId: releases.size === 1 ? [...releases][0]! : null, retryOf: null }, plan, actor, undefined, { action: "rollback", who }),
    );
  }

  /** A new deployment of the same release to the targets whose tasks did not succeed. */
  async retry(deploymentId: string, actor: string, by: { principal?: Principal | null; override?: { reason: string } | null } = {}): Promise<DeploymentView> {
    const dep = await this.get(deploymentId);
    const who: DeployAuthority = { principal: by.principal, override: by.override };
    await this.governEarly(dep.environment, "retry", who, actor);
    if (dep.state === "queued" || dep.state === "running") {
      throw new FerryError("DEPLOYMENT_IN_PROGRESS", `deployment ${dep.id} is still ${dep.state}; wait for it to finish`, { deployment: dep.id });
    }
    if (dep.action === "route") throw new FerryError("NOTHING_TO_RETRY", `deployment ${dep.id} is a router operation; ask for it again rather than retry it`, { deployment: dep.id });
    const failed = dep.tasks.filter((t) => t.state !== "succeeded");
    if (failed.length === 0) throw new FerryError("NOTHING_TO_RETRY", `every task of deployment ${dep.id} succeeded`);
    const environment = dep.environment;
    const targets = await this.selectTargets(environment, failed.map((t) => t.target.name));
    const plan: PlannedTask[] = [];
    for (const { target: t, payloadVersion } of targets) {
      const task = failed.find((f) => f.target.id === t.id)!;
      plan.push({ target: t, agentId: t.agentId ?? "", release: await this.d.catalog.getRelease(task.releaseId ?? ""), images: task.images, payloadVersion });
    }
    return this.governed("retry", who, actor, () =>
      this.enqueue({ environment, action: dep.action, releaseId: dep.releaseId, retryOf: dep.id }, plan, actor, undefined, { action: "retry", who }),
    );
  }

  /** Cancels the tasks of a deployment that no agent has picked up yet. */
  async cancel(deploymentId: string, actor: string): Promise<DeploymentView> {
    await this.d.store.transaction(async (tx) => {
      const dep = await tx.query<{ id: string }>("SELECT id FROM deployments WHERE id = $1 FOR UPDATE", [deploymentId]);
      if (!dep.rows[0]) throw new FerryError("DEPLOYMENT_NOT_FOUND", `no deployment ${deploymentId}`);
      const r = await tx.query(
        `UPDATE tasks SET state = 'cancelled', finished_at = now(), updated_at = now(), code = 'CANCELLED', message = $2
          WHERE deployment_id = $1 AND state = 'queued'`,
        [deploymentId, `cancelled by ${actor}`],
      );
      if (r.rowCount === 0) throw new FerryError("DEPLOYMENT_NOT_CANCELLABLE", `deployment ${deploymentId} has no queued task left to cancel (tasks already delivered run to completion)`);
      await refreshDeploymentState(tx, deploymentId);
      await appendAudit(tx, { actor, action: "deployment.cancel", object: deploymentId, outcome: "ok", details: { tasks: r.rowCount } });
    });
    return this.get(deploymentId);
  }

  // ── governance entry checks (governance.ts) ─────────────────────────────────────────────────────────────────

  /** Refuses, before anything else is looked at, a direct deployment that the environment's gates do not allow. */
  private async governEarly(environment: string, action: DirectAction, who: DeployAuthority, actor: string): Promise<void> {
    const env = await this.d.catalog.getEnvironment(environment);
    try {
      clearDirect(env.name, env.settings, action, who, new Date(this.d.clock.now()));
    } catch (err) {
      if (err instanceof FerryError) await auditRefusal(this.d.store, actor, action, env.name, err, who.override);
      throw err;
    }
  }

  /** Runs an enqueue, auditing a refusal raised by the in-transaction re-check (the transaction itself rolled back). */
  private async governed(action: DirectAction, who: DeployAuthority, actor: string, run: () => Promise<DeploymentView>): Promise<DeploymentView> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof FerryError && governanceRefusals.has(err)) {
        await auditRefusal(this.d.store, actor, action, typeof err.details["environment"] === "string" ? err.details["environment"] : "", err, who.override);
      }
      throw err;
    }
  }


  /**
   * The targets of a deployment (all of the environment's, or the named ones), each checked: served by an agent of the
   * environment that is not revoked, advertises a driver for the target's kind with every capability the deployment
   * needs, and reads a task payload version Ferry writes. Every target that fails the driver check is named in one
   * refusal, so an operator sees the whole list and can deploy the others with --target.
   */
  async selectTargets(environment: string, names: string[] | undefined, needs: readonly Capability[] = []): Promise<SelectedTarget[]> {
    const all = await this.d.catalog.listTargets({ environment });
    let chosen: TargetView[];
    if (names && names.length > 0) {
      const unique = [...new Set(names)];
      chosen = unique.map((n) => {
        const t = all.find((x) => x.name === n);
        if (!t) throw new FerryError("TARGET_NOT_FOUND", `environment ${environment} has no target ${n}`, { target: n });
        return t;
      });
    } else {
      chosen = all;
    }
    if (chosen.length === 0) throw new FerryError("NO_TARGETS", `environment ${environment} has no targets to deploy to`);
    const agents = await this.d.store.query<AgentDriverRow>(
      `SELECT id, environment, revoked_at, facts->'drivers' AS drivers, facts->'driverFacts' AS driver_facts,
              facts->'taskPayloadVersions' AS payload_versions
         FROM agents WHERE id = ANY($1)`,
      [chosen.map((t) => t.agentId).filter((a): a is string => !!a)],
    );
    const selected: SelectedTarget[] = [];
    const unserved: { target: string; kind: string; agent: string; problem: string }[] = [];
    for (const t of chosen) {
      if (!t.agentId) throw new FerryError("TARGET_HAS_NO_AGENT", `target ${t.name} has no agent serving it; bind one with ferry target update`, { target: t.name });
      const a = agents.rows.find((r) => r.id === t.agentId);
      if (!a || a.revoked_at || a.environment !== environment) {
        throw new FerryError("TARGET_AGENT_MISMATCH", `target ${t.name}'s agent ${t.agentId} is revoked or not in ${environment}`, { target: t.name });
      }
      const versions = Array.isArray(a.payload_versions) ? (a.payload_versions as unknown[]).filter((v): v is number => typeof v === "number") : [];
      const payloadVersion = negotiatePayloadVersion(versions);
      const problem = driverProblem(a, t.kind, needs) ?? (payloadVersion === undefined ? `agent ${a.id} reads task payload versions ${versions.join(", ")}, none of which this control plane writes` : undefined);
      if (problem) unserved.push({ target: t.name, kind: t.kind, agent: a.id, problem });
      else selected.push({ target: t, payloadVersion: payloadVersion! });
    }
    if (unserved.length > 0) {
      const others = chosen.length - unserved.length;
      throw new FerryError(
        "TARGET_DRIVER_UNAVAILABLE",
        `${unserved.map((u) => `target ${u.target} (${u.kind}): ${u.problem}`).join("; ")}` +
          (others > 0 ? `; the other ${others} target(s) can be deployed with --target` : ""),
        { targets: unserved },
      );
    }
    return selected;
  }

  /**
   * Queues one wave of a rollout (the rollout engine calls it). The rollout went through the environment's governance
   * when it was created (its first wave is a deploy() like any other), so later waves are not checked again; every
   * target is still checked for its agent and driver. `targets` gives, for a rollback wave, the exact release and images
   * each target goes back to; a deploy wave puts `releaseId` on each.
   */
  async enqueueWave(
    w: {
      rolloutId: string;
      environment: string;
      action: "deploy" | "rollback";
      releaseId: string | null;
      /** The phases of the wave (all-at-once when absent); any other run needs payload v2 on every target. */
      phases?: readonly Phase[];
      targets: { name: string; releaseId?: string; images?: TaskImage[]; state?: Record<string, unknown> }[];
    },
    actor: string,
    within: (tx: Queryable, deploymentId: string) => Promise<void>,
  ): Promise<DeploymentView> {
    const selected = await this.selectTargets(w.environment, w.targets.map((t) => t.name));
    const phases = w.phases && !isAllAtOnce(w.phases) ? w.phases : undefined;
    if (phases) requireV2(selected, `running the phases ${phases.join(", ")} as a separate step`);
    const releases = new Map<string, ReleaseView>();
    const releaseOf = async (id: string): Promise<ReleaseView> => {
      const have = releases.get(id);
      if (have) return have;
      const r = await this.d.catalog.getRelease(id);
      releases.set(id, r);
      return r;
    };
    const plan: PlannedTask[] = [];
    for (const { target: t, payloadVersion } of selected) {
      const want = w.targets.find((x) => x.name === t.name)!;
      const release = await releaseOf(want.releaseId ?? w.releaseId ?? "");
      plan.push({ target: t, agentId: t.agentId ?? "", release, images: want.images ?? imagesForTarget(t, release), payloadVersion, ...(phases ? { phases } : {}), ...(want.state ? { state: want.state } : {}) });
    }
    const ids = new Set(plan.map((p) => p.release!.id));
    const releaseId = w.action === "deploy" ? w.releaseId : ids.size === 1 ? [...ids][0]! : null;
    return this.enqueue({ environment: w.environment, action: w.action, releaseId, retryOf: null, rolloutId: w.rolloutId }, plan, actor, within);
  }

  /**
   * Queues one router operation per target as signed `route` tasks (payload v2), in one deployment of action route:
   * a rollout's weights or measure step, or maintenance. Every target must be routed, served by an agent whose
   * driver offers the router, and read payload v2. `state` is the driver state of the rollout's start step, so the
   * agent knows which slot is the new one.
   */
  async enqueueRoute(
    w: { rolloutId?: string; environment: string; releaseId: string | null; targets: { name: string; state?: Record<string, unknown>; route: RouteOp }[] },
    actor: string,
    within?: (tx: Queryable, deploymentId: string) => Promise<void>,
  ): Promise<DeploymentView> {
    const names = w.targets.map((t) => t.name);
    requireRouted((await this.d.catalog.listTargets({ environment: w.environment })).filter((t) => names.includes(t.name)), "a router operation");
    const selected = await this.selectTargets(w.environment, names, ["router"]);
    requireV2(selected, "a router operation");
    const release = w.releaseId ? await this.d.catalog.getRelease(w.releaseId) : null;
    const plan: PlannedTask[] = selected.map(({ target: t, payloadVersion }) => {
      const want = w.targets.find((x) => x.name === t.name)!;
      return { target: t, agentId: t.agentId ?? "", release, images: [], payloadVersion, route: want.route, ...(want.state ? { state: want.state } : {}) };
    });
    return this.enqueue({ environment: w.environment, action: "route", releaseId: w.releaseId, retryOf: null, ...(w.rolloutId ? { rolloutId: w.rolloutId } : {}) }, plan, actor, within);
  }

  /**
   * Maintenance on (every request answered 503 with `message`) or off, on an environment's routed targets (all of
   * them unless named): one signed maintenance route task per target. Refused, naming them, when a target is not
   * routed (TARGET_NOT_ROUTED) or its agent has no router (TARGET_DRIVER_UNAVAILABLE); refused while a target has an
   * unfinished task or belongs to an active rollout (DEPLOYMENT_IN_PROGRESS). Audited as maintenance.on / .off.
   */
  async maintenance(input: { environment: string; on: boolean; message?: string; targets?: string[] }, actor: string): Promise<DeploymentView> {
    await this.d.catalog.getEnvironment(input.environment);
    const message = input.on ? (input.message ?? DEFAULT_MAINTENANCE_MESSAGE) : null;
    if (input.message !== undefined && !input.on) throw new FerryError("VALIDATION_FAILED", "message: only maintenance on takes a message", { field: "message", in: "body" });
    if (message !== null && !MAINTENANCE_MESSAGE.test(message)) {
      throw new FerryError("VALIDATION_FAILED", 'message: must be 1 to 256 printable ASCII characters, without " and \\', { field: "message", in: "body" });
    }
    const all = await this.d.catalog.listTargets({ environment: input.environment });
    let chosen = all;
    if (input.targets && input.targets.length > 0) {
      chosen = [...new Set(input.targets)].map((n) => {
        const t = all.find((x) => x.name === n);
        if (!t) throw new FerryError("TARGET_NOT_FOUND", `environment ${input.environment} has no target ${n}`, { target: n });
        return t;
      });
    }
    if (chosen.length === 0) throw new FerryError("NO_TARGETS", `environment ${input.environment} has no targets`);
    requireRouted(chosen, "maintenance");
    const route: RouteOp = { op: "maintenance", message };
    return this.enqueueRoute(
      { environment: input.environment, releaseId: null, targets: chosen.map((t) => ({ name: t.name, route })) },
      actor,
      async (tx, deploymentId) => {
        await appendAudit(tx, { actor, action: input.on ? "maintenance.on" : "maintenance.off", object: input.environment, outcome: "ok", details: { deployment: deploymentId, targets: chosen.map((t) => t.name), message } });
      },
    );
  }

  private async enqueue(
    dep: { environment: string; action: DeploymentAction; releaseId: string | null; retryOf: string | null; rolloutId?: string },
    plan: PlannedTask[],
    actor: string,
    within?: (tx: Queryable, deploymentId: string) => Promise<void>,
    governance?: { action: DirectAction; who: DeployAuthority },
  ): Promise<DeploymentView> {
    const id = `dep_${randomBytes(8).toString("hex")}`;
    const now = this.d.clock.now();
    const notAfter = now + this.d.taskTtlMs;
    await this.d.store.transaction(async (tx) => {
      // Lock the targets, then look for unfinished work on them: concurrent requests serialise here.
      const ids = plan.map((p) => p.target.id).sort();
      await tx.query("SELECT id FROM targets WHERE id = ANY($1) ORDER BY id FOR UPDATE", [ids]);
      const busy = await tx.query<{ name: string; deployment_id: string; state: string }>(
        `SELECT tg.name, t.deployment_id, t.state FROM tasks t JOIN targets tg ON tg.id = t.target_id
          WHERE t.target_id = ANY($1) AND t.state IN ('queued', 'leased', 'running') AND t.deployment_id IS NOT NULL ORDER BY tg.name`,
        [ids],
      );
      if (busy.rows.length > 0) {
        const list = busy.rows.map((b) => `${b.name} (${b.deployment_id}, ${b.state})`).join(", ");
        throw new FerryError("DEPLOYMENT_IN_PROGRESS", `targets still have unfinished deployments: ${list}`, { targets: busy.rows.map((b) => b.name) });
      }
      // A target of an active rollout belongs to it between its waves too (docs/rollouts.md#the-engine).
      const owned = await tx.query<{ id: string; name: string }>(
        `SELECT r.id, t.value->>'name' AS name FROM rollouts r, jsonb_array_elements(r.targets) t
          WHERE r.state IN ('running', 'halted', 'rolling_back') AND r.id IS DISTINCT FROM $2 AND t.value->>'id' = ANY($1)
          ORDER BY r.id, name`,
        [ids, dep.rolloutId ?? null],
      );
      if (owned.rows.length > 0) {
        const list = owned.rows.map((o) => `${o.name} (rollout ${o.id})`).join(", ");
        throw new FerryError("DEPLOYMENT_IN_PROGRESS", `targets belong to an active rollout: ${list}; wait for it, or abort it`, { targets: owned.rows.map((o) => o.name) });
      }
      await tx.query(
        `INSERT INTO deployments (id, environment, release_id, action, state, retry_of, requested_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $7)`,
        [id, dep.environment, dep.releaseId, dep.action, dep.retryOf, actor, new Date(now)],
      );
      for (const p of plan) {
        const taskId = `tsk_${randomBytes(10).toString("hex")}`;
        const payload: TaskPayload = {
          v: p.payloadVersion,
          taskId,
          deploymentId: id,
          agentId: p.agentId,
          issuedAt: now,
          notAfter,
          nonce: randomBytes(16).toString("base64url"),
          action: dep.action,
          target: { id: p.target.id, name: p.target.name, kind: p.target.kind, config: p.target.config },
          release: p.release ? { id: p.release.id, name: p.release.name, version: p.release.version } : null,
          images: p.images,
          // A v2 task names its phases (a route task none); a v1 task means the same all-at-once run.
          ...(p.payloadVersion >= 2 && !p.route ? { phases: [...(p.phases ?? ALL_AT_ONCE_PHASES)] } : {}),
          ...(p.payloadVersion >= 2 && p.state ? { state: p.state } : {}),
          // An A/B weights op carries its split (docs/rollouts.md#strategies).
          ...(p.route ? { route: p.route } : {}),
        };
        const switches = !p.route && (p.payloadVersion < 2 || (p.phases ?? ALL_AT_ONCE_PHASES).includes("switch"));
        const env = signTask(this.d.signer, payload);
        await tx.query(
          `INSERT INTO tasks (id, deployment_id, agent_id, target_id, release_id, action, state, payload, payload_type, key_id,
                              signature, images, not_after, queued_at, updated_at, switches)
           VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11, $12, $13, $13, $14)`,
          [taskId, id, p.agentId, p.target.id, p.release?.id ?? null, dep.action, env.payload, env.payloadType, env.keyId, env.signature, JSON.stringify(p.images), new Date(notAfter), new Date(now), switches],
        );
        // A route task (weights, measure, maintenance on a routed compose project) carries no images and writes no lock.
        if (!p.route) await recordTaskLock(tx, taskId, p.target, p.images);
      }
      await appendAudit(tx, {
        actor,
        action: dep.action === "rollback" ? "deployment.rollback" : dep.action === "route" ? "deployment.route" : "deployment.create",
        object: id,
        outcome: "ok",
        details: { environment: dep.environment, releaseId: dep.releaseId, retryOf: dep.retryOf, ...(dep.rolloutId ? { rollout: dep.rolloutId } : {}), targets: plan.map((p) => ({ target: p.target.name, images: p.images.map((i) => i.ref), ...(p.phases ? { phases: p.phases } : {}), ...(p.route ? { route: p.route } : {}) })) },
      });
      if (governance) {
        const targets = plan.map((p) => ({ target: p.target.name, agent: p.agentId, images: p.images.map((i) => i.ref) }));
        try {
          await enforceWithin(tx, { evidence: this.d.evidence, now: new Date(now) }, { id, ...dep, action: dep.action as "deploy" | "rollback", targets }, governance.action, governance.who);
        } catch (err) {
          if (err instanceof FerryError) governanceRefusals.add(err);
          throw err;
        }
      }
      if (within) await within(tx, id);
      for (const agentId of new Set(plan.map((p) => p.agentId))) await tx.query("SELECT pg_notify($1, $2)", [TASK_NOTIFY_CHANNEL, agentId]);
    });
    return this.get(id);
  }

  async get(id: string, opts: { events?: boolean } = {}): Promise<DeploymentView> {
    const r = await this.d.store.query<DeploymentRow & { cursor_at: string }>(
      `SELECT d.*, r.name AS release_name, r.version AS release_version, ${cursorTimeSql("d.created_at")} AS cursor_at FROM deployments d LEFT JOIN releases r ON r.id = d.release_id WHERE d.id = $1`,
      [id],
    );
    const row = r.rows[0];
    if (!row) throw new FerryError("DEPLOYMENT_NOT_FOUND", `no deployment ${id}`);
    const tasks = await this.d.store.query<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks t JOIN targets tg ON tg.id = t.target_id WHERE t.deployment_id = $1 ORDER BY tg.name`,
      [id],
    );
    const events = opts.events ? await newestTaskEvents(this.d.store, tasks.rows.map((t) => t.id)) : null;
    const view = deploymentView(
      row,
      tasks.rows.map((t) => {
        const e = events?.get(t.id);
        return e ? { ...taskView(t, e.events), eventsTotal: e.total } : taskView(t);
      }),
    );
    return { ...view, rolloutId: await rolloutOfDeployment(this.d.store, row) };
  }

  /** A page of one task's progress events (task-events.ts). */
  async taskEvents(deploymentId: string, taskId: string, after?: number, limit?: number): Promise<{ events: TaskEventView[]; nextAfter: number | null }> {
    return taskEventsPage(this.d.store, deploymentId, taskId, after, limit);
  }

  /** The lock file a task writes on its target, as stored when it was queued (compose-locks.ts). */
  async taskLock(deploymentId: string, taskId: string): Promise<TaskLockView> {
    return taskLock(this.d.store, deploymentId, taskId);
  }

  async list(q: { environment?: string; state?: string; limit?: number; cursor?: string }): Promise<Page<DeploymentView>> {
    const limit = checkLimit(q.limit, 200);
    const params: unknown[] = [];
    const where: string[] = [];
    if (q.environment) where.push(`d.environment = $${params.push(q.environment)}`);
    if (q.state) where.push(`d.state = $${params.push(q.state)}`);
    if (q.cursor) {
      const c = decodeCursor(q.cursor, ["t", "id"]);
      where.push(`(d.created_at, d.id) < ($${params.push(cursorTime(c["t"] as string))}::timestamptz, $${params.push(c["id"])})`);
    }
    const r = await this.d.store.query<DeploymentRow & { cursor_at: string }>(
      `SELECT d.*, r.name AS release_name, r.version AS release_version, ${cursorTimeSql("d.created_at")} AS cursor_at FROM deployments d LEFT JOIN releases r ON r.id = d.release_id
        ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY d.created_at DESC, d.id DESC LIMIT ${limit + 1}`,
      params,
    );
    const rows = r.rows.slice(0, limit);
    const tasks = await this.d.store.query<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks t JOIN targets tg ON tg.id = t.target_id WHERE t.deployment_id = ANY($1) ORDER BY tg.name`,
      [rows.map((x) => x.id)],
    );
    const items = rows.map((row) => deploymentView(row, tasks.rows.filter((t) => t.deployment_id === row.id).map((t) => taskView(t))));
    const last = rows[rows.length - 1];
    return { items, nextCursor: r.rows.length > limit && last ? encodeCursor({ t: last.cursor_at, id: last.id }) : null };
  }

  /** What is deployed where: per target, Ferry's record, the agent's sticker, and drift between them. */
  async status(environment?: string): Promise<TargetStatusView[]> {
    if (environment) await this.d.catalog.getEnvironment(environment);
    const r = await this.d.store.query<{
      environment: string; name: string; id: string; kind: string; agent_id: string | null; position: number;
      td_deployment: string | null; td_task: string | null; td_release: string | null; td_images: TaskImage[] | null; td_finished: Date | null;
      rel_name: string | null; rel_version: string | null;
      sticker: Record<string, unknown> | null; reported_at: Date | null;
      active_id: string | null; active_dep: string | null; active_state: TaskState | null;
    }>(
      `SELECT tg.environment, tg.name, tg.id, tg.kind, tg.agent_id, e.position,
              td.deployment_id AS td_deployment, td.task_id AS td_task, td.release_id AS td_release, td.images AS td_images, td.finished_at AS td_finished,
              r.name AS rel_name, r.version AS rel_version,
              ts.sticker, ts.reported_at,
              at.id AS active_id, at.deployment_id AS active_dep, at.state AS active_state
         FROM targets tg
         JOIN environments e ON e.name = tg.environment
         LEFT JOIN LATERAL (SELECT * FROM target_deployments x WHERE x.target_id = tg.id ORDER BY x.seq DESC LIMIT 1) td ON true
         LEFT JOIN releases r ON r.id = td.release_id
         LEFT JOIN target_stickers ts ON ts.target_id = tg.id
         LEFT JOIN LATERAL (SELECT id, deployment_id, state FROM tasks y WHERE y.target_id = tg.id AND y.state IN ('queued', 'leased', 'running') AND y.deployment_id IS NOT NULL
                             ORDER BY y.queued_at DESC LIMIT 1) at ON true
        ${environment ? "WHERE tg.environment = $1" : ""}
        ORDER BY e.position, tg.name`,
      environment ? [environment] : [],
    );
    return r.rows.map((x) => {
      const deployed = x.td_deployment
        ? { deploymentId: x.td_deployment, taskId: x.td_task ?? "", releaseId: x.td_release ?? "", release: `${x.rel_name ?? "?"}@${x.rel_version ?? "?"}`, images: x.td_images ?? [], finishedAt: iso(x.td_finished)! }
        : null;
      const { sync, drift } = driftOf(deployed, x.sticker);
      return {
        environment: x.environment,
        target: x.name,
        targetId: x.id,
        kind: x.kind,
        agentId: x.agent_id,
        deployed,
        sticker: x.sticker,
        stickerReportedAt: iso(x.reported_at),
        sync,
        drift,
        activeTask: x.active_id ? { id: x.active_id, deploymentId: x.active_dep ?? "", state: x.active_state ?? "queued" } : null,
      };
    });
  }

  /** A task's log from a byte offset (at most maxBytes). */
  async taskLog(deploymentId: string, taskId: string, offset = 0, maxBytes = 1 << 20): Promise<TaskLogPage> {
    const t = await this.d.store.query<TaskLogRow>("SELECT id, log_total, state FROM tasks WHERE id = $1 AND deployment_id = $2", [taskId, deploymentId]);
    const row = t.rows[0];
    if (!row) throw new FerryError("TASK_NOT_FOUND", `deployment ${deploymentId} has no task ${taskId}`);
    return readTaskLog(this.d.store, row, offset, maxBytes);
  }
}

/** A piece of a task's log: `data` from byte `offset`; `next` is where to continue; `complete` once nothing more can come. */
export interface TaskLogPage {
  data: Buffer;
  offset: number;
  next: number;
  complete: boolean;
}

/** What readTaskLog needs of a task's row (each caller finds the row under its own rules of who owns the task). */
export interface TaskLogRow {
  id: string;
  log_total: string | number | null;
  state: TaskState;
}

/** Reads a task's stored log from a byte offset, at most maxBytes of it. Deployment tasks and check tasks alike. */
export async function readTaskLog(db: Queryable, task: TaskLogRow, offset: number, maxBytes: number): Promise<TaskLogPage> {
  const chunks = await db.query<{ offset: string | number; data: Uint8Array }>(
    `SELECT "offset", data FROM task_logs WHERE task_id = $1 AND "offset" + length(data) > $2 AND "offset" < $3 ORDER BY "offset"`,
    [task.id, offset, offset + maxBytes],
  );
  const parts: Buffer[] = [];
  let at = offset;
  for (const c of chunks.rows) {
    const start = Number(c.offset);
    const buf = Buffer.from(c.data);
    if (start > at) break;
    const slice = buf.subarray(at - start, Math.min(buf.length, offset + maxBytes - start));
    parts.push(slice);
    at += slice.length;
  }
  const total = task.log_total === null ? null : Number(task.log_total);
  return { data: Buffer.concat(parts), offset, next: at, complete: total !== null && at >= total && FINAL_TASK_STATES.includes(task.state) };
}

export interface TargetStatusView {
  environment: string;
  target: string;
  targetId: string;
  kind: string;
  agentId: string | null;
  /** What Ferry last deployed there successfully. */
  deployed: { deploymentId: string; taskId: string; releaseId: string; release: string; images: TaskImage[]; finishedAt: string } | null;
  /** What the agent last reported from the target: its sticker and what it saw running. */
  sticker: Record<string, unknown> | null;
  stickerReportedAt: string | null;
  /** in-sync | drift | not-reported | never-deployed */
  sync: "in-sync" | "drift" | "not-reported" | "never-deployed";
  drift: string[];
  activeTask: { id: string; deploymentId: string; state: TaskState } | null;
}

interface StickerImage { component?: string; digest?: string; runningDigest?: string }

/** Compares what Ferry deployed with what the target's sticker and running workload say. */
export function driftOf(deployed: { images: TaskImage[]; deploymentId: string } | null, sticker: Record<string, unknown> | null): { sync: TargetStatusView["sync"]; drift: string[] } {
  if (!sticker) return { sync: deployed ? "not-reported" : "never-deployed", drift: [] };
  const images = (Array.isArray(sticker.images) ? sticker.images : []) as StickerImage[];
  const drift: string[] = [];
  if (!deployed) {
    if (images.length > 0) drift.push("the target carries a sticker but Ferry has no successful deployment recorded for it");
    return { sync: drift.length ? "drift" : "never-deployed", drift };
  }
  const stickerDeployment = typeof sticker.deploymentId === "string" ? sticker.deploymentId : "";
  if (stickerDeployment && stickerDeployment !== deployed.deploymentId) {
    drift.push(`sticker names deployment ${stickerDeployment}, Ferry last deployed ${deployed.deploymentId}`);
  }
  const observedState = typeof sticker.observedState === "string" ? sticker.observedState : "";
  const observed = observedState !== "unknown" && observedState !== "";
  for (const want of deployed.images) {
    const got = images.find((i) => i.component === want.component);
    if (!got) {
      drift.push(`sticker has no ${want.component}`);
      continue;
    }
    if (got.digest !== want.digest) drift.push(`${want.component}: sticker says ${got.digest}, Ferry deployed ${want.digest}`);
    if (observed && got.runningDigest !== undefined && got.runningDigest !== want.digest) {
      drift.push(got.runningDigest ? `${want.component}: running ${got.runningDigest}, Ferry deployed ${want.digest}` : `${want.component}: not running`);
    }
  }
  if (observed && observedState !== "running") {
    drift.push(`target observed ${observedState}`);
  }
  return { sync: drift.length ? "drift" : "in-sync", drift: [...new Set(drift)] };
}

/**
 * Signs a task payload. The signer checks the payload against the contract's exact parser; a payload it refuses
 * (a field this build's contract does not know) is a fault of this control plane, reported as a FerryError so a
 * caller — the rollout engine — fails its step cleanly instead of retrying it forever.
 */
function signTask(signer: TaskSigner, payload: TaskPayload): ReturnType<TaskSigner["sign"]> {
  try {
    return signer.sign(payload);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError("INTERNAL", `the ${payload.action} task for ${payload.target.name} could not be signed: ${err instanceof Error ? err.message : String(err)}`, { target: payload.target.name });
  }
}

/** Recomputes a deployment's state from its tasks. Call inside the transaction that changed a task. */
export async function refreshDeploymentState(tx: Queryable, deploymentId: string): Promise<DeploymentState> {
  const r = await tx.query<{ state: TaskState; n: string | number }>("SELECT state, count(*) AS n FROM tasks WHERE deployment_id = $1 GROUP BY state", [deploymentId]);
  const counts = new Map(r.rows.map((x) => [x.state, Number(x.n)]));
  const n = (s: TaskState) => counts.get(s) ?? 0;
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const active = n("queued") + n("leased") + n("running");
  let state: DeploymentState;
  if (active > 0) state = n("queued") === total ? "queued" : "running";
  else if (n("succeeded") === total) state = "succeeded";
  else if (n("cancelled") === total) state = "cancelled";
  else state = "failed";
  await tx.query(
    `UPDATE deployments SET state = $2, updated_at = now(), finished_at = CASE WHEN $3 THEN coalesce(finished_at, now()) ELSE NULL END WHERE id = $1 AND state IS DISTINCT FROM $2`,
    [deploymentId, state, active === 0],
  );
  return state;
}

/**
 * The rollout a deployment is a wave of: its steps record their deployments (`result.deployments`). Only rollouts of
 * the same environment that were active when the deployment was created can own it (by the environment index; a
 * minute of slack either side for clocks of different replicas), so the search stays small however many rollouts the
 * environment has had.
 */
async function rolloutOfDeployment(store: Store, d: Pick<DeploymentRow, "id" | "environment" | "created_at">): Promise<string | null> {
  const r = await store.query<{ rollout_id: string }>(
    `SELECT s.rollout_id FROM rollouts ro JOIN rollout_steps s ON s.rollout_id = ro.id
      WHERE ro.environment = $2 AND ro.created_at <= $3::timestamptz + interval '1 minute'
        AND (ro.finished_at IS NULL OR ro.finished_at >= $3::timestamptz - interval '1 minute')
        AND s.kind = 'wave' AND s.result->'deployments' @> jsonb_build_array($1::text)
      LIMIT 1`,
    [d.id, d.environment, d.created_at],
  );
  return r.rows[0]?.rollout_id ?? null;
}
