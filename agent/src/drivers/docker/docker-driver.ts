// The Docker target driver: one container per target on a Docker Engine, replaced digest-pinned image by image, as
// the phases every driver speaks (docs/drivers/docker.md):
//
//   prepare  pull and verify the image (prepare.ts)                   nothing on the target changes
//   start    park the old container, create, stop the old, start (start.ts)   the short outage of replace mode
//   health   running with no restart through the settle window, the check passing, the image's HEALTHCHECK healthy
//   switch   nothing more: in replace mode the new container already has the target's name and ports
//   retire   remove the previous and older parked containers (retire.ts)
//   restore  put the previous container back, from the state alone (restore.ts)
//
// The engine is reached over its unix socket, chosen per target: config.socketPath, else the driver's socketPath
// setting, else DOCKER_HOST when it names a unix socket, else /var/run/docker.sock. One engine client (engine/client.ts) per socket.
import { ConfigError, dockerKind, parseTargetConfig, type Capability, type DockerTargetConfig, type Phase, type ResultCode, type RouteOperation } from "@ferry/contract";
import { pino, type Logger } from "pino";

import {
  DriverError,
  type DeployOutcome,
  type Driver,
  type HealthReport,
  type PhaseContext,
  type RouteContext,
  type RunningImage,
  type TargetInspection,
  type TargetRef,
  type TargetSticker,
} from "../driver.js";
import { containerHealthTarget, resolveHealthCheck } from "./container-health.js";
import { describeLeftovers, ferryLabels, findContainers, LABELS, newestFirst, type ContainerView } from "./containers.js";
import { EngineClient } from "./engine/client.js";
import { dockerError, engineMessage, isEngineUnreachable } from "./errors.js";
import { DEFAULT_SETTLE_MS, waitHealthy, type HealthResult, type ResolvedHealthCheck } from "./health.js";
import type { DockerEnv, DockerPhaseState } from "./phase-state.js";
import { prepare } from "./prepare.js";
import { restore } from "./restore.js";
import { retire } from "./retire.js";
import { routeOperation, slotContainer, slotHealthCheck, slotRestore, slotRetire, slotStart, slotSwitch } from "./slots.js";
import { start } from "./start.js";
import { RouterError, SLOTS as SLOT_NAMES, type Router } from "../../routing/router.js";

export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";
export const DEFAULT_STOP_TIMEOUT_SECONDS = 10;

export interface DockerDriverOptions {
  /** The engine socket for targets whose config names none. */
  socketPath?: string;
  logger?: Logger;
  /** Seconds the engine gives the previous container to stop before it kills it (docker stop -t). Default 10. */
  stopTimeoutSeconds?: number;
  /** The settle window for targets whose healthCheck sets no settleSeconds. Default 3. */
  settleSeconds?: number;
  /** The host router; routed targets (config.route) need it, and with it the driver offers side-by-side and router. */
  router?: Router;
  /**
   * The engine a target's phases talk to. Default: an engine client on the target's local unix socket. The ssh
   * driver injects a client whose requests travel through an SSH connection to a remote host's socket, so that the
   * very same phases deploy there.
   */
  engine?: (config: DockerTargetConfig) => DockerEngine;
}

/** An engine client and how to name it in messages. */
export interface DockerEngine {
  docker: EngineClient;
  /** The engine's socket path (on the engine's own host). */
  socketPath: string;
  /** Where the engine is, for messages: unix:///var/run/docker.sock, ssh://deploy@app-1:22/var/run/docker.sock. */
  address: string;
  /** Probes a TCP port on the engine's host (the tcp health check); default: connect to 127.0.0.1 from here. */
  tcpProbe?: DockerEnv["tcpProbe"];
}

/** The code a phase's unexpected engine error is reported under. */
const PHASE_CODES: Record<Exclude<Phase, "restore">, ResultCode> = {
  prepare: "IMAGE_PULL_FAILED",
  start: "CONTAINER_START_FAILED",
  health: "HEALTH_CHECK_FAILED",
  switch: "CONTAINER_START_FAILED",
  retire: "CONTAINER_START_FAILED",
};

/** The socket a target's engine is on (see the file comment for the order). */
export function resolveSocketPath(config: { socketPath?: string }, optionSocket?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (config.socketPath) return config.socketPath;
  if (optionSocket) return optionSocket;
  const host = env["DOCKER_HOST"];
  if (host?.startsWith("unix://")) return host.slice("unix://".length);
  return DEFAULT_DOCKER_SOCKET;
}

/** A target's config checked with the kind's schema (the one definition), as a driver failure when it does not fit. */
export function dockerConfig(raw: Record<string, unknown>): DockerTargetConfig {
  try {
    return parseTargetConfig(dockerKind, raw);
  } catch (err) {
    if (err instanceof ConfigError) throw dockerError("INVALID_TARGET_CONFIG", err.message, { field: err.path });
    throw err;
  }
}

export class DockerDriver implements Driver<DockerTargetConfig, DockerPhaseState> {
  readonly descriptor = dockerKind;
  /** Every phase works from the state alone (ids, names, the slot), so a rollout can run them as separate tasks. */
  readonly separateSteps = true;
  readonly #socketPath: string | undefined;
  readonly #logger: Logger;
  readonly #stopTimeoutSeconds: number;
  readonly #settleMs: number;
  readonly #clients = new Map<string, EngineClient>();
  readonly #engine: ((config: DockerTargetConfig) => DockerEngine) | undefined;
  readonly #router: Router | undefined;

  constructor(opts: DockerDriverOptions = {}) {
    this.#socketPath = opts.socketPath;
    this.#logger = (opts.logger ?? pino({ level: "silent" })).child({ driver: "docker" });
    this.#stopTimeoutSeconds = opts.stopTimeoutSeconds ?? DEFAULT_STOP_TIMEOUT_SECONDS;
    this.#settleMs = opts.settleSeconds !== undefined ? opts.settleSeconds * 1000 : DEFAULT_SETTLE_MS;
    this.#engine = opts.engine;
    this.#router = opts.router;
  }

  capabilities(): readonly Capability[] {
    // Two slots side by side need the router in front of them; without one, replace mode is all there is.
    return this.#router ? dockerKind.capabilities : [];
  }

  /** The router for a routed target, or a refusal when this agent has none. */
  #routerFor(config: DockerTargetConfig): Router | undefined {
    if (!config.route) return undefined;
    if (!this.#router) {
      throw dockerError("ROUTER_UNAVAILABLE", `the target is routed (config.route, service ${config.route.service}) but this agent has no router configured (drivers.docker.router; docs/rollouts.md#setting-up-haproxy)`, {});
    }
    return this.#router;
  }

  #client(socketPath: string): EngineClient {
    let docker = this.#clients.get(socketPath);
    if (!docker) {
      docker = new EngineClient({ socketPath });
      this.#clients.set(socketPath, docker);
    }
    return docker;
  }

  #env(config: DockerTargetConfig): DockerEnv {
    const common = { logger: this.#logger, stopTimeoutSeconds: this.#stopTimeoutSeconds, settleMs: this.#settleMs };
    if (this.#engine) {
      const e = this.#engine(config);
      return { docker: e.docker, socketPath: e.socketPath, address: e.address, ...(e.tcpProbe ? { tcpProbe: e.tcpProbe } : {}), ...common };
    }
    const socketPath = resolveSocketPath(config, this.#socketPath);
    return { docker: this.#client(socketPath), socketPath, address: `unix://${socketPath}`, ...common };
  }

  /** Runs a phase, turning an engine error that is not already a DriverError into one with a stable code. */
  async #guard<T>(phase: Exclude<Phase, "restore">, env: DockerEnv, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof DriverError) throw err;
      if (err instanceof RouterError) throw dockerError(err.code, err.message, {});
      if (isEngineUnreachable(err)) {
        throw dockerError("DOCKER_UNAVAILABLE", `the Docker Engine at ${env.address} did not answer during ${phase}: ${engineMessage(err)}`, {
          socketPath: env.socketPath,
          error: engineMessage(err),
        });
      }
      throw dockerError(PHASE_CODES[phase], `${phase} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
    }
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    const socketPath = resolveSocketPath({}, this.#socketPath);
    try {
      // One cheap call that also tells the operator which engine answered.
      const v = await this.#client(socketPath).version();
      const engine = `Docker Engine ${v.Version} (API ${v.ApiVersion}) on unix://${socketPath}`;
      if (!this.#router) return { ok: true, detail: engine };
      // The router is reported with the engine, so the control plane shows which router (and whether it answers).
      const router = await this.#router.info().then(
        (i) => `router ${i.kind} ${i.version} (epoch ${i.epoch})`,
        (err: unknown) => `router ${this.#router!.kind} not reachable: ${(err as Error).message}`,
      );
      return { ok: true, detail: `${engine}; ${router}` };
    } catch (err) {
      return { ok: false, detail: `no Docker Engine on unix://${socketPath}: ${engineMessage(err)}` };
    }
  }

  async #find(target: TargetRef): Promise<{ config: DockerTargetConfig; socketPath: string; found: Awaited<ReturnType<typeof findContainers>> }> {
    const config = dockerConfig(target.config);
    const env = this.#env(config);
    try {
      if (config.route) {
        // A routed target has no container under its own name: what serves is the running slot container (the
        // newer one while both run, during a switch).
        const slots = await Promise.all(SLOT_NAMES.map((s) => findContainers(env.docker, slotContainer(config, s)).then((f) => f.current)));
        const running = slots.filter((c): c is ContainerView => c !== undefined).sort((a, b) => Number(b.running) - Number(a.running) || newestFirst(a, b));
        return { config, socketPath: env.socketPath, found: { current: running[0], parked: [] } };
      }
      return { config, socketPath: env.socketPath, found: await findContainers(env.docker, config.container) };
    } catch (err) {
      if (isEngineUnreachable(err)) {
        throw dockerError("DOCKER_UNAVAILABLE", `no Docker Engine on ${env.address}: ${engineMessage(err)}`, { socketPath: env.socketPath, error: engineMessage(err) });
      }
      throw err;
    }
  }

  async inspect(target: TargetRef): Promise<TargetInspection> {
    const { config, socketPath, found } = await this.#find(target);
    const { current, parked } = found;
    const describe = (c: ContainerView) => ({
      id: c.id,
      name: c.name,
      status: c.status,
      restartCount: c.restartCount,
      image: c.imageRef,
      imageId: c.imageId,
      digest: c.digest,
      labelDigest: c.labels[LABELS.digest] ?? "",
      task: c.labels[LABELS.task] ?? "",
      created: c.created,
    });
    const details: Record<string, unknown> = { socketPath, container: current ? describe(current) : null, leftovers: parked.map(describe) };
    const interrupted = describeLeftovers(found, config.container);
    if (interrupted) details["interruptedDeploy"] = interrupted;
    if (current?.restarting) details["crashLooping"] = `${config.container} is restarting (exit code ${current.exitCode}, ${current.restartCount} restart(s)): it crash-loops`;
    if (current && current.labels[LABELS.digest] && current.digest && current.labels[LABELS.digest] !== current.digest) {
      details["digestMismatch"] = `label ${LABELS.digest} says ${current.labels[LABELS.digest]}, the image carries ${current.digest}`;
    }
    const running: RunningImage[] = [];
    if (current?.running) {
      running.push({
        component: current.labels[LABELS.component] ?? config.component ?? "",
        repository: current.repository,
        digest: current.digest,
        imageId: current.imageId,
        containerId: current.id,
        containerName: current.name,
      });
    }
    return {
      state: !current ? "missing" : current.running ? "running" : current.status === "removing" ? "unknown" : "stopped",
      running,
      labels: ferryLabels(current?.labels),
      details,
    };
  }

  async readSticker(target: TargetRef): Promise<TargetSticker | undefined> {
    const { current } = (await this.#find(target)).found;
    const l = current?.labels ?? {};
    const [deploymentId, taskId, releaseId, digest] = [l[LABELS.deployment], l[LABELS.task], l[LABELS.release], l[LABELS.digest]];
    if (!deploymentId || !taskId || !releaseId || !digest) return undefined;
    return { deploymentId, taskId, releaseId, images: [{ component: l[LABELS.component] ?? "", digest }] };
  }

  async route(ctx: RouteContext<DockerTargetConfig>, op: RouteOperation, state: DockerPhaseState | undefined): Promise<Record<string, unknown>> {
    const router = this.#routerFor(ctx.config);
    if (!router) throw dockerError("ROUTE_UNKNOWN", `${ctx.target.name} is not routed (no config.route): there is no router to ${op.op}`, {});
    try {
      return await routeOperation(ctx, router, op, state);
    } catch (err) {
      if (err instanceof RouterError) throw dockerError(err.code, err.message, {});
      throw err;
    }
  }

  prepare(ctx: PhaseContext<DockerTargetConfig>): Promise<DockerPhaseState> {
    const env = this.#env(ctx.config);
    return this.#guard("prepare", env, () => prepare(ctx, env));
  }

  start(ctx: PhaseContext<DockerTargetConfig>, state: DockerPhaseState): Promise<DockerPhaseState> {
    const env = this.#env(ctx.config);
    return this.#guard("start", env, () => {
      const router = this.#routerFor(ctx.config);
      return router ? slotStart(ctx, env, router, state) : start(ctx, env, state);
    });
  }

  health(ctx: PhaseContext<DockerTargetConfig>, state: DockerPhaseState): Promise<HealthReport> {
    const env = this.#env(ctx.config);
    return this.#guard("health", env, async () => {
      if (!state.newId || !state.mark) throw dockerError("HEALTH_CHECK_FAILED", "health ran before start: there is no new container to check", {});
      const resolved = resolveHealthCheck(ctx.config, state.imageHealthcheck, env.settleMs);
      const check = state.slot ? slotHealthCheck(resolved, state.slot.port) : resolved;
      const what = `${check.type} check, settle window ${check.settleMs / 1000} s${state.imageHealthcheck ? ", the image's HEALTHCHECK" : ""}`;
      ctx.progress.log(`health: ${what}${check.chosenBecause ? ` (${check.chosenBecause})` : ""}`);
      const result = await waitHealthy(check, containerHealthTarget(env.docker, state.newId), state.mark, ctx.signal, {
        log: (l) => ctx.progress.log(l),
        ...(env.tcpProbe ? { tcpProbe: env.tcpProbe } : {}),
      });
      const report: HealthReport = { ok: result.ok, summary: result.summary, details: healthDetails(result, check) };
      if (result.code) report.code = result.code;
      return report;
    });
  }

  async switch(ctx: PhaseContext<DockerTargetConfig>, state: DockerPhaseState): Promise<DockerPhaseState> {
    const router = this.#routerFor(ctx.config);
    if (router && state.slot) {
      const env = this.#env(ctx.config);
      return this.#guard("switch", env, () => slotSwitch(ctx, router, state));
    }
    // Replace mode: start gave the new container the target's name and (host networking) its ports.
    ctx.progress.log(`switch: replace mode: ${ctx.config.container} (${state.newId?.slice(0, 12) ?? "?"}) already serves; nothing more to switch`);
    return state;
  }

  retire(ctx: PhaseContext<DockerTargetConfig>, state: DockerPhaseState): Promise<DockerPhaseState> {
    const env = this.#env(ctx.config);
    const router = this.#routerFor(ctx.config);
    return this.#guard("retire", env, () => (router && state.slot ? slotRetire(ctx, env, router, state) : retire(ctx, env, state)));
  }

  restore(ctx: PhaseContext<DockerTargetConfig>, state: DockerPhaseState): Promise<Record<string, unknown>> {
    const router = ctx.config.route ? this.#router : undefined;
    if (router && state.slot) return slotRestore(ctx, this.#env(ctx.config), router, state);
    return restore(ctx, this.#env(ctx.config), state);
  }

  outcome(ctx: PhaseContext<DockerTargetConfig>, state: DockerPhaseState): DeployOutcome {
    const { image, container } = state;
    const details: Record<string, unknown> = { containerId: state.newId, imageId: image.id, image: state.source };
    const health = (state as Record<string, unknown>)["health"];
    if (health) details["health"] = health;
    if (state.alreadyDeployed) details["alreadyDeployed"] = true;
    if (state.previous && !state.alreadyDeployed) details["replaced"] = state.previous.id;
    if (state.previous?.crashLooping) details["replacedCrashLoop"] = true;
    if (state.recovered) details["recovered"] = true;
    if (state.retireWarnings) details["cleanupWarnings"] = state.retireWarnings;
    if (state.slot) {
      const sl = state.slot;
      details["slot"] = { service: sl.service, serving: sl.idle, previous: sl.active, reused: sl.reused ?? false, drain: sl.drain ?? null, retained: sl.oldStopped ? sl.activeId : null };
    }
    const running: RunningImage = { component: image.component, repository: image.repository, digest: image.digest, imageId: image.id, containerName: state.slot ? slotContainer(ctx.config, state.slot.idle) : container };
    if (state.newId) running.containerId = state.newId;
    const message = state.slot && !state.slot.switched
      ? `${slotContainer(ctx.config, state.slot.idle)} runs ${image.ref} in the ${state.slot.idle} slot beside what serves; the router gives it no traffic yet`
      : state.slot
      ? `${slotContainer(ctx.config, state.slot.idle)} serves ${image.ref} through the router${state.slot.reused ? " (the retained container, started again)" : ""}${state.slot.active ? `; ${slotContainer(ctx.config, state.slot.active)} is retained, stopped` : ""}`
      : state.alreadyDeployed
      ? `${container} already runs ${image.ref} (task ${ctx.taskId}); nothing to do`
      : `${container} runs ${image.ref}${state.previous ? `, replacing ${state.previous.id.slice(0, 12)}` : ""}`;
    return { running: [running], message, details };
  }
}

function healthDetails(r: HealthResult, check: ResolvedHealthCheck): Record<string, unknown> {
  return {
    type: r.type,
    ok: r.ok,
    summary: r.summary,
    attempts: r.attempts,
    elapsedMs: r.elapsedMs,
    timeoutSeconds: check.timeoutMs / 1000,
    settleSeconds: check.settleMs / 1000,
    ...(check.url ? { url: check.url } : {}),
    ...(check.port ? { port: check.port } : {}),
    observed: r.observed,
  };
}
