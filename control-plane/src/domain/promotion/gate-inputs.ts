// What the gates of one promotion read, in one statement: the promotion row itself, its environment's settings, the
// environment before it, the release's prior success there, the approvals, and the scan reports and exceptions of
// the release's image digests.
//
// One statement because the embedded store is one connection: every statement of a request waits its turn behind
// whatever else holds it (the promotion sweep's transactions above all), so a why-blocked made of four statements
// waited four times. And a prepared one: planning it costs the embedded store about twice what running it does
// (docs/performance.md, "bench:gates"). The release itself (name, version, labels, pins) comes from the
// catalog's release cache: releases never change.
import { preparedStatement, type Queryable } from "../../ports/store.js";
import type { ReleaseView } from "../catalog/catalog-service.js";
import { FerryError } from "../errors.js";
import type { GateContext } from "./gates/types.js";

/**
 * A deployment that is a wave of a rollout that has not succeeded (still running, rolled back, failed) is not a
 * success of its release in the environment, whatever its own state: `d` is the deployments row.
 */
export const NOT_AN_UNFINISHED_ROLLOUT_WAVE = `NOT EXISTS (SELECT 1 FROM rollout_steps s JOIN rollouts ro ON ro.id = s.rollout_id
   WHERE ro.state <> 'succeeded' AND ro.environment = d.environment AND s.result->'deployments' ? d.id)`;

/** The promotion columns the gate context is built from. */
export interface GateSubject {
  id: string;
  release_id: string;
  environment: string;
  requested_by: string;
  requested_at: Date;
  break_glass: { by: string; roles?: string[]; reason: string; at: string } | null;
  digest_set_hash: string;
}

/** What the statement adds to the promotion row. The gate facts are null unless the promotion waits for its gates. */
export interface GateFacts {
  /** Null when the environment no longer exists. */
  env_settings: Record<string, unknown> | null;
  previous: string | null;
  prior_success: Date | null;
  approvals: { subject: string; decision: "approve" | "reject"; roles: string[]; groups: string[]; digest_set_hash: string; comment: string; at: string }[] | null;
  scans: { digest: string; scanner: string; format: string; uploaded_at: string; counts: Record<string, number> }[] | null;
  exceptions: { id: string; digest: string; max_severity: string; reason: string; approver: string; expires_at: string }[] | null;
}

/**
 * Every column of promotions, named: a prepared statement keeps its result's shape (`p.*` would grow with the table
 * and fail the kept plan). The store tests check the list against the table.
 */
export const PROMOTION_COLUMNS = [
  "id", "release_id", "environment", "state", "digest_set_hash", "requested_by", "requested_at", "break_glass", "deployment_id",
  "gate_results", "reason", "expires_at", "decided_at", "finished_at", "updated_at", "strategy", "strategy_source", "rollout_id",
] as const;

const WAITING = `p.state IN ('requested', 'awaiting_gates')`;

const statement = (lock: boolean): string =>
  `WITH p AS (SELECT * FROM promotions WHERE id = $1${lock ? " FOR UPDATE SKIP LOCKED" : ""}),
        e AS (SELECT position, settings FROM environments WHERE name = (SELECT environment FROM p)),
        prev AS (SELECT name FROM environments WHERE position < (SELECT position FROM e) ORDER BY position DESC LIMIT 1),
        pins AS (SELECT digest FROM release_pins WHERE release_id = (SELECT release_id FROM p))
   SELECT ${PROMOTION_COLUMNS.map((c) => `p.${c}`).join(", ")}, e.settings AS env_settings,
          CASE WHEN ${WAITING} THEN (SELECT name FROM prev) END AS previous,
          CASE WHEN ${WAITING} THEN
            (SELECT min(finished_at) FROM deployments d WHERE d.release_id = p.release_id AND d.state = 'succeeded'
                AND d.environment = (SELECT name FROM prev) AND ${NOT_AN_UNFINISHED_ROLLOUT_WAVE}) END AS prior_success,
          CASE WHEN ${WAITING} THEN
            (SELECT coalesce(json_agg(a ORDER BY a.at), '[]'::json) FROM
               (SELECT subject, decision, roles, groups, digest_set_hash, comment, at FROM approvals WHERE promotion_id = p.id) a) END AS approvals,
          CASE WHEN ${WAITING} THEN
            (SELECT coalesce(json_agg(s ORDER BY s.uploaded_at DESC), '[]'::json) FROM
               (SELECT digest, scanner, format, uploaded_at, counts FROM scan_reports WHERE digest IN (SELECT digest FROM pins)) s) END AS scans,
          CASE WHEN ${WAITING} THEN
            (SELECT coalesce(json_agg(x), '[]'::json) FROM
               (SELECT id, digest, max_severity, reason, approver, expires_at FROM security_exceptions WHERE digest IN (SELECT digest FROM pins)) x) END AS exceptions
     FROM p LEFT JOIN e ON true`;

const READ = preparedStatement("promotion_gate_inputs", statement(false));
const LOCK = preparedStatement("promotion_gate_inputs_locked", statement(true));

/**
 * The promotion `id` with its gate facts; undefined when there is no such promotion or, with `lock`, when another
 * transaction holds its row (FOR UPDATE SKIP LOCKED: that one is moving it).
 */
export async function readGateInputs<R extends GateSubject>(db: Queryable, id: string, opts: { lock: boolean }): Promise<(R & GateFacts) | undefined> {
  const r = await db.query<R & GateFacts>(opts.lock ? LOCK : READ, [id]);
  return r.rows[0];
}

/** The gates' context from a row of readGateInputs (a promotion waiting for its gates) and its release. */
export function gateContext(p: GateSubject & GateFacts, release: ReleaseView): GateContext {
  const byDigest: GateContext["scans"] = {};
  for (const x of p.scans ?? []) (byDigest[x.digest] ??= []).push({ scanner: x.scanner, format: x.format, uploadedAt: new Date(x.uploaded_at), counts: x.counts });
  const bg = p.break_glass;
  return {
    promotion: {
      id: p.id,
      requestedBy: p.requested_by,
      requestedAt: new Date(p.requested_at),
      environment: p.environment,
      previousEnvironment: p.previous,
      breakGlass: bg ? { by: bg.by, ...(bg.roles ? { roles: bg.roles } : {}), reason: bg.reason, at: new Date(bg.at) } : null,
    },
    release: {
      id: release.id,
      name: release.name,
      version: release.version,
      createdAt: new Date(release.createdAt),
      labels: labelsOf(release.provenance),
      provenance: release.provenance,
      pins: release.pins.map((x) => ({ component: x.component, repository: x.repository, digest: x.digest })),
    },
    digestSetHash: p.digest_set_hash,
    approvals: (p.approvals ?? []).map((a) => ({ subject: a.subject, groups: a.groups, roles: a.roles, decision: a.decision, digestSetHash: a.digest_set_hash, at: new Date(a.at), comment: a.comment })),
    priorSuccess: p.previous && p.prior_success ? { environment: p.previous, finishedAt: new Date(p.prior_success) } : null,
    scans: byDigest,
    exceptions: (p.exceptions ?? []).map((e) => ({ id: e.id, digest: e.digest, maxSeverity: e.max_severity, reason: e.reason, approver: e.approver, expiresAt: new Date(e.expires_at) })),
  };
}

/** The environment's settings from a row of readGateInputs; ENVIRONMENT_NOT_FOUND when it is gone. */
export function environmentSettings(p: GateSubject & GateFacts): Record<string, unknown> {
  if (!p.env_settings) throw new FerryError("ENVIRONMENT_NOT_FOUND", `no environment ${p.environment}`);
  return p.env_settings;
}

function labelsOf(provenance: Record<string, unknown>): Record<string, string> {
  const l = provenance["labels"];
  if (typeof l !== "object" || l === null || Array.isArray(l)) return {};
  return Object.fromEntries(Object.entries(l).filter((e): e is [string, string] => typeof e[1] === "string"));
}
