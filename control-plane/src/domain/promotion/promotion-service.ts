// Promotions: a release moves into an environment only through its gates, and ends in a deployment.
//
//   requested → awaiting_gates → approved → deploying → succeeded | failed
//                      │                                   (a failed deployment whose rollback ran: rolled_back)
//                      ├→ rejected (an approver said no)    ├→ cancelled (by a deployer or admin)
//                      └→ expired (gates never passed in time)
//
// Rules (docs/promotions.md):
//   - one active promotion per environment: a second request for the same environment is refused
//     (PROMOTION_IN_PROGRESS), so two promotions never race to deploy on one target;
//   - an environment with a prior-environment gate refuses a release that never succeeded in the environment before
//     it (PRIOR_ENVIRONMENT_NOT_DEPLOYED); a soak time still running leaves the promotion pending;
//   - every transition is a row in promotion_transitions, attributed and timestamped; every decision and every
//     deployment outcome is a signed, chained evidence packet;
//   - the state lives in the store: any replica's sweeper picks up every active promotion after a restart.
import { randomBytes } from "node:crypto";
import { canonicalJson } from "@ferry/pki";
import type { Clock } from "../../ports/clock.js";
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit, audit } from "../audit/audit-log.js";
import type { Principal } from "../auth/roles.js";
import type { CatalogService } from "../catalog/catalog-service.js";
import type { DeploymentService } from "../deploy/deployment-service.js";
import { FerryError } from "../errors.js";
import type { RolloutService } from "../rollout/rollout-service.js";
import { parseStrategy, strategyNeeds, type Strategy } from "../rollout/strategy.js";
import { environmentSettings, gateContext, NOT_AN_UNFINISHED_ROLLOUT_WAVE, readGateInputs, type GateFacts } from "./gate-inputs.js";
import { digestSetHash, type GateContext } from "./gates/types.js";

export type PromotionState =
  | "requested"
  | "awaiting_gates"
  | "approved"
  | "deploying"
  | "succeeded"
  | "failed"
  | "rolled_back"
  | "rejected"
  | "cancelled"
  | "expired";
export const ACTIVE_PROMOTION_STATES: readonly PromotionState[] = ["requested", "awaiting_gates", "approved", "deploying"];

export interface GateResultView {
  gate: string;
  name: string;
  state: "passed" | "pending" | "failed";
  reason: string;
  remedy: string | null;
  details: Record<string, unknown>;
}

export interface GateVerdict {
  state: "passed" | "pending" | "failed";
  results: GateResultView[];
}

/** Everything gates may look at, gathered from the store for one evaluation (the gates' own context type). */
export type PromotionGateContext = GateContext;

/** The gate evaluators behind one port (control-plane/src/domain/promotion/gates). */
export interface GateEngine {
  /** Validates an environment's gate settings; throws VALIDATION_FAILED naming the field. */
  check(settings: Record<string, unknown>): void;
  evaluate(settings: Record<string, unknown>, ctx: PromotionGateContext, now: Date): GateVerdict;
  /** Kinds configured for the environment. */
  kinds(settings: Record<string, unknown>): string[];
  /** Groups whose members may approve in this environment. */
  approverGroups(settings: Record<string, unknown>): string[];
  /** The role a break-glass override needs in this environment. */
  breakGlassRole(settings: Record<string, unknown>): string;
}

/** Signs and stores an evidence packet; returns its id. */
export interface EvidenceRecorder {
  record(tx: Queryable, kind: string, subjectId: string, doc: Record<string, unknown>): Promise<{ id: string; hash: string }>;
}

export interface PromotionEvents {
  emit(type: string, data: Record<string, unknown>): void;
}

export interface TransitionView {
  seq: number;
  from: PromotionState | null;
  to: PromotionState;
  at: string;
  actor: string;
  reason: string;
}

export interface PromotionView {
  id: string;
  release: { id: string; name: string; version: string };
  environment: string;
  state: PromotionState;
  digestSetHash: string;
  requestedBy: string;
  requestedAt: string;
  breakGlass: { by: string; roles?: string[]; reason: string; at: string } | null;
  /** How it deploys: the request's override, else the environment's settings.strategy, else all-at-once. */
  strategy: Strategy;
  strategySource: StrategySource;
  deploymentId: string | null;
  /** The rollout it follows (a strategy other than all-at-once); null for all-at-once. */
  rolloutId: string | null;
  gates: GateResultView[];
  approvals: { subject: string; decision: string; comment: string; at: string }[];
  reason: string | null;
  expiresAt: string;
  decidedAt: string | null;
  finishedAt: string | null;
  transitions?: TransitionView[];
  evidence?: { id: string; kind: string; hash: string; createdAt: string }[];
}

interface PromotionRow {
  id: string;
  release_id: string;
  environment: string;
  state: PromotionState;
  digest_set_hash: string;
  requested_by: string;
  requested_at: Date;
  break_glass: { by: string; roles?: string[]; reason: string; at: string } | null;
  deployment_id: string | null;
  /** Null on promotions requested before strategies: they deploy all at once. */
  strategy: Strategy | null;
  strategy_source: StrategySource | null;
  rollout_id: string | null;
  gate_results: GateResultView[];
  reason: string | null;
  expires_at: Date;
  decided_at: Date | null;
  finished_at: Date | null;
  release_name?: string;
  release_version?: string;
}

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null);

/** Where a promotion's strategy came from. */
export type StrategySource = "request" | "environment" | "default";
const ALL_AT_ONCE: Strategy = parseStrategy("all-at-once");
const strategyOf = (p: Pick<PromotionRow, "strategy">): Strategy => p.strategy ?? ALL_AT_ONCE;

export interface PromotionDeps {
  store: Store;
  catalog: CatalogService;
  deployments: DeploymentService;
  /** The rollout engine's service: promotions with a strategy other than all-at-once deploy through it. */
  rollouts: RolloutService;
  gates: GateEngine;
  evidence: EvidenceRecorder;
  events: PromotionEvents;
  clock: Clock;
  /** How long a promotion may wait for its gates before it expires. */
  ttlMs: number;
  /** How often the sweep re-evaluates a waiting promotion whose inputs did not change (time-based gates). */
  reevaluateMs?: number;
}

export class PromotionService {
  /** When this process last evaluated each waiting promotion. */
  readonly #evaluatedAt = new Map<string, number>();

  constructor(private readonly d: PromotionDeps) {}

  // ── requests and decisions ─────────────────────────────────────────────────────────────────────────────────

  async request(input: { release: string; environment: string; strategy?: unknown }, who: Principal): Promise<PromotionView> {
    const release = await this.d.catalog.getRelease(input.release);
    const env = await this.d.catalog.getEnvironment(input.environment);
    const settings = env.settings;
    this.d.gates.check(settings);
    let strategy: Strategy;
    try {
      // Checked when requested, not after the approvals: the request's own (errors name `strategy…`), else the
      // environment's (`settings.strategy…`), else all-at-once.
      strategy = this.d.rollouts.resolveStrategy(env, input.strategy);
    } catch (err) {
      if (err instanceof FerryError) return this.refuse(who, "promotion.request", `${release.name}@${release.version}`, err);
      throw err;
    }
    const source: StrategySource = input.strategy !== undefined && input.strategy !== null ? "request" : settings["strategy"] !== undefined && settings["strategy"] !== null ? "environment" : "default";
    const now = this.d.clock.now();
    const id = `prm_${randomBytes(8).toString("hex")}`;
    const hash = digestSetHash(release.pins);
    const previous = await this.previousEnvironment(env.position);
    if (this.d.gates.kinds(settings).includes("prior-environment")) {
      if (!previous || !(await this.priorSuccess(this.d.store, release.id, previous))) {
        return this.refuse(who, "promotion.request", `${release.name}@${release.version}`, new FerryError(
          "PRIOR_ENVIRONMENT_NOT_DEPLOYED",
          previous
            ? `${release.name}@${release.version} has not been deployed successfully to ${previous}, which comes before ${env.name}; promote it there first`
            : `${env.name} requires a prior environment, but none comes before it`,
          { environment: env.name, previousEnvironment: previous },
        ));
      }
    }
    try {
      // Before any approval is collected: a promotion whose deployment could never be queued is refused now — also
      // one whose strategy needs capabilities (side-by-side, a router) an agent of the environment does not offer.
      await this.d.deployments.checkDeployable(release, env.name, strategyNeeds(strategy));
      if (strategy.kind !== "all-at-once") await this.d.rollouts.preflight(env.name, undefined, strategy, release);
    } catch (err) {
      if (err instanceof FerryError) return this.refuse(who, "promotion.request", `${release.name}@${release.version}`, err);
      throw err;
    }
    try {
      await this.d.store.transaction(async (tx) => {
        await tx.query("SELECT name FROM environments WHERE name = $1 FOR UPDATE", [env.name]);
        const active = await tx.query<{ id: string; state: string }>(
          "SELECT id, state FROM promotions WHERE environment = $1 AND state IN ('requested', 'awaiting_gates', 'approved', 'deploying')",
          [env.name],
        );
        if (active.rows[0]) {
          throw new FerryError("PROMOTION_IN_PROGRESS", `promotion ${active.rows[0].id} into ${env.name} is ${active.rows[0].state}; one promotion per environment at a time`, { promotion: active.rows[0].id });
        }
        await tx.query(
          `INSERT INTO promotions (id, release_id, environment, state, digest_set_hash, requested_by, requested_at, expires_at, updated_at, strategy, strategy_source)
           VALUES ($1, $2, $3, 'requested', $4, $5, $6, $7, $6, $8, $9)`,
          [id, release.id, env.name, hash, who.subject, new Date(now), new Date(now + this.d.ttlMs), JSON.stringify(strategy), source],
        );
        await transition(tx, id, null, "requested", who.subject, "", new Date(now));
        await transition(tx, id, "requested", "awaiting_gates", "ferry", "evaluating the environment's gates", new Date(now));
        await tx.query("UPDATE promotions SET state = 'awaiting_gates' WHERE id = $1", [id]);
        await appendAudit(tx, { actor: who.subject, action: "promotion.request", object: id, outcome: "ok", details: { release: release.id, environment: env.name, strategy, strategySource: source } });
      });
    } catch (err) {
      if (err instanceof FerryError) return this.refuse(who, "promotion.request", `${release.name}@${release.version}`, err);
      throw err;
    }
    this.d.events.emit("promotion.requested", { promotion: id, release: `${release.name}@${release.version}`, environment: env.name, requestedBy: who.subject, ...(strategy.kind !== "all-at-once" ? { strategy: strategy.kind } : {}) });
    await this.tick(id);
    return this.get(id);
  }

  async approve(id: string, who: Principal, comment = ""): Promise<PromotionView> {
    return this.decide(id, who, "approve", comment);
  }

  async reject(id: string, who: Principal, reason: string): Promise<PromotionView> {
    if (!reason.trim()) return this.refuse(who, "promotion.reject", id, new FerryError("VALIDATION_FAILED", "reason: a rejection needs a reason", { field: "reason" }));
    return this.decide(id, who, "reject", reason);
  }

  private async decide(id: string, who: Principal, decision: "approve" | "reject", comment: string): Promise<PromotionView> {
    const action = decision === "approve" ? "promotion.approve" : "promotion.reject";
    const now = new Date(this.d.clock.now());
    try {
      await this.d.store.transaction(async (tx) => {
        const p = await lockPromotion(tx, id);
        if (p.state !== "awaiting_gates") {
          throw new FerryError("PROMOTION_ALREADY_DECIDED", `promotion ${id} is ${p.state}; approvals are taken only while it awaits its gates`, { state: p.state });
        }
        if (!who.roles.includes("approver") && !who.roles.includes("admin")) {
          throw new FerryError("FORBIDDEN", `${who.subject} does not have the approver role`, { required: "approver" });
        }
        if (p.requested_by === who.subject) {
          throw new FerryError("SELF_APPROVAL", `${who.subject} requested promotion ${id} and cannot ${decision} it (separation of duties)`);
        }
        const env = await this.d.catalog.getEnvironment(p.environment, tx);
        const groups = this.d.gates.approverGroups(env.settings);
        const mine = await subjectGroups(tx, who.subject);
        if (groups.length > 0 && !groups.some((g) => mine.includes(g))) {
          throw new FerryError("NOT_IN_APPROVER_GROUP", `${who.subject} is not in ${groups.length === 1 ? "group" : "any of the groups"} ${groups.join(", ")}, which approve promotions into ${p.environment}`, { groups });
        }
        const existing = await tx.query<{ decision: string }>("SELECT decision FROM approvals WHERE promotion_id = $1 AND subject = $2", [id, who.subject]);
        if (existing.rows[0]) {
          throw new FerryError("ALREADY_DECIDED_BY_SUBJECT", `${who.subject} already ${existing.rows[0].decision === "approve" ? "approved" : "rejected"} promotion ${id}; one subject counts once`);
        }
        await tx.query(
          `INSERT INTO approvals (promotion_id, subject, decision, roles, groups, digest_set_hash, comment, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [id, who.subject, decision, who.roles, mine, p.digest_set_hash, comment, now],
        );
        await appendAudit(tx, { actor: who.subject, action, object: id, outcome: "ok", details: { comment } });
      });
    } catch (err) {
      if (err instanceof FerryError) return this.refuse(who, action, id, err);
      throw err;
    }
    // promotion.approved is announced when every gate has passed (in tick), not for each approval.
    if (decision === "reject") this.d.events.emit("promotion.rejected", { promotion: id, by: who.subject, reason: comment });
    await this.tick(id);
    return this.get(id);
  }

  /** Overrides a freeze window: needs the environment's break-glass role and a reason; recorded. */
  async breakGlass(id: string, who: Principal, reason: string): Promise<PromotionView> {
    const now = new Date(this.d.clock.now());
    try {
      if (!reason.trim()) throw new FerryError("BREAK_GLASS_REASON_REQUIRED", "break-glass needs a reason (it is recorded in the audit log and the evidence)");
      await this.d.store.transaction(async (tx) => {
        const p = await lockPromotion(tx, id);
        if (!ACTIVE_PROMOTION_STATES.includes(p.state) || p.state === "deploying") {
          throw new FerryError("PROMOTION_ALREADY_DECIDED", `promotion ${id} is ${p.state}`, { state: p.state });
        }
        const env = await this.d.catalog.getEnvironment(p.environment, tx);
        const role = this.d.gates.breakGlassRole(env.settings);
        if (!(who.roles as string[]).includes(role) && !who.roles.includes("admin")) {
          throw new FerryError("FORBIDDEN", `break-glass into ${p.environment} needs the ${role} role; ${who.subject} has ${who.roles.join(", ")}`, { required: role });
        }
        await tx.query("UPDATE promotions SET break_glass = $2, updated_at = $3 WHERE id = $1", [id, { by: who.subject, roles: who.roles, reason, at: now.toISOString() }, now]);
        await appendAudit(tx, { actor: who.subject, action: "promotion.break-glass", object: id, outcome: "ok", details: { reason } });
      });
    } catch (err) {
      if (err instanceof FerryError) return this.refuse(who, "promotion.break-glass", id, err);
      throw err;
    }
    await this.tick(id);
    return this.get(id);
  }

  async cancel(id: string, who: Principal, reason = ""): Promise<PromotionView> {
    const now = new Date(this.d.clock.now());
    try {
      await this.d.store.transaction(async (tx) => {
        const p = await lockPromotion(tx, id);
        if (p.state !== "awaiting_gates" && p.state !== "requested") {
          throw new FerryError("PROMOTION_ALREADY_DECIDED", `promotion ${id} is ${p.state}; only a promotion awaiting its gates can be cancelled`, { state: p.state });
        }
        await this.finish(tx, p, "cancelled", who.subject, reason || `cancelled by ${who.subject}`, now);
        await appendAudit(tx, { actor: who.subject, action: "promotion.cancel", object: id, outcome: "ok", details: { reason } });
      });
    } catch (err) {
      if (err instanceof FerryError) return this.refuse(who, "promotion.cancel", id, err);
      throw err;
    }
    return this.get(id);
  }

  /** Records a refused request in the audit log (its own transaction: the request's was rolled back), rethrows. */
  private async refuse(who: Principal, action: string, object: string, err: FerryError): Promise<never> {
    await audit(this.d.store, { actor: who.subject, action, object, outcome: "refused", details: { code: err.code, message: err.message } });
    throw err;
  }

  // ── the engine ─────────────────────────────────────────────────────────────────────────────────────────────

  /** Something every waiting promotion may read changed (a scan, an exception, a group): re-evaluate all at the next sweep. */
  invalidate(): void {
    this.#evaluatedAt.clear();
  }

  /** Moves one promotion as far as it can go now. Safe to call from any replica at any time. */
  async tick(id: string): Promise<void> {
    this.#evaluatedAt.set(id, this.d.clock.now());
    let deployNow: PromotionRow | null = null;
    const events: [string, Record<string, unknown>][] = [];
    await this.d.store.transaction(async (tx) => {
      const p = await readGateInputs<PromotionRow>(tx, id, { lock: true });
      if (!p) return;
      const now = new Date(this.d.clock.now());
      if (p.state === "awaiting_gates") {
        const { ctx, verdict } = await this.evaluateGates(tx, p, now);
        const changed = resultsChanged(p, verdict);
        if (changed) await tx.query("UPDATE promotions SET gate_results = $2, updated_at = $3 WHERE id = $1", [id, JSON.stringify(verdict.results), now]);
        const rejection = rejectionOf(p, ctx);
        if (rejection) {
          await this.finish(tx, p, "rejected", rejection.subject, `rejected by ${rejection.subject}: ${rejection.comment}`, now);
          await this.d.evidence.record(tx, "promotion.decision", id, await this.decisionDoc(tx, p, "rejected", verdict.results, now));
          return;
        }
        if (verdict.state === "passed") {
          await tx.query("UPDATE promotions SET state = 'approved', decided_at = $2, updated_at = $2 WHERE id = $1", [id, now]);
          await transition(tx, id, "awaiting_gates", "approved", "ferry", "every gate passed", now);
          const ev = await this.d.evidence.record(tx, "promotion.decision", id, await this.decisionDoc(tx, p, "approved", verdict.results, now));
          await appendAudit(tx, { actor: "ferry", action: "promotion.approved", object: id, outcome: "ok", details: { evidence: ev.id } });
          events.push(["promotion.approved", { promotion: id, evidence: ev.id, approvals: ctx.approvals.filter((a) => a.decision === "approve").map((a) => a.subject), ...(strategyOf(p).kind !== "all-at-once" ? { strategy: strategyOf(p).kind } : {}) }]);
          deployNow = { ...p, state: "approved" };
          return;
        }
        if (expiredAt(p, now)) {
          await this.finish(tx, p, "expired", "ferry", "its gates did not pass before the promotion expired", now);
          return;
        }
        // Announce (webhook, audit) only when which gates block, and how, changed — not when a reason's wording did
        // (a soak countdown, say).
        const blockingKey = (results: GateResultView[]) => JSON.stringify(results.filter((g) => g.state !== "passed").map((g) => [g.name, g.state]));
        if (changed && blockingKey(verdict.results) !== blockingKey(p.gate_results)) {
          const blocking = verdict.results.filter((g) => g.state !== "passed");
          const failed = blocking.filter((g) => g.state === "failed");
          // A gate that says no (a freeze window, a critical finding, a policy rule) is a refusal worth auditing.
          if (failed.length > 0) {
            await appendAudit(tx, { actor: "ferry", action: "promotion.blocked", object: id, outcome: "refused", details: { gates: failed.map((g) => ({ name: g.name, gate: g.gate, reason: g.reason })) } });
          }
          events.push(["promotion.blocked", { promotion: id, gates: blocking.map((g) => ({ name: g.name, state: g.state, reason: g.reason })) }]);
        }
        return;
      }
      if (p.state === "approved" && !p.deployment_id) {
        deployNow = p;
        return;
      }
      if (p.state === "deploying" && p.rollout_id) {
        await this.followRollout(tx, p, now, events);
        return;
      }
      if (p.state === "deploying" && p.deployment_id) {
        const dep = await tx.query<{ state: string; finished_at: Date | null }>("SELECT state, finished_at FROM deployments WHERE id = $1", [p.deployment_id]);
        const ds = dep.rows[0]?.state;
        if (ds === "succeeded" || ds === "failed" || ds === "cancelled") {
          const final: PromotionState = ds === "succeeded" ? "succeeded" : "failed";
          await this.finish(tx, p, final, "ferry", `deployment ${p.deployment_id} ${ds}`, now);
          const ev = await this.d.evidence.record(tx, "promotion.deployment", id, await this.deploymentDoc(tx, p, final, now));
          await appendAudit(tx, { actor: "ferry", action: `promotion.${final}`, object: id, outcome: final === "succeeded" ? "ok" : "failed", details: { deployment: p.deployment_id, evidence: ev.id } });
          events.push([final === "succeeded" ? "promotion.deployed" : "promotion.failed", { promotion: id, deployment: p.deployment_id, evidence: ev.id }]);
        }
      }
    });
    for (const [type, data] of events) this.d.events.emit(type, data);
    if (deployNow) await this.startDeployment(deployNow);
  }

  /** A rollout promotion ends when its rollout does: succeeded, or failed with the rollout's reason. */
  private async followRollout(tx: Queryable, p: PromotionRow, now: Date, events: [string, Record<string, unknown>][]): Promise<void> {
    const r = await tx.query<{ state: string; reason: Record<string, unknown> | null }>("SELECT state, reason FROM rollouts WHERE id = $1", [p.rollout_id]);
    const rollout = r.rows[0];
    if (!rollout || !["succeeded", "failed", "rolled_back"].includes(rollout.state)) return;
    const final: PromotionState = rollout.state === "succeeded" ? "succeeded" : "failed";
    const why = rolloutReason(rollout.reason);
    await this.finish(tx, p, final, "ferry", `rollout ${p.rollout_id} ${rollout.state}${why ? `: ${why}` : ""}`, now);
    const ev = await this.d.evidence.record(tx, "promotion.deployment", p.id, await this.deploymentDoc(tx, p, final, now));
    await appendAudit(tx, { actor: "ferry", action: `promotion.${final}`, object: p.id, outcome: final === "succeeded" ? "ok" : "failed", details: { deployment: p.deployment_id, rollout: p.rollout_id, rolloutState: rollout.state, evidence: ev.id } });
    events.push([final === "succeeded" ? "promotion.deployed" : "promotion.failed", { promotion: p.id, deployment: p.deployment_id, rollout: p.rollout_id, evidence: ev.id, ...(final === "failed" ? { reason: why } : {}) }]);
  }

  private async startDeployment(p: PromotionRow): Promise<void> {
    try {
      const strategy = strategyOf(p);
      if (strategy.kind !== "all-at-once") {
        await this.startRollout(p, strategy);
        return;
      }
      await this.d.deployments.deploy(
        { release: p.release_id, environment: p.environment },
        `promotion:${p.id}`,
        {
          promotion: p.id,
          // In the deployment's own transaction: the promotion is deploying exactly when its deployment exists.
          within: async (tx, deploymentId) => {
            const locked = await tx.query<{ state: string; deployment_id: string | null }>("SELECT state, deployment_id FROM promotions WHERE id = $1 FOR UPDATE", [p.id]);
            const row = locked.rows[0];
            if (!row || row.state !== "approved" || row.deployment_id) throw new FerryError("PROMOTION_ALREADY_DECIDED", `promotion ${p.id} already has a deployment`);
            const now = new Date(this.d.clock.now());
            await tx.query("UPDATE promotions SET state = 'deploying', deployment_id = $2, updated_at = $3 WHERE id = $1", [p.id, deploymentId, now]);
            await transition(tx, p.id, "approved", "deploying", "ferry", `deployment ${deploymentId}`, now);
          },
        },
      );
    } catch (err) {
      if (err instanceof FerryError && err.code === "PROMOTION_ALREADY_DECIDED") return;
      // The deployment could not be created (e.g. a target lost its agent): the promotion fails, with the reason.
      const message = err instanceof Error ? err.message : String(err);
      // Another replica's tick may have started the deployment meanwhile (this one then got DEPLOYMENT_IN_PROGRESS):
      // only a promotion still waiting for its deployment fails, and only then is it announced.
      const failed = await this.d.store.transaction(async (tx) => {
        const cur = await lockPromotion(tx, p.id);
        if (cur.state !== "approved" || cur.deployment_id) return false;
        await this.finish(tx, cur, "failed", "ferry", `the deployment could not be started: ${message}`, new Date(this.d.clock.now()));
        return true;
      });
      if (failed) this.d.events.emit("promotion.failed", { promotion: p.id, reason: message });
    }
  }

  /** Creates the promotion's rollout; the promotion is deploying, naming it, in the rollout's own transaction. */
  private async startRollout(p: PromotionRow, strategy: Strategy): Promise<void> {
    await this.d.rollouts.create({ release: p.release_id, environment: p.environment, strategy }, `promotion:${p.id}`, {
      promotion: p.id,
      within: async (tx, rolloutId, deploymentId) => {
        const locked = await tx.query<{ state: string; deployment_id: string | null }>("SELECT state, deployment_id FROM promotions WHERE id = $1 FOR UPDATE", [p.id]);
        const row = locked.rows[0];
        if (!row || row.state !== "approved" || row.deployment_id) throw new FerryError("PROMOTION_ALREADY_DECIDED", `promotion ${p.id} already has a deployment`);
        const now = new Date(this.d.clock.now());
        await tx.query("UPDATE promotions SET state = 'deploying', deployment_id = $2, rollout_id = $3, updated_at = $4 WHERE id = $1", [p.id, deploymentId, rolloutId, now]);
        await transition(tx, p.id, "approved", "deploying", "ferry", `rollout ${rolloutId} (${strategy.kind}), first wave deployment ${deploymentId}`, now);
      },
    });
  }

  private async finish(tx: Queryable, p: PromotionRow, to: PromotionState, actor: string, reason: string, now: Date): Promise<void> {
    const decided = to === "rejected" || to === "cancelled" || to === "expired";
    await tx.query(
      `UPDATE promotions SET state = $2, reason = $3, finished_at = $4, updated_at = $4, decided_at = CASE WHEN $5 THEN coalesce(decided_at, $4) ELSE decided_at END WHERE id = $1`,
      [p.id, to, reason, now, decided],
    );
    await transition(tx, p.id, p.state, to, actor, reason, now);
  }

  /**
   * The sweep's re-evaluation of a waiting promotion: a read first, outside any transaction, and tick()'s transaction
   * only when the verdict moves something (other gate results, a rejection, every gate passed, expiry). Most
   * re-evaluations change nothing, and then hold the embedded store's one connection for one statement instead of a
   * transaction of four.
   */
  private async reevaluate(id: string): Promise<void> {
    const p = await readGateInputs<PromotionRow>(this.d.store, id, { lock: false });
    if (p?.state === "awaiting_gates") {
      const now = new Date(this.d.clock.now());
      const { ctx, verdict } = await this.evaluateGates(this.d.store, p, now);
      if (verdict.state !== "passed" && !resultsChanged(p, verdict) && !rejectionOf(p, ctx) && !expiredAt(p, now)) {
        this.#evaluatedAt.set(id, now.getTime());
        return;
      }
    }
    await this.tick(id);
  }

  /** Every active promotion, one tick each (any replica; row locks keep them apart). */
  async sweep(): Promise<number> {
    const r = await this.d.store.query<{ id: string; state: PromotionState; expires_at: Date }>(
      "SELECT id, state, expires_at FROM promotions WHERE state IN ('requested', 'awaiting_gates', 'approved', 'deploying') ORDER BY requested_at LIMIT 500",
    );
    const now = this.d.clock.now();
    for (const row of r.rows) {
      // Waiting promotions are re-evaluated by the sweep only every reevaluateMs (time-based gates: freeze windows,
      // soak, expiry); anything that changes their inputs (an approval, a scan, an exception, break-glass) ticks them
      // at once. Approved and deploying ones are cheap to check and move on every sweep.
      const due = now - (this.#evaluatedAt.get(row.id) ?? 0) >= (this.d.reevaluateMs ?? 10_000) || now > new Date(row.expires_at).getTime();
      if (row.state === "awaiting_gates") {
        if (due) await this.reevaluate(row.id);
        continue;
      }
      await this.tick(row.id);
    }
    if (this.#evaluatedAt.size > 10_000) this.#evaluatedAt.clear();
    await this.markRolledBack();
    await this.recordDeploymentEvidence();
    return r.rows.length;
  }

  /**
   * Every finished deployment (promoted or not, rollbacks included) gets its own evidence packet: what was asked,
   * by whom, which signed tasks went to which agents, and how each target ended.
   */
  private async recordDeploymentEvidence(): Promise<void> {
    const pending = await this.d.store.query<{ id: string }>(
      `SELECT d.id FROM deployments d
        WHERE d.state IN ('succeeded', 'failed', 'cancelled')
          AND NOT EXISTS (SELECT 1 FROM evidence e WHERE e.subject_id = d.id AND e.kind = 'deployment')
        ORDER BY d.finished_at LIMIT 100`,
    );
    for (const { id } of pending.rows) {
      await this.d.store.transaction(async (tx) => {
        const dep = await tx.query<{ id: string; environment: string; release_id: string | null; action: string; state: string; requested_by: string; created_at: Date; finished_at: Date | null; retry_of: string | null; override: Record<string, unknown> | null }>(
          "SELECT * FROM deployments WHERE id = $1 FOR UPDATE",
          [id],
        );
        const d = dep.rows[0];
        if (!d) return;
        // Re-checked under the lock: another replica may have recorded it meanwhile.
        const again = await tx.query("SELECT 1 FROM evidence WHERE subject_id = $1 AND kind = 'deployment'", [id]);
        if (again.rowCount > 0) return;
        const tasks = await tx.query<{ id: string; target: string; kind: string; agent_id: string; release_id: string; state: string; code: string | null; message: string | null; images: unknown; key_id: string; attempt: number; started_at: Date | null; finished_at: Date | null }>(
          `SELECT t.id, tg.name AS target, tg.kind, t.agent_id, t.release_id, t.state, t.code, t.message, t.images, t.key_id, t.attempt, t.started_at, t.finished_at
             FROM tasks t JOIN targets tg ON tg.id = t.target_id WHERE t.deployment_id = $1 ORDER BY tg.name`,
          [id],
        );
        const promotion = await tx.query<{ id: string }>("SELECT id FROM promotions WHERE deployment_id = $1", [id]);
        await this.d.evidence.record(tx, "deployment", id, {
          deployment: { id: d.id, action: d.action, environment: d.environment, releaseId: d.release_id, retryOf: d.retry_of, promotion: promotion.rows[0]?.id ?? null },
          requester: { subject: d.requested_by, at: iso(d.created_at) },
          // A direct deployment into a gated environment: the override that let it in (its own packet has the details).
          ...(d.override ? { override: d.override } : {}),
          outcome: d.state,
          targets: tasks.rows.map((t) => ({
            task: t.id,
            target: t.target,
            kind: t.kind,
            agent: t.agent_id,
            release: t.release_id,
            images: t.images,
            taskSigningKey: t.key_id,
            attempt: t.attempt,
            state: t.state,
            code: t.code,
            message: t.message,
            startedAt: iso(t.started_at),
            finishedAt: iso(t.finished_at),
          })),
          timings: { requestedAt: iso(d.created_at), finishedAt: iso(d.finished_at) },
        });
      });
    }
  }

  /**
   * A successful promotion whose environment was rolled back afterwards (a rollback deployment there succeeded after
   * it finished) is rolled_back: what it deployed no longer runs. Only the environment's newest deployed promotion
   * (rolled_back ones included) is judged, so one rollback never cascades to the promotions before it.
   */
  private async markRolledBack(): Promise<void> {
    const found = await this.d.store.query<{ id: string; deployment: string }>(
      `SELECT p.id, d.id AS deployment FROM promotions p
         JOIN LATERAL (SELECT id FROM deployments d WHERE d.environment = p.environment AND d.action = 'rollback' AND d.state = 'succeeded'
                        AND d.created_at > p.finished_at
                        -- A rollout's own rollback wave puts back what ran before that rollout: it undoes nothing earlier.
                        AND NOT EXISTS (SELECT 1 FROM rollout_steps s WHERE s.result->'deployments' ? d.id)
                        ORDER BY d.created_at LIMIT 1) d ON true
        WHERE p.state = 'succeeded'
          AND p.id = (SELECT id FROM promotions q WHERE q.environment = p.environment AND q.state IN ('succeeded', 'rolled_back') ORDER BY q.finished_at DESC LIMIT 1)`,
    );
    for (const f of found.rows) {
      const done = await this.d.store.transaction(async (tx) => {
        const p = await lockPromotion(tx, f.id);
        if (p.state !== "succeeded") return false;
        const now = new Date(this.d.clock.now());
        await tx.query("UPDATE promotions SET state = 'rolled_back', reason = $2, updated_at = $3 WHERE id = $1", [p.id, `rolled back by deployment ${f.deployment}`, now]);
        await transition(tx, p.id, "succeeded", "rolled_back", "ferry", `rollback deployment ${f.deployment}`, now);
        await appendAudit(tx, { actor: "ferry", action: "promotion.rolled_back", object: p.id, outcome: "ok", details: { deployment: f.deployment } });
        return true;
      });
      if (done) this.d.events.emit("promotion.rolled_back", { promotion: f.id, deployment: f.deployment });
    }
  }

  // ── reading ────────────────────────────────────────────────────────────────────────────────────────────────

  async get(id: string, opts: { history?: boolean } = {}): Promise<PromotionView> {
    const r = await this.d.store.query<PromotionRow>(
      "SELECT p.*, r.name AS release_name, r.version AS release_version FROM promotions p JOIN releases r ON r.id = p.release_id WHERE p.id = $1",
      [id],
    );
    const row = r.rows[0];
    if (!row) throw new FerryError("PROMOTION_NOT_FOUND", `no promotion ${id}`);
    const approvals = await this.d.store.query<{ subject: string; decision: string; comment: string; at: Date }>(
      "SELECT subject, decision, comment, at FROM approvals WHERE promotion_id = $1 ORDER BY at",
      [id],
    );
    const view = promotionView(row, approvals.rows);
    if (opts.history) {
      const t = await this.d.store.query<{ seq: number; from_state: PromotionState | null; to_state: PromotionState; at: Date; actor: string; reason: string }>(
        "SELECT * FROM promotion_transitions WHERE promotion_id = $1 ORDER BY seq",
        [id],
      );
      view.transitions = t.rows.map((x) => ({ seq: x.seq, from: x.from_state, to: x.to_state, at: iso(x.at)!, actor: x.actor, reason: x.reason }));
      const e = await this.d.store.query<{ id: string; kind: string; hash: string; created_at: Date }>("SELECT id, kind, hash, created_at FROM evidence WHERE subject_id = $1 ORDER BY seq", [id]);
      view.evidence = e.rows.map((x) => ({ id: x.id, kind: x.kind, hash: x.hash, createdAt: iso(x.created_at)! }));
    }
    return view;
  }

  async list(q: { environment?: string; state?: string; limit?: number }): Promise<PromotionView[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (q.environment) where.push(`p.environment = $${params.push(q.environment)}`);
    if (q.state) where.push(`p.state = $${params.push(q.state)}`);
    const limit = Math.min(Math.max(q.limit ?? 50, 1), 200);
    const r = await this.d.store.query<PromotionRow>(
      `SELECT p.*, r.name AS release_name, r.version AS release_version FROM promotions p JOIN releases r ON r.id = p.release_id
        ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY p.requested_at DESC, p.id DESC LIMIT ${limit}`,
      params,
    );
    const approvals = await this.d.store.query<{ promotion_id: string; subject: string; decision: string; comment: string; at: Date }>(
      "SELECT promotion_id, subject, decision, comment, at FROM approvals WHERE promotion_id = ANY($1) ORDER BY at",
      [r.rows.map((x) => x.id)],
    );
    return r.rows.map((row) => promotionView(row, approvals.rows.filter((a) => a.promotion_id === row.id)));
  }

  /** Every gate, evaluated now: passed / pending / failed, why, and what would unblock it. */
  async whyBlocked(id: string): Promise<{ promotion: string; state: PromotionState; blocked: boolean; gates: GateResultView[] }> {
    const p = await readGateInputs<PromotionRow>(this.d.store, id, { lock: false });
    if (!p) throw new FerryError("PROMOTION_NOT_FOUND", `no promotion ${id}`);
    if (p.state !== "awaiting_gates" && p.state !== "requested") return { promotion: id, state: p.state, blocked: false, gates: p.gate_results };
    const { verdict } = await this.evaluateGates(this.d.store, p, new Date(this.d.clock.now()));
    return { promotion: id, state: p.state, blocked: verdict.state !== "passed", gates: verdict.results };
  }

  // ── release metadata and notes ─────────────────────────────────────────────────────────────────────────────

  /** release-metadata.json of a successful promotion: release, digests, environment, approvals, evidence, times. */
  async releaseMetadata(id: string): Promise<Record<string, unknown>> {
    const p = await this.get(id, { history: true });
    if (p.state !== "succeeded" && p.state !== "rolled_back") {
      throw new FerryError("PROMOTION_NOT_SUCCEEDED", `promotion ${id} is ${p.state}; release metadata exists for successful promotions`, { state: p.state });
    }
    const release = await this.d.catalog.getRelease(p.release.id);
    return {
      schema: "ferry.release-metadata/v1",
      release: { id: release.id, name: release.name, version: release.version, createdAt: release.createdAt, createdBy: release.createdBy },
      images: release.pins.map((x) => ({ component: x.component, repository: x.repository, digest: x.digest, image: x.image, sourceTag: x.sourceTag })),
      digestSetHash: p.digestSetHash,
      environment: p.environment,
      promotion: { id: p.id, requestedBy: p.requestedBy, requestedAt: p.requestedAt, decidedAt: p.decidedAt, finishedAt: p.finishedAt, breakGlass: p.breakGlass },
      approvals: p.approvals.filter((a) => a.decision === "approve").map((a) => ({ subject: a.subject, at: a.at, comment: a.comment })),
      gates: p.gates.map((g) => ({ name: g.name, gate: g.gate, state: g.state, reason: g.reason })),
      deploymentId: p.deploymentId,
      // A promotion through the rollout engine names its strategy and rollout; an all-at-once one is as it always was.
      ...(p.rolloutId ? { strategy: p.strategy, rolloutId: p.rolloutId } : {}),
      evidence: (p.evidence ?? []).map((e) => ({ id: e.id, kind: e.kind, sha256: e.hash })),
    };
  }

  /** release-notes.md of a successful promotion: the release's own notes plus the promotion record. */
  async releaseNotes(id: string): Promise<string> {
    const m = await this.releaseMetadata(id);
    const release = await this.d.catalog.getRelease((m["release"] as { id: string }).id);
    const p = m["promotion"] as { id: string; requestedBy: string; requestedAt: string; finishedAt: string | null; breakGlass: { by: string; reason: string } | null };
    const lines = [
      `# ${release.name} ${release.version} in ${String(m["environment"])}`,
      "",
      `Promoted by promotion ${p.id}, requested by ${p.requestedBy} at ${p.requestedAt}, deployed ${p.finishedAt ?? ""} (${typeof m["rolloutId"] === "string" ? `${(m["strategy"] as Strategy).kind} rollout ${m["rolloutId"]}, first wave ` : ""}deployment ${String(m["deploymentId"])}).`,
      "",
      "## Images",
      "",
      ...(m["images"] as { component: string; image: string; sourceTag: string | null }[]).map((i) => `- **${i.component}**: \`${i.image}\`${i.sourceTag ? ` (from tag ${i.sourceTag})` : ""}`),
      "",
      "## Approvals",
      "",
      ...((m["approvals"] as { subject: string; at: string; comment: string }[]).length
        ? (m["approvals"] as { subject: string; at: string; comment: string }[]).map((a) => `- ${a.subject} at ${a.at}${a.comment ? `: ${a.comment}` : ""}`)
        : ["- none required"]),
      ...(p.breakGlass ? ["", `**Break-glass** by ${p.breakGlass.by}: ${p.breakGlass.reason}`] : []),
      "",
      "## Gates",
      "",
      ...(m["gates"] as { name: string; state: string; reason: string }[]).map((g) => `- ${g.name}: ${g.state} — ${g.reason}`),
      "",
      "## Evidence",
      "",
      ...(m["evidence"] as { id: string; kind: string; sha256: string }[]).map((e) => `- ${e.kind}: ${e.id} (sha256 ${e.sha256})`),
      "",
      "## Release notes",
      "",
      release.notes.trim() || "_No notes were given with this release._",
      "",
    ];
    return lines.join("\n");
  }

  // ── gate context and evidence documents ────────────────────────────────────────────────────────────────────

  private async previousEnvironment(position: number): Promise<string | null> {
    const r = await this.d.store.query<{ name: string }>("SELECT name FROM environments WHERE position < $1 ORDER BY position DESC LIMIT 1", [position]);
    return r.rows[0]?.name ?? null;
  }

  private async priorSuccess(db: Queryable, releaseId: string, environment: string): Promise<{ environment: string; finishedAt: Date } | null> {
    const r = await db.query<{ finished_at: Date }>(
      `SELECT finished_at FROM deployments d WHERE release_id = $1 AND environment = $2 AND state = 'succeeded' AND finished_at IS NOT NULL
          AND ${NOT_AN_UNFINISHED_ROLLOUT_WAVE} ORDER BY finished_at LIMIT 1`,
      [releaseId, environment],
    );
    return r.rows[0] ? { environment, finishedAt: new Date(r.rows[0].finished_at) } : null;
  }

  /** The gates' verdict on a promotion read with its gate facts (readGateInputs), now. */
  private async evaluateGates(db: Queryable, p: PromotionRow & GateFacts, now: Date): Promise<{ ctx: PromotionGateContext; verdict: GateVerdict }> {
    const ctx = gateContext(p, await this.d.catalog.getRelease(p.release_id, db));
    return { ctx, verdict: this.d.gates.evaluate(environmentSettings(p), ctx, now) };
  }

  private async decisionDoc(tx: Queryable, p: PromotionRow, decision: string, gates: GateResultView[], now: Date): Promise<Record<string, unknown>> {
    const release = await this.d.catalog.getRelease(p.release_id, tx);
    const approvals = await tx.query<{ subject: string; decision: string; comment: string; at: Date; digest_set_hash: string }>(
      "SELECT subject, decision, comment, at, digest_set_hash FROM approvals WHERE promotion_id = $1 ORDER BY at",
      [p.id],
    );
    return {
      kind: "promotion.decision",
      decision,
      promotion: { id: p.id, environment: p.environment, requestedBy: p.requested_by, requestedAt: iso(p.requested_at), breakGlass: p.break_glass, strategy: strategyOf(p), strategySource: p.strategy_source ?? "default" },
      release: { id: release.id, name: release.name, version: release.version, digestSetHash: p.digest_set_hash, images: release.pins.map((x) => `${x.repository}@${x.digest}`), rollbackSafe: release.rollbackSafe },
      approvals: approvals.rows.map((a) => ({ subject: a.subject, decision: a.decision, comment: a.comment, at: iso(a.at), digestSetHash: a.digest_set_hash })),
      gates,
      decidedAt: now.toISOString(),
    };
  }

  private async deploymentDoc(tx: Queryable, p: PromotionRow, outcome: string, now: Date): Promise<Record<string, unknown>> {
    const release = await this.d.catalog.getRelease(p.release_id, tx);
    const rollout = p.rollout_id ? await rolloutRecord(tx, p.rollout_id) : null;
    // A rollout's tasks are those of every wave (rollback waves included), in the order they were queued.
    const deployments = rollout ? rollout.deployments : [p.deployment_id];
    const tasks = await tx.query<{ id: string; deployment_id: string; target: string; agent_id: string; action: string; state: string; code: string | null; images: unknown; started_at: Date | null; finished_at: Date | null }>(
      `SELECT t.id, t.deployment_id, tg.name AS target, t.agent_id, t.action, t.state, t.code, t.images, t.started_at, t.finished_at
         FROM tasks t JOIN targets tg ON tg.id = t.target_id WHERE t.deployment_id = ANY($1) ORDER BY t.queued_at, tg.name`,
      [deployments],
    );
    const approvals = await tx.query<{ subject: string; decision: string; at: Date }>("SELECT subject, decision, at FROM approvals WHERE promotion_id = $1 ORDER BY at", [p.id]);
    return {
      kind: "promotion.deployment",
      outcome,
      promotion: { id: p.id, environment: p.environment, requestedBy: p.requested_by, requestedAt: iso(p.requested_at), decidedAt: iso(p.decided_at) },
      release: { id: release.id, name: release.name, version: release.version, digestSetHash: p.digest_set_hash, images: release.pins.map((x) => `${x.repository}@${x.digest}`) },
      approvals: approvals.rows.map((a) => ({ subject: a.subject, decision: a.decision, at: iso(a.at) })),
      gates: p.gate_results,
      strategy: strategyOf(p),
      deployment: p.deployment_id,
      rollout: rollout ? rollout.summary : null,
      targets: tasks.rows.map((t) => ({
        task: t.id,
        target: t.target,
        agent: t.agent_id,
        state: t.state,
        code: t.code,
        images: t.images,
        startedAt: iso(t.started_at),
        finishedAt: iso(t.finished_at),
        ...(rollout ? { deployment: t.deployment_id, action: t.action } : {}),
      })),
      finishedAt: now.toISOString(),
    };
  }
}

/**
 * Whether the gates' results differ from those the promotion holds (a reason's wording counts). Compared as the
 * store keeps them: jsonb orders object keys its own way, so the results go through JSON and both sides are
 * compared in canonical form.
 */
const resultsChanged = (p: PromotionRow, verdict: GateVerdict): boolean =>
  canonicalJson(JSON.parse(JSON.stringify(verdict.results))) !== canonicalJson(p.gate_results);

/** An approver's rejection of the digest set the promotion is for. */
const rejectionOf = (p: PromotionRow, ctx: PromotionGateContext): PromotionGateContext["approvals"][number] | undefined =>
  ctx.approvals.find((a) => a.decision === "reject" && a.digestSetHash === p.digest_set_hash);

const expiredAt = (p: PromotionRow, now: Date): boolean => now.getTime() > new Date(p.expires_at).getTime();

async function lockPromotion(tx: Queryable, id: string): Promise<PromotionRow> {
  const r = await tx.query<PromotionRow>("SELECT * FROM promotions WHERE id = $1 FOR UPDATE", [id]);
  const p = r.rows[0];
  if (!p) throw new FerryError("PROMOTION_NOT_FOUND", `no promotion ${id}`);
  return p;
}

async function subjectGroups(db: Queryable, subject: string): Promise<string[]> {
  const r = await db.query<{ group_name: string }>("SELECT group_name FROM subject_groups WHERE subject = $1 ORDER BY group_name", [subject]);
  return r.rows.map((x) => x.group_name);
}

async function transition(tx: Queryable, id: string, from: PromotionState | null, to: PromotionState, actor: string, reason: string, at: Date): Promise<void> {
  await tx.query(
    `INSERT INTO promotion_transitions (promotion_id, seq, from_state, to_state, at, actor, reason)
     SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5, $6 FROM promotion_transitions WHERE promotion_id = $1`,
    [id, from, to, at, actor, reason],
  );
}

function promotionView(row: PromotionRow, approvals: { subject: string; decision: string; comment: string; at: Date }[]): PromotionView {
  return {
    id: row.id,
    release: { id: row.release_id, name: row.release_name ?? "", version: row.release_version ?? "" },
    environment: row.environment,
    state: row.state,
    digestSetHash: row.digest_set_hash,
    requestedBy: row.requested_by,
    requestedAt: iso(row.requested_at)!,
    breakGlass: row.break_glass,
    strategy: strategyOf(row),
    strategySource: row.strategy_source ?? "default",
    deploymentId: row.deployment_id,
    rolloutId: row.rollout_id ?? null,
    gates: row.gate_results,
    approvals: approvals.map((a) => ({ subject: a.subject, decision: a.decision, comment: a.comment, at: iso(a.at)! })),
    reason: row.reason,
    expiresAt: iso(row.expires_at)!,
    decidedAt: iso(row.decided_at),
    finishedAt: iso(row.finished_at),
  };
}

/** A rollout's reason in one line: its failure's message (and a rollback's own failure, or who declined it). */
function rolloutReason(reason: Record<string, unknown> | null): string {
  if (!reason) return "";
  const parts: string[] = [];
  if (typeof reason["message"] === "string") parts.push(`${typeof reason["stepName"] === "string" ? `${reason["stepName"]}: ` : ""}${reason["message"]}`);
  const rb = reason["rollbackFailed"] as { message?: unknown } | undefined;
  if (rb && typeof rb.message === "string") parts.push(`the rollback failed: ${rb.message}`);
  const declined = reason["rollbackDeclined"] as { by?: unknown } | undefined;
  if (declined && typeof declined.by === "string") parts.push(`the rollback was declined by ${declined.by}; the updated targets keep the new release`);
  return parts.join("; ").slice(0, 2000);
}

/** What a promotion's evidence says about its rollout: state, reason, and each step with who promoted, approved or declined it. */
async function rolloutRecord(tx: Queryable, id: string): Promise<{ deployments: string[]; summary: Record<string, unknown> }> {
  const r = await tx.query<{ id: string; state: string; reason: Record<string, unknown> | null; strategy: Strategy; finished_at: Date | null }>("SELECT id, state, reason, strategy, finished_at FROM rollouts WHERE id = $1", [id]);
  const steps = await tx.query<{ idx: number; phase: string; kind: string; name: string; state: string; result: Record<string, unknown> }>(
    "SELECT idx, phase, kind, name, state, result FROM rollout_steps WHERE rollout_id = $1 ORDER BY idx",
    [id],
  );
  const row = r.rows[0];
  const deployments = steps.rows.flatMap((s) => (Array.isArray(s.result["deployments"]) ? (s.result["deployments"] as string[]) : []));
  const by = (s: { result: Record<string, unknown> }, key: string) => (typeof s.result[key] === "string" ? { [key]: s.result[key] } : {});
  return {
    deployments,
    summary: {
      id,
      state: row?.state ?? null,
      reason: row?.reason ?? null,
      finishedAt: iso(row?.finished_at),
      steps: steps.rows.map((s) => ({ index: s.idx, phase: s.phase, kind: s.kind, name: s.name, state: s.state, ...by(s, "approvedBy"), ...by(s, "declinedBy"), ...by(s, "evidence") })),
    },
  };
}
