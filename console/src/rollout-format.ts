// Reading a rollout for display: the strategy in words, what each step's result says (per-target outcomes of a wave,
// router weights, canary analysis), the time left of a wait, and which targets an abort would roll back. Pure
// functions with no DOM, so they are unit-tested on their own (console/test/). A step's `result` is free-form JSON
// written by the engine (and, for weights and analysis, by code still being built): every field is checked before it
// is shown, and anything malformed is left out rather than shown wrongly.

export type StepKind = "wave" | "weights" | "wait" | "analysis" | "approval";
export type StepState = "pending" | "running" | "succeeded" | "failed" | "skipped";
export type RolloutState = "running" | "halted" | "rolling_back" | "succeeded" | "failed" | "rolled_back";

export interface RolloutStep {
  index: number;
  phase: "forward" | "rollback";
  kind: StepKind;
  name: string;
  state: StepState;
  attempts: number;
  spec: Record<string, unknown>;
  startedAt: string | null;
  finishedAt: string | null;
  deadlineAt: string | null;
  wakeAt: string | null;
  result: Record<string, unknown>;
}

export interface Rollout {
  id: string;
  deploymentId: string;
  environment: string;
  releaseId: string;
  strategy: { kind: string } & Record<string, unknown>;
  state: RolloutState;
  currentStep: number;
  paused: boolean;
  abortRequested: boolean;
  reason: Record<string, unknown> | null;
  requestedBy: string;
  targets: { id: string; name: string }[];
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  steps: RolloutStep[];
}

export const ACTIVE: readonly RolloutState[] = ["running", "halted", "rolling_back"];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** "1 h 5 min", "45 s": a duration for a sentence. */
export function spanText(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h} h${m ? ` ${m} min` : ""}`;
}

/** The strategy in words: "rolling, 1 target per batch, soak 5 min, approval between batches, rollback auto". */
export function describeStrategy(s: Rollout["strategy"]): string {
  const parts: string[] = [s.kind];
  if (s.kind === "rolling") {
    const b = s["batch"];
    if (isObj(b) && num(b["count"]) !== null) parts.push(`${b["count"] as number} target${b["count"] === 1 ? "" : "s"} per batch`);
    else if (isObj(b) && num(b["percent"]) !== null) parts.push(`${b["percent"] as number}% of the targets per batch`);
    if (num(s["maxUnavailable"]) !== null) parts.push(`at most ${s["maxUnavailable"] as number} unavailable`);
    const soak = num(s["soakSeconds"]);
    if (soak) parts.push(`soak ${spanText(soak)}`);
  }
  if (s.kind === "canary" && Array.isArray(s["steps"])) {
    const w = (s["steps"] as unknown[]).map((x) => (isObj(x) ? num(x["weight"]) : null)).filter((x): x is number => x !== null);
    if (w.length) parts.push(`weights ${w.map((x) => `${x}%`).join(" → ")}`);
  }
  if (s["approvalBetweenSteps"] === true) parts.push(s.kind === "rolling" ? "approval between batches" : "approval between steps");
  const ft = num(s["failureThreshold"]);
  if (ft) parts.push(`tolerates ${ft} failed target${ft === 1 ? "" : "s"} per wave`);
  if (str(s["rollback"])) parts.push(`rollback ${s["rollback"] as string}`);
  return parts.join(", ");
}

export interface TargetOutcome {
  targetId: string;
  name: string;
  state: string;
  code: string | null;
  message: string | null;
  deployment: string | null;
}

/** A step's per-target outcomes (`result.targets`), in the rollout's target order; malformed entries left out. */
export function targetOutcomes(step: RolloutStep, targets: Rollout["targets"]): TargetOutcome[] {
  const raw = step.result["targets"];
  if (!isObj(raw)) return [];
  const order = (id: string) => {
    const i = targets.findIndex((t) => t.id === id);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  const out: TargetOutcome[] = [];
  for (const [id, v] of Object.entries(raw)) {
    if (!isObj(v) || !str(v["state"])) continue;
    out.push({
      targetId: id,
      name: str(v["name"]) ?? targets.find((t) => t.id === id)?.name ?? id,
      state: v["state"] as string,
      code: str(v["code"]),
      message: str(v["message"]),
      deployment: str(v["deployment"]),
    });
  }
  return out.sort((a, b) => order(a.targetId) - order(b.targetId) || a.name.localeCompare(b.name));
}

/** The deployments a wave queued (its first attempt, then retries), for links. */
export function waveDeployments(step: RolloutStep): string[] {
  const d = step.result["deployments"];
  return Array.isArray(d) ? d.filter((x): x is string => typeof x === "string") : [];
}

/** Names of the targets a step acts on (`spec.targets` holds ids). */
export function stepTargetNames(step: RolloutStep, targets: Rollout["targets"]): string[] {
  const ids = step.spec["targets"];
  if (!Array.isArray(ids)) return [];
  return ids.filter((x): x is string => typeof x === "string").map((id) => targets.find((t) => t.id === id)?.name ?? id);
}

export interface Weights {
  targetId: string;
  name: string;
  stable: number;
  new: number;
}

const pct = (v: unknown): number | null => {
  const n = num(v);
  return n !== null && n >= 0 && n <= 100 ? n : null;
};

/** Router weights per target of a weights step (`result.targets[id].weights = {stable, new}`), each 0–100. */
export function stepWeights(step: RolloutStep, targets: Rollout["targets"]): Weights[] {
  const raw = step.result["targets"];
  if (!isObj(raw)) return [];
  const out: Weights[] = [];
  for (const [id, v] of Object.entries(raw)) {
    const w = isObj(v) ? v["weights"] : null;
    if (!isObj(w)) continue;
    const stable = pct(w["stable"]);
    const fresh = pct(w["new"]);
    if (stable === null || fresh === null) continue;
    out.push({ targetId: id, name: (isObj(v) ? str(v["name"]) : null) ?? targets.find((t) => t.id === id)?.name ?? id, stable, new: fresh });
  }
  return out;
}

/** Widths (percent of a bar) for a stable/new split; both 0 (maintenance) gives two empty halves. */
export function weightBar(w: { stable: number; new: number }): { stable: number; new: number } {
  const total = w.stable + w.new;
  if (total <= 0) return { stable: 0, new: 0 };
  const fresh = Math.round((w.new / total) * 1000) / 10;
  return { stable: Math.round((100 - fresh) * 10) / 10, new: fresh };
}

export type Verdict = "pass" | "fail" | "inconclusive";
const VERDICTS: readonly string[] = ["pass", "fail", "inconclusive"];
const verdict = (v: unknown): Verdict | null => (typeof v === "string" && VERDICTS.includes(v) ? (v as Verdict) : null);

export interface Measurement {
  name: string;
  verdict: Verdict;
  value: string;
  threshold: string;
  detail: string;
}

export interface Analysis {
  verdict: Verdict;
  attempt: number | null;
  perTarget: { target: string; verdict: Verdict; measurements: Measurement[]; deltas: [string, string][] }[];
  external: Measurement[];
}

/** A measured number as it should read: rates as percentages, ratios with ×, milliseconds with ms. */
export function formatMeasure(name: string, v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "yes" : "no";
  const n = num(v);
  if (n === null) return "—";
  if (name === "error-rate") return `${(Math.round(n * 100_000) / 1000).toString()} %`;
  if (name === "latency-ratio") return `${(Math.round(n * 100) / 100).toString()}×`;
  if (/ms$|latency|response/i.test(name)) return `${Math.round(n)} ms`;
  return Number.isInteger(n) ? n.toLocaleString("en") : (Math.round(n * 1000) / 1000).toString();
}

function measurement(m: unknown): Measurement | null {
  if (!isObj(m)) return null;
  const name = str(m["name"]);
  const v = verdict(m["verdict"]);
  if (!name || !v) return null;
  return { name, verdict: v, value: formatMeasure(name, m["value"]), threshold: formatMeasure(name, m["threshold"]), detail: str(m["detail"]) ?? "" };
}

function deltas(d: unknown): [string, string][] {
  if (!isObj(d)) return [];
  const out: [string, string][] = [];
  for (const [slot, v] of Object.entries(d)) {
    if (isObj(v)) {
      for (const [k, x] of Object.entries(v)) if (num(x) !== null) out.push([`${slot} ${k}`, formatMeasure(k, x)]);
    } else if (num(v) !== null) out.push([slot, formatMeasure(slot, v)]);
  }
  return out.slice(0, 24);
}

/** A step's canary analysis (`result.analysis`), or null when there is none or it is not in the expected shape. */
export function stepAnalysis(step: RolloutStep): Analysis | null {
  const a = step.result["analysis"];
  if (!isObj(a)) return null;
  const v = verdict(a["verdict"]);
  if (!v) return null;
  const perTarget = (Array.isArray(a["perTarget"]) ? a["perTarget"] : [])
    .filter(isObj)
    .map((t) => ({
      target: str(t["target"]) ?? "?",
      verdict: verdict(t["verdict"]) ?? "inconclusive",
      measurements: (Array.isArray(t["measurements"]) ? t["measurements"] : []).map(measurement).filter((m): m is Measurement => m !== null),
      deltas: deltas(t["deltas"]),
    }));
  const external = (Array.isArray(a["external"]) ? a["external"] : []).map(measurement).filter((m): m is Measurement => m !== null);
  return { verdict: v, attempt: num(a["attempt"]), perTarget, external };
}

/** Seconds until a running wait ends (0 once due), or null when the step is not a running wait. */
export function waitLeft(step: RolloutStep, now: number): number | null {
  if (step.kind !== "wait" || step.state !== "running" || !step.wakeAt) return null;
  return Math.max(0, Math.ceil((Date.parse(step.wakeAt) - now) / 1000));
}

export function currentStep(r: Rollout): RolloutStep | null {
  return r.steps.find((s) => s.index === r.currentStep) ?? null;
}

/** Whether `promote` would act now: the rollout runs and its current step is a running promotable wait or approval. */
export function promotable(r: Rollout): RolloutStep | null {
  const s = currentStep(r);
  if (r.state !== "running" || !s || s.state !== "running") return null;
  if (s.kind === "approval" || (s.kind === "wait" && s.spec["promotable"] === true)) return s;
  return null;
}

/**
 * Targets an abort would roll back now: those a forward wave updated (succeeded) or is still updating (the running
 * wave's targets, since a task already delivered may yet succeed), in plan order.
 */
export function targetsToRollBack(r: Rollout): string[] {
  const ids = new Set<string>();
  for (const s of r.steps) {
    if (s.phase !== "forward" || s.kind !== "wave") continue;
    if (s.state === "running") for (const id of (Array.isArray(s.spec["targets"]) ? s.spec["targets"] : []) as unknown[]) if (typeof id === "string") ids.add(id);
    for (const o of targetOutcomes(s, r.targets)) if (o.state === "succeeded" || o.state === "running" || o.state === "leased") ids.add(o.targetId);
  }
  return r.targets.filter((t) => ids.has(t.id)).map((t) => t.name);
}

export interface Reason {
  step: string | null;
  code: string | null;
  message: string | null;
  by: string | null;
  abortedBy: string | null;
  /** Set when a rollback step failed too (the rollout is then failed: an operator must look). */
  rollbackFailed: Reason | null;
}

/** Why the rollout stopped: the step (number and name), the code and message, who aborted it. */
export function reasonParts(r: Pick<Rollout, "reason" | "steps">): Reason | null {
  return readReason(r.reason, r.steps);
}

function readReason(why: unknown, steps: RolloutStep[]): Reason | null {
  if (!isObj(why)) return null;
  const idx = num(why["step"]);
  const name = str(why["stepName"]) ?? (idx !== null ? steps.find((x) => x.index === idx)?.name ?? null : null);
  return {
    step: idx !== null ? `step ${idx + 1}${name ? ` (${name})` : ""}` : null,
    code: str(why["code"]),
    message: str(why["message"]),
    by: str(why["by"]),
    abortedBy: str(why["abortedBy"]),
    rollbackFailed: readReason(why["rollbackFailed"], steps),
  };
}
