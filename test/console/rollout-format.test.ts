// The console's reading of a rollout (console/src/rollout-format.ts): the strategy in words, per-target outcomes of a
// wave, router weights and their bar, canary analysis with its numbers, a soak's time left, what an abort would roll
// back, and why a rollout stopped. Step results are free-form JSON: malformed parts are left out, never shown wrong.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  describeStrategy,
  formatMeasure,
  promotable,
  reasonParts,
  spanText,
  stepAnalysis,
  stepTargetNames,
  stepWeights,
  targetOutcomes,
  targetsToRollBack,
  waitLeft,
  waveDeployments,
  weightBar,
  type Rollout,
  type RolloutStep,
} from "../../console/src/rollout-format.js";

const targets = [
  { id: "tgt_a", name: "web-a" },
  { id: "tgt_b", name: "web-b" },
  { id: "tgt_c", name: "web-c" },
];

function step(p: Partial<RolloutStep> & Pick<RolloutStep, "index" | "kind">): RolloutStep {
  return { phase: "forward", name: `step ${p.index}`, state: "pending", attempts: 0, spec: {}, startedAt: null, finishedAt: null, deadlineAt: null, wakeAt: null, result: {}, ...p };
}

function rollout(steps: RolloutStep[], p: Partial<Rollout> = {}): Rollout {
  return {
    id: "rol_1",
    deploymentId: "dep_1",
    environment: "dev",
    releaseId: "rel_1",
    strategy: { kind: "rolling", batch: { count: 1 }, soakSeconds: 300, approvalBetweenSteps: true, rollback: "auto", failureThreshold: 0 },
    state: "running",
    currentStep: 0,
    paused: false,
    abortRequested: false,
    reason: null,
    requestedBy: "rita",
    targets,
    createdAt: "2030-01-01T00:00:00.000Z",
    updatedAt: "2030-01-01T00:00:00.000Z",
    finishedAt: null,
    steps,
    ...p,
  };
}

describe("the console's rollout formatting", () => {
  it("says the strategy in words", () => {
    assert.equal(describeStrategy(rollout([]).strategy), "rolling, 1 target per batch, soak 5 min, approval between batches, rollback auto");
    assert.equal(describeStrategy({ kind: "rolling", batch: { percent: 25 }, maxUnavailable: 2, soakSeconds: 0, approvalBetweenSteps: false, failureThreshold: 1, rollback: "manual" }), "rolling, 25% of the targets per batch, at most 2 unavailable, tolerates 1 failed target per wave, rollback manual");
    assert.equal(describeStrategy({ kind: "canary", steps: [{ weight: 5, bakeSeconds: 60 }, { weight: 50, bakeSeconds: 60 }, { weight: "x" }], rollback: "auto" }), "canary, weights 5% → 50%, rollback auto");
    assert.equal(spanText(3725), "1 h 2 min");
    assert.equal(spanText(61), "1 min 1 s");
    assert.equal(spanText(-4), "0 s");
  });

  it("reads a wave's outcomes in plan order, its deployments and its targets, skipping malformed entries", () => {
    const s = step({
      index: 0,
      kind: "wave",
      spec: { targets: ["tgt_b", "tgt_a", 7] },
      result: {
        deployments: ["dep_1", 3, "dep_2"],
        targets: {
          tgt_b: { name: "web-b", state: "failed", code: "HEALTH_CHECK_FAILED", message: "no answer", deployment: "dep_2" },
          tgt_a: { name: "web-a", state: "succeeded", code: null, message: null, deployment: "dep_1" },
          tgt_x: { state: 5 },
          tgt_y: "nonsense",
        },
      },
    });
    assert.deepEqual(targetOutcomes(s, targets).map((o) => [o.name, o.state, o.code, o.deployment]), [
      ["web-a", "succeeded", null, "dep_1"],
      ["web-b", "failed", "HEALTH_CHECK_FAILED", "dep_2"],
    ]);
    assert.deepEqual(waveDeployments(s), ["dep_1", "dep_2"]);
    assert.deepEqual(stepTargetNames(s, targets), ["web-b", "web-a"]);
    assert.deepEqual(targetOutcomes(step({ index: 1, kind: "wave", result: { targets: [1, 2] } }), targets), []);
  });

  it("reads router weights per target and draws their bar; out-of-range weights are left out", () => {
    const s = step({
      index: 2,
      kind: "weights",
      spec: { newWeight: 10, targets: ["tgt_a", "tgt_b"] },
      result: { targets: { tgt_a: { weights: { stable: 90, new: 10 } }, tgt_b: { weights: { stable: 150, new: 10 } }, tgt_c: { weights: { stable: 0, new: 0 } } } },
    });
    assert.deepEqual(stepWeights(s, targets), [
      { targetId: "tgt_a", name: "web-a", stable: 90, new: 10 },
      { targetId: "tgt_c", name: "web-c", stable: 0, new: 0 },
    ]);
    assert.deepEqual(weightBar({ stable: 90, new: 10 }), { stable: 90, new: 10 });
    assert.deepEqual(weightBar({ stable: 1, new: 2 }), { stable: 33.3, new: 66.7 });
    assert.deepEqual(weightBar({ stable: 0, new: 0 }), { stable: 0, new: 0 });
  });

  it("reads a canary analysis with its measurements' numbers, and ignores a result that is not one", () => {
    const s = step({
      index: 4,
      kind: "analysis",
      state: "failed",
      result: {
        analysis: {
          verdict: "fail",
          attempt: 2,
          perTarget: [
            {
              target: "web-a",
              verdict: "fail",
              measurements: [
                { name: "error-rate", verdict: "fail", value: 0.0423, threshold: 0.01, detail: "42 of 993 requests answered 5xx" },
                { name: "latency-ratio", verdict: "pass", value: 1.1234, threshold: 1.5, detail: "12 ms against 11 ms" },
                { name: "requests", verdict: "pass", value: 993, threshold: 50, detail: "" },
                { name: "epoch", verdict: "maybe", value: 1, threshold: 1, detail: "" },
              ],
              deltas: { new: { requests: 993, errors5xx: 42 }, stable: { requests: 8800 } },
            },
          ],
          external: [{ name: "probe", verdict: "pass", value: "200", threshold: "2xx", detail: "GET /health" }],
        },
      },
    });
    const a = stepAnalysis(s)!;
    assert.equal(a.verdict, "fail");
    assert.equal(a.attempt, 2);
    assert.deepEqual(a.perTarget[0]!.measurements.map((m) => [m.name, m.verdict, m.value, m.threshold]), [
      ["error-rate", "fail", "4.23 %", "1 %"],
      ["latency-ratio", "pass", "1.12×", "1.5×"],
      ["requests", "pass", "993", "50"],
    ]);
    assert.deepEqual(a.perTarget[0]!.deltas, [["new requests", "993"], ["new errors5xx", "42"], ["stable requests", "8,800"]]);
    assert.deepEqual(a.external.map((m) => [m.name, m.value, m.threshold]), [["probe", "200", "2xx"]]);
    assert.equal(stepAnalysis(step({ index: 4, kind: "analysis", result: { analysis: { verdict: "great" } } })), null);
    assert.equal(stepAnalysis(step({ index: 4, kind: "analysis" })), null);
    assert.equal(formatMeasure("avgResponseMs", 12.6), "13 ms");
    assert.equal(formatMeasure("x", null), "—");
  });

  it("counts a soak down, offers promote only on a running wait or approval, and names what an abort rolls back", () => {
    const wave1 = step({ index: 0, kind: "wave", state: "succeeded", spec: { targets: ["tgt_a"] }, result: { targets: { tgt_a: { name: "web-a", state: "succeeded" } } } });
    const soak = step({ index: 1, kind: "wait", state: "running", spec: { seconds: 300, promotable: true }, wakeAt: "2030-01-01T00:05:00.000Z" });
    const approval = step({ index: 2, kind: "approval", spec: { reason: "an approval is required after batch 1" } });
    const wave2 = step({ index: 3, kind: "wave", spec: { targets: ["tgt_b"] } });
    const r = rollout([wave1, soak, approval, wave2], { currentStep: 1 });
    assert.equal(waitLeft(soak, Date.parse("2030-01-01T00:03:20.500Z")), 100);
    assert.equal(waitLeft(soak, Date.parse("2030-01-01T00:06:00.000Z")), 0);
    assert.equal(waitLeft(approval, 0), null);
    assert.equal(promotable(r)?.index, 1);
    assert.equal(promotable({ ...r, state: "halted" }), null);
    assert.equal(promotable({ ...r, currentStep: 3, steps: [wave1, soak, approval, { ...wave2, state: "running" }] }), null);
    assert.equal(promotable(rollout([wave1, { ...soak, spec: { seconds: 300, promotable: false } }], { currentStep: 1 })), null);
    assert.deepEqual(targetsToRollBack(r), ["web-a"]);
    // A running wave's targets count: a task already delivered may still succeed.
    assert.deepEqual(targetsToRollBack(rollout([wave1, soak, approval, { ...wave2, state: "running" }], { currentStep: 3 })), ["web-a", "web-b"]);
    assert.deepEqual(targetsToRollBack(rollout([step({ index: 0, kind: "wave", state: "running", spec: { targets: [] } })])), []);
  });

  it("says why a rollout stopped: the step, code and message, an abort, a failed rollback", () => {
    const steps = [step({ index: 0, kind: "wave" }), step({ index: 1, kind: "wave", name: "batch 2" })];
    assert.deepEqual(reasonParts({ steps, reason: { step: 1, stepName: "batch 2", code: "ROLLOUT_WAVE_FAILED", message: "1 of 1 targets failed" } }), {
      step: "step 2 (batch 2)",
      code: "ROLLOUT_WAVE_FAILED",
      message: "1 of 1 targets failed",
      by: null,
      abortedBy: null,
      rollbackFailed: null,
    });
    const aborted = reasonParts({ steps, reason: { code: "ROLLOUT_ABORTED", message: "bad metrics", by: "rita" } })!;
    assert.equal(aborted.step, null);
    assert.equal(aborted.by, "rita");
    const failed = reasonParts({ steps, reason: { step: 1, code: "X", message: "m", rollbackFailed: { step: 0, code: "Y", message: "n" } } })!;
    assert.equal(failed.step, "step 2 (batch 2)", "the step's name is looked up when the reason lacks it");
    assert.equal(failed.rollbackFailed?.code, "Y");
    assert.equal(reasonParts({ steps, reason: null }), null);
  });
});
