// Canary analysis: a verdict on what the router counted between two reads, stable slot against new slot.
//
// Counters are cumulative and reset when the router restarts; each read carries the router's epoch, and deltas are
// taken only between two reads of the same epoch (a restart in between makes the analysis inconclusive, never a
// pass computed from a reset). Too few requests on the new slot is inconclusive too: silence is no evidence that a
// version works. Any failing measurement fails the analysis, and the engine puts the canary at weight 0 at once.
import type { AnalysisConfig } from "./strategy.js";

/** One slot's cumulative counters at one moment, as a router reports them. */
export interface SlotCounters {
  requests: number;
  errors5xx: number;
  /**
   * The router's recent average response time in ms at the moment of the read (HAProxy: over its last 1024
   * responses). A router keeps no cumulative sum, so latency is compared on the `after` read, not on a delta; the
   * bake must be long enough for the new slot's average to be made of bake traffic (docs/rollouts.md#analysis).
   */
  avgResponseMs: number;
}

export interface CounterRead {
  epoch: string;
  stable: SlotCounters;
  new: SlotCounters;
}

export type Verdict = "pass" | "fail" | "inconclusive";

export interface Measurement {
  name: "requests" | "error-rate" | "latency-ratio" | "probe" | "prometheus" | "epoch";
  verdict: Verdict;
  /** The measured value and the threshold it was held against; numbers as they were. */
  value: number | string | null;
  threshold: number | string | null;
  detail: string;
}

export interface AnalysisResult {
  verdict: Verdict;
  measurements: Measurement[];
  /** The deltas the verdict came from, for the evidence. */
  deltas: { stable: SlotCounters; new: SlotCounters } | null;
}

/** An optional external check the engine ran during the bake (HTTP probe, Prometheus query). */
export interface ExternalCheck {
  name: "probe" | "prometheus";
  ok: boolean | null;
  value: number | string | null;
  detail: string;
}

const delta = (a: SlotCounters, b: SlotCounters): SlotCounters => ({
  requests: b.requests - a.requests,
  errors5xx: b.errors5xx - a.errors5xx,
  avgResponseMs: b.avgResponseMs,
});

const round = (n: number): number => Math.round(n * 10000) / 10000;

/** The verdict on one target's counters between `before` and `after`, plus any external checks. */
export function analyse(config: AnalysisConfig, before: CounterRead, after: CounterRead, external: readonly ExternalCheck[] = []): AnalysisResult {
  const m: Measurement[] = [];
  let deltas: AnalysisResult["deltas"] = null;
  if (before.epoch !== after.epoch) {
    m.push({ name: "epoch", verdict: "inconclusive", value: after.epoch, threshold: before.epoch, detail: "the router restarted during the bake; its counters started again" });
  } else {
    const s = delta(before.stable, after.stable);
    const n = delta(before.new, after.new);
    deltas = { stable: s, new: n };
    if ([s, n].some((d) => d.requests < 0 || d.errors5xx < 0)) {
      m.push({ name: "epoch", verdict: "inconclusive", value: null, threshold: null, detail: "a counter went backwards without an epoch change; nothing can be concluded" });
    } else {
      // Errors decide first and alone: five 5xx out of eight requests is a failure even though eight is "too few".
      const errorRate = n.requests > 0 ? n.errors5xx / n.requests : 0;
      const errorFails = n.requests > 0 && errorRate > config.maxErrorRate && n.errors5xx >= Math.min(config.minRequests, 5);
      m.push({
        name: "error-rate",
        verdict: errorFails ? "fail" : n.requests >= config.minRequests ? "pass" : "inconclusive",
        value: round(errorRate),
        threshold: config.maxErrorRate,
        detail: `${n.errors5xx} of ${n.requests} requests to the new slot answered 5xx`,
      });
      m.push({
        name: "requests",
        verdict: n.requests >= config.minRequests ? "pass" : "inconclusive",
        value: n.requests,
        threshold: config.minRequests,
        detail: n.requests >= config.minRequests ? `${n.requests} requests reached the new slot` : `only ${n.requests} requests reached the new slot (at least ${config.minRequests} needed)`,
      });
      if (n.requests > 0 && s.requests > 0) {
        const newAvg = n.avgResponseMs;
        const stableAvg = s.avgResponseMs;
        // A stable slot answering in 0 ms (a counter's resolution) is held to 1 ms, so the ratio stays finite.
        const ratio = newAvg / Math.max(stableAvg, 1);
        m.push({
          name: "latency-ratio",
          verdict: ratio > config.maxLatencyRatio && newAvg - stableAvg > 5 ? "fail" : n.requests >= config.minRequests ? "pass" : "inconclusive",
          value: round(ratio),
          threshold: config.maxLatencyRatio,
          detail: `new slot ${round(newAvg)} ms on average, stable slot ${round(stableAvg)} ms`,
        });
      } else {
        m.push({ name: "latency-ratio", verdict: "inconclusive", value: null, threshold: config.maxLatencyRatio, detail: "no requests on one of the slots to compare" });
      }
    }
  }
  for (const e of external) {
    m.push({ name: e.name, verdict: e.ok === null ? "inconclusive" : e.ok ? "pass" : "fail", value: e.value, threshold: null, detail: e.detail });
  }
  const verdict: Verdict = m.some((x) => x.verdict === "fail") ? "fail" : m.some((x) => x.verdict === "inconclusive") ? "inconclusive" : "pass";
  return { verdict, measurements: m, deltas };
}

/** The verdict over several targets: any failure fails, any inconclusive (and no failure) is inconclusive. */
export function combine(results: readonly AnalysisResult[]): Verdict {
  if (results.length === 0) return "inconclusive";
  if (results.some((r) => r.verdict === "fail")) return "fail";
  if (results.some((r) => r.verdict === "inconclusive")) return "inconclusive";
  return "pass";
}
