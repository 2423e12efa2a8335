// What the ECS driver needs to follow ECS's own BLUE_GREEN, LINEAR and CANARY strategies (docs/drivers/ecs.md): which
// stages are Ferry's gates, when a bake is on, how long a deployment may take, and Ferry's checks during bakes and
// gates — the target revision keeps its tasks running, and the probe (the same HTTP check as the other drivers')
// answers 2xx at every try. The first miss is the verdict.
import type { DeploymentConfiguration, Service, ServiceDeployment } from "@aws-sdk/client-ecs";
import type { EcsTargetConfig } from "@ferry/contract";

import { DriverError } from "../driver.js";
import { httpProbe } from "../http-probe.js";

export const NATIVE_STRATEGIES = new Set(["BLUE_GREEN", "LINEAR", "CANARY"]);
export const ROLLBACK_STATUSES = new Set(["ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"]);
export const DEFAULT_PROBE_TIMEOUT_MS = 2000;
export const DEFAULT_PROBE_INTERVAL_SECONDS = 5;
/** ECS's defaults (API Reference, LinearConfiguration and CanaryConfiguration). */
const LINEAR_DEFAULTS = { stepPercent: 10, stepBakeTimeInMinutes: 6 };
const CANARY_DEFAULTS = { canaryPercent: 5, canaryBakeTimeInMinutes: 10 };

export function isNative(strategy: string | undefined): boolean {
  return strategy !== undefined && NATIVE_STRATEGIES.has(strategy);
}

/** The lifecycle stages at which Ferry's gate function is a hook of the service. */
export function gateStages(cfg: DeploymentConfiguration | undefined, gateHookArn: string | undefined): string[] {
  if (!gateHookArn) return [];
  return [...new Set((cfg?.lifecycleHooks ?? []).filter((h) => h.hookTargetArn === gateHookArn).flatMap((h) => h.lifecycleStages ?? []))];
}

/** The lifecycle stages of the service's PAUSE hooks. */
export function pauseStages(cfg: DeploymentConfiguration | undefined): string[] {
  return [...new Set((cfg?.lifecycleHooks ?? []).filter((h) => h.targetType === "PAUSE").flatMap((h) => h.lifecycleStages ?? []))];
}

/** Why the config's gates do not fit the service, or undefined. */
export function gateProblem(svc: Service, config: EcsTargetConfig): DriverError | undefined {
  const arn = config.native?.gateHookArn;
  const pause = config.native?.pauseGate === true;
  if (!arn && !pause) return undefined;
  const field = arn ? "config.native.gateHookArn" : "config.native.pauseGate";
  const strategy = svc.deploymentConfiguration?.strategy ?? "ROLLING";
  if (!isNative(strategy)) {
    return new DriverError("INVALID_TARGET_CONFIG", `${field}: ECS service ${config.service} deploys by ${strategy}; lifecycle hooks, and so Ferry's gate, need BLUE_GREEN, LINEAR or CANARY`, { field, strategy });
  }
  if (pause && pauseStages(svc.deploymentConfiguration).length === 0) {
    return new DriverError("INVALID_TARGET_CONFIG", `config.native.pauseGate: ECS service ${config.service} has no PAUSE lifecycle hook for Ferry to answer`, { field: "config.native.pauseGate" });
  }
  if (!arn) return undefined;
  const stages = gateStages(svc.deploymentConfiguration, arn);
  if (stages.length === 0) {
    const hooks = (svc.deploymentConfiguration?.lifecycleHooks ?? []).map((h) => h.hookTargetArn).join(", ") || "none";
    return new DriverError("INVALID_TARGET_CONFIG", `config.native.gateHookArn: ${arn} is not a lifecycle hook of ECS service ${config.service} (its hooks: ${hooks})`, { field: "config.native.gateHookArn" });
  }
  if (stages.includes("PRE_PRODUCTION_TRAFFIC_SHIFT")) {
    // Not a lifecycleStage a service deployment reports: the agent could not tell when the gate is waiting.
    return new DriverError("TARGET_UNSUPPORTED", `Ferry's gate function is a hook of ${config.service} at PRE_PRODUCTION_TRAFFIC_SHIFT, which a service deployment never reports as its stage; use POST_TEST_TRAFFIC_SHIFT`, { stages });
  }
  return undefined;
}

/** Seconds of bake the strategy itself takes, plus Ferry's gates: what the follow deadline adds to the steady-state timeout. */
export function bakeBudgetSeconds(cfg: DeploymentConfiguration | undefined, gateSeconds: number): number {
  let minutes = cfg?.bakeTimeInMinutes ?? 0;
  if (cfg?.strategy === "LINEAR") {
    const step = cfg.linearConfiguration?.stepPercent ?? LINEAR_DEFAULTS.stepPercent;
    minutes += (Math.ceil(100 / step) - 1) * (cfg.linearConfiguration?.stepBakeTimeInMinutes ?? LINEAR_DEFAULTS.stepBakeTimeInMinutes);
  } else if (cfg?.strategy === "CANARY") {
    minutes += cfg.canaryConfiguration?.canaryBakeTimeInMinutes ?? CANARY_DEFAULTS.canaryBakeTimeInMinutes;
  }
  return minutes * 60 + gateSeconds;
}

/** The bake the deployment is in ("" when none): BAKE_TIME, or a LINEAR/CANARY step with part of production traffic. */
export function bakeWindow(sd: ServiceDeployment, strategy: string | undefined): string {
  if (sd.lifecycleStage === "BAKE_TIME") return "bake";
  const weight = sd.targetServiceRevision?.requestedProductionTrafficWeight ?? 0;
  if (sd.lifecycleStage === "PRODUCTION_TRAFFIC_SHIFT" && (strategy === "LINEAR" || strategy === "CANARY") && weight > 0 && weight < 100) return `step bake at ${weight}% of production traffic`;
  return "";
}

/** One line of where a service deployment is. */
export function nativeLine(sd: ServiceDeployment): string {
  const t = sd.targetServiceRevision;
  const where = sd.status === "IN_PROGRESS" ? ` at ${sd.lifecycleStage}` : "";
  const traffic = t ? `; target ${t.runningTaskCount ?? 0}/${t.requestedTaskCount ?? 0} running, test traffic ${t.requestedTestTrafficWeight ?? 0}%, production ${t.requestedProductionTrafficWeight ?? 0}%` : "";
  const hooks = (sd.lifecycleHookDetails ?? []).map((h) => `${h.targetType === "PAUSE" ? "pause" : `hook ${h.targetArn?.slice(h.targetArn.lastIndexOf(":") + 1)}`} ${h.status}`).join(", ");
  return `${sd.status}${where}${traffic}${hooks ? `; ${hooks}` : ""}${sd.status !== "IN_PROGRESS" && sd.statusReason ? ` (${sd.statusReason})` : ""}`;
}

export interface CheckFailure {
  code: "HEALTH_CHECK_FAILED" | "CANARY_ANALYSIS_FAILED";
  summary: string;
}

/** Ferry's checks during one window (a bake or a gate): the target's tasks, and the probe every interval. */
export class NativeChecks {
  probes = 0;
  #windowProbes = 0;
  #label = "";
  #url: string | undefined;
  #nextProbe = 0;
  #since = 0;

  constructor(
    private readonly settings: NonNullable<EcsTargetConfig["native"]>,
    private readonly signal: AbortSignal,
    private readonly log: (line: string) => void,
  ) {}

  begin(label: string, url: string | undefined, minMs: number): void {
    this.#label = label;
    this.#url = url;
    this.#windowProbes = 0;
    this.#nextProbe = 0;
    this.#since = Date.now();
    const interval = this.settings.probeIntervalSeconds ?? DEFAULT_PROBE_INTERVAL_SECONDS;
    this.log(`health: ${label}: the target revision's tasks must keep running${url ? `, probing ${url} every ${interval} s` : ""}${minMs > 0 ? ` for ${minMs / 1000} s` : ""}`);
  }

  /** At least one probe in this window when there is a probe. */
  enough(): boolean {
    return !this.#url || this.#windowProbes > 0;
  }

  summary(): string {
    return `the target revision's tasks kept running for ${Math.round((Date.now() - this.#since) / 1000)} s${this.#url ? ` and ${this.#windowProbes} probe(s) of ${this.#url} passed` : ""}`;
  }

  async check(sd: ServiceDeployment): Promise<CheckFailure | undefined> {
    const t = sd.targetServiceRevision;
    const requested = t?.requestedTaskCount ?? 0;
    if (requested > 0 && (t?.runningTaskCount ?? 0) < requested) {
      const summary = `${this.#label}: the target revision runs ${t?.runningTaskCount ?? 0} of ${requested} tasks`;
      this.log(`health: ${summary}`);
      return { code: "HEALTH_CHECK_FAILED", summary };
    }
    if (this.#url && Date.now() >= this.#nextProbe) {
      const r = await httpProbe(this.#url, this.settings.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS, this.signal);
      this.probes++;
      this.#windowProbes++;
      this.#nextProbe = Date.now() + (this.settings.probeIntervalSeconds ?? DEFAULT_PROBE_INTERVAL_SECONDS) * 1000;
      if (!r.ok) {
        const summary = `${this.#label}: the probe of ${this.#url} answered ${JSON.stringify(r.observed)}`;
        this.log(`health: ${summary}`);
        return { code: "CANARY_ANALYSIS_FAILED", summary };
      }
    }
    return undefined;
  }
}
