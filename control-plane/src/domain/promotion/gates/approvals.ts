// Approvals gate: N distinct approvers from a named group, separation of duties, bound to the exact release.
//
// Which decisions count:
//   - only decisions given for this release's digest set (a different set of images needs new approvals);
//   - only from subjects in the group who hold the approver role (admin implies it, as everywhere in Ferry);
//   - the requester's approval never counts;
//   - a subject counts once, however many times they approved;
//   - any counted rejection fails the gate for good (details.final = true). A requester's rejection would count too
//     (it can only make the release safer), though the promotion service takes no decision from the requester.
import { satisfies, isRole } from "../../auth/roles.js";
import { checkObject } from "../../catalog/config-schema.js";
import type { ApprovalRecord, GateContext, GateEvaluator, GateResult } from "./types.js";

export interface ApprovalsConfig {
  group: string;
  count: number;
}

export type ApprovalsInput = Pick<GateContext, "promotion" | "digestSetHash" | "approvals">;

const KIND = "approvals";

function isEligible(a: ApprovalRecord, group: string): boolean {
  return a.groups.includes(group) && satisfies(a.roles.filter(isRole), "approver");
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

export const approvalsGate: GateEvaluator<ApprovalsConfig, ApprovalsInput> = {
  kind: KIND,

  parseConfig(raw: unknown): ApprovalsConfig {
    const c = checkObject(raw, {
      group: { type: "string", required: true, maxLength: 128 },
      count: { type: "integer", required: true, min: 1, max: 100 },
    }, "config");
    return { group: c.group as string, count: c.count as number };
  },

  evaluate(config: ApprovalsConfig, input: ApprovalsInput, _now: Date): GateResult {
    const { group, count } = config;
    const requester = input.promotion.requestedBy;
    const approvers: string[] = [];
    const ignored: { subject: string; decision: string; why: string }[] = [];
    const rejections: ApprovalRecord[] = [];
    const seen = new Set<string>();
    // Oldest first, so "approved twice" is reported against the later record and the first one is what counts.
    const decisions = [...input.approvals].sort((a, b) => a.at.getTime() - b.at.getTime());

    for (const a of decisions) {
      const ignore = (why: string): void => { ignored.push({ subject: a.subject, decision: a.decision, why }); };
      if (a.digestSetHash !== input.digestSetHash) { ignore("decided on a different set of images (another release)"); continue; }
      if (!isEligible(a, group)) {
        ignore(a.groups.includes(group) ? "does not hold the approver role" : `is not in group ${group}`);
        continue;
      }
      if (a.decision === "reject") { rejections.push(a); continue; }
      if (a.subject === requester) { ignore("requested the promotion and cannot approve it"); continue; }
      if (seen.has(a.subject)) { ignore("already approved (a subject counts once)"); continue; }
      seen.add(a.subject);
      approvers.push(a.subject);
    }

    const details: Record<string, unknown> = {
      group, required: count, approvers, digestSetHash: input.digestSetHash, ignored,
      rejections: rejections.map((r) => ({ subject: r.subject, at: r.at.toISOString(), comment: r.comment })),
    };

    if (rejections.length > 0) {
      const who = rejections
        .map((r) => `${r.subject} rejected it${r.comment ? `: "${r.comment}"` : " (no comment)"}`)
        .join("; ");
      return {
        gate: KIND, name: KIND, state: "failed",
        reason: `rejected by group ${group}: ${who}`,
        remedy: "a rejection ends the promotion; address the objection and request a new promotion",
        details: { ...details, final: true },
      };
    }

    if (approvers.length >= count) {
      return {
        gate: KIND, name: KIND, state: "passed",
        reason: `${approvers.length} of ${count} approvals from group ${group} (${approvers.join(", ")})`,
        remedy: null, details,
      };
    }

    const missing = count - approvers.length;
    const notes = [`${requester} cannot approve their own request`];
    for (const i of ignored) {
      // The requester's own attempt is already covered by the note above.
      if (i.subject === requester && i.why.startsWith("requested")) continue;
      notes.push(`${i.subject}'s ${i.decision === "approve" ? "approval" : "rejection"} does not count: ${i.subject} ${i.why}`);
    }
    return {
      gate: KIND, name: KIND, state: "pending",
      reason: `${approvers.length} of ${count} approvals from group ${group}` +
        (approvers.length > 0 ? ` (${approvers.join(", ")})` : ""),
      remedy: `needs ${plural(missing, "more approval")} from group ${group}; ${notes.join("; ")}`,
      details,
    };
  },
};
