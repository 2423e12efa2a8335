// The Compose target driver: a Docker Compose project on the host, its services pinned by a lock file Ferry writes
// beside the operator's compose file and deployed with the real Compose CLI (docs/drivers/compose.md):
//
//   prepare  check the directory, the CLI and the file (with the lock laid over it); pull and verify every image by
//            digest; find which services' digests change                      nothing on the target changes
//   start    write the lock; `up -d --no-deps --no-build` the changed services only       replaced in place
//   health   every changed service: running with no restart through the settle window, its compose healthcheck
//            healthy when it declares one; then the target's healthCheck (an http/tcp endpoint of the project)
//   switch   write the sticker file (the services already serve)
//   retire   nothing left: Compose removed each replaced container when it recreated the service
//   restore  the previous lock (and sticker) back, the changed services up again from it (or removed when they did
//            not run before), checked running
//
// With routed services (config.routes; slots.ts) the routed ones start in their idle slot at start and take traffic at
// switch, and the others, which can only be replaced in place, are replaced at switch, checked healthy before any
// weight moves: nothing the project serves changes before switch. Every phase works from the state alone (plain JSON),
// so a rollout runs them as separate tasks (separateSteps), with `route` tasks in between (routeOperation).
//
// Pulling, digest verification, container views and health judging are the docker driver's pieces, used as they are.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import {
  composeKind,
  composeLock,
  ConfigError,
  credentialRegistry,
  ImageSelectionError,
  parseComposeLock,
  parseTargetConfig,
  pinProblem,
  type Capability,
  type ComposeRoute,
  type RouteOperation,
  type ComposeTargetConfig,
  type ImagePin,
} from "@ferry/contract";
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
import { containerHealthTarget, resolveHealthCheck } from "../docker/container-health.js";
import { view } from "../docker/containers.js";
import { resolveSocketPath } from "../docker/docker-driver.js";
import { EngineClient } from "../docker/engine/client.js";
import { engineMessage, isEngineUnreachable } from "../docker/errors.js";
import { DEFAULT_SETTLE_MS, waitHealthy, type ResolvedHealthCheck } from "../docker/health.js";
import { checkRepoDigests, localImage, pulledImage } from "../docker/prepare.js";
import { pullImage } from "../docker/pull.js";
import { RouterError, type Router } from "../../routing/router.js";
import { slotHealthCheck } from "../docker/slots.js";
import { compose, detectCompose, type ComposeCli, type ComposeFlavour, type ComposeInvocation } from "./compose-cli.js";
import { checkProject, servicesOf, type NormalisedService } from "./compose-file.js";
import { checkProjectDirectory, lockPath, readOptional, replaceFile, sha256, stickerPath } from "./host-files.js";
import type { ComposePhaseState, ServiceBefore } from "./phase-state.js";
import { containerHasHealthcheck, projectContainers, serviceContainer } from "./project.js";
import { restoreSlot, retireSlot, routedServiceContainers, routeOperation, startSlot, switchSlot, type SlotIo } from "./slots.js";

export interface ComposeDriverOptions {
  socketPath?: string;
  logger?: Logger;
  /** Use only this CLI; default: `docker compose` (v2) when it runs, else docker-compose (v1). */
  cli?: ComposeFlavour;
  settleSeconds?: number;
  /** The host router; routed services (config.routes) need it. */
  router?: Router;
  /** How long a retired slot's container gets to stop before it is killed; default 10. */
  stopTimeoutSeconds?: number;
}

/** How long a service restore brought back must keep running before it counts as running again. */
const RESTORED_RUNNING_MS = 300;

interface StickerFile {
  deploymentId: string;
  taskId: string;
  releaseId: string;
  lockSha256: string;
}

/**
 * The project checks (compose-file.ts) on `config`'s output for the operator's file: it loads (YAML, Compose's schema),
 * every mapped service is in it, and no service Ferry does not pin needs building. Without a map (`mapped` undefined)
 * the services are the release's components, unknown here: every service counts as mapped.
 */
function checkFile(normalised: string, mapped: readonly string[] | undefined, file: string, routed: readonly string[] = []): NormalisedService[] {
  return checkProject(normalised, mapped ?? servicesOf(normalised).map((s) => s.name), file, routed);
}

/** The routes of the services a lock pins (a route for a service the release does not run is not used). */
const routesIn = (config: ComposeTargetConfig, services: readonly string[]): ComposeRoute[] => (config.routes ?? []).filter((r) => services.includes(r.composeService));

/** Whether the target routes any service: then the services that are not routed are replaced at switch. */
const hasRoutes = (config: ComposeTargetConfig): boolean => (config.routes ?? []).length > 0;

/** What a file's content is taken to be between two checks: its size and times (an edit changes them). */
async function fileMark(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch {
    return "none";
  }
}

/** How many projects' `config` outputs are remembered (one per target the agent serves, in practice). */
const MAX_CONFIG_OUTPUTS = 256;
/**
 * How long a remembered `config` output is used while the project directory looks unchanged. A file outside the
 * directory that the compose file names (an `env_file` or `extends` elsewhere) is not in the mark; its change reaches
 * the checks within this time. The deploy itself (`up`) always reads the files as they are.
 */
const CONFIG_OUTPUT_TTL_MS = 10 * 60_000;
/** A directory with more entries than this is not marked: its `config` is run every time. */
const MAX_MARKED_ENTRIES = 200;

/**
 * What the project directory's files are taken to be between two deploys: every entry but the files Ferry writes there
 * itself (the lock, the sticker and their temporary files), by name, size and times. Undefined when it cannot be told.
 */
async function projectMark(directory: string): Promise<string | undefined> {
  try {
    const names = (await readdir(directory)).filter((n) => !n.startsWith(".ferry") && !n.startsWith("ferry.lock")).sort();
    if (names.length > MAX_MARKED_ENTRIES) return undefined;
    return JSON.stringify(await Promise.all(names.map(async (n) => [n, await fileMark(join(directory, n))])));
  } catch {
    return undefined;
  }
}

export function composeConfig(raw: Record<string, unknown>): ComposeTargetConfig {
  try {
    return parseTargetConfig(composeKind, raw);
  } catch (err) {
    if (err instanceof ConfigError) throw new DriverError("INVALID_TARGET_CONFIG", err.message, { field: err.path });
    throw err;
  }
}

export class ComposeDriver implements Driver<ComposeTargetConfig, ComposePhaseState> {
  readonly descriptor = composeKind;
  /** Every phase works from the state alone (paths, the lock, container ids, the slots), so a rollout can run them as separate tasks. */
  readonly separateSteps = true;
  readonly #socketPath: string | undefined;
  readonly #logger: Logger;
  readonly #cliChoice: ComposeFlavour | undefined;
  readonly #settleMs: number;
  readonly #clients = new Map<string, EngineClient>();
  readonly #cli = new Map<string, ComposeCli | undefined>();
  /** Per project: the inputs of the last host check and its verdict, so an unchanged project is not re-read by the CLI. */
  readonly #configs = new Map<string, { inputs: string; at: number; stdout?: string; error?: DriverError }>();
  readonly #router: Router | undefined;
  readonly #stopTimeoutSeconds: number;

  constructor(opts: ComposeDriverOptions = {}) {
    this.#socketPath = opts.socketPath;
    this.#logger = (opts.logger ?? pino({ level: "silent" })).child({ driver: "compose" });
    this.#cliChoice = opts.cli;
    this.#settleMs = opts.settleSeconds !== undefined ? opts.settleSeconds * 1000 : DEFAULT_SETTLE_MS;
    this.#router = opts.router;
    this.#stopTimeoutSeconds = opts.stopTimeoutSeconds ?? 10;
  }

  /** The router for a target with routed services, or a refusal when this agent has none. */
  #routerFor(config: ComposeTargetConfig): Router | undefined {
    if (!config.routes || config.routes.length === 0) return undefined;
    if (!this.#router) {
      throw new DriverError("ROUTER_UNAVAILABLE", `${config.routes.map((r) => r.composeService).join(", ")} ${config.routes.length === 1 ? "is" : "are"} routed (config.routes) but this agent has no router configured (drivers.compose.router; docs/drivers/compose.md)`, {});
    }
    return this.#router;
  }

  /** What the slot pieces need for one task. */
  #slotIo(state: ComposePhaseState, project: string, log: (line: string) => void, signal?: AbortSignal): SlotIo {
    return {
      docker: this.#docker(state.socketPath),
      router: this.#router!,
      project,
      stopTimeoutSeconds: this.#stopTimeoutSeconds,
      log,
      runOneOff: async (service, name, env, label) => {
        await compose(this.#inv(state, project, true), ["run", "-d", "--no-deps", "--name", name, "-e", env, "-l", label, service], signal);
      },
    };
  }

  /** The project's containers per service, a routed service's being its slots (running first). */
  async #containers(docker: EngineClient, config: ComposeTargetConfig, services: readonly string[]) {
    const containers = await projectContainers(docker, config.project);
    for (const r of routesIn(config, services)) {
      // Without the router's answer the running slot counts as serving (inspect still reports; prepare has checked the router).
      const weights = await this.#router?.weights(r.service).catch(() => undefined);
      containers.set(r.composeService, await routedServiceContainers(docker, config.project, r.composeService, weights));
    }
    return containers;
  }

  capabilities(): readonly Capability[] {
    // Slots side by side need the router in front of them; without one, a project is replaced in place only.
    return this.#router ? composeKind.capabilities : composeKind.capabilities.filter((c) => c !== "side-by-side" && c !== "router");
  }

  async route(ctx: RouteContext<ComposeTargetConfig>, op: RouteOperation, state: ComposePhaseState | undefined): Promise<Record<string, unknown>> {
    const router = this.#routerFor(ctx.config);
    if (!router) throw new DriverError("ROUTE_UNKNOWN", `${ctx.target.name} routes no service (no config.routes): there is no router to ${op.op}`, {});
    try {
      return await routeOperation(ctx.config, router, op, state?.routed, (l) => ctx.progress.log(`route: ${l}`));
    } catch (err) {
      if (err instanceof RouterError) throw new DriverError(err.code, err.message, {});
      throw err;
    }
  }

  #docker(socketPath: string): EngineClient {
    let d = this.#clients.get(socketPath);
    if (!d) {
      d = new EngineClient({ socketPath });
      this.#clients.set(socketPath, d);
    }
    return d;
  }

  /** The CLI for a socket, detected once (a CLI installed later is found after an agent restart). */
  async #findCli(socketPath: string): Promise<ComposeCli | undefined> {
    if (!this.#cli.has(socketPath)) this.#cli.set(socketPath, await detectCompose(socketPath, this.#cliChoice));
    return this.#cli.get(socketPath);
  }

  async #requireCli(socketPath: string): Promise<ComposeCli> {
    const cli = await this.#findCli(socketPath);
    if (!cli) {
      this.#cli.delete(socketPath);
      throw new DriverError("COMPOSE_CLI_MISSING", `no Compose CLI runs on this host (tried ${this.#cliChoice === "v1" ? "docker-compose" : this.#cliChoice === "v2" ? "docker compose" : "docker compose, docker-compose"})`, {});
    }
    return cli;
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    const socketPath = resolveSocketPath({}, this.#socketPath);
    const cli = await this.#findCli(socketPath);
    if (!cli) {
      this.#cli.delete(socketPath);
      return { ok: false, detail: "COMPOSE_CLI_MISSING: neither docker compose (v2) nor docker-compose (v1) runs on this host" };
    }
    try {
      const v = await this.#docker(socketPath).version();
      return { ok: true, detail: `${cli.command.join(" ")} ${cli.version} (Compose ${cli.flavour}), Docker Engine ${v.Version} on unix://${socketPath}` };
    } catch (err) {
      return { ok: false, detail: `${cli.command.join(" ")} ${cli.version} (Compose ${cli.flavour}), but no Docker Engine on unix://${socketPath}: ${engineMessage(err)}` };
    }
  }

  #inv(state: Pick<ComposePhaseState, "cli" | "socketPath" | "directory" | "file">, project: string, withLock: boolean): ComposeInvocation {
    return { cli: state.cli, socketPath: state.socketPath, directory: state.directory, project, files: withLock ? [join(state.directory, state.file), lockPath(state.directory)] : [join(state.directory, state.file)] };
  }

  async #guard<T>(phase: string, socketPath: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof DriverError) throw err;
      if (err instanceof RouterError) throw new DriverError(err.code, err.message, {});
      if ((err as Error)?.name === "AbortError") throw err;
      if (isEngineUnreachable(err)) {
        throw new DriverError("DOCKER_UNAVAILABLE", `the Docker Engine at unix://${socketPath} did not answer during ${phase}: ${engineMessage(err)}`, { socketPath });
      }
      throw new DriverError(phase === "prepare" ? "IMAGE_PULL_FAILED" : "COMPOSE_UP_FAILED", `${phase} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
    }
  }

  prepare(ctx: PhaseContext<ComposeTargetConfig>): Promise<ComposePhaseState> {
    const socketPath = resolveSocketPath(ctx.config, this.#socketPath);
    return this.#guard("prepare", socketPath, async () => {
      const { config } = ctx;
      const file = config.file ?? "docker-compose.yml";
      const raw = (l: string) => ctx.progress.log(l);
      const log = (l: string) => raw(`prepare: ${l}`);
      await checkProjectDirectory(config.directory, file);
      this.#routerFor(config);
      const cli = await this.#requireCli(socketPath);
      this.#logger.debug({ taskId: ctx.taskId, project: config.project, cli: cli.command.join(" ") }, "compose prepare");
      log(`${cli.command.join(" ")} ${cli.version} (Compose ${cli.flavour}), project ${config.project} in ${config.directory}`);

      const pins = this.#pins(ctx);
      const lock = composeLock(config, pins);
      const base = { socketPath, directory: config.directory, file, cli };

      // The operator's file as Compose reads it (YAML, Compose's schema, interpolation), checked while the images are
      // pulled: both only read, and the CLI's start-up (a Python process for v1) then costs no wall time.
      const inv: ComposeInvocation = { cli, socketPath, directory: config.directory, project: config.project, files: [join(config.directory, file)] };
      const lockServices = lock.services.map((s) => s.service);
      const routes = routesIn(config, lockServices);
      const fileChecked = this.#configOutput(inv, ctx.signal).then((normalised) => checkFile(normalised, lockServices, file, routes.map((r) => r.composeService)));
      // Handled here so a pull failure does not leave it unobserved; awaited (and its error thrown first) below.
      fileChecked.catch(() => undefined);
      log(`lock ${sha256(lock.text).slice(0, 19)}…: ${lock.services.map((s) => `${s.service}=${s.ref}`).join(", ")}`);

      // Every image of the project pulled and verified before anything is stopped.
      const docker = this.#docker(socketPath);
      const unique = new Map(lock.services.map((s) => [s.ref, s]));
      const pulled = Promise.all(
        [...unique.values()].map(async (s) => {
          const pin: ImagePin = { component: s.component, repository: s.repository, digest: s.digest, ref: s.ref };
          const local = await localImage(docker, pin);
          if (local) {
            log(`the engine already has ${pin.ref}; not pulling it again`);
            checkRepoDigests(local, pin, "local", raw);
            return;
          }
          await pullImage(docker, pin, ctx.credentials(credentialRegistry(pin.repository)), ctx.signal, (l) => log(l));
          checkRepoDigests(await pulledImage(docker, pin), pin, "pulled", raw);
        }),
      );
      pulled.catch(() => undefined);
      // A bad file is the more useful error when both fail.
      const normalised = await fileChecked;
      await pulled;
      ctx.signal.throwIfAborted();

      const containers = await this.#containers(docker, config, lockServices);
      const before: ServiceBefore[] = lock.services.map((s) => {
        const c = serviceContainer(containers, s.service);
        return { service: s.service, containerId: c?.id ?? "", digest: c?.digest ?? "", running: !!c?.running, crashLooping: !!c?.restarting };
      });
      const changed = lock.services
        .filter((s) => {
          const c = serviceContainer(containers, s.service);
          return !c || !c.running || c.digest !== s.digest || c.imageRef !== s.ref;
        })
        .map((s) => s.service);
      log(changed.length === 0 ? "every service already runs its locked digest; nothing to replace" : `to replace: ${changed.join(", ")}; unchanged: ${lock.services.filter((s) => !changed.includes(s.service)).map((s) => s.service).join(", ") || "none"}`);
      const [previousLock, previousSticker] = await Promise.all([readOptional(lockPath(config.directory)), readOptional(stickerPath(config.directory))]);
      const restart: Record<string, string> = {};
      for (const r of routes) {
        const value = normalised.find((n) => n.name === r.composeService)?.values.get("restart");
        if (value !== undefined) restart[r.composeService] = value;
      }
      return { ...base, lock: { text: lock.text, sha256: sha256(lock.text), services: lock.services }, previousLock, previousSticker, before, changed, restart };
    });
  }

  /** The task's pins for this target, each one exactly repository@digest. */
  #pins(ctx: PhaseContext<ComposeTargetConfig>): ImagePin[] {
    let pins: ImagePin[];
    try {
      pins = composeKind.imagesFor(ctx.config, ctx.images);
    } catch (err) {
      if (err instanceof ImageSelectionError) throw new DriverError(err.code, err.message, { field: err.field });
      throw err;
    }
    for (const pin of pins) {
      const given = ctx.images.find((i) => i.component === pin.component) ?? pin;
      const problem = pinProblem(given);
      if (problem) throw new DriverError("DIGEST_MISMATCH", `the image pin for ${given.component} is not repository@sha256:<digest>: ${problem}`, { pin: given });
    }
    return pins;
  }

  start(ctx: PhaseContext<ComposeTargetConfig>, state: ComposePhaseState): Promise<ComposePhaseState> {
    return this.#guard("start", state.socketPath, async () => {
      const log = (l: string) => ctx.progress.log(`start: ${l}`);
      // Recorded before each step, so restore undoes a step that failed half-way.
      state.lockWritten = true;
      await replaceFile(lockPath(state.directory), state.lock.text);
      log(`wrote ${lockPath(state.directory)} (${state.lock.sha256})`);
      if (state.changed.length === 0) return state;
      const docker = this.#docker(state.socketPath);
      const routed = routesIn(ctx.config, state.changed);
      const inPlace = state.changed.filter((s) => !routed.some((r) => r.composeService === s));
      state.started ??= {};
      if (inPlace.length > 0 && !hasRoutes(ctx.config)) await this.#replaceInPlace(ctx, state, inPlace, log);
      else if (inPlace.length > 0) log(`${inPlace.join(", ")} ${inPlace.length === 1 ? "is" : "are"} not routed: replaced in place at switch, once the routed services' new slots are healthy`);
      if (routed.length > 0) {
        const io = this.#slotIo(state, ctx.config.project, log, ctx.signal);
        const plain = await projectContainers(docker, ctx.config.project);
        state.routed = {};
        for (const route of routed) {
          const service = route.composeService;
          // The service's own container from before it was routed would hold its port: removed once (put back by restore).
          if ((plain.get(service) ?? []).length > 0) {
            (state.plainRemoved ??= []).push(service);
            await compose(this.#inv(state, ctx.config.project, state.previousLock !== null), ["rm", "-s", "-f", service], ctx.signal);
            log(`${service}: removed its container from before it was routed (a one-time interruption; from now on it switches slots)`);
          }
          const pin = state.lock.services.find((x) => x.service === service)!;
          const id = await startSlot(io, route, pin.digest, pin.ref, state.restart?.[service], (r) => (state.routed![service] = r));
          await this.#mark(state, service, id);
        }
      }
      return state;
    });
  }

  /** Records the container a changed service runs now and its start mark: a restart after this is a crash. */
  async #mark(state: ComposePhaseState, service: string, id: string): Promise<void> {
    const docker = this.#docker(state.socketPath);
    const c = await view(docker, id);
    if (!c) throw new DriverError("COMPOSE_UP_FAILED", `service ${service}'s new container ${id.slice(0, 12)} is gone`, { service });
    // The settle window counts from when the engine started the container (the engine is on this host, on this
    // clock): a container Compose started first has been running, unrestarted, while Compose started the others.
    const since = Date.parse(c.startedAt);
    const atMs = Number.isFinite(since) ? Math.min(Date.now(), since) : Date.now();
    (state.started ??= {})[service] = { containerId: c.id, mark: { restartCount: c.restartCount, startedAt: c.startedAt, atMs }, healthcheck: await containerHasHealthcheck(docker, c.id) };
  }

  /** `up -d --no-deps` of services that can only be replaced in place (upStarted recorded first, for restore). */
  async #replaceInPlace(ctx: PhaseContext<ComposeTargetConfig>, state: ComposePhaseState, services: string[], log: (l: string) => void): Promise<void> {
    log(`replacing ${services.join(", ")} in place (docker-compose up -d --no-deps): each is briefly down while Compose recreates it`);
    state.upStarted = true;
    await compose(this.#inv(state, ctx.config.project, true), ["up", "-d", "--no-deps", "--no-build", ...services], ctx.signal);
    const containers = await projectContainers(this.#docker(state.socketPath), ctx.config.project);
    for (const service of services) {
      const c = serviceContainer(containers, service);
      if (!c) throw new DriverError("COMPOSE_UP_FAILED", `after up, service ${service} has no container`, { service });
      await this.#mark(state, service, c.id);
      log(`${service}: container ${c.name} (${c.id.slice(0, 12)}) runs ${c.imageRef}`);
    }
  }

  health(ctx: PhaseContext<ComposeTargetConfig>, state: ComposePhaseState): Promise<HealthReport> {
    return this.#guard("health", state.socketPath, async () => {
      const services = Object.keys(state.started ?? {});
      if (services.length === 0) return { ok: true, summary: state.changed.length === 0 ? "no service changed" : `no routed service changed; ${state.changed.join(", ")} ${state.changed.length === 1 ? "is" : "are"} replaced at switch`, details: {} };
      return this.#checkServices(ctx, state, services, "health");
    });
  }

  /**
   * The verdict on changed services that run: per service its own healthcheck (compose's or the image's) when it has
   * one, else running through the settle window; a target healthCheck of type docker demands a healthcheck of every
   * service. A routed service's slot is also given the target's http/tcp check, pointed at the slot's port; without
   * routes the http/tcp check names an endpoint of the project, probed once every service has passed.
   */
  async #checkServices(ctx: PhaseContext<ComposeTargetConfig>, state: ComposePhaseState, services: readonly string[], phase: "health" | "switch"): Promise<HealthReport> {
    const started = state.started ?? {};
    const docker = this.#docker(state.socketPath);
    const hc = ctx.config.healthCheck;
    const perService = hc && (hc.type === "docker" || hc.type === "none") ? hc : hc ? { type: "none" as const, ...(hc.settleSeconds !== undefined ? { settleSeconds: hc.settleSeconds } : {}) } : undefined;
    const results = await Promise.all(
      services.map(async (service) => {
        const s = started[service]!;
        const check = resolveHealthCheck({ healthCheck: perService }, s.healthcheck, this.#settleMs);
        const slot = state.routed?.[service]?.slot;
        const probe = slot && hc && (hc.type === "http" || hc.type === "tcp") ? slotHealthCheck(this.#probe(hc), slot.port) : undefined;
        const r = await waitHealthy(probe ? { ...probe, settleMs: check.settleMs } : check, containerHealthTarget(docker, s.containerId), s.mark, ctx.signal, { log: (l) => ctx.progress.log(`${phase}: ${service}: ${l}`) });
        return { service, r };
      }),
    );
    const details: Record<string, unknown> = Object.fromEntries(results.map(({ service, r }) => [service, { ok: r.ok, type: r.type, summary: r.summary, elapsedMs: r.elapsedMs, observed: r.observed }]));
    const bad = results.find(({ r }) => !r.ok);
    if (bad) return { ok: false, code: bad.r.code ?? "HEALTH_CHECK_FAILED", summary: `${bad.service}: ${bad.r.summary}`, details };
    // With routed services the http/tcp check is theirs, pointed at each new slot above (through the router it would
    // reach the slot that still serves); otherwise it is the project's endpoint, probed once.
    if (hc && (hc.type === "http" || hc.type === "tcp") && !hasRoutes(ctx.config)) {
      const first = started[services[0]!]!;
      const r = await waitHealthy(this.#probe(hc), containerHealthTarget(docker, first.containerId), first.mark, ctx.signal, { log: (l) => ctx.progress.log(`${phase}: project: ${l}`) });
      details["project"] = { ok: r.ok, type: r.type, summary: r.summary, observed: r.observed };
      if (!r.ok) return { ok: false, code: r.code ?? "HEALTH_CHECK_FAILED", summary: `project check: ${r.summary}`, details };
    }
    return { ok: true, summary: `${services.join(", ")} healthy`, details };
  }

  /** The target's http/tcp check as the health rules take it (no settle window: the services had theirs). */
  #probe(hc: NonNullable<ComposeTargetConfig["healthCheck"]>): ResolvedHealthCheck {
    const probe: ResolvedHealthCheck = { type: hc.type, timeoutMs: (hc.timeoutSeconds ?? 60) * 1000, intervalMs: (hc.intervalSeconds ?? 1) * 1000, settleMs: 0 };
    if (hc.url !== undefined) probe.url = hc.url;
    if (hc.port !== undefined) probe.port = hc.port;
    return probe;
  }

  switch(ctx: PhaseContext<ComposeTargetConfig>, state: ComposePhaseState): Promise<ComposePhaseState> {
    return this.#guard("switch", state.socketPath, async () => {
      const log = (l: string) => ctx.progress.log(`switch: ${l}`);
      const routed = Object.values(state.routed ?? {});
      if (routed.length > 0 || hasRoutes(ctx.config)) this.#routerFor(ctx.config);
      // With routes, the services that are not routed are replaced here (in place: the only way they can be), and
      // must be healthy before any weight moves; a failure restores them and leaves the traffic where it was.
      const inPlace = hasRoutes(ctx.config) ? state.changed.filter((s) => !state.routed?.[s] && !state.started?.[s]) : [];
      if (inPlace.length > 0) {
        await this.#replaceInPlace(ctx, state, inPlace, log);
        const verdict = await this.#checkServices(ctx, state, inPlace, "switch");
        if (!verdict.ok) throw new DriverError(verdict.code ?? "HEALTH_CHECK_FAILED", `${ctx.target.name} is not healthy: ${verdict.summary}`, { health: verdict.details });
        log(`${verdict.summary}`);
      }
      const io = this.#slotIo(state, ctx.config.project, log);
      for (const r of routed) await switchSlot(io, r);
      const sticker: StickerFile = { deploymentId: ctx.deploymentId, taskId: ctx.taskId, releaseId: ctx.release.id, lockSha256: state.lock.sha256 };
      state.stickerWritten = true;
      await replaceFile(stickerPath(state.directory), `${JSON.stringify(sticker, null, 2)}\n`);
      log(`${routed.length > 0 ? "the routed services serve from their new slots" : "replace mode: the replaced services already serve"}; sticker written to ${stickerPath(state.directory)}`);
      return state;
    });
  }

  retire(ctx: PhaseContext<ComposeTargetConfig>, state: ComposePhaseState): Promise<ComposePhaseState> {
    return this.#guard("retire", state.socketPath, async () => {
      const routed = Object.values(state.routed ?? {});
      if (routed.length < state.changed.length) ctx.progress.log("retire: Compose removed each service replaced in place when it recreated it");
      if (routed.length > 0) this.#routerFor(ctx.config);
      const io = this.#slotIo(state, ctx.config.project, (l) => ctx.progress.log(`retire: ${l}`));
      for (const r of routed) await retireSlot(io, r, ctx.signal);
      return state;
    });
  }

  async restore(ctx: PhaseContext<ComposeTargetConfig>, state: Partial<ComposePhaseState>): Promise<Record<string, unknown>> {
    const log = (l: string) => ctx.progress.log(`restore: ${l}`);
    const done: Record<string, unknown> = {};
    if (!state.directory || !state.cli || !state.socketPath || !state.file) return { nothing: "start had not begun" };
    const full = state as ComposePhaseState;
    if (state.stickerWritten) await replaceFile(stickerPath(full.directory), full.previousSticker);
    if (state.lockWritten) {
      await replaceFile(lockPath(full.directory), full.previousLock);
      log(full.previousLock === null ? "removed the lock file (there was none before)" : `put the previous lock back (${sha256(full.previousLock)})`);
      done["lock"] = full.previousLock === null ? "removed" : sha256(full.previousLock);
    }
    const inv = this.#inv(full, ctx.config.project, full.previousLock !== null);
    const routed = Object.values(full.routed ?? {});
    if (routed.length > 0) {
      if (!this.#router) throw new DriverError("ROUTER_UNAVAILABLE", `restoring ${routed.map((r) => r.route.composeService).join(", ")} needs the router, and this agent has none configured (drivers.compose.router)`, {});
      const io = this.#slotIo(full, ctx.config.project, log);
      for (const r of routed) done[`routed:${r.route.composeService}`] = await restoreSlot(io, r);
    }
    if (full.plainRemoved && full.plainRemoved.length > 0) {
      await compose(inv, ["up", "-d", "--no-deps", "--no-build", ...full.plainRemoved], undefined, "RESTORE_FAILED");
      log(`${full.plainRemoved.join(", ")} run${full.plainRemoved.length === 1 ? "s" : ""} as before it was routed`);
      done["unrouted"] = full.plainRemoved;
    }
    if (!state.upStarted) return done;
    const changed = full.changed.filter((s) => !routed.some((r) => r.route.composeService === s));
    const hadOne = (s: string) => full.before.find((b) => b.service === s)?.containerId !== "";
    const toUp = changed.filter(hadOne);
    const toRemove = changed.filter((s) => !hadOne(s));
    if (toRemove.length > 0) {
      await compose(inv, ["rm", "-s", "-f", ...toRemove], undefined, "RESTORE_FAILED");
      log(`removed ${toRemove.join(", ")} (they did not run before)`);
      done["removed"] = toRemove;
    }
    if (toUp.length > 0) {
      await compose(inv, ["up", "-d", "--no-deps", "--no-build", ...toUp], undefined, "RESTORE_FAILED");
      await sleep(RESTORED_RUNNING_MS);
      const containers = await projectContainers(this.#docker(full.socketPath), ctx.config.project);
      const notRunning: string[] = [];
      for (const s of toUp) {
        const b = full.before.find((x) => x.service === s)!;
        const c = serviceContainer(containers, s);
        if (!c?.running && b.running && !b.crashLooping) notRunning.push(s);
      }
      if (notRunning.length > 0) throw new DriverError("RESTORE_FAILED", `restore brought back ${toUp.join(", ")}, but ${notRunning.join(", ")} did not stay running`, { notRunning });
      log(`${toUp.join(", ")} run their previous images again`);
      done["restarted"] = toUp;
    }
    return done;
  }

  outcome(ctx: PhaseContext<ComposeTargetConfig>, state: ComposePhaseState): DeployOutcome {
    const running: RunningImage[] = state.lock.services.map((s) => {
      const r: RunningImage = { component: s.component, repository: s.repository, digest: s.digest, containerName: s.service };
      const id = state.started?.[s.service]?.containerId ?? state.before.find((b) => b.service === s.service)?.containerId;
      if (id) r.containerId = id;
      return r;
    });
    // A rollout's restore step (phases ["restore"]): the lock reported is still the task's (the one the control plane
    // signed for and stored); what runs is what ran before the rollout's start step.
    const restored = (state as Record<string, unknown>)["restore"];
    if (restored) {
      const message = `project ${ctx.config.project}: what ran before lock ${state.lock.sha256.slice(0, 19)}… was started is back${state.previousLock === null ? "" : ` (lock ${sha256(state.previousLock).slice(0, 19)}…)`}`;
      return { running: [], message, details: { lockSha256: state.lock.sha256, restored, previousLockSha256: state.previousLock === null ? null : sha256(state.previousLock), cli: `${state.cli.command.join(" ")} ${state.cli.version}` } };
    }
    const message =
      state.changed.length === 0
        ? `project ${ctx.config.project} already runs lock ${state.lock.sha256.slice(0, 19)}…; nothing replaced`
        : `project ${ctx.config.project} runs lock ${state.lock.sha256.slice(0, 19)}…; replaced ${state.changed.join(", ")}`;
    return { running, message, details: { lockSha256: state.lock.sha256, lock: state.lock.text, replaced: state.changed, cli: `${state.cli.command.join(" ")} ${state.cli.version}` } };
  }

  /**
   * The checks prepare runs before a deploy, changing nothing: the directory exists and is writable and holds the
   * compose file (COMPOSE_PROJECT_INVALID), routed services have a router (ROUTER_UNAVAILABLE), a Compose CLI runs
   * (COMPOSE_CLI_MISSING), the file loads and fits the map and the routes (COMPOSE_FILE_INVALID). The CLI's output is
   * remembered (#configOutput), so the agent's periodic inspection does not start the CLI every time.
   */
  async #hostChecks(config: ComposeTargetConfig, socketPath: string): Promise<void> {
    const file = config.file ?? "docker-compose.yml";
    await checkProjectDirectory(config.directory, file);
    this.#routerFor(config);
    const cli = await this.#requireCli(socketPath);
    const mapped = config.services ? Object.keys(config.services).sort() : undefined;
    const routed = (config.routes ?? []).map((r) => r.composeService).sort();
    const normalised = await this.#configOutput({ cli, socketPath, directory: config.directory, project: config.project, files: [join(config.directory, file)] });
    checkFile(normalised, mapped, file, routed);
  }

  /**
   * `config` on the operator's file: the CLI loads and validates it (YAML, Compose's schema, interpolation, extends)
   * and prints one normalised document, or fails with COMPOSE_FILE_INVALID. The output (or that verdict) is remembered
   * while the CLI and the project directory's files are unchanged (projectMark), for at most CONFIG_OUTPUT_TTL_MS, so a
   * deploy and the agent's periodic inspection do not start the CLI (a Python process for v1, about a second) each time.
   */
  async #configOutput(inv: ComposeInvocation, signal?: AbortSignal): Promise<string> {
    const where = JSON.stringify([inv.socketPath, inv.project, inv.directory, inv.files]);
    const mark = await projectMark(inv.directory);
    const inputs = JSON.stringify([inv.cli.command, inv.cli.version, mark ?? null]);
    const known = this.#configs.get(where);
    if (mark !== undefined && known?.inputs === inputs && Date.now() - known.at < CONFIG_OUTPUT_TTL_MS) {
      if (known.error) throw known.error;
      return known.stdout!;
    }
    let stdout: string | undefined;
    let error: DriverError | undefined;
    try {
      stdout = (await compose(inv, ["config"], signal, "COMPOSE_FILE_INVALID")).stdout;
    } catch (err) {
      // Only the CLI's verdict on the file is remembered; an abort or an engine problem is not.
      if (!(err instanceof DriverError) || err.code !== "COMPOSE_FILE_INVALID" || signal?.aborted) throw err;
      error = err;
    }
    this.#configs.delete(where);
    if (mark !== undefined) {
      this.#configs.set(where, { inputs, at: Date.now(), ...(error ? { error } : { stdout }) });
      if (this.#configs.size > MAX_CONFIG_OUTPUTS) this.#configs.delete(this.#configs.keys().next().value!);
    }
    if (error) throw error;
    return stdout!;
  }

  /**
   * The project's host checks (#hostChecks), then what runs against the lock. A failed check is the inspection's
   * answer, with its code; what was found running is in details.found when the engine could say.
   */
  async inspect(target: TargetRef): Promise<TargetInspection> {
    const config = composeConfig(target.config);
    const socketPath = resolveSocketPath(config, this.#socketPath);
    try {
      await this.#hostChecks(config, socketPath);
    } catch (err) {
      if (!(err instanceof DriverError)) throw err;
      const found = await this.#observe(config, socketPath).catch(() => undefined);
      throw new DriverError(err.code, err.message, { ...err.details, ...(found ? { found } : {}) });
    }
    return this.#observe(config, socketPath);
  }

  /** What runs in the project against the lock on the host: drift, missing services, an interrupted deploy. */
  async #observe(config: ComposeTargetConfig, socketPath: string): Promise<TargetInspection> {
    const lockText = await readOptional(lockPath(config.directory));
    const parsed = lockText === null ? undefined : parseComposeLock(lockText);
    let containers;
    try {
      const pinned = parsed && !("problem" in parsed) ? Object.keys(parsed.pins) : [];
      containers = await this.#containers(this.#docker(socketPath), config, pinned);
    } catch (err) {
      if (isEngineUnreachable(err)) throw new DriverError("DOCKER_UNAVAILABLE", `no Docker Engine on unix://${socketPath}: ${engineMessage(err)}`, { socketPath });
      throw err;
    }
    const details: Record<string, unknown> = { socketPath, directory: config.directory, lockSha256: lockText === null ? null : sha256(lockText) };
    // start writes the lock first and switch the sticker last: a lock the sticker does not record is the mark of a
    // deploy that stopped in between (an agent killed mid-task), which the core reports as the interrupted task.
    const stickerText = await readOptional(stickerPath(config.directory));
    if (lockText !== null && stickerText !== null) {
      let recorded: string | undefined;
      try {
        recorded = (JSON.parse(stickerText) as Partial<StickerFile>).lockSha256;
      } catch {
        recorded = undefined;
      }
      if (recorded !== sha256(lockText)) details["interruptedDeploy"] = `the lock on the host (${sha256(lockText).slice(0, 19)}…) is not the one the sticker records (${recorded?.slice(0, 19) ?? "none"}…): a deploy wrote it and did not finish, or it was edited by hand`;
    }
    const running: RunningImage[] = [];
    const labels: Record<string, string> = {};
    if (!parsed || "problem" in parsed) {
      details["lock"] = parsed ? `unreadable: ${parsed.problem}` : "none";
      return { state: containers.size === 0 ? "missing" : "unknown", running, labels, details };
    }
    const drift: string[] = [];
    const missing: string[] = [];
    const services: Record<string, unknown> = {};
    for (const [service, pin] of Object.entries(parsed.pins)) {
      const c = serviceContainer(containers, service);
      if (!c || !c.running) {
        missing.push(service);
        drift.push(`${service}: ${c ? `not running (${c.status})` : "no container"}; the lock pins ${pin.ref}`);
        services[service] = c ? { status: c.status, id: c.id } : null;
        continue;
      }
      services[service] = { id: c.id, name: c.name, status: c.status, image: c.imageRef, digest: c.digest, restartCount: c.restartCount };
      running.push({ component: pin.component, repository: c.repository, digest: c.digest, imageId: c.imageId, containerId: c.id, containerName: service });
      if (c.digest !== pin.digest || c.imageRef !== pin.ref) drift.push(`${service}: runs ${c.imageRef} (${c.digest || "no digest"}), the lock pins ${pin.ref}`);
      if (c.restarting) drift.push(`${service}: crash-loops`);
      labels[`${service}.ferry.digest`] = c.labels["ferry.digest"] ?? "";
    }
    const notInLock = [...containers.entries()].filter(([s, list]) => !(s in parsed.pins) && list.some((c) => c.running)).map(([s]) => s);
    for (const s of notInLock) drift.push(`${s}: runs in the project but is not in the lock`);
    details["services"] = services;
    if (drift.length > 0) details["drift"] = drift;
    if (notInLock.length > 0) details["notInLock"] = notInLock;
    const total = Object.keys(parsed.pins).length;
    return { state: missing.length === 0 ? "running" : missing.length === total ? "missing" : "unknown", running, labels, details };
  }

  async readSticker(target: TargetRef): Promise<TargetSticker | undefined> {
    const config = composeConfig(target.config);
    const [stickerText, lockText] = await Promise.all([readOptional(stickerPath(config.directory)), readOptional(lockPath(config.directory))]);
    if (stickerText === null || lockText === null) return undefined;
    let sticker: StickerFile;
    try {
      sticker = JSON.parse(stickerText) as StickerFile;
    } catch {
      return undefined;
    }
    const parsed = parseComposeLock(lockText);
    if ("problem" in parsed || !sticker.deploymentId || !sticker.taskId || !sticker.releaseId) return undefined;
    // A lock changed by hand since Ferry wrote it is not Ferry's sticker any more.
    if (sticker.lockSha256 !== sha256(lockText)) return undefined;
    return { deploymentId: sticker.deploymentId, taskId: sticker.taskId, releaseId: sticker.releaseId, images: Object.values(parsed.pins).map((p) => ({ component: p.component, digest: p.digest })) };
  }
}
