// The Nomad target driver: a Nomad job rolled out by Nomad's own update machinery, followed, promoted and checked by
// Ferry (docs/drivers/nomad.md).
//
//   prepare  read the job (404 → TARGET_NOT_FOUND), map tasks to components, refuse a job with a deployment running
//            that is not ours. Nothing changes.
//   start    register the job with the mapped tasks' config.image set to digests and the sticker in Meta, with
//            check-and-set on the JobModifyIndex read in prepare (a job changed in between is not overwritten)
//   health   follow the evaluation, then the deployment of our job version (it can appear late); healthy when it is
//            successful — or, for canaries, when every canary is healthy and waits for promotion, and (with
//            config.canaryAnalysis) stayed healthy through Ferry's bake with its probe passing (canary-analysis.ts)
//   switch   promote the canaries through the API, then follow the deployment to successful
//   retire   nothing: earlier versions stay in the job's history, they are what a revert goes back to
//   restore  fail our deployment if it still runs, then go back to the version that served (Nomad's auto_revert may
//            already have); canaries of that return are promoted at once, the canary phase is not run again
// Nomad reports no image digests: what runs is checked as the job version the allocations run, whose spec pins them.
import { setTimeout as sleep } from "node:timers/promises";

import { ConfigError, nomadKind, parseTargetConfig, type Capability, type NomadTargetConfig } from "@ferry/contract";
import { pino, type Logger } from "pino";

import {
  DriverError,
  type DeployOutcome,
  type Driver,
  type HealthReport,
  type PhaseContext,
  type RunningImage,
  type TargetInspection,
  type TargetRef,
  type TargetSticker,
} from "../driver.js";
import type { NomadSettings } from "./nomad-api.js";
import { analyseCanaries, type AnalysisVerdict } from "./canary-analysis.js";
import { digestOfRef, imageOf, mapTasks, nextJob, pinFor, runsImages, stickerFromMeta, type NomadJob, type NomadUpdate } from "./job-spec.js";
import { NomadApi, NomadApiError, nomadError, type NomadTarget } from "./nomad-api.js";
import type { NomadPhaseState } from "./phase-state.js";

export const DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS = 900;
export const DEFAULT_PROGRESS_TIMEOUT_SECONDS = 600;
const RATE_LIMIT_RETRIES = 5;

interface Deployment {
  ID: string;
  JobVersion: number;
  JobSpecModifyIndex: number;
  Status: string;
  StatusDescription: string;
  TaskGroups: Record<string, { DesiredCanaries: number; PlacedCanaries: string[] | null; HealthyAllocs: number; UnhealthyAllocs: number; DesiredTotal: number; PlacedAllocs: number; Promoted: boolean; AutoPromote: boolean; ProgressDeadline: number }>;
}

interface Alloc {
  ID: string;
  JobVersion: number;
  TaskGroup: string;
  ClientStatus: string;
  DesiredStatus: string;
  DeploymentStatus?: { Healthy?: boolean | null; Canary?: boolean } | null;
}

interface Evaluation {
  ID: string;
  Status: string;
  StatusDescription?: string;
}

type Followed =
  | { kind: "successful"; deployment: Deployment | undefined }
  | { kind: "awaiting-promotion"; deployment: Deployment }
  | { kind: "failed"; deployment: Deployment | undefined; summary: string; code: "HEALTH_CHECK_FAILED" | "INSTANCE_CRASHED" };

export function nomadConfig(raw: Record<string, unknown>): NomadTargetConfig {
  try {
    return parseTargetConfig(nomadKind, raw);
  } catch (err) {
    if (err instanceof ConfigError) throw new DriverError("INVALID_TARGET_CONFIG", err.message, { field: err.path });
    throw err;
  }
}

export interface NomadDriverOptions {
  logger?: Logger;
  settings?: NomadSettings;
  env?: NodeJS.ProcessEnv;
}

export class NomadDriver implements Driver<NomadTargetConfig, NomadPhaseState> {
  readonly descriptor = nomadKind;
  readonly #logger: Logger;
  readonly #api: NomadApi;

  constructor(opts: NomadDriverOptions = {}) {
    this.#logger = (opts.logger ?? pino({ level: "silent" })).child({ driver: "nomad" });
    this.#api = new NomadApi(opts.settings ?? {}, opts.env);
  }

  capabilities(): readonly Capability[] {
    return nomadKind.capabilities;
  }

  #target(config: NomadTargetConfig): NomadTarget {
    return { address: config.address ?? this.#api.defaultAddress(), namespace: config.namespace, region: config.region };
  }

  /** One API call, retried with backoff on 429 (Nomad's RPC rate limit), errors turned into driver errors. */
  async #call<T>(t: NomadTarget, method: "GET" | "POST", path: string, what: string, opts: { body?: unknown; signal?: AbortSignal; index?: number } = {}): Promise<{ body: T; index: number }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#api.call<T>(t, method, path, opts);
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        if (err instanceof NomadApiError && err.status === 429 && attempt < RATE_LIMIT_RETRIES) {
          await sleep(100 * 2 ** attempt, undefined, opts.signal ? { signal: opts.signal } : {});
          continue;
        }
        throw nomadError(err, what);
      }
    }
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    const address = this.#api.defaultAddress();
    try {
      const { body } = await this.#api.call<string>({ address }, "GET", "/v1/status/leader");
      return { ok: true, detail: `Nomad API at ${address} (leader ${body})` };
    } catch (err) {
      // A gateway may serve targets on other addresses than the default; say so, but offer the driver anyway: each
      // task names its own address and fails clearly if that one does not answer.
      return { ok: true, detail: `Nomad API at ${address} did not answer (${(err as Error).message}); targets naming another address may still work` };
    }
  }

  async #job(t: NomadTarget, job: string, signal?: AbortSignal): Promise<NomadJob> {
    try {
      return (await this.#call<NomadJob>(t, "GET", `/v1/job/${encodeURIComponent(job)}`, `reading job ${job}`, signal ? { signal } : {})).body;
    } catch (err) {
      if (err instanceof DriverError && err.code === "TARGET_NOT_FOUND") {
        throw new DriverError("TARGET_NOT_FOUND", `Nomad job ${job} does not exist${t.namespace ? ` in namespace ${t.namespace}` : ""}`, { ...err.details, field: "config.job" });
      }
      throw err;
    }
  }

  async #versions(t: NomadTarget, job: string, signal?: AbortSignal): Promise<NomadJob[]> {
    return (await this.#call<{ Versions: NomadJob[] }>(t, "GET", `/v1/job/${encodeURIComponent(job)}/versions`, `reading the versions of job ${job}`, signal ? { signal } : {})).body.Versions;
  }

  async #allocs(t: NomadTarget, job: string, signal?: AbortSignal): Promise<Alloc[]> {
    return (await this.#call<Alloc[]>(t, "GET", `/v1/job/${encodeURIComponent(job)}/allocations`, `listing the allocations of job ${job}`, signal ? { signal } : {})).body;
  }

  // ── observation ──────────────────────────────────────────────────────────────────────────────────────────────

  async inspect(target: TargetRef): Promise<TargetInspection> {
    const config = nomadConfig(target.config);
    const t = this.#target(config);
    let job: NomadJob;
    try {
      job = await this.#job(t, config.job);
    } catch (err) {
      if (err instanceof DriverError && err.code === "TARGET_NOT_FOUND") return { state: "missing", running: [], labels: {}, details: { error: err.message } };
      throw err;
    }
    const sticker = stickerFromMeta(job.Meta);
    let mapping: Record<string, string>;
    try {
      mapping = mapTasks(job, config, sticker?.images ?? (config.component ? [{ component: config.component }] : []));
    } catch (err) {
      // A target check (docs/drivers/nomad.md#target-checks) reports why the config does not fit the job.
      const check = err instanceof DriverError ? { code: err.code, message: err.message } : undefined;
      return { state: "unknown", running: [], labels: ferryMeta(job.Meta), details: { error: (err as Error).message, version: job.Version, ...(check ? { check } : {}) } };
    }
    const allocs = (await this.#allocs(t, config.job)).filter((a) => a.ClientStatus === "running" && a.DesiredStatus === "run");
    const versions = await this.#versions(t, config.job);
    const running: RunningImage[] = [];
    const runningVersions = [...new Set(allocs.map((a) => a.JobVersion))].sort((a, b) => a - b);
    for (const [key, component] of Object.entries(mapping)) {
      const group = key.split("/")[0];
      const seen = new Set(allocs.filter((a) => a.TaskGroup === group).map((a) => a.JobVersion));
      for (const v of seen) {
        const spec = versions.find((x) => x.Version === v);
        const ref = spec ? imageOf(spec, key) : "";
        running.push({ component, repository: ref.split("@")[0] ?? "", digest: digestOfRef(ref), containerName: key });
      }
    }
    const drift: string[] = [];
    for (const img of sticker?.images ?? []) {
      const digests = running.filter((r) => r.component === img.component).map((r) => r.digest);
      if (digests.some((d) => d !== img.digest)) drift.push(`${img.component}: the sticker says ${img.digest}, allocations run ${[...new Set(digests)].join(", ") || "nothing"}`);
    }
    for (const [key] of Object.entries(mapping)) {
      const ref = imageOf(job, key);
      const stickered = sticker?.images.find((i) => i.component === mapping[key]);
      if (stickered && digestOfRef(ref) !== stickered.digest) drift.push(`${key}: the job (version ${job.Version}) sets ${ref}, not the stickered ${stickered.digest}`);
    }
    const details: Record<string, unknown> = { version: job.Version, stable: job.Stable, status: job["Status"], runningVersions, allocations: allocs.length };
    if (drift.length > 0) details["drift"] = drift;
    const unsupported = jobTypeProblem(job, config.job);
    if (unsupported) details["check"] = { code: unsupported.code, message: unsupported.message };
    return { state: allocs.length > 0 ? "running" : job["Status"] === "dead" ? "stopped" : "unknown", running, labels: ferryMeta(job.Meta), details };
  }

  async readSticker(target: TargetRef): Promise<TargetSticker | undefined> {
    const config = nomadConfig(target.config);
    return stickerFromMeta((await this.#job(this.#target(config), config.job)).Meta);
  }

  // ── phases ───────────────────────────────────────────────────────────────────────────────────────────────────

  async prepare(ctx: PhaseContext<NomadTargetConfig>): Promise<NomadPhaseState> {
    const config = ctx.config;
    const t = this.#target(config);
    const job = await this.#job(t, config.job, ctx.signal);
    const unsupported = jobTypeProblem(job, config.job);
    if (unsupported) throw unsupported;
    const tasks = mapTasks(job, config, ctx.images);
    const autoPromoted = config.canaryAnalysis ? autoPromotedGroups(job, tasks) : [];
    if (autoPromoted.length > 0) {
      throw new DriverError("INVALID_TARGET_CONFIG", `config.canaryAnalysis: the update block of group ${autoPromoted.join(", ")} of job ${config.job} sets auto_promote, so Nomad promotes the canaries itself and Ferry's analysis could not hold them; set auto_promote = false, or drop canaryAnalysis`, { field: "config.canaryAnalysis", groups: autoPromoted });
    }
    const latest = (await this.#call<Deployment | null>(t, "GET", `/v1/job/${encodeURIComponent(config.job)}/deployment`, `reading the deployment of job ${config.job}`, { signal: ctx.signal })).body;
    if (latest && (latest.Status === "running" || latest.Status === "paused" || latest.Status === "pending")) {
      throw new DriverError("PLATFORM_BUSY", `Nomad job ${config.job} has deployment ${latest.ID} ${latest.Status} (version ${latest.JobVersion}: ${latest.StatusDescription}); try again when it is done`, { deploymentId: latest.ID });
    }
    const state: NomadPhaseState = { job: config.job, previousVersion: job.Version, jobModifyIndex: job.JobModifyIndex, tasks };
    ctx.progress.log(`prepare: job ${config.job} is at version ${job.Version}; setting ${Object.entries(tasks).map(([k, c]) => `${k} → ${c}`).join(", ")}`);
    ctx.progress.log("prepare: Nomad's clients pull the images; the job version the allocations run is checked once the deployment is done");
    if (runsImages(job, tasks, ctx.images)) {
      ctx.progress.log(`prepare: version ${job.Version} already sets these digests; nothing to roll out`);
      return { ...state, alreadyDeployed: true, newVersion: job.Version };
    }
    return state;
  }

  async start(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState): Promise<NomadPhaseState> {
    if (state.alreadyDeployed) return state;
    const config = ctx.config;
    const t = this.#target(config);
    const job = await this.#job(t, config.job, ctx.signal);
    if (job.JobModifyIndex !== state.jobModifyIndex) {
      throw new DriverError("PLATFORM_BUSY", `Nomad job ${config.job} changed since it was read (modify index ${state.jobModifyIndex} → ${job.JobModifyIndex}); nothing was registered`, {});
    }
    const next = nextJob(job, state.tasks, ctx.images, this.#sticker(ctx));
    let out: { EvalID: string; JobModifyIndex: number };
    try {
      out = (await this.#call<{ EvalID: string; JobModifyIndex: number }>(t, "POST", `/v1/job/${encodeURIComponent(config.job)}`, `registering job ${config.job}`, { body: { Job: next, EnforceIndex: true, JobModifyIndex: state.jobModifyIndex }, signal: ctx.signal })).body;
    } catch (err) {
      if (err instanceof DriverError && (typeof err.details["nomad"] === "string" ? err.details["nomad"] : "").startsWith("Enforcing job modify index")) {
        throw new DriverError("PLATFORM_BUSY", `Nomad job ${config.job} changed since it was read: ${err.details["nomad"] as string}; nothing was registered`, err.details);
      }
      throw err;
    }
    const after = await this.#job(t, config.job, ctx.signal);
    if (after.JobModifyIndex !== out.JobModifyIndex) {
      throw new DriverError("PLATFORM_BUSY", `Nomad job ${config.job} changed again right after Ferry registered it (modify index ${out.JobModifyIndex} → ${after.JobModifyIndex})`, {});
    }
    ctx.progress.log(`start: registered job ${config.job} version ${after.Version} (evaluation ${out.EvalID})`);
    this.#logger.info({ taskId: ctx.taskId, job: config.job, version: after.Version, evalId: out.EvalID }, "Nomad job registered");
    return { ...state, newVersion: after.Version, evalId: out.EvalID, jobModifyIndex: out.JobModifyIndex };
  }

  async health(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState): Promise<HealthReport> {
    if (state.alreadyDeployed) return this.#verified(ctx, state, undefined);
    const r = await this.#follow(ctx, state, { promote: false });
    if (r.deployment) state.deploymentId = r.deployment.ID;
    if (r.kind === "failed") return { ok: false, code: r.code, summary: r.summary, details: { deployment: r.deployment } };
    if (r.kind === "awaiting-promotion") {
      state.awaitingPromotion = true;
      const canaries = Object.entries(r.deployment.TaskGroups).map(([g, s]) => `${g}: ${s.PlacedCanaries?.length ?? 0} canar${(s.PlacedCanaries?.length ?? 0) === 1 ? "y" : "ies"}`);
      const analysis = ctx.config.canaryAnalysis ? await this.#analyse(ctx, state, r.deployment) : undefined;
      if (analysis && !analysis.ok) return { ok: false, code: "CANARY_ANALYSIS_FAILED", summary: `deployment ${r.deployment.ID}: ${analysis.summary}; the canaries were not promoted`, details: { deploymentId: r.deployment.ID, analysis: analysis.details } };
      return {
        ok: true,
        summary: `the canaries of deployment ${r.deployment.ID} are healthy (${canaries.join(", ")})${analysis ? `, ${analysis.summary},` : ""} and wait for promotion`,
        details: { deploymentId: r.deployment.ID, canaries: r.deployment.TaskGroups, ...(analysis ? { analysis: analysis.details } : {}) },
      };
    }
    return this.#verified(ctx, state, r.deployment);
  }

  /** Ferry's analysis of the healthy canaries before promotion (canary-analysis.ts). */
  async #analyse(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState, d: Deployment): Promise<AnalysisVerdict> {
    const t = this.#target(ctx.config);
    const canaryIds = Object.values(d.TaskGroups).flatMap((g) => (g.Promoted ? [] : (g.PlacedCanaries ?? [])));
    return analyseCanaries(
      ctx.config.canaryAnalysis!,
      canaryIds,
      {
        deploymentStatus: async () => (await this.#call<Deployment>(t, "GET", `/v1/deployment/${d.ID}`, `reading deployment ${d.ID}`, { signal: ctx.signal })).body,
        allocations: () => this.#allocs(t, state.job, ctx.signal),
      },
      (line) => ctx.progress.log(`health: ${line}`),
      ctx.signal,
    );
  }

  async #verified(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState, d: Deployment | undefined): Promise<HealthReport> {
    const checked = await this.#verifyAllocs(ctx, state);
    return { ok: true, summary: `${d ? `deployment ${d.ID} successful: ` : ""}${checked} allocation(s) run job version ${state.newVersion}`, details: { deploymentId: d?.ID, version: state.newVersion, allocations: checked } };
  }

  /** Every running allocation of a mapped group runs our job version, and that version pins our digests. */
  async #verifyAllocs(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState): Promise<number> {
    const t = this.#target(ctx.config);
    const versions = await this.#versions(t, state.job, ctx.signal);
    const spec = versions.find((v) => v.Version === state.newVersion);
    if (!spec) throw new DriverError("HEALTH_CHECK_FAILED", `job ${state.job} has no version ${state.newVersion} any more`, {});
    for (const key of Object.keys(state.tasks)) {
      const want = pinFor(state.tasks, key, ctx.images).ref;
      if (imageOf(spec, key) !== want) throw new DriverError("DIGEST_MISMATCH", `job ${state.job} version ${state.newVersion} sets ${key} to ${imageOf(spec, key)}, not ${want}`, { task: key });
    }
    const groups = new Set(Object.keys(state.tasks).map((k) => k.split("/")[0]!));
    const allocs = (await this.#allocs(t, state.job, ctx.signal)).filter((a) => groups.has(a.TaskGroup) && a.DesiredStatus === "run" && a.ClientStatus === "running");
    const other = allocs.filter((a) => a.JobVersion !== state.newVersion);
    if (other.length > 0) {
      throw new DriverError("HEALTH_CHECK_FAILED", `${other.length} allocation(s) of job ${state.job} still run version(s) ${[...new Set(other.map((a) => a.JobVersion))].join(", ")}, not ${state.newVersion}`, { allocations: other.map((a) => a.ID) });
    }
    if (allocs.length === 0) throw new DriverError("HEALTH_CHECK_FAILED", `no allocation of job ${state.job} runs`, {});
    return allocs.length;
  }

  /** Follows the evaluation and then the deployment of our version until it settles (see Followed). */
  async #follow(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState, opts: { promote: boolean; noDeadline?: boolean }): Promise<Followed> {
    const config = ctx.config;
    const t = this.#target(config);
    const signal = opts.noDeadline ? undefined : ctx.signal;
    const deadline = Date.now() + (config.deploymentTimeoutSeconds ?? DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS) * 1000;
    const progressMs = (config.progressTimeoutSeconds ?? DEFAULT_PROGRESS_TIMEOUT_SECONDS) * 1000;
    const job = encodeURIComponent(state.job);
    const so = signal ? { signal } : {};

    // The evaluation: the scheduler has placed (or failed to place) the new version.
    if (state.evalId) {
      let index = 0;
      for (;;) {
        const { body: ev, index: next } = await this.#call<Evaluation>(t, "GET", `/v1/evaluation/${state.evalId}`, `reading evaluation ${state.evalId}`, { ...so, index });
        if (ev.Status === "complete") break;
        if (ev.Status === "failed" || ev.Status === "canceled") return { kind: "failed", deployment: undefined, code: "HEALTH_CHECK_FAILED", summary: `Nomad evaluation ${ev.ID} ${ev.Status}: ${ev.StatusDescription ?? ""}` };
        if (Date.now() > deadline) return { kind: "failed", deployment: undefined, code: "HEALTH_CHECK_FAILED", summary: `Nomad evaluation ${ev.ID} was still ${ev.Status} after the deployment timeout` };
        index = next;
      }
    }

    // The deployment of our version, which the scheduler creates after the evaluation (it can appear late). A
    // version whose allocations were all updated in place has none: its allocations tell.
    let d: Deployment | undefined;
    let index = 0;
    for (;;) {
      const { body: list, index: next } = await this.#call<Deployment[]>(t, "GET", `/v1/job/${job}/deployments`, `listing the deployments of job ${state.job}`, { ...so, index });
      d = list.find((x) => x.JobVersion === state.newVersion);
      if (d) break;
      const current = await this.#job(t, state.job, signal);
      if (current.Version !== state.newVersion) {
        return { kind: "failed", deployment: undefined, code: "HEALTH_CHECK_FAILED", summary: `job ${state.job} moved on to version ${current.Version} before version ${state.newVersion} was deployed` };
      }
      if (current.Stable) return { kind: "successful", deployment: undefined };
      if (Date.now() > deadline) return { kind: "failed", deployment: undefined, code: "HEALTH_CHECK_FAILED", summary: `no deployment of job ${state.job} version ${state.newVersion} appeared within the deployment timeout` };
      index = next === index ? 0 : next;
      if (index === 0) await sleep(200, undefined, so);
    }

    return this.#followDeployment(ctx, t, d, opts, deadline, progressMs);
  }

  async #followDeployment(ctx: PhaseContext<NomadTargetConfig>, t: NomadTarget, first: Deployment, opts: { promote: boolean; noDeadline?: boolean }, deadline: number, progressMs: number): Promise<Followed> {
    const config = ctx.config;
    const so = opts.noDeadline ? {} : { signal: ctx.signal };
    let d = first;
    let index = 0;
    let lastHealthy = -1;
    let lastProgressAt = Date.now();
    let lastLine = "";
    let promoted = false;
    for (;;) {
      const { body: dep, index: next }: { body: Deployment; index: number } = await this.#call<Deployment>(t, "GET", `/v1/deployment/${d.ID}`, `reading deployment ${d.ID}`, { ...so, index });
      d = dep;
      const groups = Object.entries(d.TaskGroups);
      const line = `deployment ${d.ID} (version ${d.JobVersion}): ${d.Status}: ${d.StatusDescription}; ${groups.map(([g, s]) => `${g} ${s.HealthyAllocs}/${s.DesiredTotal} healthy${s.DesiredCanaries > 0 ? `, ${s.PlacedCanaries?.length ?? 0}/${s.DesiredCanaries} canaries${s.Promoted ? " promoted" : ""}` : ""}${s.UnhealthyAllocs > 0 ? `, ${s.UnhealthyAllocs} unhealthy` : ""}`).join("; ")}`;
      if (line !== lastLine) ctx.progress.log(`${opts.noDeadline ? "restore" : "health"}: ${line}`);
      lastLine = line;
      if (d.Status === "successful") return { kind: "successful", deployment: d };
      if (d.Status === "failed") {
        const unhealthy = groups.some(([, s]) => s.UnhealthyAllocs > 0) || /unhealthy/i.test(d.StatusDescription);
        return { kind: "failed", deployment: d, code: unhealthy ? "INSTANCE_CRASHED" : "HEALTH_CHECK_FAILED", summary: `Nomad deployment ${d.ID} failed: ${d.StatusDescription}` };
      }
      if (d.Status === "cancelled") return { kind: "failed", deployment: d, code: "HEALTH_CHECK_FAILED", summary: `Nomad deployment ${d.ID} was cancelled: ${d.StatusDescription}` };
      const canariesReady = groups.some(([, s]) => s.DesiredCanaries > 0 && !s.Promoted) && groups.every(([, s]) => s.DesiredCanaries === 0 || s.Promoted || (s.PlacedCanaries?.length ?? 0) >= s.DesiredCanaries) && this.#canariesHealthy(d);
      if (canariesReady && !groups.every(([, s]) => s.AutoPromote || s.DesiredCanaries === 0)) {
        if (!opts.promote) return { kind: "awaiting-promotion", deployment: d };
        if (!promoted) {
          await this.#call(t, "POST", `/v1/deployment/promote/${d.ID}`, `promoting deployment ${d.ID}`, { body: { DeploymentID: d.ID, All: true }, ...so });
          ctx.progress.log(`${opts.noDeadline ? "restore" : "switch"}: promoted the canaries of deployment ${d.ID}`);
          promoted = true;
        }
      }
      const healthy = groups.reduce((n, [, s]) => n + s.HealthyAllocs, 0);
      if (healthy !== lastHealthy) {
        lastHealthy = healthy;
        lastProgressAt = Date.now();
      }
      // Nomad enforces a group's progress_deadline itself; for groups without one, Ferry does, so a deployment that
      // stopped making progress is failed rather than followed until the overall timeout.
      const watchdog = groups.some(([, s]) => !s.ProgressDeadline) && !canariesReady;
      const stalled = watchdog && Date.now() - lastProgressAt > progressMs;
      if (stalled || Date.now() > deadline) {
        const why = stalled ? `made no progress for ${progressMs / 1000} s` : `did not finish within ${config.deploymentTimeoutSeconds ?? DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS} s`;
        await this.#call(t, "POST", `/v1/deployment/fail/${d.ID}`, `failing deployment ${d.ID}`, { body: { DeploymentID: d.ID } }).catch((err: unknown) => ctx.progress.log(`health: could not fail deployment ${d.ID}: ${(err as Error).message}`));
        return { kind: "failed", deployment: d, code: "HEALTH_CHECK_FAILED", summary: `Nomad deployment ${d.ID} ${why}; Ferry failed it (${line})` };
      }
      index = next;
    }
  }

  #canariesHealthy(d: Deployment): boolean {
    return Object.values(d.TaskGroups).every((s) => s.DesiredCanaries === 0 || s.Promoted || s.HealthyAllocs >= s.DesiredCanaries);
  }

  async switch(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState): Promise<NomadPhaseState> {
    if (!state.awaitingPromotion) {
      ctx.progress.log(`switch: Nomad replaced the allocations as it rolled; version ${state.newVersion} serves`);
      return state;
    }
    const r = await this.#follow(ctx, { ...state, evalId: undefined }, { promote: true });
    if (r.kind === "failed") throw new DriverError(r.code, `after promotion: ${r.summary}`, { deployment: r.deployment });
    const n = await this.#verifyAllocs(ctx, state);
    ctx.progress.log(`switch: deployment ${r.deployment?.ID} successful; ${n} allocation(s) run version ${state.newVersion}`);
    return { ...state, awaitingPromotion: false };
  }

  async retire(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState): Promise<NomadPhaseState> {
    ctx.progress.log(`retire: version ${state.previousVersion} stays in the job's history: it is what a revert goes back to`);
    return state;
  }

  async restore(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState): Promise<Record<string, unknown>> {
    if (state.newVersion === undefined || state.alreadyDeployed) return { nothingToRestore: true };
    const config = ctx.config;
    const t = this.#target(config);
    const job = encodeURIComponent(state.job);
    const latest = (await this.#call<Deployment | null>(t, "GET", `/v1/job/${job}/deployment`, `reading the deployment of job ${state.job}`)).body;
    if (latest && latest.JobVersion === state.newVersion && latest.Status === "running") {
      await this.#call(t, "POST", `/v1/deployment/fail/${latest.ID}`, `failing deployment ${latest.ID}`, { body: { DeploymentID: latest.ID } });
      ctx.progress.log(`restore: failed deployment ${latest.ID}`);
    }
    const versions = await this.#versions(t, state.job);
    const previous = versions.find((v) => v.Version === state.previousVersion);
    if (!previous) throw new DriverError("RESTORE_FAILED", `job ${state.job} has no version ${state.previousVersion} to go back to`, {});
    const current = await this.#job(t, state.job);
    const same = Object.keys(state.tasks).every((k) => imageOf(current, k) === imageOf(previous, k));
    let back: NomadPhaseState;
    if (current.Version === state.previousVersion || (same && current.Version > state.newVersion)) {
      // Nothing was registered after all, or Nomad's auto_revert already registered the previous spec again.
      ctx.progress.log(`restore: job ${state.job} is at version ${current.Version}${current.Version === state.previousVersion ? "" : `, Nomad's auto_revert of version ${state.previousVersion}`}`);
      back = { ...state, newVersion: current.Version, evalId: undefined };
    } else {
      const out = (await this.#call<{ EvalID: string; JobModifyIndex: number }>(t, "POST", `/v1/job/${job}/revert`, `reverting job ${state.job}`, { body: { JobID: state.job, JobVersion: state.previousVersion, EnforcePriorVersion: current.Version } })).body;
      const now = await this.#job(t, state.job);
      ctx.progress.log(`restore: reverted job ${state.job} to version ${state.previousVersion} as version ${now.Version}`);
      back = { ...state, newVersion: now.Version, evalId: out.EvalID };
    }
    // Back to what served: canaries of this return are promoted as soon as they are healthy, without analysis.
    const r = await this.#follow({ ...ctx, signal: new AbortController().signal }, back, { promote: true, noDeadline: true });
    if (r.kind === "failed") throw new DriverError("RESTORE_FAILED", `going back to version ${state.previousVersion} failed: ${r.summary}`, {});
    return { version: back.newVersion, revertedTo: state.previousVersion, deploymentId: r.deployment?.ID };
  }

  outcome(ctx: PhaseContext<NomadTargetConfig>, state: NomadPhaseState): DeployOutcome {
    const running: RunningImage[] = Object.keys(state.tasks).map((key) => {
      const pin = pinFor(state.tasks, key, ctx.images);
      return { component: pin.component, repository: pin.repository, digest: pin.digest, containerName: key };
    });
    const message = state.alreadyDeployed
      ? `job ${state.job} version ${state.newVersion} already runs these digests; nothing to do`
      : `job ${state.job} runs version ${state.newVersion}${state.deploymentId ? ` (deployment ${state.deploymentId})` : ""}, replacing version ${state.previousVersion}`;
    return { running, message, details: { version: state.newVersion, previousVersion: state.previousVersion, deploymentId: state.deploymentId, ...(state.alreadyDeployed ? { alreadyDeployed: true } : {}) } };
  }

  #sticker(ctx: PhaseContext<NomadTargetConfig>): TargetSticker {
    return { deploymentId: ctx.deploymentId, taskId: ctx.taskId, releaseId: ctx.release.id, images: ctx.images.map((i) => ({ component: i.component, digest: i.digest })) };
  }
}

function ferryMeta(meta: Record<string, string> | null | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(meta ?? {}).filter(([k]) => k.startsWith("ferry.")));
}

/** Why Ferry cannot deploy a job of this type, or undefined: only service jobs have deployments. */
function jobTypeProblem(job: NomadJob, id: string): DriverError | undefined {
  if ((job.Type ?? "service") === "service") return undefined;
  return new DriverError("TARGET_UNSUPPORTED", `Nomad job ${id} is a ${job.Type} job; Ferry deploys service jobs (they have deployments)`, { type: job.Type });
}

/** The mapped tasks' groups whose update block has canaries that Nomad promotes by itself (auto_promote). */
function autoPromotedGroups(job: NomadJob, tasks: Record<string, string>): string[] {
  const groups = new Set(Object.keys(tasks).map((k) => k.split("/")[0]!));
  return job.TaskGroups.filter((g) => groups.has(g.Name)).filter((g) => {
    const u = g.Update ?? (job["Update"] as NomadUpdate | null | undefined) ?? {};
    return (u.Canary ?? 0) > 0 && u.AutoPromote === true;
  }).map((g) => g.Name);
}
