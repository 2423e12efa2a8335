import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { planRollback, planRollout, rollingBatches, type RolloutStep } from "./planner.js";
import { parseStrategy } from "./strategy.js";

const targets = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `t${i + 1}`, name: `web-${i + 1}` }));
const shape = (steps: RolloutStep[]): string[] =>
  steps.map((s) => {
    switch (s.kind) {
      case "wave":
        return `wave ${s.action} [${s.targets.join(",")}] ${s.phases.join(">")}`;
      case "weights":
        return `weights ${s.newWeight}${s.split ? ` by ${s.split.by}:${s.split.name}` : ""} [${s.targets.join(",")}]`;
      case "wait":
        return `wait ${s.seconds}`;
      case "analysis":
        return `analysis at ${s.weight}`;
      case "approval":
        return "approval";
    }
  });

describe("rollout planner", () => {
  it("all-at-once is one wave of every phase on every target (today's behaviour)", () => {
    const plan = planRollout(parseStrategy("all-at-once"), targets(3));
    assert.deepEqual(shape(plan.steps), ["wave deploy [t1,t2,t3] prepare>start>health>switch>retire"]);
    assert.equal(plan.steps[0]!.timeoutSeconds, 900);
    assert.equal(plan.steps[0]!.retries, 2);
  });

  it("rolling by percentage: batches rounded up, a soak between batches and none after the last", () => {
    const plan = planRollout(parseStrategy({ kind: "rolling", batch: "25%", soakSeconds: 10 }), targets(6));
    assert.deepEqual(shape(plan.steps), [
      "wave deploy [t1,t2] prepare>start>health>switch>retire",
      "wait 10",
      "wave deploy [t3,t4] prepare>start>health>switch>retire",
      "wait 10",
      "wave deploy [t5,t6] prepare>start>health>switch>retire",
    ]);
  });

  it("rolling over 20 targets in batches of 25 % makes 4 batches of 5", () => {
    const plan = planRollout(parseStrategy({ kind: "rolling", batch: "25%", soakSeconds: 10 }), targets(20));
    const waves = plan.steps.filter((s) => s.kind === "wave");
    assert.deepEqual(waves.map((w) => (w.kind === "wave" ? w.targets.length : 0)), [5, 5, 5, 5]);
    assert.equal(plan.steps.filter((s) => s.kind === "wait").length, 3);
  });

  it("rolling by count, capped by maxUnavailable, with approvals between batches", () => {
    const plan = planRollout(parseStrategy({ kind: "rolling", batch: 3, maxUnavailable: 2, approvalBetweenSteps: true }), targets(5));
    assert.deepEqual(shape(plan.steps), [
      "wave deploy [t1,t2] prepare>start>health>switch>retire",
      "approval",
      "wave deploy [t3,t4] prepare>start>health>switch>retire",
      "approval",
      "wave deploy [t5] prepare>start>health>switch>retire",
    ]);
  });

  it("batches never exceed the targets and are at least one", () => {
    assert.deepEqual(rollingBatches(["a"], { percent: 1 }), [["a"]]);
    assert.deepEqual(rollingBatches(["a", "b"], { count: 10 }), [["a", "b"]]);
    assert.deepEqual(rollingBatches([], { count: 1 }), []);
    assert.deepEqual(rollingBatches(["a", "b", "c"], { percent: 100 }, 1), [["a"], ["b"], ["c"]]);
  });

  it("blue-green starts the idle slot everywhere, then switches and retires (retaining the old slot)", () => {
    const plan = planRollout(parseStrategy({ kind: "blue-green" }), targets(2));
    assert.deepEqual(shape(plan.steps), ["wave deploy [t1,t2] prepare>start>health", "wave deploy [t1,t2] switch>retire"]);
  });

  it("canary: a weights step, a bake and an analysis per step below 100, then the switch", () => {
    const s = parseStrategy({ kind: "canary", steps: [{ weight: 5, bakeSeconds: 30 }, { weight: 25, bakeSeconds: 60 }, { weight: 50, bakeSeconds: 60 }] });
    const plan = planRollout(s, targets(1));
    assert.deepEqual(shape(plan.steps), [
      "wave deploy [t1] prepare>start>health",
      "weights 5 [t1]",
      "wait 30",
      "analysis at 5",
      "weights 25 [t1]",
      "wait 60",
      "analysis at 25",
      "weights 50 [t1]",
      "wait 60",
      "analysis at 50",
      "wave deploy [t1] switch>retire",
    ]);
    const analysis = plan.steps.find((x) => x.kind === "analysis");
    assert.equal(analysis?.kind === "analysis" && analysis.config.minRequests, 50);
  });

  it("A/B: a sticky split by cookie with the allowlist, a bake, an analysis, then B takes all", () => {
    const s = parseStrategy({ kind: "ab", split: { by: "cookie", name: "uid", percent: 50 }, allowlist: ["tester-1"], bakeSeconds: 120 });
    const plan = planRollout(s, targets(1));
    assert.deepEqual(shape(plan.steps), ["wave deploy [t1] prepare>start>health", "weights 50 by cookie:uid [t1]", "wait 120", "analysis at 50", "wave deploy [t1] switch>retire"]);
    const w = plan.steps[1];
    assert.deepEqual(w?.kind === "weights" && w.split?.allowlist, ["tester-1"]);
  });

  it("is pure: the same input gives the same plan", () => {
    const s = parseStrategy({ kind: "canary", steps: [{ weight: 10, bakeSeconds: 5 }] });
    assert.deepEqual(planRollout(s, targets(4)), planRollout(s, targets(4)));
  });
});

describe("rollback planner", () => {
  it("in-place strategies redeploy the previous digests of the updated targets only, in one wave", () => {
    const plan = planRollback(parseStrategy({ kind: "rolling", batch: 2 }), ["t1", "t2"]);
    assert.deepEqual(shape(plan.steps), ["wave rollback [t1,t2] prepare>start>health>switch>retire"]);
  });

  it("slot strategies take traffic off the new slot before stopping it, and flip switched targets back", () => {
    const s = parseStrategy({ kind: "blue-green" });
    assert.deepEqual(shape(planRollback(s, ["t1", "t2"]).steps), ["weights 0 [t1,t2]", "wave rollback [t1,t2] restore"]);
    assert.deepEqual(shape(planRollback(s, ["t1", "t2"], ["t2"]).steps), ["weights 0 [t1]", "wave rollback [t1] restore", "wave rollback [t2] prepare>start>health>switch>retire"]);
  });

  it("nothing updated means nothing to roll back", () => {
    assert.deepEqual(planRollback(parseStrategy("all-at-once"), []).steps, []);
  });
});
