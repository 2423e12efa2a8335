// The console builds apart from the control plane, so console/src/rollout-format.ts declares its own Rollout and
// RolloutStep, mirroring the control plane's RolloutView and RolloutStepView field for field. This file keeps them in
// step twice over: at compile time (npm run typecheck fails when a field is added, removed or retyped on either
// side), and at run time (a RolloutView the rollout service really returns has exactly the fields the console reads).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { testBackends } from "../../control-plane/src/adapters/store/test-backends.js";
import { parseStrategy } from "../../control-plane/src/domain/rollout/strategy.js";
import type { RolloutStepView, RolloutView } from "../../control-plane/src/domain/rollout/rollout-service.js";
import { loadKeys, rolloutFixture, type Keys } from "../../control-plane/src/runtime/rollout-engine.fixture.js";
import type { Rollout, RolloutStep } from "../../console/src/rollout-format.js";

// Exact type equality (not mere assignability: an optional or wider field on one side is a difference).
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
/** The fields of A and B whose types differ (never when none do). */
type Differing<A, B> = { [K in keyof A & keyof B]: Equal<A[K], B[K]> extends true ? never : K }[keyof A & keyof B];

// The same field names on both sides.
export type RolloutFieldsMatch = Expect<Equal<keyof Rollout, keyof RolloutView>>;
export type StepFieldsMatch = Expect<Equal<keyof RolloutStep, keyof RolloutStepView>>;
// The same types, field by field. Two fields are compared on their own below: steps (by their step type) and the
// strategy, which the console reads loosely by design (a kind and named settings).
export type RolloutTypesMatch = Expect<Equal<Differing<Omit<Rollout, "steps" | "strategy">, Omit<RolloutView, "steps" | "strategy">>, never>>;
export type StepTypesMatch = Expect<Equal<Differing<RolloutStep, RolloutStepView>, never>>;
export type StepsMatch = Expect<Equal<Rollout["steps"][number], RolloutStep>>;
// Every strategy the control plane sends has the kind the console reads (its other settings are read field by
// field, each checked at run time in rollout-format.ts, since the console does not share the Strategy types).
export type StrategyKindReadable = Expect<RolloutView["strategy"]["kind"] extends Rollout["strategy"]["kind"] ? true : false>;

// The field names again as values, checked against the console's types, for the run-time comparison.
const ROLLOUT_FIELDS = ["id", "deploymentId", "environment", "releaseId", "strategy", "state", "currentStep", "paused", "abortRequested", "reason", "requestedBy", "targets", "createdAt", "updatedAt", "finishedAt", "steps"] as const;
const STEP_FIELDS = ["index", "phase", "kind", "name", "state", "attempts", "spec", "startedAt", "finishedAt", "deadlineAt", "wakeAt", "result"] as const;
export type RolloutFieldList = Expect<Equal<(typeof ROLLOUT_FIELDS)[number], keyof Rollout>>;
export type StepFieldList = Expect<Equal<(typeof STEP_FIELDS)[number], keyof RolloutStep>>;

let keys: Keys;
before(async () => {
  keys = await loadKeys();
});
after(() => keys.remove());

const [backend] = testBackends();

describe("the console's rollout types and the control plane's RolloutView", () => {
  it("a rollout as the service returns it has exactly the fields the console declares, in its steps too", async (t) => {
    const fx = await rolloutFixture(backend!, t, keys);
    const { rollout } = await fx.rollouts.create({ release: "shop@2", environment: "dev", strategy: parseStrategy({ kind: "rolling", batch: 1, soakSeconds: 60 }) }, "alice");
    const read = await fx.rollouts.get(rollout.id);
    for (const view of [rollout, read, ...(await fx.rollouts.list({ limit: 5 })).items]) {
      assert.deepEqual(Object.keys(view).sort(), [...ROLLOUT_FIELDS].sort());
      assert.ok(view.steps.length > 0);
      for (const step of view.steps) assert.deepEqual(Object.keys(step).sort(), [...STEP_FIELDS].sort());
    }
  });
});
