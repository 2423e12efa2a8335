// The governance rule for deployments that do not come from a promotion (docs/gates.md, "Direct deploys").
//
// An environment with gates accepts a release only through a promotion. A direct deploy, rollback or retry there is
// refused (ENVIRONMENT_GATED) unless the caller asks for an override, holds the gate-override role (admin implies
// it) and gives a reason. An allowed override is written in the deployment's own transaction, three times over: on
// the deployment row, in the audit log, and as a signed evidence packet (kind "deployment.override") — so there is
// never a deployment into a gated environment without its record. Every refusal is audited too.
//
// The check is made twice: once early, so a refusal comes before target selection and says the right thing, and
// once inside the transaction with the environment row locked (FOR SHARE), so gates added by a concurrent
// environment update cannot be slipped past.
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit, audit } from "../audit/audit-log.js";
import { satisfies, type Principal } from "../auth/roles.js";
import { FerryError } from "../errors.js";

export type DirectAction = "deploy" | "rollback" | "retry";

/** The caller of a direct deployment: the API principal, or the promotion that owns the deployment. */
export interface DeployAuthority {
  /** Set when the deployment is a promotion's own: the gates were the promotion's to pass. */
  promotion?: string;
  principal?: Principal | null;
  override?: { reason: string } | null;
}

/** What an allowed override records. */
export interface OverrideRecord {
  by: string;
  tokenId: string | null;
  roles: string[];
  reason: string;
  at: string;
  evidence?: string;
}

/** Signs and stores an evidence packet (EvidenceStore in the composition root). */
export interface OverrideEvidenceRecorder {
  record(tx: Queryable, kind: string, subjectId: string, doc: Record<string, unknown>): Promise<{ id: string; hash: string }>;
}

export const OVERRIDE_REASON_MAX = 1000;

/** The gates an environment's settings declare (settings are validated when saved, so a non-empty list means gates). */
export function declaredGates(settings: Record<string, unknown>): { kind: string; name: string }[] {
  const raw = settings["gates"];
  if (!Array.isArray(raw)) return [];
  return raw.map((g: unknown) => {
    const o = (typeof g === "object" && g !== null ? g : {}) as Record<string, unknown>;
    const kind = typeof o["kind"] === "string" ? o["kind"] : "?";
    return { kind, name: typeof o["name"] === "string" ? o["name"] : kind };
  });
}

/**
 * Decides whether a direct deployment may go ahead. Returns null when no override is involved (no gates, or the
 * promotion's own deployment), the override to record when one is allowed, and throws ENVIRONMENT_GATED,
 * FORBIDDEN or VALIDATION_FAILED otherwise. Pure: the caller audits refusals (auditRefusal).
 */
export function clearDirect(environment: string, settings: Record<string, unknown>, action: DirectAction, who: DeployAuthority, now: Date): OverrideRecord | null {
  const gates = declaredGates(settings);
  if (who.promotion || gates.length === 0) return null;
  const list = gates.map((g) => g.name).join(", ");
  if (!who.override) {
    throw new FerryError(
      "ENVIRONMENT_GATED",
      `${environment} has gates (${list}): a release reaches it only through a promotion (ferry promote <release> --to ${environment})` +
        `${action === "deploy" ? "" : `; a ${action} there too`}, or with an override (the gate-override role and a reason: --override "<reason>")`,
      { environment, gates: gates.map((g) => g.name), action },
    );
  }
  const reason = who.override.reason.trim();
  if (!reason) throw new FerryError("VALIDATION_FAILED", "override.reason: an override needs a reason; it is recorded in the audit log and the evidence", { field: "override.reason" });
  if (reason.length > OVERRIDE_REASON_MAX) throw new FerryError("VALIDATION_FAILED", `override.reason: at most ${OVERRIDE_REASON_MAX} characters`, { field: "override.reason" });
  const p = who.principal;
  if (!p || !satisfies(p.roles, "gate-override")) {
    throw new FerryError(
      "FORBIDDEN",
      `an override into ${environment} needs the gate-override role; ${p ? `${p.subject} has ${p.roles.join(", ")}` : "the caller has no roles"}`,
      { required: "gate-override", environment },
    );
  }
  return { by: p.subject, tokenId: p.tokenId, roles: [...p.roles], reason, at: now.toISOString() };
}

/** Records a refused direct deployment in the audit log (its own transaction: the request's was rolled back). */
export async function auditRefusal(store: Store, actor: string, action: DirectAction, environment: string, err: FerryError, override: DeployAuthority["override"]): Promise<void> {
  await audit(store, {
    actor,
    action: action === "rollback" ? "deployment.rollback" : action === "retry" ? "deployment.retry" : "deployment.create",
    object: environment,
    outcome: "refused",
    code: err.code,
    details: { message: err.message, ...(override ? { overrideReason: override.reason.slice(0, OVERRIDE_REASON_MAX) } : {}) },
  });
}

/**
 * Inside the deployment's transaction: re-checks the rule with the environment row locked, and when an override let
 * the deployment through, stores it on the row, audits it and writes its signed evidence packet.
 */
export async function enforceWithin(
  tx: Queryable,
  d: { evidence?: OverrideEvidenceRecorder | undefined; now: Date },
  deployment: { id: string; environment: string; action: "deploy" | "rollback"; releaseId: string | null; retryOf: string | null; targets: { target: string; agent: string; images: string[] }[] },
  directAction: DirectAction,
  who: DeployAuthority,
): Promise<void> {
  const env = await tx.query<{ settings: Record<string, unknown> }>("SELECT settings FROM environments WHERE name = $1 FOR SHARE", [deployment.environment]);
  const settings = env.rows[0]?.settings ?? {};
  const override = clearDirect(deployment.environment, settings, directAction, who, d.now);
  if (!override) return;
  if (!d.evidence) throw new Error("an override was allowed but no evidence recorder is configured");
  const doc = {
    kind: "deployment.override",
    deployment: { id: deployment.id, action: directAction, environment: deployment.environment, releaseId: deployment.releaseId, retryOf: deployment.retryOf },
    override: { by: override.by, tokenId: override.tokenId, roles: override.roles, reason: override.reason, at: override.at },
    gatesBypassed: declaredGates(settings),
    targets: deployment.targets,
  };
  const ev = await d.evidence.record(tx, "deployment.override", deployment.id, doc);
  const stored: OverrideRecord = { ...override, evidence: ev.id };
  await tx.query("UPDATE deployments SET override = $2 WHERE id = $1", [deployment.id, JSON.stringify(stored)]);
  await appendAudit(tx, {
    actor: override.by,
    action: "deployment.override",
    object: deployment.id,
    outcome: "ok",
    details: { environment: deployment.environment, action: directAction, reason: override.reason, roles: override.roles, evidence: ev.id, gates: doc.gatesBypassed.map((g) => g.name) },
  });
}
