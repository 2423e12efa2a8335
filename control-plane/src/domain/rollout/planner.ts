// Pure planners: a checked strategy and the targets in, the persisted plan of steps out. No I/O, no clock: the same
// input always gives the same plan, so a replica that takes a rollout over reads the plan from the database and
// never re-plans it. The engine executes the steps one by one (docs/rollouts.md#the-engine).
//
// Step kinds:
//   wave       a run of phases on a set of targets: one signed task per target, all queued at once; the wave fails
//              when more than `failureThreshold` of them fail
//   weights    router weights on each target: the share of requests the new slot gets (0–100), optionally split
//              sticky by a cookie or header hash; one signed router task per target
//   wait       a soak (rolling) or a bake (canary): time passes, nothing is sent
//   analysis   counters read from every target's router (one measure task each), compared stable vs new
//   approval   the rollout waits for an operator's "promote"
//
// Blue-green, canary and A/B run the new version in the target's idle slot beside the stable one; the stable slot
// is retained (stopped, not removed) after the switch, so rolling back is a flip of the router, no pull, no create.
import type { Phase } from "@ferry/contract";

import type { AnalysisConfig, Strategy } from "./strategy.js";

export interface PlanTarget {
  id: string;
  name: string;
}

export type StepAction = "deploy" | "rollback";

export interface WaveStep {
  kind: "wave";
  name: string;
  action: StepAction;
  targets: string[];
  phases: Phase[];
}

export interface WeightsStep {
  kind: "weights";
  name: string;
  targets: string[];
  /** Share of requests, 0–100, for the new slot; the stable slot gets the rest. */
  newWeight: number;
  /** A/B: requests are split by a hash of this cookie or header instead of at random (sticky per user). */
  split?: { by: "cookie" | "header"; name: string; allowlist: string[] };
}

export interface WaitStep {
  kind: "wait";
  name: string;
  seconds: number;
  /** A bake may be cut short by an operator's promote; a soak between rolling batches too. */
  promotable: boolean;
}

export interface AnalysisStep {
  kind: "analysis";
  name: string;
  targets: string[];
  config: AnalysisConfig;
  /** The weight the new slot had while the counters ran, for the evidence. */
  weight: number;
}

export interface ApprovalStep {
  kind: "approval";
  name: string;
  reason: string;
}

export type RolloutStep = WaveStep | WeightsStep | WaitStep | AnalysisStep | ApprovalStep;

/** Default per-step bounds; the engine applies them, the plan carries them so a resumed step keeps its own. */
export interface StepLimits {
  timeoutSeconds: number;
  /** Attempts after the first, for a step whose failure is retryable (a task that was not delivered, ...). */
  retries: number;
}

export interface RolloutPlan {
  strategy: Strategy["kind"];
  steps: (RolloutStep & StepLimits)[];
}

/** The phases of a deploy in place: today's behaviour, one task per target. */
export const IN_PLACE: Phase[] = ["prepare", "start", "health", "switch", "retire"];
/** Start the new version in the idle slot and check it; nothing that serves changes. */
export const START_BESIDE: Phase[] = ["prepare", "start", "health"];

const WAVE_LIMITS: StepLimits = { timeoutSeconds: 900, retries: 2 };
const ROUTER_LIMITS: StepLimits = { timeoutSeconds: 60, retries: 3 };

function limitsFor(step: RolloutStep): StepLimits {
  switch (step.kind) {
    case "wave":
      return WAVE_LIMITS;
    case "weights":
    case "analysis":
      return ROUTER_LIMITS;
    case "wait":
      return { timeoutSeconds: step.seconds + 60, retries: 0 };
    case "approval":
      // An approval waits for people: a week, then the rollout fails rather than hold the environment forever.
      return { timeoutSeconds: 7 * 24 * 3600, retries: 0 };
  }
}

const withLimits = (steps: RolloutStep[]): RolloutPlan["steps"] => steps.map((s) => ({ ...s, ...limitsFor(s) }));

/** Splits `targets` into batches for a rolling deploy: count or percent (rounded up), capped by maxUnavailable. */
export function rollingBatches<T>(targets: readonly T[], batch: { count: number } | { percent: number }, maxUnavailable?: number): T[][] {
  if (targets.length === 0) return [];
  let size = "count" in batch ? batch.count : Math.ceil((targets.length * batch.percent) / 100);
  if (maxUnavailable !== undefined) size = Math.min(size, maxUnavailable);
  size = Math.max(1, Math.min(size, targets.length));
  const out: T[][] = [];
  for (let i = 0; i < targets.length; i += size) out.push(targets.slice(i, i + size));
  return out;
}

/** The plan that deploys a release to `targets` with `strategy`. Targets keep the order given (the environment's). */
export function planRollout(strategy: Strategy, targets: readonly PlanTarget[]): RolloutPlan {
  const ids = targets.map((t) => t.id);
  const steps: RolloutStep[] = [];
  const approval = (after: string): void => {
    if (strategy.approvalBetweenSteps) steps.push({ kind: "approval", name: `approve after ${after}`, reason: `an approval is required after ${after}` });
  };
  switch (strategy.kind) {
    case "all-at-once":
      steps.push({ kind: "wave", name: "deploy all targets", action: "deploy", targets: ids, phases: IN_PLACE });
      break;
    case "rolling": {
      const batches = rollingBatches(ids, strategy.batch, strategy.maxUnavailable);
      batches.forEach((b, i) => {
        steps.push({ kind: "wave", name: `batch ${i + 1} of ${batches.length}`, action: "deploy", targets: b, phases: IN_PLACE });
        if (i < batches.length - 1) {
          if (strategy.soakSeconds > 0) steps.push({ kind: "wait", name: `soak after batch ${i + 1}`, seconds: strategy.soakSeconds, promotable: true });
          approval(`batch ${i + 1}`);
        }
      });
      break;
    }
    case "blue-green":
      steps.push({ kind: "wave", name: "start the new slot", action: "deploy", targets: ids, phases: START_BESIDE });
      approval("the new slot is healthy");
      steps.push({ kind: "wave", name: "switch traffic and drain the old slot", action: "deploy", targets: ids, phases: ["switch", "retire"] });
      break;
    case "canary":
      steps.push({ kind: "wave", name: "start the canary slot", action: "deploy", targets: ids, phases: START_BESIDE });
      strategy.steps.forEach((s, i) => {
        if (s.weight === 100) return;
        steps.push({ kind: "weights", name: `canary ${s.weight}%`, targets: ids, newWeight: s.weight });
        steps.push({ kind: "wait", name: `bake at ${s.weight}%`, seconds: s.bakeSeconds, promotable: true });
        steps.push({ kind: "analysis", name: `analysis at ${s.weight}%`, targets: ids, config: strategy.analysis, weight: s.weight });
        approval(`canary step ${i + 1} (${s.weight}%)`);
      });
      steps.push({ kind: "wave", name: "switch all traffic and drain the old slot", action: "deploy", targets: ids, phases: ["switch", "retire"] });
      break;
    case "ab": {
      const split = { by: strategy.split.by, name: strategy.split.name, allowlist: strategy.allowlist };
      steps.push({ kind: "wave", name: "start the B slot", action: "deploy", targets: ids, phases: START_BESIDE });
      steps.push({ kind: "weights", name: `A/B split ${strategy.split.percent}% by ${strategy.split.by} ${strategy.split.name}`, targets: ids, newWeight: strategy.split.percent, split });
      steps.push({ kind: "wait", name: "A/B bake", seconds: strategy.bakeSeconds, promotable: true });
      steps.push({ kind: "analysis", name: "A/B analysis", targets: ids, config: strategy.analysis, weight: strategy.split.percent });
      approval("the A/B analysis");
      steps.push({ kind: "wave", name: "switch all traffic to B and drain A", action: "deploy", targets: ids, phases: ["switch", "retire"] });
      break;
    }
  }
  return { strategy: strategy.kind, steps: withLimits(steps) };
}

/**
 * The plan that puts `updated` targets back, after a failure or an operator's abort. Slot strategies take traffic off
 * the new slot first (weight 0: instant, no pull, no create) and then stop what the rollout started; a target whose
 * switch already ran flips back to its retained slot. In-place strategies redeploy each updated target's previous
 * digests (the engine fills them in per target from the deployment's record), all in one wave; so does a flip back.
 * `switched`: targets whose switch step already ran (their stable slot is the retained one now).
 * `approval`: the release is not safe to roll back unattended; the plan begins with an approval step giving this reason.
 */
export function planRollback(strategy: Strategy, updated: readonly string[], switched: readonly string[] = [], opts: { approval?: string } = {}): RolloutPlan {
  if (updated.length === 0) return { strategy: strategy.kind, steps: [] };
  const steps: RolloutStep[] = [];
  if (opts.approval) steps.push({ kind: "approval", name: "approve the rollback", reason: opts.approval });
  if (strategy.kind === "all-at-once" || strategy.kind === "rolling") {
    steps.push({ kind: "wave", name: "roll updated targets back to their previous digests", action: "rollback", targets: [...updated], phases: IN_PLACE });
  } else {
    const notSwitched = updated.filter((t) => !switched.includes(t));
    const flipped = updated.filter((t) => switched.includes(t));
    if (notSwitched.length > 0) {
      steps.push({ kind: "weights", name: "take all traffic off the new slot", targets: notSwitched, newWeight: 0 });
      steps.push({ kind: "wave", name: "stop the new slot", action: "rollback", targets: notSwitched, phases: ["restore"] });
    }
    if (flipped.length > 0) {
      // A flip back is a deploy of the previous digests: the driver finds them retained in the idle slot, starts that
      // container again (no pull, no create), checks it, switches to it and drains the new slot. A lone switch with
      // the switch step's state would send traffic to the new slot again: that state names the new slot as the one
      // to switch to.
      steps.push({ kind: "wave", name: "flip back to the retained slot", action: "rollback", targets: flipped, phases: IN_PLACE });
    }
  }
  return { strategy: strategy.kind, steps: withLimits(steps) };
}
