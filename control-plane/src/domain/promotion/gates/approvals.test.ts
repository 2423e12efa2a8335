import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { approvalsGate, type ApprovalsInput } from "./approvals.js";
import { digestSetHash, type ApprovalRecord } from "./types.js";

const HASH = digestSetHash([{ repository: "registry.example.com/shop/api", digest: `sha256:${"a".repeat(64)}` }]);
const OTHER = digestSetHash([{ repository: "registry.example.com/shop/api", digest: `sha256:${"b".repeat(64)}` }]);
const config = approvalsGate.parseConfig({ group: "prod-approvers", count: 2 });
let minute = 0;
const vote = (subject: string, over: Partial<ApprovalRecord> = {}): ApprovalRecord => ({
  subject, groups: ["prod-approvers"], roles: ["approver"], decision: "approve", digestSetHash: HASH,
  at: new Date(Date.UTC(2024, 5, 1, 12, minute++)), comment: null, ...over,
});
const input = (approvals: ApprovalRecord[]): ApprovalsInput => ({
  promotion: { id: "prm_1", requestedBy: "alice", requestedAt: new Date("2024-06-01T11:00:00Z"), environment: "prod", previousEnvironment: "staging", breakGlass: null },
  digestSetHash: HASH,
  approvals,
});
const now = new Date("2024-06-01T13:00:00Z");

describe("approvals gate", () => {
  it("validates its config naming the field", () => {
    for (const [raw, field] of [[{ count: 1 }, "config.group"], [{ group: "g", count: 0 }, "config.count"], [{ group: "g", count: 1.5 }, "config.count"], [{ group: "g", count: 1, extra: 1 }, "config.extra"], [null, "config"]] as const) {
      assert.throws(() => approvalsGate.parseConfig(raw), (e: unknown) =>
        e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.details.field === field && e.message.startsWith(`${field}:`), field);
    }
  });

  it("is pending with nobody's approval, and says the requester cannot approve", () => {
    const r = approvalsGate.evaluate(config, input([]), now);
    assert.equal(r.state, "pending");
    assert.equal(r.reason, "0 of 2 approvals from group prod-approvers");
    assert.equal(r.remedy, "needs 2 more approvals from group prod-approvers; alice cannot approve their own request");
  });

  it("does not count the requester's own approval", () => {
    const r = approvalsGate.evaluate(config, input([vote("alice"), vote("bob")]), now);
    assert.equal(r.state, "pending");
    assert.equal(r.reason, "1 of 2 approvals from group prod-approvers (bob)");
    assert.equal(r.remedy, "needs 1 more approval from group prod-approvers; alice cannot approve their own request");
  });

  it("counts a subject once", () => {
    const r = approvalsGate.evaluate(config, input([vote("bob"), vote("bob")]), now);
    assert.equal(r.state, "pending");
    assert.match(r.remedy ?? "", /bob's approval does not count: bob already approved \(a subject counts once\)/);
    assert.deepEqual(r.details.approvers, ["bob"]);
  });

  it("does not count approvals given for a different release", () => {
    const r = approvalsGate.evaluate(config, input([vote("bob"), vote("carol", { digestSetHash: OTHER })]), now);
    assert.equal(r.state, "pending");
    assert.match(r.remedy ?? "", /carol's approval does not count: carol decided on a different set of images \(another release\)/);
  });

  it("requires the group and the approver role (admin implies it)", () => {
    const r = approvalsGate.evaluate(config, input([
      vote("bob", { groups: ["dev-approvers"] }),
      vote("carol", { roles: ["deployer"] }),
      vote("dan", { roles: ["admin"] }),
    ]), now);
    assert.equal(r.state, "pending");
    assert.deepEqual(r.details.approvers, ["dan"]);
    assert.match(r.remedy ?? "", /bob's approval does not count: bob is not in group prod-approvers/);
    assert.match(r.remedy ?? "", /carol's approval does not count: carol does not hold the approver role/);
  });

  it("passes with enough distinct approvers", () => {
    const r = approvalsGate.evaluate(config, input([vote("bob"), vote("carol", { comment: "lgtm" })]), now);
    assert.equal(r.state, "passed");
    assert.equal(r.remedy, null);
    assert.equal(r.reason, "2 of 2 approvals from group prod-approvers (bob, carol)");
  });

  it("fails for good on a rejection, saying who and why, even with enough approvals", () => {
    const r = approvalsGate.evaluate(config, input([vote("bob"), vote("carol"), vote("erin", { decision: "reject", comment: "migration not reviewed" })]), now);
    assert.equal(r.state, "failed");
    assert.equal(r.reason, 'rejected by group prod-approvers: erin rejected it: "migration not reviewed"');
    assert.match(r.remedy ?? "", /a rejection ends the promotion/);
    assert.equal(r.details.final, true);
  });

  it("ignores a rejection from outside the group or for another release", () => {
    const r = approvalsGate.evaluate(config, input([
      vote("mallory", { decision: "reject", groups: [] }),
      vote("erin", { decision: "reject", digestSetHash: OTHER }),
      vote("bob"), vote("carol"),
    ]), now);
    assert.equal(r.state, "passed");
    assert.equal((r.details.ignored as unknown[]).length, 2);
  });
});

describe("digestSetHash", () => {
  it("depends on the images only, not their order, component names or duplicates", () => {
    const a = { component: "api", repository: "r.example.com/api", digest: `sha256:${"1".repeat(64)}` };
    const b = { component: "web", repository: "r.example.com/web", digest: `sha256:${"2".repeat(64)}` };
    assert.equal(digestSetHash([a, b]), digestSetHash([b, { ...a, component: "renamed" }, a]));
    assert.notEqual(digestSetHash([a, b]), digestSetHash([a]));
    assert.match(digestSetHash([a]), /^sha256:[0-9a-f]{64}$/);
  });

  it("is the sha256 of sorted repository@digest lines", async () => {
    const { createHash } = await import("node:crypto");
    const pins = [{ repository: "b/x", digest: "sha256:2" }, { repository: "a/y", digest: "sha256:1" }];
    assert.equal(digestSetHash(pins), `sha256:${createHash("sha256").update("a/y@sha256:1\nb/x@sha256:2\n").digest("hex")}`);
  });
});
