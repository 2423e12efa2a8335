// The Docker target driver: one container per target on a Docker Engine, replaced digest-pinned image by image
// (docs/drivers/docker.md).
//
// The engine is reached over its unix socket, chosen per target: config.socketPath, else the driver's socketPath
// option, else DOCKER_HOST when it names a unix socket, else /var/run/docker.sock. One dockerode client per socket.
import Docker from "dockerode";
import { pino, type Logger } from "pino";

import type { DeployOutcome, DeployPlan, ImagePin, ProgressSink, RunningImage, TargetDriver, TargetInspection, TargetRef } from "../types.js";
import { parseDockerConfig, type DockerTargetConfig } from "./config.js";
import { describeLeftovers, ferryLabels, findContainers, LABELS, type ContainerView } from "./containers.js";
import { DockerDeployment } from "./deploy.js";
import { dockerError, engineMessage, isEngineUnreachable } from "./errors.js";

export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";
const DIGEST = /^sha256:[0-9a-f]{64}$/;

export interface DockerDriverOptions {
  /** The engine socket for targets whose config names none. */
  socketPath?: string;
  logger?: Logger;
  /** Seconds the engine gives the previous container to stop before it kills it (docker stop -t). Default 10. */
  stopTimeoutSeconds?: number;
  /** How long a container must keep running to pass a "none" health check. Default 2000 ms. */
  settleMs?: number;
}

/** The socket a target's engine is on (see the file comment for the order). */
export function resolveSocketPath(config: { socketPath?: string }, optionSocket?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (config.socketPath) return config.socketPath;
  if (optionSocket) return optionSocket;
  const host = env["DOCKER_HOST"];
  if (host?.startsWith("unix://")) return host.slice("unix://".length);
  return DEFAULT_DOCKER_SOCKET;
}

/** The one image of the plan this target runs: config.component picks it when the task carries several. */
export function pickImage(plan: DeployPlan, config: DockerTargetConfig): ImagePin {
  const names = plan.images.map((i) => i.component).join(", ") || "none";
  let pin: ImagePin | undefined;
  if (config.component !== undefined) {
    pin = plan.images.find((i) => i.component === config.component);
    if (!pin) {
      throw dockerError("INVALID_TARGET_CONFIG", `config.component: "${config.component}" is not among the task's images (${names})`, { field: "config.component" }, true);
    }
  } else if (plan.images.length === 1) {
    pin = plan.images[0];
  } else {
    const problem = plan.images.length === 0 ? "the task carries no image" : `the task carries several images (${names}); set config.component to pick one`;
    throw dockerError("INVALID_TARGET_CONFIG", `config.component: ${problem}`, { field: "config.component" }, true);
  }
  if (!pin) throw dockerError("INVALID_TARGET_CONFIG", "config.component: no image to deploy", { field: "config.component" }, true);
  // The agent core checks the task's pins; a driver still never runs anything but repository@digest.
  if (!DIGEST.test(pin.digest) || pin.ref !== `${pin.repository}@${pin.digest}` || pin.repository.includes("@")) {
    throw dockerError("DIGEST_MISMATCH", `the image pin for ${pin.component} is not repository@sha256:<digest> (ref ${pin.ref}, digest ${pin.digest})`, { pin }, true);
  }
  return pin;
}

export class DockerDriver implements TargetDriver {
  readonly kind = "docker";
  readonly #socketPath: string | undefined;
  readonly #logger: Logger;
  readonly #stopTimeoutSeconds: number;
  readonly #settleMs: number | undefined;
  readonly #clients = new Map<string, Docker>();

  constructor(opts: DockerDriverOptions = {}) {
    this.#socketPath = opts.socketPath;
    this.#logger = (opts.logger ?? pino({ level: "silent" })).child({ driver: "docker" });
    this.#stopTimeoutSeconds = opts.stopTimeoutSeconds ?? 10;
    this.#settleMs = opts.settleMs;
  }

  checkConfig(config: Record<string, unknown>): void {
    parseDockerConfig(config);
  }

  #client(socketPath: string): Docker {
    let docker = this.#clients.get(socketPath);
    if (!docker) {
      docker = new Docker({ socketPath });
      this.#clients.set(socketPath, docker);
    }
    return docker;
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    const socketPath = resolveSocketPath({}, this.#socketPath);
    try {
      const v = await this.#client(socketPath).version();
      return { ok: true, detail: `Docker Engine ${v.Version} (API ${v.ApiVersion}) on unix://${socketPath}` };
    } catch (err) {
      return { ok: false, detail: `no Docker Engine on unix://${socketPath}: ${engineMessage(err)}` };
    }
  }

  async inspect(target: TargetRef): Promise<TargetInspection> {
    const config = parseDockerConfig(target.config);
    const socketPath = resolveSocketPath(config, this.#socketPath);
    let found;
    try {
      found = await findContainers(this.#client(socketPath), config.container);
    } catch (err) {
      if (isEngineUnreachable(err)) {
        throw dockerError("DOCKER_UNAVAILABLE", `no Docker Engine on unix://${socketPath}: ${engineMessage(err)}`, { socketPath, error: engineMessage(err) });
      }
      throw err;
    }
    const { current, parked } = found;
    const describe = (c: ContainerView) => ({
      id: c.id,
      name: c.name,
      status: c.status,
      image: c.imageRef,
      imageId: c.imageId,
      digest: c.digest,
      labelDigest: c.labels[LABELS.digest] ?? "",
      task: c.labels[LABELS.task] ?? "",
      created: c.created,
    });
    const details: Record<string, unknown> = {
      socketPath,
      container: current ? describe(current) : null,
      leftovers: parked.map(describe),
    };
    const interrupted = describeLeftovers(found, config.container);
    if (interrupted) details["interruptedDeploy"] = interrupted;
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

  async deploy(plan: DeployPlan, signal: AbortSignal, progress: ProgressSink): Promise<DeployOutcome> {
    const config = parseDockerConfig(plan.target.config);
    const pin = pickImage(plan, config);
    const socketPath = resolveSocketPath(config, this.#socketPath);
    const deployment = new DockerDeployment({
      docker: this.#client(socketPath),
      socketPath,
      config,
      pin,
      plan,
      signal,
      progress,
      logger: this.#logger,
      stopTimeoutSeconds: this.#stopTimeoutSeconds,
      settleMs: this.#settleMs,
    });
    return deployment.run();
  }
}
