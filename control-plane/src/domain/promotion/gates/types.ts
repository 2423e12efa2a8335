// Terms (promotion gates):
//   gate          — one check a promotion must pass before it deploys into an environment; an environment declares
//                   its gates in order under `settings.gates`, each with a kind, a name and a config
//   kind          — which evaluator runs the gate: approvals, prior-environment, security, freeze, policy
//   evaluator     — pure code for one kind: validates the gate's config once, then judges a promotion from facts
//                   handed to it (no database, no clock of its own: `now` is a parameter)
//   passed        — the gate has nothing against the promotion
//   pending       — the gate would pass after something expected happens (an approval, a soak, a scan upload)
//   failed        — the gate says no on the facts it has; waiting alone does not help, someone has to act (record
//                   an exception, break glass, cut a new release). Only an approvals rejection is final: it ends
//                   the promotion (details.final = true)
//   digest set    — the images a release pins, as `repository@sha256:…` lines; approvals are bound to its hash, so
//                   a release with different images needs fresh approvals
//   break glass   — an audited override of a freeze window, by a holder of a named role, with a reason
//
// A gate that cannot be evaluated because of a fault (bad input from the caller, a bug) throws; it never turns into
// `failed`, which is reserved for a gate that said no.
import { createHash } from "node:crypto";

export type GateState = "passed" | "pending" | "failed";

export interface GateResult {
  /** The evaluator kind, e.g. "approvals". */
  gate: string;
  /** The name the environment gave the gate, e.g. "prod approvers". */
  name: string;
  state: GateState;
  /** Why the gate is in this state, in words an operator reads in `why-blocked`. */
  reason: string;
  /** What would unblock it; null when passed. */
  remedy: string | null;
  /** Structured facts behind the decision; they go into the evidence packet as they are. */
  details: Record<string, unknown>;
}

export interface GateEvaluator<Config, Input = GateContext> {
  readonly kind: string;
  /**
   * Validates a gate's raw config (JSON from the environment's settings). Throws FerryError VALIDATION_FAILED whose
   * message starts with the field path rooted at `config` (e.g. "config.count: must be at least 1") and whose
   * details carry that path as `field`.
   */
  parseConfig(raw: unknown): Config;
  /**
   * Judges one promotion. The result's `name` is the kind; the registry replaces it with the declared gate name.
   * Must be fast (no I/O) and deterministic for the same (config, input, now).
   */
  evaluate(config: Config, input: Input, now: Date): GateResult;
}

export type Severity = "critical" | "high" | "medium" | "low" | "unknown";

export interface SeverityCounts {
  critical: number;
  high: number;
  medium: number;
  low: number;
  unknown: number;
}

export interface Finding {
  /** Vulnerability or rule id: CVE-2024-1234, GHSA-…, a SARIF ruleId. */
  id: string;
  severity: Severity;
  package?: string;
}

export interface ReleasePinRef {
  component: string;
  repository: string;
  digest: string;
}

export interface BreakGlass {
  by: string;
  /**
   * Roles the subject held when breaking glass. When given, the freeze gate checks the configured role against
   * them; when absent, the caller vouches that it checked the role when it recorded the override.
   */
  roles?: string[];
  reason: string;
  at: Date;
}

export interface PromotionFacts {
  id: string;
  requestedBy: string;
  requestedAt: Date;
  environment: string;
  /** The environment before this one in order; null for the first environment. */
  previousEnvironment: string | null;
  breakGlass: BreakGlass | null;
}

export interface ReleaseFacts {
  id: string;
  name: string;
  version: string;
  createdAt: Date;
  labels?: Record<string, string>;
  provenance: Record<string, unknown>;
  pins: ReleasePinRef[];
}

export interface ApprovalRecord {
  subject: string;
  groups: string[];
  roles: string[];
  decision: "approve" | "reject";
  /** digestSetHash() of the release the decision was given for. */
  digestSetHash: string;
  at: Date;
  comment: string | null;
}

export interface PriorSuccess {
  environment: string;
  finishedAt: Date;
}

export interface ScanReportSummary {
  /** Scanner name and version as the report states them, e.g. "trivy 0.50.1". */
  scanner: string;
  /** "trivy" or "sarif"; informational. */
  format: string;
  uploadedAt: Date;
  /** A missing severity reads as 0. */
  counts: Partial<SeverityCounts>;
  /** Present when the stored report kept its findings; exceptions by vulnerability id need them. */
  findings?: Finding[];
}

export interface SecurityException {
  digest: string;
  /** Accept findings up to and including this severity (critical, high, medium, low)… */
  maxSeverity?: string;
  /** …or exactly these vulnerability ids. */
  vulnerabilities?: string[];
  reason: string;
  approver: string;
  expiresAt: Date;
}

/** Everything a gate may look at. The promotion service loads it; evaluators only read it. */
export interface GateContext {
  promotion: PromotionFacts;
  release: ReleaseFacts;
  /** digestSetHash(release.pins). */
  digestSetHash: string;
  approvals: ApprovalRecord[];
  /** The latest success of this release in promotion.previousEnvironment, if any. */
  priorSuccess: PriorSuccess | null;
  /** Scan reports by image digest (sha256:…), in any order. */
  scans: Record<string, ScanReportSummary[]>;
  exceptions: SecurityException[];
}

/**
 * The identity of a release's images: "sha256:" + hex SHA-256 of its distinct `repository@digest` lines, sorted by
 * code unit and each ending in "\n". Component names do not take part: renaming a component does not change what
 * runs, and two releases of the same images are the same thing to approve.
 */
export function digestSetHash(pins: readonly Pick<ReleasePinRef, "repository" | "digest">[]): string {
  const lines = [...new Set(pins.map((p) => `${p.repository}@${p.digest}\n`))].sort();
  return `sha256:${createHash("sha256").update(lines.join("")).digest("hex")}`;
}

/** ISO-8601 in UTC without milliseconds, the form instants take in reasons and remedies. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}
