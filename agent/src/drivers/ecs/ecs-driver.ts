// The ECS target driver: an ECS service rolled out by ECS itself, followed and checked by Ferry (docs/drivers/ecs.md).
//
//   prepare  DescribeServices (a missing service is in failures[] as MISSING) → DescribeTaskDefinition (with tags);
//            map containers to components; refuse a service another deployment is rolling, or whose deployment
//            controller is not ECS. Nothing changes.
//   start    RegisterTaskDefinition (the current one, mapped images pinned by digest, sticker tags) → UpdateService
//            with the circuit breaker on → our deployment's id from deployments[]
//   health   follow *our* deployment: PRIMARY, COMPLETED and the only one is healthy; FAILED, or gone, is not. Then
//            every running task must have been started by it and carry the pinned imageDigest. (Not the SDK's
//            services-stable waiter: it also succeeds when ECS rolled the service back.)
//   switch   ECS switched as it rolled; the service's tags get the sticker
//   retire   nothing: the previous revision stays registered, it is where a rollback goes
//   restore  the previous task-definition revision (unless ECS's circuit breaker already went back to it), followed
//            to a completed deployment
//
// A service whose deploymentConfiguration.strategy is BLUE_GREEN, LINEAR or CANARY is deployed the same way but
// followed through its *service deployment* (native.ts): the lifecycle stages are logged, Ferry's checks run during
// every bake and at the stages where Ferry's gate function is a lifecycle hook, a failed check stops the deployment
// with ROLLBACK, and restore follows ECS's rollback (or deploys the previous revision through the same strategy).
import { setTimeout as sleep } from "node:timers/promises";

import {
  ContinueServiceDeploymentCommand,
  DescribeServiceDeploymentsCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
  StopServiceDeploymentCommand,
  TagResourceCommand,
  UpdateServiceCommand,
  type Deployment,
  type Service,
  type ServiceDeployment,
  type Task,
  type TaskDefinition,
} from "@aws-sdk/client-ecs";
import { ConfigError, ecsKind, parseTargetConfig, type Capability, type EcsTargetConfig } from "@ferry/contract";
import { pino, type Logger } from "pino";

import {
  DriverError,
  PhaseFailure,
  type DeployOutcome,
  type Driver,
  type HealthReport,
  type PhaseContext,
  type RunningImage,
  type TargetInspection,
  type TargetRef,
  type TargetSticker,
} from "../driver.js";
import { ecsError } from "./errors.js";
import { GATE_TAG, gateTagValue, serviceDeploymentId } from "./gate-hook.js";
import { bakeBudgetSeconds, bakeWindow, gateProblem, gateStages, isNative, nativeLine, NativeChecks, pauseStages, ROLLBACK_STATUSES } from "./native.js";
import type { EcsPhaseState } from "./phase-state.js";
import { stickerFromTags, stickerTags, tagMap, TAGS, type Tag } from "./sticker-tags.js";
import { imageFor, mapContainers, nextRevision, runsImages, targetContainers } from "./task-definition.js";

export const DEFAULT_POLL_MS = 5000;
export const DEFAULT_STEADY_STATE_SECONDS = 900;

export interface EcsDriverOptions {
  logger?: Logger;
  settings?: EcsSettings;
}

export function ecsConfig(raw: Record<string, unknown>): EcsTargetConfig {
  try {
    return parseTargetConfig(ecsKind, raw);
  } catch (err) {
    if (err instanceof ConfigError) throw new DriverError("INVALID_TARGET_CONFIG", err.message, { field: err.path });
    throw err;
  }
}

export class EcsDriver implements Driver<EcsTargetConfig, EcsPhaseState> {
  readonly descriptor = ecsKind;
  readonly #logger: Logger;
  readonly #settings: EcsSettings;
  readonly #clients = new Map<string, ECSClient>();

  constructor(opts: EcsDriverOptions = {}) {
    this.#logger = (opts.logger ?? pino({ level: "silent" })).child({ driver: "ecs" });
    this.#settings = opts.settings ?? {};
  }

  capabilities(): readonly Capability[] {
    return ecsKind.capabilities;
  }

  #client(region: string): ECSClient {
    let c = this.#clients.get(region);
    if (!c) {
      c = new ECSClient({
        region,
        maxAttempts: this.#settings.maxAttempts ?? 5,
        ...(this.#settings.endpoint ? { endpoint: this.#settings.endpoint } : {}),
        ...(this.#settings.profile ? { profile: this.#settings.profile } : {}),
      });
      this.#clients.set(region, c);
    }
    return c;
  }

  get #pollMs(): number {
    return this.#settings.pollIntervalMs ?? DEFAULT_POLL_MS;
  }

  async #call<T>(region: string, action: string, command: { input: unknown }, signal?: AbortSignal): Promise<T> {
    try {
      return (await this.#client(region).send(command as never, signal ? { abortSignal: signal } : {})) as T;
    } catch (err) {
      if (signal?.aborted) throw err;
      throw ecsError(action, err);
    }
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    // The credential chain is resolved once so an agent without credentials does not advertise the driver. Which
    // source answered is said; what it answered never is.
    const where = this.#settings.endpoint ? `endpoint ${this.#settings.endpoint}` : "the regional endpoints";
    try {
      const creds = await this.#client("us-east-1").config.credentials();
      const source = this.#settings.profile ? `profile ${this.#settings.profile}` : "the AWS credential chain";
      return { ok: true, detail: `ECS API at ${where}, credentials from ${source} (access key ${creds.accessKeyId.slice(0, 4)}…)` };
    } catch (err) {
      return { ok: false, detail: `no AWS credentials for the ECS driver: ${(err as Error).message}` };
    }
  }

  async #describeService(config: EcsTargetConfig, signal?: AbortSignal): Promise<Service> {
    let out: { services?: Service[]; failures?: { arn?: string; reason?: string }[] };
    try {
      out = await this.#call(config.region, "DescribeServices", new DescribeServicesCommand({ cluster: config.cluster, services: [config.service], include: ["TAGS"] }), signal);
    } catch (err) {
      // ECS answers a missing cluster with ClusterNotFoundException; say which cluster.
      if (err instanceof DriverError && err.details["awsError"] === "ClusterNotFoundException") {
        throw new DriverError("TARGET_NOT_FOUND", `ECS cluster ${config.cluster} (${config.region}) does not exist`, { ...err.details, field: "config.cluster" });
      }
      throw err;
    }
    const svc = out.services?.[0];
    if (!svc || svc.status === "INACTIVE") {
      const reason = out.failures?.[0]?.reason ?? svc?.status ?? "MISSING";
      throw new DriverError("TARGET_NOT_FOUND", `ECS service ${config.service} in cluster ${config.cluster} (${config.region}) does not exist (${reason})`, { field: "config.service", reason });
    }
    return svc;
  }

  async #describeTd(config: EcsTargetConfig, arn: string, signal?: AbortSignal): Promise<{ td: TaskDefinition; tags: Tag[] }> {
    const out = await this.#call<{ taskDefinition?: TaskDefinition; tags?: Tag[] }>(config.region, "DescribeTaskDefinition", new DescribeTaskDefinitionCommand({ taskDefinition: arn, include: ["TAGS"] }), signal);
    if (!out.taskDefinition) throw new DriverError("TARGET_NOT_FOUND", `ECS task definition ${arn} does not exist`, {});
    return { td: out.taskDefinition, tags: (out.tags ?? []).map((t) => ({ key: t.key ?? "", value: t.value ?? "" })) };
  }

  async #runningTasks(config: EcsTargetConfig, signal?: AbortSignal): Promise<Task[]> {
    const list = await this.#call<{ taskArns?: string[] }>(config.region, "ListTasks", new ListTasksCommand({ cluster: config.cluster, serviceName: config.service, desiredStatus: "RUNNING" }), signal);
    const arns = list.taskArns ?? [];
    const tasks: Task[] = [];
    for (let i = 0; i < arns.length; i += 100) {
      const out = await this.#call<{ tasks?: Task[] }>(config.region, "DescribeTasks", new DescribeTasksCommand({ cluster: config.cluster, tasks: arns.slice(i, i + 100) }), signal);
      tasks.push(...(out.tasks ?? []));
    }
    return tasks;
  }

  // ── observation ──────────────────────────────────────────────────────────────────────────────────────────────

  async inspect(target: TargetRef): Promise<TargetInspection> {
    const config = ecsConfig(target.config);
    let svc: Service;
    try {
      svc = await this.#describeService(config);
    } catch (err) {
      if (err instanceof DriverError && err.code === "TARGET_NOT_FOUND") return { state: "missing", running: [], labels: {}, details: { error: err.message } };
      throw err;
    }
    const tags = tagMap(svc.tags);
    const { td } = await this.#describeTd(config, svc.taskDefinition!);
    const sticker = stickerFromTags(tags);
    let mapping: Record<string, string>;
    try {
      const containers = targetContainers(td, config);
      const component = sticker?.images[0]?.component ?? config.component ?? "";
      mapping = config.containers ? { ...config.containers } : { [containers[0]!]: component };
    } catch (err) {
      // A target check (docs/drivers/ecs.md#target-checks) reports why the config does not fit the service.
      const check = err instanceof DriverError ? { code: err.code, message: err.message } : undefined;
      return { state: "unknown", running: [], labels: ferryOnly(tags), details: { error: (err as Error).message, taskDefinition: td.taskDefinitionArn, ...(check ? { check } : {}) } };
    }
    const tasks = (await this.#runningTasks(config)).filter((t) => t.lastStatus === "RUNNING");
    const running: RunningImage[] = [];
    const byContainer = new Map<string, Set<string>>();
    for (const t of tasks) {
      for (const c of t.containers ?? []) {
        const component = mapping[c.name ?? ""];
        if (component === undefined) continue;
        const digests = byContainer.get(c.name!) ?? new Set<string>();
        digests.add(c.imageDigest ?? "");
        byContainer.set(c.name!, digests);
      }
    }
    for (const [container, digests] of byContainer) {
      const def = td.containerDefinitions?.find((c) => c.name === container);
      const repository = (def?.image ?? "").split("@")[0] ?? "";
      for (const digest of digests) running.push({ component: mapping[container]!, repository, digest, containerName: container });
    }
    const drift: string[] = [];
    if (tags[TAGS.taskDefinition] && tags[TAGS.taskDefinition] !== svc.taskDefinition) drift.push(`the service runs ${svc.taskDefinition}, Ferry deployed ${tags[TAGS.taskDefinition]}`);
    for (const img of sticker?.images ?? []) {
      const seen = running.filter((r) => r.component === img.component).map((r) => r.digest);
      if (seen.some((d) => d !== img.digest)) drift.push(`${img.component}: the sticker says ${img.digest}, tasks run ${[...new Set(seen)].join(", ")}`);
    }
    const details: Record<string, unknown> = {
      serviceArn: svc.serviceArn,
      taskDefinition: svc.taskDefinition,
      desiredCount: svc.desiredCount,
      runningCount: svc.runningCount,
      deployments: (svc.deployments ?? []).map((d) => ({ id: d.id, status: d.status, rolloutState: d.rolloutState, taskDefinition: d.taskDefinition, runningCount: d.runningCount, failedTasks: d.failedTasks })),
      deploymentController: svc.deploymentController?.type ?? "ECS",
      strategy: svc.deploymentConfiguration?.strategy ?? "ROLLING",
      ...(svc.currentServiceDeployment ? { currentServiceDeployment: svc.currentServiceDeployment } : {}),
    };
    if (drift.length > 0) details["drift"] = drift;
    const unsupported = serviceProblem(svc, config);
    if (unsupported) details["check"] = { code: unsupported.code, message: unsupported.message };
    const inProgress = (svc.deployments ?? []).find((d) => d.rolloutState === "IN_PROGRESS");
    if (inProgress) details["deploymentInProgress"] = inProgress.id;
    return { state: (svc.runningCount ?? 0) > 0 ? "running" : "stopped", running, labels: ferryOnly(tags), details };
  }

  async readSticker(target: TargetRef): Promise<TargetSticker | undefined> {
    const svc = await this.#describeService(ecsConfig(target.config));
    return stickerFromTags(tagMap(svc.tags));
  }

  // ── phases ───────────────────────────────────────────────────────────────────────────────────────────────────

  async prepare(ctx: PhaseContext<EcsTargetConfig>): Promise<EcsPhaseState> {
    const config = ctx.config;
    const svc = await this.#describeService(config, ctx.signal);
    const unsupported = serviceProblem(svc, config);
    if (unsupported) throw unsupported;
    const strategy = svc.deploymentConfiguration?.strategy ?? "ROLLING";
    if (isNative(strategy) && svc.currentServiceDeployment) {
      const sd = await this.#describeServiceDeployment(config, svc.currentServiceDeployment, ctx.signal);
      if (sd && ["PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"].includes(sd.status ?? "")) {
        throw new DriverError("PLATFORM_BUSY", `ECS service ${config.service} is in the middle of service deployment ${svc.currentServiceDeployment} (${sd.status}, ${sd.lifecycleStage}); try again when it is done`, { serviceDeployment: svc.currentServiceDeployment });
      }
    }
    const busy = (svc.deployments ?? []).filter((d) => d.rolloutState === "IN_PROGRESS" || d.status !== "PRIMARY");
    if (busy.length > 0) {
      throw new DriverError("PLATFORM_BUSY", `ECS service ${config.service} is in the middle of deployment ${busy[0]!.id} (${busy[0]!.rolloutState}); try again when it is done`, { deployments: busy.map((d) => d.id) });
    }
    const current = await this.#describeTd(config, svc.taskDefinition!, ctx.signal);
    const containers = mapContainers(current.td, config, ctx.images);
    const state: EcsPhaseState = { cluster: config.cluster, service: config.service, serviceArn: svc.serviceArn!, previousTaskDefinition: svc.taskDefinition!, containers, strategy };
    if (!isNative(strategy) && config.native) {
      ctx.progress.log(`prepare: config.native applies to ECS's BLUE_GREEN, LINEAR and CANARY strategies; ${config.service} deploys by ${strategy}, so it is not used`);
    }
    if (isNative(strategy)) {
      const gates = [...gateStages(svc.deploymentConfiguration, config.native?.gateHookArn), ...(config.native?.pauseGate ? pauseStages(svc.deploymentConfiguration).map((st) => `${st} (pause)`) : [])];
      ctx.progress.log(`prepare: ECS deploys ${config.service} by its ${strategy} strategy; Ferry follows the service deployment, checks every bake${gates.length > 0 ? ` and gates ${gates.join(", ")}` : ""}`);
    }
    ctx.progress.log(`prepare: ${config.service} runs ${svc.taskDefinition} (${svc.runningCount}/${svc.desiredCount} tasks); setting ${Object.entries(containers).map(([c, comp]) => `${c} → ${comp}`).join(", ")}`);
    ctx.progress.log("prepare: ECS pulls the images itself; their digests are checked on the running tasks once the deployment completes");
    if (runsImages(current.td, containers, ctx.images)) {
      ctx.progress.log(`prepare: ${svc.taskDefinition} already runs these digests; nothing to roll out`);
      return { ...state, alreadyDeployed: true, newTaskDefinition: svc.taskDefinition! };
    }
    // A rollback to what ran before: the previous revision Ferry recorded already carries the images.
    const previous = tagMap(svc.tags)[TAGS.previousTaskDefinition];
    if (previous) {
      const prev = await this.#describeTd(config, previous, ctx.signal).catch(() => undefined);
      if (prev && prev.td.status === "ACTIVE" && runsImages(prev.td, containers, ctx.images)) {
        ctx.progress.log(`prepare: ${previous} already carries these digests; it is deployed again rather than registered anew`);
        return { ...state, reuseTaskDefinition: previous };
      }
    }
    return state;
  }

  async start(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<EcsPhaseState> {
    if (state.alreadyDeployed) return state;
    const config = ctx.config;
    let arn = state.reuseTaskDefinition;
    if (!arn) {
      const { td, tags } = await this.#describeTd(config, state.previousTaskDefinition, ctx.signal);
      const input = nextRevision(td, tags, state.containers, ctx.images, stickerTags(this.#sticker(ctx)));
      const out = await this.#call<{ taskDefinition?: TaskDefinition }>(config.region, "RegisterTaskDefinition", new RegisterTaskDefinitionCommand(input), ctx.signal);
      arn = out.taskDefinition!.taskDefinitionArn!;
      ctx.progress.log(`start: registered ${arn}`);
    }
    const next: EcsPhaseState = { ...state, newTaskDefinition: arn };
    const dc = config.deployment ?? {};
    // For ECS's own strategies the service's whole deploymentConfiguration (strategy, bake time, hooks, steps) is sent
    // back as it is, with only the circuit breaker and the percentages set: nothing of it is lost to the update.
    const own = isNative(state.strategy) ? (await this.#describeService(config, ctx.signal)).deploymentConfiguration : undefined;
    const out = await this.#call<{ service?: Service }>(
      config.region,
      "UpdateService",
      new UpdateServiceCommand({
        cluster: config.cluster,
        service: config.service,
        taskDefinition: arn,
        deploymentConfiguration: {
          ...(own ?? {}),
          deploymentCircuitBreaker: { enable: true, rollback: dc.circuitBreakerRollback ?? true },
          ...(dc.maximumPercent !== undefined ? { maximumPercent: dc.maximumPercent } : {}),
          ...(dc.minimumHealthyPercent !== undefined ? { minimumHealthyPercent: dc.minimumHealthyPercent } : {}),
        },
      }),
      ctx.signal,
    );
    if (isNative(state.strategy)) {
      const sd = out.service?.currentServiceDeployment;
      if (!sd) throw new PhaseFailure(new DriverError("PLATFORM_REJECTED", `ECS UpdateService did not start a service deployment of ${arn}`, {}), next);
      const ours = out.service?.deployments?.find((d) => d.status === "PRIMARY" && d.taskDefinition === arn);
      ctx.progress.log(`start: ECS ${state.strategy} service deployment ${sd} of ${arn} started (circuit breaker with${dc.circuitBreakerRollback === false ? "out" : ""} rollback)`);
      this.#logger.info({ taskId: ctx.taskId, service: config.service, taskDefinition: arn, serviceDeployment: sd }, "ECS service deployment started");
      return { ...next, serviceDeploymentArn: sd, ...(ours?.id ? { deploymentId: ours.id } : {}) };
    }
    const ours = out.service?.deployments?.find((d) => d.status === "PRIMARY" && d.taskDefinition === arn);
    if (!ours?.id) throw new DriverError("PLATFORM_REJECTED", `ECS UpdateService did not start a deployment of ${arn}`, {});
    ctx.progress.log(`start: ECS deployment ${ours.id} of ${arn} started (maximum ${out.service?.deploymentConfiguration?.maximumPercent}%, minimum healthy ${out.service?.deploymentConfiguration?.minimumHealthyPercent}%, circuit breaker with${dc.circuitBreakerRollback === false ? "out" : ""} rollback)`);
    this.#logger.info({ taskId: ctx.taskId, service: config.service, taskDefinition: arn, deploymentId: ours.id }, "ECS deployment started");
    return { ...next, deploymentId: ours.id };
  }

  async health(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<HealthReport> {
    if (state.serviceDeploymentArn) return this.#nativeHealth(ctx, state);
    const config = ctx.config;
    const deadline = Date.now() + (config.steadyStateTimeoutSeconds ?? DEFAULT_STEADY_STATE_SECONDS) * 1000;
    let last = "";
    for (;;) {
      const svc = await this.#describeService(config, ctx.signal);
      const deployments = svc.deployments ?? [];
      const ours = state.deploymentId ? deployments.find((d) => d.id === state.deploymentId) : deployments.find((d) => d.taskDefinition === state.newTaskDefinition && d.status === "PRIMARY");
      const line = ours ? `deployment ${ours.id}: ${ours.rolloutState}, ${ours.runningCount}/${ours.desiredCount} running, ${ours.pendingCount} pending, ${ours.failedTasks} failed` : "our deployment is gone";
      if (line !== last) ctx.progress.log(`health: ${line}`);
      last = line;
      if (!ours) {
        // ECS drops a failed deployment from deployments[] once its rollback completes; the service's events still
        // say why it went.
        const event = (svc.events ?? []).find((e) => state.deploymentId !== undefined && e.message?.includes(state.deploymentId) && /fail/i.test(e.message));
        if (event) return this.#failed(ctx, config, `ECS deployment ${state.deploymentId} failed and ECS rolled back: ${event.message}`, "INSTANCE_CRASHED", deployments);
        const primary = deployments.find((d) => d.status === "PRIMARY");
        return this.#failed(ctx, config, `ECS deployment ${state.deploymentId} is no longer on the service; ${primary ? `${primary.id} (${primary.taskDefinition}) is primary` : "no deployment is primary"}`, "HEALTH_CHECK_FAILED", deployments);
      }
      if (ours.rolloutState === "FAILED") {
        return this.#failed(ctx, config, `ECS deployment ${ours.id} failed: ${ours.rolloutStateReason ?? "no reason given"}`, "INSTANCE_CRASHED", deployments);
      }
      if (ours.status !== "PRIMARY") {
        return this.#failed(ctx, config, `ECS deployment ${ours.id} is no longer primary (${ours.status}): ${ours.rolloutStateReason ?? ""}`, "HEALTH_CHECK_FAILED", deployments);
      }
      if (ours.rolloutState === "COMPLETED" && deployments.length === 1) {
        const verified = await this.#verifyTasks(ctx, state);
        state.verified = verified;
        return { ok: true, summary: `ECS deployment ${ours.id} completed: ${verified.length} container(s) in ${ours.runningCount} task(s) run the pinned digests`, details: { deploymentId: ours.id, taskDefinition: ours.taskDefinition, runningCount: ours.runningCount, verified } };
      }
      if (Date.now() > deadline) {
        return this.#failed(ctx, config, `ECS deployment ${ours.id} did not complete within ${config.steadyStateTimeoutSeconds ?? DEFAULT_STEADY_STATE_SECONDS} s (${line})`, "HEALTH_CHECK_FAILED", deployments);
      }
      await sleep(this.#pollMs, undefined, { signal: ctx.signal });
    }
  }

  async #failed(ctx: PhaseContext<EcsTargetConfig>, config: EcsTargetConfig, summary: string, code: "HEALTH_CHECK_FAILED" | "INSTANCE_CRASHED", deployments: Deployment[]): Promise<HealthReport> {
    // The last stopped tasks say why (an essential container exited, an image could not be pulled).
    let stopped: { taskArn?: string; stoppedReason?: string; exitCodes?: (number | undefined)[] }[] = [];
    try {
      const list = await this.#call<{ taskArns?: string[] }>(config.region, "ListTasks", new ListTasksCommand({ cluster: config.cluster, serviceName: config.service, desiredStatus: "STOPPED" }), ctx.signal);
      const arns = (list.taskArns ?? []).slice(-5);
      if (arns.length > 0) {
        const out = await this.#call<{ tasks?: Task[] }>(config.region, "DescribeTasks", new DescribeTasksCommand({ cluster: config.cluster, tasks: arns }), ctx.signal);
        stopped = (out.tasks ?? []).map((t) => ({ taskArn: t.taskArn, stoppedReason: t.stoppedReason, exitCodes: (t.containers ?? []).map((c) => c.exitCode) }));
      }
    } catch {
      // What stopped is for the operator; the verdict stands without it.
    }
    for (const s of stopped) ctx.progress.log(`health: stopped task ${s.taskArn}: ${s.stoppedReason ?? ""} (exit ${s.exitCodes?.join(", ")})`);
    return { ok: false, code, summary, details: { deployments: deployments.map((d) => ({ id: d.id, status: d.status, rolloutState: d.rolloutState, rolloutStateReason: d.rolloutStateReason, taskDefinition: d.taskDefinition, failedTasks: d.failedTasks })), stoppedTasks: stopped } };
  }

  /** Every running task was started by our deployment, from our task definition, and carries the pinned digests. */
  async #verifyTasks(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<NonNullable<EcsPhaseState["verified"]>> {
    const tasks = (await this.#runningTasks(ctx.config, ctx.signal)).filter((t) => t.lastStatus === "RUNNING");
    const verified: NonNullable<EcsPhaseState["verified"]> = [];
    for (const t of tasks) {
      if (t.taskDefinitionArn !== state.newTaskDefinition || (state.deploymentId && t.startedBy !== state.deploymentId)) {
        throw new DriverError("HEALTH_CHECK_FAILED", `task ${t.taskArn} runs ${t.taskDefinitionArn} started by ${t.startedBy}, not ${state.newTaskDefinition} of deployment ${state.deploymentId}`, { task: t.taskArn });
      }
      for (const [container] of Object.entries(state.containers)) {
        const want = imageFor(state.containers, container, ctx.images);
        const c = t.containers?.find((x) => x.name === container);
        if (!c?.imageDigest || c.imageDigest !== want.digest) {
          throw new DriverError("DIGEST_MISMATCH", `task ${t.taskArn} container ${container} runs ${c?.imageDigest ?? "an image of unknown digest"}, not the pinned ${want.digest}`, {
            task: t.taskArn,
            container,
            expected: want.digest,
            actual: c?.imageDigest ?? "",
          });
        }
        verified.push({ taskArn: t.taskArn!, container, digest: c.imageDigest });
      }
    }
    if (tasks.length === 0) throw new DriverError("HEALTH_CHECK_FAILED", "the deployment completed with no running task to check", {});
    return verified;
  }

  // ── ECS's own strategies (BLUE_GREEN, LINEAR, CANARY) ───────────────────────────────────────────────────────

  async #describeServiceDeployment(config: EcsTargetConfig, arn: string, signal?: AbortSignal): Promise<ServiceDeployment | undefined> {
    const out = await this.#call<{ serviceDeployments?: ServiceDeployment[] }>(config.region, "DescribeServiceDeployments", new DescribeServiceDeploymentsCommand({ serviceDeploymentArns: [arn] }), signal);
    return out.serviceDeployments?.find((d) => d.serviceDeploymentArn === arn);
  }

  async #stopServiceDeployment(ctx: PhaseContext<EcsTargetConfig>, arn: string): Promise<void> {
    try {
      await this.#call(ctx.config.region, "StopServiceDeployment", new StopServiceDeploymentCommand({ serviceDeploymentArn: arn, stopType: "ROLLBACK" }));
      ctx.progress.log(`health: asked ECS to stop service deployment ${serviceDeploymentId(arn)} with ROLLBACK`);
    } catch (err) {
      // Ended in between (ConflictException): restore reads where it ended.
      if (err instanceof DriverError && err.details["awsError"] === "ConflictException") return;
      throw err;
    }
  }

  async #nativeHealth(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<HealthReport> {
    const config = ctx.config;
    const arn = state.serviceDeploymentArn!;
    const svc = await this.#describeService(config, ctx.signal);
    const native = config.native ?? {};
    const gates = new Set(gateStages(svc.deploymentConfiguration, native.gateHookArn));
    const pauses = native.pauseGate ? pauseStages(svc.deploymentConfiguration).length : 0;
    const checks = new NativeChecks(native, ctx.signal, (l) => ctx.progress.log(l));
    let deadline = Date.now() + ((config.steadyStateTimeoutSeconds ?? DEFAULT_STEADY_STATE_SECONDS) + bakeBudgetSeconds(svc.deploymentConfiguration, (gates.size + pauses) * (native.gateSeconds ?? 60))) * 1000;
    let last = "";
    /** Gates answered: a stage for Ferry's gate function, a hook id for a PAUSE hook. */
    const gated = new Set<string>();
    let gate: { key: string; stage: string; until: number; hookId?: string } | undefined;
    let window = "";
    for (;;) {
      const sd = await this.#describeServiceDeployment(config, arn, ctx.signal);
      if (!sd) return { ok: false, code: "HEALTH_CHECK_FAILED", summary: `ECS service deployment ${arn} is gone`, details: { serviceDeploymentArn: arn } };
      const line = nativeLine(sd);
      if (line !== last) ctx.progress.log(`health: service deployment ${serviceDeploymentId(arn)}: ${line}`);
      last = line;
      const status = sd.status ?? "";
      const details = { serviceDeploymentArn: arn, status, lifecycleStage: sd.lifecycleStage, statusReason: sd.statusReason, rollback: sd.rollback };
      if (status === "SUCCESSFUL") {
        const verified = await this.#verifyTasks(ctx, state);
        state.verified = verified;
        return { ok: true, summary: `ECS ${state.strategy} service deployment ${serviceDeploymentId(arn)} succeeded: ${verified.length} container(s) run the pinned digests${checks.probes > 0 ? `, ${checks.probes} probe(s) passed` : ""}`, details: { ...details, verified } };
      }
      if (ROLLBACK_STATUSES.has(status) || status === "STOPPED") {
        if (state.ferryFailure) return { ok: false, code: state.ferryFailure.code, summary: state.ferryFailure.summary, details };
        const breaker = sd.deploymentCircuitBreaker?.status === "TRIGGERED" || /circuit breaker/i.test(sd.statusReason ?? "");
        return { ok: false, code: breaker ? "INSTANCE_CRASHED" : "HEALTH_CHECK_FAILED", summary: `ECS ${status === "STOPPED" ? "stopped" : "rolled back"} service deployment ${serviceDeploymentId(arn)}: ${sd.statusReason ?? "no reason given"}`, details };
      }
      const stage = sd.lifecycleStage ?? "";
      if (status === "IN_PROGRESS") {
        // A gate: the deployment waits in this stage for Ferry's function (or a PAUSE hook for Ferry's answer); Ferry
        // checks, then gives its verdict.
        if (!gate) {
          const paused = native.pauseGate ? (sd.lifecycleHookDetails ?? []).find((h) => h.targetType === "PAUSE" && h.status === "AWAITING_ACTION" && h.hookId && !gated.has(h.hookId)) : undefined;
          if (paused) gate = { key: paused.hookId!, stage, until: Date.now() + (native.gateSeconds ?? 60) * 1000, hookId: paused.hookId! };
          else if (gates.has(stage) && !gated.has(stage)) gate = { key: stage, stage, until: Date.now() + (native.gateSeconds ?? 60) * 1000 };
          if (gate) checks.begin(`gate ${stage}${gate.hookId ? " (pause)" : ""}`, native.testProbeUrl ?? native.probeUrl, (native.gateSeconds ?? 60) * 1000);
        }
        if (gate && !gate.hookId && gate.stage !== stage) {
          ctx.progress.log(`health: the deployment left ${gate.stage} before Ferry's verdict: is Ferry's gate function (${native.gateHookArn}) the hook of that stage?`);
          gated.add(gate.key);
          gate = undefined;
        }
        if (gate?.hookId && !(sd.lifecycleHookDetails ?? []).some((h) => h.hookId === gate!.hookId && h.status === "AWAITING_ACTION")) {
          ctx.progress.log(`health: the pause at ${gate.stage} ended before Ferry's verdict (continued from elsewhere, or timed out)`);
          gated.add(gate.key);
          gate = undefined;
        }
        const bake = gate ? "" : bakeWindow(sd, state.strategy);
        if (bake && bake !== window) checks.begin(bake, native.probeUrl, 0);
        window = bake;
        if (gate || bake) {
          const problem = await checks.check(sd);
          if (problem) {
            state.ferryFailure = problem;
            if (gate) {
              await this.#recordGate(ctx, state, arn, gate, "FAILED");
              gated.add(gate.key);
              gate = undefined;
              // ECS rolls back when the function answers FAILED; followed like any rollback (bounded by the deadline).
              deadline = Math.max(deadline, Date.now() + 600_000);
            } else {
              await this.#stopServiceDeployment(ctx, arn);
              return { ok: false, code: problem.code, summary: problem.summary, details: { ...details, stoppedBy: "ferry" } };
            }
          } else if (gate && Date.now() >= gate.until && checks.enough()) {
            ctx.progress.log(`health: gate ${gate.stage} passed: ${checks.summary()}`);
            await this.#recordGate(ctx, state, arn, gate, "SUCCEEDED");
            gated.add(gate.key);
            gate = undefined;
          }
        }
      }
      if (Date.now() > deadline) {
        if (status === "IN_PROGRESS" || status === "PENDING") await this.#stopServiceDeployment(ctx, arn);
        return { ok: false, code: state.ferryFailure?.code ?? "HEALTH_CHECK_FAILED", summary: state.ferryFailure?.summary ?? `ECS service deployment ${serviceDeploymentId(arn)} did not finish in time (${line})`, details };
      }
      await sleep(this.#pollMs, undefined, { signal: ctx.signal });
    }
  }

  async #recordGate(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState, arn: string, gate: { stage: string; hookId?: string }, verdict: "SUCCEEDED" | "FAILED"): Promise<void> {
    if (gate.hookId) {
      const action = verdict === "SUCCEEDED" ? "CONTINUE" : "ROLLBACK";
      try {
        await this.#call(ctx.config.region, "ContinueServiceDeployment", new ContinueServiceDeploymentCommand({ serviceDeploymentArn: arn, hookId: gate.hookId, action }), ctx.signal);
      } catch (err) {
        // The pause ended in between (its timeout, someone else): the deployment's status says what came of it.
        if (err instanceof DriverError && err.details["awsError"] === "ConflictException") return;
        throw err;
      }
      ctx.progress.log(`health: Ferry's verdict at ${gate.stage}: ${verdict}; ContinueServiceDeployment ${action}`);
      return;
    }
    await this.#call(ctx.config.region, "TagResource", new TagResourceCommand({ resourceArn: state.serviceArn, tags: [{ key: GATE_TAG, value: gateTagValue(arn, gate.stage, verdict) }] }), ctx.signal);
    ctx.progress.log(`health: Ferry's verdict at ${gate.stage}: ${verdict} (service tag ${GATE_TAG}); ECS hears it from the gate function`);
  }

  async #nativeRestore(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<Record<string, unknown>> {
    const config = ctx.config;
    const svc = await this.#describeService(config);
    const deadline = Date.now() + ((config.steadyStateTimeoutSeconds ?? DEFAULT_STEADY_STATE_SECONDS) + bakeBudgetSeconds(svc.deploymentConfiguration, 0)) * 1000;
    let arn = state.serviceDeploymentArn!;
    let redeployed = false;
    let last = "";
    const gates = new Set(gateStages(svc.deploymentConfiguration, config.native?.gateHookArn));
    const passed = new Set<string>();
    for (;;) {
      const sd = await this.#describeServiceDeployment(config, arn);
      const status = sd?.status ?? "MISSING";
      const line = sd ? nativeLine(sd) : "gone";
      if (line !== last) ctx.progress.log(`restore: service deployment ${serviceDeploymentId(arn)}: ${line}`);
      last = line;
      if (redeployed && sd && status === "IN_PROGRESS") {
        // Ferry's own gates do not hold the way back: the revision it restores is the one that served.
        const stage = sd.lifecycleStage ?? "";
        const pause = config.native?.pauseGate ? (sd.lifecycleHookDetails ?? []).find((h) => h.targetType === "PAUSE" && h.status === "AWAITING_ACTION" && h.hookId && !passed.has(h.hookId)) : undefined;
        const gate = pause ? { key: pause.hookId!, stage, hookId: pause.hookId! } : gates.has(stage) && !passed.has(stage) ? { key: stage, stage } : undefined;
        if (gate) {
          ctx.progress.log(`restore: Ferry's gate at ${stage} lets the way back through`);
          await this.#recordGate(ctx, state, arn, gate, "SUCCEEDED");
          passed.add(gate.key);
        }
      }
      if (!redeployed && (status === "PENDING" || status === "IN_PROGRESS")) {
        await this.#stopServiceDeployment(ctx, arn);
      } else if (!redeployed && status === "ROLLBACK_SUCCESSFUL") {
        const now = await this.#describeService(config);
        if (now.taskDefinition !== state.previousTaskDefinition) throw new DriverError("RESTORE_FAILED", `ECS rolled service deployment ${arn} back, but the service runs ${now.taskDefinition}, not ${state.previousTaskDefinition}`, {});
        return { taskDefinition: state.previousTaskDefinition, serviceDeploymentArn: arn, rolledBack: true, reason: sd?.rollback?.reason ?? sd?.statusReason };
      } else if (!redeployed && (status === "SUCCESSFUL" || status === "STOPPED" || status === "ROLLBACK_FAILED" || status === "MISSING")) {
        // Nothing of ECS's puts the previous revision back: deploy it, through the service's own strategy.
        const out = await this.#call<{ service?: Service }>(config.region, "UpdateService", new UpdateServiceCommand({ cluster: config.cluster, service: config.service, taskDefinition: state.previousTaskDefinition }));
        const next = out.service?.currentServiceDeployment;
        if (!next || next === arn) throw new DriverError("RESTORE_FAILED", `ECS UpdateService back to ${state.previousTaskDefinition} started no service deployment`, {});
        ctx.progress.log(`restore: service deployment ${serviceDeploymentId(next)} back to ${state.previousTaskDefinition} (${state.strategy})`);
        arn = next;
        redeployed = true;
        continue;
      } else if (redeployed && status === "SUCCESSFUL") {
        return { taskDefinition: state.previousTaskDefinition, serviceDeploymentArn: arn, redeployed: true };
      } else if (redeployed && (ROLLBACK_STATUSES.has(status) || status === "STOPPED" || status === "MISSING") && status !== "ROLLBACK_REQUESTED" && status !== "ROLLBACK_IN_PROGRESS") {
        throw new DriverError("RESTORE_FAILED", `ECS service deployment ${arn} back to ${state.previousTaskDefinition} ended ${status}: ${sd?.statusReason ?? ""}`, {});
      }
      if (Date.now() > deadline) throw new DriverError("RESTORE_FAILED", `ECS did not get back to ${state.previousTaskDefinition} in time (service deployment ${arn}: ${line})`, {});
      await sleep(this.#pollMs);
    }
  }

  async switch(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<EcsPhaseState> {
    // ECS moved traffic as it replaced tasks; what is left is the sticker on the service.
    const tags = [...stickerTags(this.#sticker(ctx)), { key: TAGS.taskDefinition, value: state.newTaskDefinition! }];
    if (!state.alreadyDeployed) tags.push({ key: TAGS.previousTaskDefinition, value: state.previousTaskDefinition });
    await this.#call(ctx.config.region, "TagResource", new TagResourceCommand({ resourceArn: state.serviceArn, tags }), ctx.signal);
    ctx.progress.log(`switch: ECS serves ${state.newTaskDefinition}; the service's tags carry the sticker`);
    return state;
  }

  async retire(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<EcsPhaseState> {
    ctx.progress.log(`retire: ${state.previousTaskDefinition} stays registered: it is what a rollback deploys`);
    return state;
  }

  async restore(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): Promise<Record<string, unknown>> {
    const config = ctx.config;
    if (!state.newTaskDefinition || state.alreadyDeployed) return { nothingToRestore: true };
    if (state.serviceDeploymentArn) return this.#nativeRestore(ctx, state);
    const svc = await this.#describeService(config);
    let deploymentId: string | undefined;
    if (svc.taskDefinition === state.previousTaskDefinition) {
      // ECS's circuit breaker went back by itself (or start never changed the service): follow that deployment.
      deploymentId = svc.deployments?.find((d) => d.status === "PRIMARY")?.id;
      ctx.progress.log(`restore: the service is back on ${state.previousTaskDefinition}${deploymentId ? ` (deployment ${deploymentId})` : ""}`);
    } else {
      const out = await this.#call<{ service?: Service }>(config.region, "UpdateService", new UpdateServiceCommand({ cluster: config.cluster, service: config.service, taskDefinition: state.previousTaskDefinition }));
      deploymentId = out.service?.deployments?.find((d) => d.status === "PRIMARY" && d.taskDefinition === state.previousTaskDefinition)?.id;
      ctx.progress.log(`restore: deployment ${deploymentId} back to ${state.previousTaskDefinition}`);
    }
    const deadline = Date.now() + (config.steadyStateTimeoutSeconds ?? DEFAULT_STEADY_STATE_SECONDS) * 1000;
    for (;;) {
      const now = await this.#describeService(config);
      const d = now.deployments?.find((x) => x.id === deploymentId) ?? now.deployments?.find((x) => x.status === "PRIMARY");
      if (d?.rolloutState === "COMPLETED" && (now.deployments?.length ?? 0) === 1 && d.taskDefinition === state.previousTaskDefinition) {
        return { taskDefinition: state.previousTaskDefinition, deploymentId: d.id };
      }
      if (d?.rolloutState === "FAILED") throw new DriverError("RESTORE_FAILED", `ECS deployment ${d.id} back to ${state.previousTaskDefinition} failed: ${d.rolloutStateReason ?? ""}`, {});
      if (Date.now() > deadline) throw new DriverError("RESTORE_FAILED", `ECS did not get back to ${state.previousTaskDefinition} within the steady-state timeout`, {});
      await sleep(this.#pollMs);
    }
  }

  outcome(ctx: PhaseContext<EcsTargetConfig>, state: EcsPhaseState): DeployOutcome {
    const running: RunningImage[] = Object.keys(state.containers).map((container) => {
      const img = imageFor(state.containers, container, ctx.images);
      return { component: img.component, repository: img.repository, digest: img.digest, containerName: container };
    });
    const message = state.alreadyDeployed
      ? `${ctx.config.service} already runs ${state.newTaskDefinition}; nothing to do`
      : `${ctx.config.service} runs ${state.newTaskDefinition} (${state.serviceDeploymentArn ? `${state.strategy} service deployment ${serviceDeploymentId(state.serviceDeploymentArn)}` : `deployment ${state.deploymentId}`}), replacing ${state.previousTaskDefinition}`;
    return {
      running,
      message,
      details: {
        taskDefinition: state.newTaskDefinition,
        previousTaskDefinition: state.previousTaskDefinition,
        deploymentId: state.deploymentId,
        verified: state.verified,
        ...(state.serviceDeploymentArn ? { strategy: state.strategy, serviceDeploymentArn: state.serviceDeploymentArn } : {}),
        ...(state.alreadyDeployed ? { alreadyDeployed: true } : {}),
      },
    };
  }

  #sticker(ctx: PhaseContext<EcsTargetConfig>): TargetSticker {
    return { deploymentId: ctx.deploymentId, taskId: ctx.taskId, releaseId: ctx.release.id, images: ctx.images.map((i) => ({ component: i.component, digest: i.digest })) };
  }
}

/** Why Ferry cannot drive this service, or undefined: its deployment controller must be ECS. */
function serviceProblem(svc: Service, config: EcsTargetConfig): DriverError | undefined {
  const controller = svc.deploymentController?.type ?? "ECS";
  if (controller !== "ECS") {
    return new DriverError("TARGET_UNSUPPORTED", `ECS service ${config.service} uses the ${controller} deployment controller; Ferry drives services whose deployment controller is ECS`, { deploymentController: controller });
  }
  return gateProblem(svc, config);
}

function ferryOnly(tags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).filter(([k]) => k.startsWith("ferry.")));
}

/** The driver's section of the agent config (drivers.ecs), as its registration's schema checked it. */
export interface EcsSettings {
  profile?: string;
  endpoint?: string;
  pollIntervalMs?: number;
  maxAttempts?: number;
}
