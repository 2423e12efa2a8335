// planRollback's approval option: a release not safe to roll back automatically gets an approval step before its
// rollback, whatever the strategy; nothing to roll back still plans nothing (docs/rollouts.md).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planRollback } from "./planner.js";
import { parseStrategy } from "./strategy.js";

describe("planRollback with an approval", () => {
  it("begins with an approval step carrying the reason, then the rollback the strategy plans", () => {
    const reason = "release shop@3 is marked not safe to roll back automatically";
    const rolling = planRollback(parseStrategy({ kind: "rolling", batch: 2 }), ["t1", "t2"], [], { approval: reason });
    assert.deepEqual(rolling.steps.map((s) => s.kind), ["approval", "wave"]);
    const first = rolling.steps[0]!;
    assert.ok(first.kind === "approval");
    assert.equal(first.reason, reason);
    assert.equal(first.name, "approve the rollback");
    assert.equal(first.timeoutSeconds, 7 * 24 * 3600, "an approval waits for people: a week");
    const bg = planRollback(parseStrategy({ kind: "blue-green" }), ["t1"], [], { approval: reason });
    assert.deepEqual(bg.steps.map((s) => s.kind), ["approval", "weights", "wave"]);
  });

  it("plans no approval without the option, and nothing at all when nothing was updated", () => {
    assert.deepEqual(planRollback(parseStrategy({ kind: "rolling", batch: 1 }), ["t1"]).steps.map((s) => s.kind), ["wave"]);
    assert.deepEqual(planRollback(parseStrategy({ kind: "rolling", batch: 1 }), [], [], { approval: "r" }).steps, []);
  });
});
