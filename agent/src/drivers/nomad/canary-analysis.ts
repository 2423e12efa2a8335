// Ferry's analysis of a Nomad deployment's canaries before it promotes them (docs/drivers/nomad.md#canary-analysis):
// for the whole bake, every placed canary allocation must keep running and stay healthy, the deployment must keep
// running, and the probe, if configured, must answer 2xx at every try. The first miss ends the bake: the canaries are
// not promoted. Time is wall-clock; reads go through the driver's own Nomad client (passed in), so the same ACL,
// TLS and error rules apply.
import { setTimeout as sleep } from "node:timers/promises";

import type { NomadCanaryAnalysis } from "@ferry/contract";

import { httpProbe } from "../http-probe.js";

export const DEFAULT_BAKE_SECONDS = 60;
export const DEFAULT_PROBE_TIMEOUT_MS = 2000;
export const DEFAULT_PROBE_INTERVAL_SECONDS = 5;
/** How often the canaries' allocations are read during the bake. */
const WATCH_MS = 1000;

export interface CanaryAlloc {
  ID: string;
  ClientStatus: string;
  DesiredStatus: string;
  DeploymentStatus?: { Healthy?: boolean | null } | null;
}

export interface AnalysisReads {
  /** The deployment's status now. */
  deploymentStatus(): Promise<{ Status: string; StatusDescription: string }>;
  /** The job's allocations now (the canaries are picked out by id). */
  allocations(): Promise<CanaryAlloc[]>;
}

export type AnalysisVerdict = { ok: true; summary: string; details: Record<string, unknown> } | { ok: false; summary: string; details: Record<string, unknown> };

/** Why the canaries fail the analysis now, or undefined. */
export function canaryProblem(canaryIds: readonly string[], allocs: readonly CanaryAlloc[]): string | undefined {
  for (const id of canaryIds) {
    const a = allocs.find((x) => x.ID === id);
    if (!a) return `canary allocation ${id} is gone`;
    if (a.DesiredStatus !== "run" || a.ClientStatus !== "running") return `canary allocation ${id} is ${a.ClientStatus} (desired ${a.DesiredStatus})`;
    if (a.DeploymentStatus?.Healthy !== true) return `canary allocation ${id} is not healthy`;
  }
  return undefined;
}

/** Runs the bake; resolves with the verdict. Throws only when `signal` aborts (or a read fails). */
export async function analyseCanaries(
  analysis: NomadCanaryAnalysis,
  canaryIds: readonly string[],
  reads: AnalysisReads,
  log: (line: string) => void,
  signal: AbortSignal,
): Promise<AnalysisVerdict> {
  const bakeMs = (analysis.bakeSeconds ?? DEFAULT_BAKE_SECONDS) * 1000;
  const intervalMs = (analysis.probeIntervalSeconds ?? DEFAULT_PROBE_INTERVAL_SECONDS) * 1000;
  const timeoutMs = analysis.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const start = Date.now();
  const until = start + bakeMs;
  let probes = 0;
  let nextProbe = start;
  let watches = 0;
  log(`analysis: ${canaryIds.length} canar${canaryIds.length === 1 ? "y" : "ies"} must stay healthy for ${bakeMs / 1000} s${analysis.probeUrl ? `, probing ${analysis.probeUrl} every ${intervalMs / 1000} s` : ""}`);
  const fail = (why: string, extra: Record<string, unknown> = {}): AnalysisVerdict => {
    log(`analysis: failed: ${why}`);
    return { ok: false, summary: `the canary analysis failed after ${Math.round((Date.now() - start) / 1000)} s: ${why}`, details: { probes, canaries: canaryIds, ...extra } };
  };
  for (;;) {
    const dep = await reads.deploymentStatus();
    if (dep.Status !== "running") return fail(`the deployment is ${dep.Status}: ${dep.StatusDescription}`);
    const problem = canaryProblem(canaryIds, await reads.allocations());
    watches++;
    if (problem) return fail(problem);
    if (analysis.probeUrl && Date.now() >= nextProbe) {
      const r = await httpProbe(analysis.probeUrl, timeoutMs, signal);
      probes++;
      if (!r.ok) return fail(`the probe of ${analysis.probeUrl} answered ${JSON.stringify(r.observed)}`, { probe: r.observed });
      nextProbe = Date.now() + intervalMs;
    }
    // The bake is over once its time passed with at least one look (and one probe, when there is a probe).
    if (Date.now() >= until && (!analysis.probeUrl || probes > 0)) {
      const summary = `the canaries stayed healthy for ${Math.round((Date.now() - start) / 1000)} s${analysis.probeUrl ? ` and ${probes} probe(s) of ${analysis.probeUrl} passed` : ""}`;
      log(`analysis: passed: ${summary}`);
      return { ok: true, summary, details: { probes, watches, canaries: canaryIds } };
    }
    const wake = Math.min(until, analysis.probeUrl ? nextProbe : until, Date.now() + WATCH_MS);
    await sleep(Math.max(10, wake - Date.now()), undefined, { signal });
  }
}
