// One deploy of one pinned image onto one Docker target, as a sequence of reported steps:
//
//   pull      pull repository@digest (the engine checks the manifest against the digest); skipped when the engine
//             already holds an image under exactly repository@digest (see below)
//   verify    the image's RepoDigests contain exactly repository@digest
//   create    park the previous container as <container>.ferry-old-<id>, create the new one as <container>
//   stop-old  stop the previous container (host networking: both would want the same ports)
//   start     start the new one; the running container's image id must be the verified image's
//   health    wait until healthy (config.healthCheck), within a timeout
//   cleanup   remove the previous container and any older parked ones
//
// Until `create` nothing on the target has changed; a failure there is reported with restored = true (the target is
// as it was). From `create` on, any failure — a step's own, a health check that never passes, an abort — runs
// `restore`: remove the new container, rename the previous one back, start it if it was running, and report the
// original failure with restored = true. Only if restoring fails too is the result RESTORE_FAILED (restored = false),
// with both errors in its details.
//
// An image already in the engine under repository@digest is not pulled again. A digest names the content, so such a
// pull would only fetch the manifest from the registry to find the image the engine has (it re-checks no layer); the
// engine records repository@digest for an image when it pulls it by that digest (after checking the manifest against
// it) or pushes it, and the same RepoDigests check that follows a pull still runs. This saves a registry round trip
// on every redeploy of a local image, and lets a rollback to an image still in the engine work while the registry is
// down.
//
// Reading the target (which containers exist) and looking for the image locally are independent engine calls and
// run together. After a pull, which can take minutes, the target is read again: what to replace is decided then,
// not before it.
//
// Crash recovery: a deploy that died half-way leaves the target in a shape `containers.ts` recognises (a parked
// previous container, maybe an unfinished new one). The next deploy puts the previous container back under its
// name before it starts, so the one to restore to is always the last one that ran.
import { setTimeout as sleep } from "node:timers/promises";

import { credentialRegistry } from "@ferry/proto";
import type Docker from "dockerode";
import type { Logger } from "pino";

import { DriverError, type DeployOutcome, type DeployPlan, type ImagePin, type ProgressSink } from "../types.js";
import type { DockerTargetConfig } from "./config.js";
import { deployLabels, findContainers, LABELS, parkedName, type ContainerView, type TargetContainers } from "./containers.js";
import { dockerError, engineMessage, engineStatus, isEngineUnreachable, type DockerErrorCode } from "./errors.js";
import {
  DEFAULT_HEALTH_INTERVAL_MS,
  DEFAULT_HEALTH_TIMEOUT_MS,
  waitHealthy,
  type ContainerHealthState,
  type HealthResult,
  type HealthTarget,
  type ResolvedHealthCheck,
} from "./health.js";
import { pullImage } from "./pull.js";

export const DEPLOY_STEPS = ["pull", "verify", "create", "stop-old", "start", "health", "cleanup", "restore"] as const;
export type DeployStep = (typeof DEPLOY_STEPS)[number];

/** The code a step's unexpected failure is reported under. */
const STEP_CODES: Record<DeployStep, DockerErrorCode> = {
  pull: "IMAGE_PULL_FAILED",
  verify: "DIGEST_MISMATCH",
  create: "CONTAINER_CREATE_FAILED",
  "stop-old": "CONTAINER_START_FAILED",
  start: "CONTAINER_START_FAILED",
  health: "HEALTH_CHECK_FAILED",
  cleanup: "CONTAINER_START_FAILED",
  restore: "RESTORE_FAILED",
};

export interface DeployContext {
  docker: Docker;
  socketPath: string;
  config: DockerTargetConfig;
  pin: ImagePin;
  plan: DeployPlan;
  signal: AbortSignal;
  progress: ProgressSink;
  logger: Logger;
  stopTimeoutSeconds: number;
  settleMs: number | undefined;
}

/** The previous container, while this deploy holds it. */
interface Previous {
  id: string;
  /** Whether to start it again on restore. */
  wasRunning: boolean;
  /** Its name while parked; undefined while it still has the target's name. */
  parkedAs?: string;
}

function demuxLogs(buf: Buffer): string {
  // Non-TTY container output is framed: [stream, 0, 0, 0, size (u32 BE)] + payload.
  let out = "";
  let off = 0;
  while (off + 8 <= buf.length && buf[1] === 0 && buf[2] === 0 && buf[3] === 0) {
    const size = buf.readUInt32BE(off + 4);
    out += buf.subarray(off + 8, off + 8 + size).toString("utf8");
    off += 8 + size;
  }
  return off === 0 ? buf.toString("utf8") : out;
}

export function containerHealthTarget(docker: Docker, id: string): HealthTarget {
  const c = docker.getContainer(id);
  return {
    async state(): Promise<ContainerHealthState> {
      const info = await c.inspect();
      const s = info.State;
      const state: ContainerHealthState = { running: s.Running, restarting: s.Restarting, status: s.Status, exitCode: s.ExitCode };
      if (s.Error) state.error = s.Error;
      if (s.Health) {
        state.health = {
          status: s.Health.Status,
          log: (s.Health.Log ?? []).map((e) => ({ start: e.Start, exitCode: e.ExitCode, output: e.Output })),
        };
      }
      return state;
    },
    async logsTail(): Promise<string> {
      const raw = await c.logs({ stdout: true, stderr: true, tail: 20, follow: false });
      return demuxLogs(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)));
    },
  };
}

export class DockerDeployment {
  readonly #c: DeployContext;
  readonly #log: Logger;
  #step: DeployStep = "pull";
  #previous: Previous | undefined;
  #newId: string | undefined;
  /** Set once the target has been changed: from here on a failure must restore. */
  #touched = false;
  #cleanupWarnings: string[] = [];

  constructor(ctx: DeployContext) {
    this.#c = ctx;
    this.#log = ctx.logger.child({ taskId: ctx.plan.taskId, target: ctx.plan.target.id, container: ctx.config.container });
  }

  async run(): Promise<DeployOutcome> {
    try {
      return await this.#run();
    } catch (err) {
      throw await this.#fail(err);
    }
  }

  #enter(step: DeployStep, detail?: string): void {
    this.#step = step;
    this.#c.progress.step(step, detail);
    this.#log.info({ step, detail }, "docker deploy step");
  }

  #line(line: string): void {
    this.#c.progress.log(line);
  }

  async #run(): Promise<DeployOutcome> {
    const { docker, config, pin, signal } = this.#c;
    const name = config.container;
    signal.throwIfAborted();

    const [found, local] = await Promise.all([findContainers(docker, name), this.#localImage()]);
    const same = found.current;
    if (same?.running && same.labels[LABELS.task] === this.#c.plan.taskId && same.labels[LABELS.digest] === pin.digest && same.digest === pin.digest) {
      return this.#alreadyDeployed(same, found.parked);
    }

    this.#enter("pull", pin.ref);
    let image: Docker.ImageInspectInfo;
    let now: TargetContainers;
    if (local) {
      this.#line(`pull: the engine already has ${pin.ref} (image ${local.Id.slice(7, 19)}); not pulling it again`);
      this.#enter("verify", pin.ref);
      image = this.#checkRepoDigests(local, "local");
      // Read just now, together with the image: still what to replace.
      now = found;
    } else {
      await pullImage(docker, pin, this.#c.plan.credentials(credentialRegistry(pin.repository)), signal, (l) => this.#line(l));
      this.#enter("verify", pin.ref);
      // Read the target again: a pull can take minutes, and what to replace is decided now, not before it.
      [image, now] = await Promise.all([this.#verifyImage(), findContainers(docker, name)]);
    }
    signal.throwIfAborted();
    const previous = await this.#takePrevious(now.current, now.parked);

    this.#enter("create", name);
    if (previous) {
      const parkedAs = parkedName(name, previous.id);
      this.#touched = true;
      await docker.getContainer(previous.id).rename({ name: parkedAs });
      previous.parkedAs = parkedAs;
      this.#line(`create: parked the previous container ${previous.id.slice(0, 12)} as ${parkedAs}`);
    }
    this.#touched = true;
    const created = await docker.createContainer(this.#createOptions()).catch((err: unknown) => {
      throw dockerError("CONTAINER_CREATE_FAILED", `creating ${name} from ${pin.ref} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
    });
    this.#newId = created.id;
    this.#line(`create: created ${name} (${created.id.slice(0, 12)}) from ${pin.ref}`);
    signal.throwIfAborted();

    this.#enter("stop-old", previous ? previous.id.slice(0, 12) : "none");
    if (previous?.wasRunning) {
      await this.#stop(previous.id).catch((err: unknown) => {
        throw dockerError("CONTAINER_START_FAILED", `stopping the previous container ${previous.parkedAs ?? previous.id} failed: ${engineMessage(err)}`, {
          error: engineMessage(err),
        });
      });
      this.#line(`stop-old: stopped ${previous.parkedAs ?? previous.id.slice(0, 12)}`);
    } else {
      this.#line(previous ? "stop-old: the previous container was not running" : "stop-old: no previous container");
    }
    signal.throwIfAborted();

    this.#enter("start", name);
    await created.start().catch(async (err: unknown) => {
      throw dockerError("CONTAINER_START_FAILED", `starting ${name} failed: ${engineMessage(err)}`, {
        error: engineMessage(err),
        logs: await containerHealthTarget(docker, created.id).logsTail().catch(() => ""),
      });
    });
    const started = await created.inspect();
    if (started.Image !== image.Id) {
      throw dockerError("DIGEST_MISMATCH", `${name} runs image ${started.Image}, not the verified image ${image.Id} of ${pin.ref}`, {
        expectedImageId: image.Id,
        runningImageId: started.Image,
      });
    }
    this.#line(`start: ${name} runs image ${image.Id.slice(7, 19)} (${pin.digest})`);
    signal.throwIfAborted();

    const check = resolveHealthCheck(config, image);
    this.#enter("health", check.type);
    if (check.chosenBecause) this.#line(`health: ${check.type} check (${check.chosenBecause})`);
    const health = await this.#waitHealthy(check, created.id);

    this.#enter("cleanup");
    if (previous) await this.#remove(previous.id, previous.parkedAs ?? previous.id);
    for (const p of now.parked) if (p.id !== previous?.id) await this.#remove(p.id, p.name);

    const details: Record<string, unknown> = { containerId: created.id, imageId: image.Id, health: healthDetails(health, check) };
    if (this.#cleanupWarnings.length > 0) details["cleanupWarnings"] = this.#cleanupWarnings;
    if (previous) details["replaced"] = previous.id;
    return {
      running: [{ component: pin.component, repository: pin.repository, digest: pin.digest, imageId: image.Id, containerId: created.id, containerName: name }],
      message: `${name} runs ${pin.ref}${previous ? `, replacing ${previous.id.slice(0, 12)}` : ""}`,
      details,
    };
  }

  /** The same task already put this digest here (a redelivered task): check it, tidy up, report it, change nothing. */
  async #alreadyDeployed(current: ContainerView, parked: ContainerView[]): Promise<DeployOutcome> {
    const { config, pin } = this.#c;
    this.#line(`${config.container} already runs ${pin.ref} for task ${this.#c.plan.taskId}; not redeploying`);
    this.#enter("verify", pin.ref);
    const image = await this.#c.docker.getImage(current.imageId).inspect();
    const check = resolveHealthCheck(config, image);
    this.#enter("health", check.type);
    // A crash between start and the health check would otherwise pass an unchecked container off as deployed.
    const result = await waitHealthy(check, containerHealthTarget(this.#c.docker, current.id), this.#c.signal, {
      ...(this.#c.settleMs !== undefined ? { settleMs: this.#c.settleMs } : {}),
      log: (l) => this.#line(l),
    });
    if (!result.ok) {
      const restorable = parked[0];
      if (restorable) {
        // The previous container is still parked: treat this as the unfinished deploy it is.
        this.#previous = { id: restorable.id, wasRunning: true, parkedAs: restorable.name };
        this.#newId = current.id;
        this.#touched = true;
      }
      throw dockerError("HEALTH_CHECK_FAILED", `${config.container} is not healthy: ${result.summary}`, { health: healthDetails(result, check) });
    }
    this.#enter("cleanup");
    for (const p of parked) await this.#remove(p.id, p.name);
    const details: Record<string, unknown> = { alreadyDeployed: true, containerId: current.id, imageId: current.imageId, health: healthDetails(result, check) };
    if (this.#cleanupWarnings.length > 0) details["cleanupWarnings"] = this.#cleanupWarnings;
    return {
      running: [{ component: pin.component, repository: pin.repository, digest: pin.digest, imageId: current.imageId, containerId: current.id, containerName: config.container }],
      message: `${config.container} already runs ${pin.ref} (task ${this.#c.plan.taskId}); nothing to do`,
      details,
    };
  }

  /**
   * The image the engine holds under exactly repository@digest, or undefined when it has none (then it is pulled).
   * Anything unexpected here also means "pull": the pull and the verify after it report such failures properly.
   */
  async #localImage(): Promise<Docker.ImageInspectInfo | undefined> {
    const { docker, pin } = this.#c;
    try {
      const image = await docker.getImage(pin.ref).inspect();
      return (image.RepoDigests ?? []).includes(pin.ref) ? image : undefined;
    } catch (err) {
      if (isEngineUnreachable(err)) throw err;
      return undefined;
    }
  }

  async #verifyImage(): Promise<Docker.ImageInspectInfo> {
    const { docker, pin } = this.#c;
    let image: Docker.ImageInspectInfo;
    try {
      image = await docker.getImage(pin.ref).inspect();
    } catch (err) {
      if (isEngineUnreachable(err)) throw err;
      throw dockerError("DIGEST_MISMATCH", `after the pull the engine has no image ${pin.ref}: ${engineMessage(err)}`, { image: pin.ref, error: engineMessage(err) });
    }
    return this.#checkRepoDigests(image, "pulled");
  }

  #checkRepoDigests(image: Docker.ImageInspectInfo, what: "pulled" | "local"): Docker.ImageInspectInfo {
    const { pin } = this.#c;
    // The engine resolves repository@digest through its own reference store; the image it finds must say it came
    // from exactly that repository and digest.
    const repoDigests = image.RepoDigests ?? [];
    if (!repoDigests.includes(pin.ref)) {
      throw dockerError("DIGEST_MISMATCH", `the ${what} image ${image.Id} does not carry ${pin.ref} (it carries ${repoDigests.join(", ") || "no repository digest"})`, {
        image: pin.ref,
        imageId: image.Id,
        repoDigests,
      });
    }
    this.#line(`verify: image ${image.Id.slice(7, 19)} carries ${pin.ref}`);
    return image;
  }

  /**
   * The container to replace, after putting back what an interrupted deploy left behind: an unfinished new container
   * (created by Ferry, never running) is removed, and the newest parked container gets the target's name again.
   */
  async #takePrevious(current: ContainerView | undefined, parked: ContainerView[]): Promise<Previous | undefined> {
    const { docker, config } = this.#c;
    const newest = parked[0];
    if (newest && (!current || (!current.running && current.labels[LABELS.task] !== undefined))) {
      this.#enter("restore", "recovering from an interrupted deploy");
      try {
        if (current) {
          this.#line(`restore: removing ${config.container} (${current.id.slice(0, 12)}, ${current.status}, task ${current.labels[LABELS.task]}), left unfinished by an interrupted deploy`);
          await docker.getContainer(current.id).remove({ force: true });
        }
        this.#line(`restore: renaming ${newest.name} back to ${config.container}`);
        await docker.getContainer(newest.id).rename({ name: config.container });
      } catch (err) {
        if (isEngineUnreachable(err)) throw err;
        throw dockerError("RESTORE_FAILED", `recovering from an interrupted deploy failed: ${engineMessage(err)}`, { error: engineMessage(err), parked: newest.name });
      }
      // It ran before the interrupted deploy stopped it; if this deploy fails it is what must run again. Recovery
      // only put things back, so the target is not "touched" by this deploy yet.
      this.#previous = { id: newest.id, wasRunning: true };
      return this.#previous;
    }
    if (!current) return undefined;
    this.#previous = { id: current.id, wasRunning: current.running };
    return this.#previous;
  }

  #createOptions(): Docker.ContainerCreateOptions {
    const { config, pin, plan } = this.#c;
    const network = config.network ?? "host";
    const opts: Docker.ContainerCreateOptions = {
      name: config.container,
      Image: pin.ref,
      Labels: deployLabels(plan, pin),
      HostConfig: { NetworkMode: network, RestartPolicy: { Name: "unless-stopped" } },
    };
    if (config.command) opts.Cmd = config.command;
    if (config.env) opts.Env = Object.entries(config.env).map(([k, v]) => `${k}=${v}`);
    if (config.volumes) opts.HostConfig!.Binds = config.volumes.map((v) => `${v.source}:${v.target}${v.readOnly ? ":ro" : ""}`);
    if (config.ports && config.ports.length > 0) {
      if (network === "host") {
        this.#line("create: config.ports is ignored under host networking (the container's ports are the host's); set config.network to publish them");
      } else {
        opts.ExposedPorts = {};
        const bindings: Record<string, Array<{ HostPort: string }>> = {};
        for (const p of config.ports) {
          const key = `${p.container}/${p.protocol ?? "tcp"}`;
          opts.ExposedPorts[key] = {};
          (bindings[key] ??= []).push({ HostPort: String(p.host ?? p.container) });
        }
        opts.HostConfig!.PortBindings = bindings;
      }
    }
    return opts;
  }

  async #stop(id: string): Promise<void> {
    try {
      await this.#c.docker.getContainer(id).stop({ t: this.#c.stopTimeoutSeconds });
    } catch (err) {
      // 304: already stopped.
      if (engineStatus(err) !== 304) throw err;
    }
  }

  async #remove(id: string, what: string): Promise<void> {
    try {
      await this.#c.docker.getContainer(id).remove({ force: true });
      this.#line(`cleanup: removed ${what}`);
    } catch (err) {
      if (engineStatus(err) === 404) return;
      // The new container runs and is healthy; a leftover is untidy, not a failed deploy.
      const warning = `could not remove ${what}: ${engineMessage(err)}`;
      this.#cleanupWarnings.push(warning);
      this.#line(`cleanup: ${warning}`);
      this.#log.warn({ container: what, err: engineMessage(err) }, "docker cleanup failed");
    }
  }

  async #waitHealthy(check: ResolvedHealthCheck, id: string): Promise<HealthResult> {
    const result = await waitHealthy(check, containerHealthTarget(this.#c.docker, id), this.#c.signal, {
      ...(this.#c.settleMs !== undefined ? { settleMs: this.#c.settleMs } : {}),
      log: (l) => this.#line(l),
    });
    if (!result.ok) {
      throw dockerError("HEALTH_CHECK_FAILED", `${this.#c.config.container} did not become healthy: ${result.summary}`, { health: healthDetails(result, check) });
    }
    this.#line(`health: ${result.summary}`);
    return result;
  }

  /** Turns any failure into the DriverError to report, restoring the previous container first when needed. */
  async #fail(err: unknown): Promise<DriverError> {
    const { signal } = this.#c;
    let failure: DriverError;
    if (signal.aborted) {
      failure = dockerError("ABORTED", `the deploy was cancelled during ${this.#step}`, { step: this.#step, reason: String(signal.reason) });
    } else if (err instanceof DriverError) {
      failure = err;
    } else if (isEngineUnreachable(err)) {
      failure = dockerError("DOCKER_UNAVAILABLE", `the Docker Engine at ${this.#c.socketPath} stopped answering during ${this.#step}: ${engineMessage(err)}`, {
        step: this.#step,
        error: engineMessage(err),
      });
    } else {
      failure = dockerError(STEP_CODES[this.#step], `${this.#step} failed: ${engineMessage(err)}`, { step: this.#step, error: engineMessage(err) });
    }
    if (!failure.details["step"]) failure.details["step"] = this.#step;

    if (!this.#touched) {
      this.#log.warn({ code: failure.code, step: this.#step }, "docker deploy failed before the target was changed");
      return new DriverError(failure.code, failure.message, failure.details, failure.code !== "RESTORE_FAILED");
    }
    try {
      const restored = await this.#restore();
      this.#log.warn({ code: failure.code, step: failure.details["step"] }, "docker deploy failed; previous container restored");
      return new DriverError(failure.code, failure.message, { ...failure.details, restore: restored }, true);
    } catch (restoreErr) {
      const message = restoreErr instanceof DriverError ? restoreErr.message : engineMessage(restoreErr);
      this.#log.error({ code: failure.code, restoreError: message }, "docker deploy failed and restoring the previous container failed");
      return dockerError(
        "RESTORE_FAILED",
        `${failure.message}; restoring the previous container failed too: ${message}`,
        { failure: { code: failure.code, message: failure.message, details: failure.details }, restoreError: message },
        false,
      );
    }
  }

  /** Removes the new container and puts the previous one back as it was. Never uses the (maybe aborted) task signal. */
  async #restore(): Promise<Record<string, unknown>> {
    const { docker, config } = this.#c;
    this.#enter("restore", this.#previous ? this.#previous.id.slice(0, 12) : "no previous container");
    const done: Record<string, unknown> = {};
    if (this.#newId) {
      try {
        await docker.getContainer(this.#newId).remove({ force: true });
      } catch (err) {
        if (engineStatus(err) !== 404) throw err;
      }
      this.#line(`restore: removed the new container ${this.#newId.slice(0, 12)}`);
      done["removed"] = this.#newId;
    }
    const previous = this.#previous;
    if (!previous) {
      this.#line("restore: there was no previous container; the target is empty again");
      return done;
    }
    if (previous.parkedAs) {
      await docker.getContainer(previous.id).rename({ name: config.container });
      this.#line(`restore: renamed ${previous.parkedAs} back to ${config.container}`);
      previous.parkedAs = undefined;
    }
    done["container"] = previous.id;
    if (previous.wasRunning) {
      const c = docker.getContainer(previous.id);
      try {
        await c.start();
      } catch (err) {
        if (engineStatus(err) !== 304) throw err;
      }
      // Give it a moment to fail on its own (a port still held, a crash at start): "restored" must mean running.
      await sleep(300);
      const state = (await c.inspect()).State;
      if (!state.Running) throw new Error(`the previous container ${previous.id.slice(0, 12)} did not stay running (${state.Status}, exit code ${state.ExitCode})`);
      this.#line(`restore: ${config.container} (${previous.id.slice(0, 12)}) runs again`);
      done["restarted"] = true;
    }
    return done;
  }
}

/** The health check to run: the configured one, or the image's own HEALTHCHECK if it has one, or "none". */
export function resolveHealthCheck(config: DockerTargetConfig, image: Docker.ImageInspectInfo): ResolvedHealthCheck {
  const hc = config.healthCheck;
  const timeoutMs = (hc?.timeoutSeconds ?? DEFAULT_HEALTH_TIMEOUT_MS / 1000) * 1000;
  const intervalMs = (hc?.intervalSeconds ?? DEFAULT_HEALTH_INTERVAL_MS / 1000) * 1000;
  if (hc) {
    const check: ResolvedHealthCheck = { type: hc.type, timeoutMs, intervalMs };
    if (hc.url !== undefined) check.url = hc.url;
    if (hc.port !== undefined) check.port = hc.port;
    return check;
  }
  const test = image.Config?.Healthcheck?.Test;
  if (test && test.length > 0 && test[0] !== "NONE") return { type: "docker", timeoutMs, intervalMs, chosenBecause: "no healthCheck configured; the image defines a HEALTHCHECK" };
  return { type: "none", timeoutMs, intervalMs, chosenBecause: "no healthCheck configured and the image defines no HEALTHCHECK" };
}

function healthDetails(r: HealthResult, check: ResolvedHealthCheck): Record<string, unknown> {
  return {
    type: r.type,
    ok: r.ok,
    summary: r.summary,
    attempts: r.attempts,
    elapsedMs: r.elapsedMs,
    timeoutSeconds: check.timeoutMs / 1000,
    ...(check.url ? { url: check.url } : {}),
    ...(check.port ? { port: check.port } : {}),
    observed: r.observed,
  };
}
