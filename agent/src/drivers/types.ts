// The one interface every target driver implements. The agent core owns everything around a driver — the session,
// signature and digest-pin checks on the task, the task journal, the log spool and the version sticker — so a driver
// only knows how to look at its kind of target and how to put a set of pinned images on it.
//
// A driver's deploy is a sequence of separable, reported steps (pull and verify, start beside/replace, health,
// switch, retire the old), never one opaque call, so later delivery strategies can compose them.

/** One image of a task, pinned by digest. */
export interface ImagePin {
  component: string;
  /** registry/repository, no tag or digest, e.g. "127.0.0.1:5000/shop/web". */
  repository: string;
  /** "sha256:<64 hex>". */
  digest: string;
  /** `${repository}@${digest}`: the only form a driver may pull or run. */
  ref: string;
}

export interface RegistryAuth {
  /** host[:port] the credentials are for. */
  registry: string;
  username?: string;
  password?: string;
  identityToken?: string;
}

export interface TargetRef {
  id: string;
  name: string;
  kind: string;
  /** Kind-specific config, as the control plane validated it; the driver validates again with checkConfig. */
  config: Record<string, unknown>;
}

export interface DeployPlan {
  taskId: string;
  deploymentId: string;
  action: "deploy" | "rollback";
  release: { id: string; name: string; version: string };
  target: TargetRef;
  /** The images this target runs (a Docker target runs one). */
  images: ImagePin[];
  /** Registry credentials for a registry host, from the task or the agent's own config. Never log them. */
  credentials(registry: string): RegistryAuth | undefined;
}

/** Where a driver reports what it is doing. Lines end up in the task's log; steps become progress events. */
export interface ProgressSink {
  step(step: string, detail?: string): void;
  log(line: string): void;
}

export interface RunningImage {
  component: string;
  repository: string;
  /** The digest the running workload's image carries ("" if it cannot be told). */
  digest: string;
  imageId?: string;
  containerId?: string;
  containerName?: string;
}

export interface DeployOutcome {
  /** What runs on the target now, checked after the switch. */
  running: RunningImage[];
  message: string;
  details?: Record<string, unknown>;
}

export type ObservedState = "running" | "stopped" | "missing" | "unknown";

export interface TargetInspection {
  state: ObservedState;
  running: RunningImage[];
  /** Ferry's labels (or the driver's equivalent) found on the target, e.g. ferry.deployment. */
  labels: Record<string, string>;
  details: Record<string, unknown>;
}

/**
 * A driver failure with a stable code. `restored` says whether the target was put back as it was before the task
 * (a failed deploy must restore the old workload); details carry what an operator needs (health output, ...).
 */
export class DriverError extends Error {
  override readonly name = "DriverError";
  constructor(
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly restored = false,
  ) {
    super(message);
  }
}

export interface TargetDriver {
  readonly kind: string;
  /** Throws DriverError("INVALID_TARGET_CONFIG", ...) naming the field. */
  checkConfig(config: Record<string, unknown>): void;
  /** Whether the driver can reach what it drives (e.g. the Docker socket answers), for host facts and diagnostics. */
  available(): Promise<{ ok: boolean; detail: string }>;
  /** What runs on the target now. Never changes anything. */
  inspect(target: TargetRef): Promise<TargetInspection>;
  /**
   * Puts plan.images on the target. Resolves once the new workload is verified and healthy; throws DriverError
   * otherwise, after putting the previous workload back. Honours signal (abort = stop, restore, throw).
   */
  deploy(plan: DeployPlan, signal: AbortSignal, progress: ProgressSink): Promise<DeployOutcome>;
}

export class DriverRegistry {
  readonly #drivers = new Map<string, TargetDriver>();

  register(driver: TargetDriver): this {
    if (this.#drivers.has(driver.kind)) throw new Error(`a driver for ${driver.kind} is already registered`);
    this.#drivers.set(driver.kind, driver);
    return this;
  }

  get(kind: string): TargetDriver | undefined {
    return this.#drivers.get(kind);
  }

  kinds(): string[] {
    return [...this.#drivers.keys()].sort();
  }

  /** Target kinds this agent advertises in HostFacts.drivers. */
  availableDrivers(): string[] {
    return this.kinds();
  }
}
