// Terms (rollout):
//   strategy     how a deployment reaches an environment's targets: all-at-once, rolling, blue-green, canary, ab
//   slot         one of the two places (blue, green) a routed target can run a version; the router sends traffic to
//                one or both by weight
//   stable/new   the slot that served before the rollout / the slot the rollout's release starts in
//   wave         one step that runs a run of phases on a set of targets, as one signed task per target
//   bake         time a canary step lets traffic reach the new slot before its analysis reads the counters
//   analysis     a verdict (pass, fail, inconclusive) on counter deltas between the stable and the new slot
//
// A strategy is checked once, here, from what an operator wrote (environment settings, or a deploy's or a
// promotion's override): every field is bounded, every unknown field refused, and the error names the field. The
// planner (planner.ts) then turns a checked strategy and the targets into steps.
import { FerryError } from "../errors.js";

export const STRATEGY_KINDS = ["all-at-once", "rolling", "blue-green", "canary", "ab"] as const;
export type StrategyKind = (typeof STRATEGY_KINDS)[number];

/** What the canary analysis compares; every threshold is on a delta of the router's counters over one bake. */
export interface AnalysisConfig {
  /** Fewer requests than this reached the new slot during the bake: inconclusive, never a pass. Default 50. */
  minRequests: number;
  /** The new slot's 5xx share of its requests may not exceed this (0–1). Default 0.01. */
  maxErrorRate: number;
  /** The new slot's average response time may be at most this factor of the stable slot's. Default 1.5. */
  maxLatencyRatio: number;
  /** An inconclusive analysis is retried this many bakes before the step fails. Default 3. */
  maxInconclusive: number;
  /** Optional HTTP probe: GET url must answer 2xx. */
  probeUrl?: string;
  /** Optional Prometheus instant query: passes when its scalar result is at most `prometheusMax`. */
  prometheusQuery?: string;
  prometheusMax?: number;
  /** The Prometheus server's base URL (its HTTP API is under <base>/api/v1/); required with prometheusQuery. */
  prometheusUrl?: string;
}

export interface CanaryStep {
  /** Share of requests (0–100) the new slot receives during this step. */
  weight: number;
  bakeSeconds: number;
}

export type RollbackMode = "auto" | "manual";

interface StrategyBase {
  /** auto: a failed wave rolls every updated target back at once; manual: the rollout waits for an operator. */
  rollback: RollbackMode;
  /** How many targets of one wave may fail before the wave fails (default 0: any failure fails it). */
  failureThreshold: number;
  /** Ask for an approval between steps (after each wave of a rolling deploy, after each canary step). */
  approvalBetweenSteps: boolean;
}

export interface AllAtOnceStrategy extends StrategyBase {
  kind: "all-at-once";
}

export interface RollingStrategy extends StrategyBase {
  kind: "rolling";
  /** Batch size: a count of targets, or a percentage of them (rounded up, at least one). */
  batch: { count: number } | { percent: number };
  /** At most this many targets may be out of service at once; caps the batch size. Default: the batch size. */
  maxUnavailable?: number;
  soakSeconds: number;
}

export interface BlueGreenStrategy extends StrategyBase {
  kind: "blue-green";
  /** How long the old slot is drained before it is stopped (it stops earlier when no connection is left). */
  drainSeconds: number;
}

export interface CanaryStrategy extends StrategyBase {
  kind: "canary";
  steps: CanaryStep[];
  analysis: AnalysisConfig;
  drainSeconds: number;
}

export interface AbStrategy extends StrategyBase {
  kind: "ab";
  /** What a user is recognised by: a cookie or a header; the same value always lands on the same slot. */
  split: { by: "cookie" | "header"; name: string; percent: number };
  /** Values that always reach the new slot (testers, internal users). */
  allowlist: string[];
  bakeSeconds: number;
  analysis: AnalysisConfig;
  drainSeconds: number;
}

export type Strategy = AllAtOnceStrategy | RollingStrategy | BlueGreenStrategy | CanaryStrategy | AbStrategy;

/** Whether a strategy needs the router and a second slot on each target (the capabilities the agent must offer). */
export function strategyNeeds(s: Strategy): ("side-by-side" | "router")[] {
  return s.kind === "blue-green" || s.kind === "canary" || s.kind === "ab" ? ["side-by-side", "router"] : [];
}

const MAX_SECONDS = 24 * 3600;
const MAX_STEPS = 20;
const MAX_ALLOWLIST = 100;

const bad = (field: string, message: string): never => {
  throw new FerryError("VALIDATION_FAILED", `${field}: ${message}`, { field, in: "body" });
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
function exact(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) bad(`${where}.${k}`, `unknown field (known: ${keys.join(", ")})`);
}
function int(o: Record<string, unknown>, key: string, where: string, min: number, max: number, dflt?: number): number {
  const v = o[key];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) bad(`${where}.${key}`, `must be a whole number from ${min} to ${max}`);
  return v as number;
}
function num(o: Record<string, unknown>, key: string, where: string, min: number, max: number, dflt: number): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) bad(`${where}.${key}`, `must be a number from ${min} to ${max}`);
  return v as number;
}
function bool(o: Record<string, unknown>, key: string, where: string, dflt: boolean): boolean {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") bad(`${where}.${key}`, "must be true or false");
  return v as boolean;
}
function str(o: Record<string, unknown>, key: string, where: string, max: number, re?: RegExp, hint?: string): string {
  const v = o[key];
  if (typeof v !== "string" || v === "" || v.length > max || v.includes("\0")) bad(`${where}.${key}`, `must be a non-empty string of at most ${max} characters`);
  if (re && !re.test(v as string)) bad(`${where}.${key}`, hint ?? `must match ${re.source}`);
  return v as string;
}

const ANALYSIS_KEYS = ["minRequests", "maxErrorRate", "maxLatencyRatio", "maxInconclusive", "probeUrl", "prometheusQuery", "prometheusMax", "prometheusUrl"];
const LOOPBACK_OR_HTTP = /^https?:\/\/[^\s]+$/;

export function parseAnalysis(raw: unknown, where: string): AnalysisConfig {
  if (raw === undefined) raw = {};
  if (!isObject(raw)) return bad(where, "must be an object");
  exact(raw, ANALYSIS_KEYS, where);
  const a: AnalysisConfig = {
    minRequests: int(raw, "minRequests", where, 1, 1_000_000, 50),
    maxErrorRate: num(raw, "maxErrorRate", where, 0, 1, 0.01),
    maxLatencyRatio: num(raw, "maxLatencyRatio", where, 1, 100, 1.5),
    maxInconclusive: int(raw, "maxInconclusive", where, 0, 20, 3),
  };
  if (raw.probeUrl !== undefined) a.probeUrl = str(raw, "probeUrl", where, 2048, LOOPBACK_OR_HTTP, "must be an http:// or https:// URL");
  if (raw.prometheusQuery !== undefined) {
    a.prometheusQuery = str(raw, "prometheusQuery", where, 4096);
    if (raw.prometheusMax === undefined) bad(`${where}.prometheusMax`, "is required with prometheusQuery");
    a.prometheusMax = num(raw, "prometheusMax", where, -1e12, 1e12, 0);
    if (raw.prometheusUrl === undefined) bad(`${where}.prometheusUrl`, "is required with prometheusQuery (the Prometheus server's base URL, e.g. http://prometheus:9090)");
    a.prometheusUrl = str(raw, "prometheusUrl", where, 2048, LOOPBACK_OR_HTTP, "must be an http:// or https:// URL");
    const u = URL.canParse(a.prometheusUrl) ? new URL(a.prometheusUrl) : null;
    if (!u || u.username || u.password || u.search || u.hash) bad(`${where}.prometheusUrl`, "must be a base URL without credentials, query or fragment (the API path is appended to it)");
  } else if (raw.prometheusMax !== undefined) bad(`${where}.prometheusMax`, "needs prometheusQuery");
  else if (raw.prometheusUrl !== undefined) bad(`${where}.prometheusUrl`, "needs prometheusQuery");
  return a;
}

/**
 * Checks a strategy as an operator wrote it. `where` names its place in the request ("strategy",
 * "settings.strategy"). Unknown fields and out-of-range values are refused with VALIDATION_FAILED naming the field.
 */
export function parseStrategy(raw: unknown, where = "strategy"): Strategy {
  if (typeof raw === "string") raw = { kind: raw };
  if (!isObject(raw)) return bad(where, "must be an object with a kind, or a kind's name");
  const kind = raw.kind;
  if (typeof kind !== "string" || !(STRATEGY_KINDS as readonly string[]).includes(kind)) return bad(`${where}.kind`, `must be one of ${STRATEGY_KINDS.join(", ")}`);
  const common = ["kind", "rollback", "failureThreshold", "approvalBetweenSteps"];
  const rollback = raw.rollback ?? "auto";
  if (rollback !== "auto" && rollback !== "manual") bad(`${where}.rollback`, "must be auto or manual");
  const base: StrategyBase = {
    rollback: rollback as RollbackMode,
    failureThreshold: int(raw, "failureThreshold", where, 0, 10_000, 0),
    approvalBetweenSteps: bool(raw, "approvalBetweenSteps", where, false),
  };
  switch (kind as StrategyKind) {
    case "all-at-once":
      exact(raw, common, where);
      return { kind: "all-at-once", ...base };
    case "rolling": {
      exact(raw, [...common, "batch", "maxUnavailable", "soakSeconds"], where);
      const b = raw.batch;
      let batch: RollingStrategy["batch"];
      if (typeof b === "number") batch = { count: int(raw, "batch", where, 1, 10_000) };
      else if (typeof b === "string" && /^\d{1,3}%$/.test(b)) {
        const percent = Number(b.slice(0, -1));
        if (percent < 1 || percent > 100) bad(`${where}.batch`, "a percentage must be from 1% to 100%");
        batch = { percent };
      } else return bad(`${where}.batch`, 'must be a count of targets (4) or a percentage ("25%")');
      const s: RollingStrategy = { kind: "rolling", ...base, batch, soakSeconds: int(raw, "soakSeconds", where, 0, MAX_SECONDS, 0) };
      if (raw.maxUnavailable !== undefined) s.maxUnavailable = int(raw, "maxUnavailable", where, 1, 10_000);
      return s;
    }
    case "blue-green":
      exact(raw, [...common, "drainSeconds"], where);
      return { kind: "blue-green", ...base, drainSeconds: int(raw, "drainSeconds", where, 0, 3600, 30) };
    case "canary": {
      exact(raw, [...common, "steps", "analysis", "drainSeconds"], where);
      const steps = raw.steps;
      if (!Array.isArray(steps) || steps.length === 0 || steps.length > MAX_STEPS) return bad(`${where}.steps`, `must be a list of 1 to ${MAX_STEPS} steps`);
      let last = 0;
      const parsed = steps.map((st: unknown, i): CanaryStep => {
        const w = `${where}.steps[${i}]`;
        if (!isObject(st)) return bad(w, "must be an object {weight, bakeSeconds}");
        exact(st, ["weight", "bakeSeconds"], w);
        const weight = int(st, "weight", w, 1, 100);
        if (weight <= last) bad(`${w}.weight`, `must be greater than the step before (${last})`);
        last = weight;
        return { weight, bakeSeconds: int(st, "bakeSeconds", w, 0, MAX_SECONDS, weight === 100 ? 0 : 60) };
      });
      // The last step always takes all traffic: a canary that never reaches 100 would never finish.
      if (last !== 100) parsed.push({ weight: 100, bakeSeconds: 0 });
      return { kind: "canary", ...base, steps: parsed, analysis: parseAnalysis(raw.analysis, `${where}.analysis`), drainSeconds: int(raw, "drainSeconds", where, 0, 3600, 30) };
    }
    case "ab": {
      exact(raw, [...common, "split", "allowlist", "bakeSeconds", "analysis", "drainSeconds"], where);
      const sp = raw.split;
      if (!isObject(sp)) return bad(`${where}.split`, "must be an object {by, name, percent}");
      exact(sp, ["by", "name", "percent"], `${where}.split`);
      if (sp.by !== "cookie" && sp.by !== "header") bad(`${where}.split.by`, "must be cookie or header");
      const name = str(sp, "name", `${where}.split`, 128, /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "must be a cookie or header name (an HTTP token)");
      const percent = int(sp, "percent", `${where}.split`, 0, 100);
      const al = raw.allowlist ?? [];
      if (!Array.isArray(al) || al.length > MAX_ALLOWLIST) return bad(`${where}.allowlist`, `must be a list of at most ${MAX_ALLOWLIST} values`);
      const allowlist = al.map((v: unknown, i): string => {
        if (typeof v !== "string" || !/^[\x21-\x7e]{1,256}$/.test(v)) return bad(`${where}.allowlist[${i}]`, "must be 1 to 256 printable ASCII characters without spaces");
        return v;
      });
      return {
        kind: "ab",
        ...base,
        split: { by: sp.by as "cookie" | "header", name, percent },
        allowlist,
        bakeSeconds: int(raw, "bakeSeconds", where, 0, MAX_SECONDS, 300),
        analysis: parseAnalysis(raw.analysis, `${where}.analysis`),
        drainSeconds: int(raw, "drainSeconds", where, 0, 3600, 30),
      };
    }
  }
}

/** Checks an environment's `settings.strategy` (its default strategy), when set; VALIDATION_FAILED names the field. */
export function checkStrategySetting(settings: Record<string, unknown>): void {
  const raw = settings["strategy"];
  if (raw !== undefined && raw !== null) parseStrategy(raw, "settings.strategy");
}
