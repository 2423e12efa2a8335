// The one interface every target driver implements, as phases (docs/drivers/README.md).
//
// The agent core owns everything around a driver — the session, signature and digest-pin checks on the task, the task
// journal, the log spool and the sticker file — and runs a driver's phases in order (core/phase-runner.ts):
//
//   prepare → start → health → switch → retire          and restore after any failure once start has begun
//
// A phase gets the task's context and the state the previous phase returned, and returns the next state. The state
// is the driver's own record of what it did on the target (the previous container's id, the new one's, where the old
// one was parked): plain JSON, so that strategies can run phases as separate tasks and a later task can pick up what
// an earlier one left. A phase changes the target only as its name says: prepare never touches what serves; only
// start and later phases do, and restore must be able to undo any of them from the state alone.
//
// Drivers import nothing from the wire (proto) and nothing from the agent core: what they need comes in the context.
import type { Capability, ImagePin, ObjectSchema, RouteOperation, TargetKindDescriptor, TaskAction } from "@ferry/contract";
import type { Logger } from "pino";

export type { ImagePin };

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
  /** Kind-specific config as the task carries it; the core checks it with the kind's schema before any phase. */
  config: Record<string, unknown>;
}

/** Where a driver reports what it does. Lines end up in the task's log; the core turns phases into progress events. */
export interface ProgressSink {
  step(step: string, detail?: string): void;
  log(line: string): void;
}

/** What every phase of one task is given. */
export interface PhaseContext<Config> {
  taskId: string;
  deploymentId: string;
  action: Exclude<TaskAction, "inspect" | "route">;
  release: { id: string; name: string; version: string };
  target: TargetRef;
  /** target.config, checked against the kind's schema and typed. */
  config: Config;
  /** The images this target runs, chosen by the kind's descriptor from the task's pins (digest-checked). */
  images: ImagePin[];
  /** Registry credentials for a registry host, from the task or the agent's own config. Never log them. */
  credentials(registry: string): RegistryAuth | undefined;
  /** Aborts when the task is cancelled or the agent stops. Restore is given a signal that never aborts. */
  signal: AbortSignal;
  progress: ProgressSink;
}

/** A driver's record of what it did on the target so far: plain JSON. */
export type PhaseState = Record<string, unknown>;

export interface HealthReport {
  ok: boolean;
  /** One line: what passed, or why it failed. */
  summary: string;
  /**
   * When not ok: HEALTH_CHECK_FAILED (the check said no or timed out), INSTANCE_CRASHED (exited or restarted), or
   * CANARY_ANALYSIS_FAILED (a platform's canaries failed Ferry's analysis before promotion).
   */
  code?: "HEALTH_CHECK_FAILED" | "INSTANCE_CRASHED" | "CANARY_ANALYSIS_FAILED";
  details: Record<string, unknown>;
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

/** The version sticker as a driver keeps it on the target itself (labels, tags, a file on the host). */
export interface TargetSticker {
  deploymentId: string;
  taskId: string;
  releaseId: string;
  images: { component: string; digest: string }[];
}

/**
 * A driver failure with a stable code from @ferry/contract's RESULT_CODES. `restored` says whether the target was
 * put back as it was before the task; the phase runner sets it, drivers need not.
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

/**
 * A phase that fails half-way, after changing the target, and hands restore what it had done so far. A phase may
 * also write its progress into the state object it was given as it goes (the runner restores from that same object
 * when the phase throws); PhaseFailure is for a phase that builds its state separately.
 */
export class PhaseFailure extends Error {
  override readonly name = "PhaseFailure";
  constructor(
    readonly error: DriverError,
    readonly state: PhaseState,
  ) {
    super(error.message);
  }
}

/** What a router operation (a `route` task) is given. */
export interface RouteContext<Config> {
  taskId: string;
  target: TargetRef;
  config: Config;
  signal: AbortSignal;
  progress: ProgressSink;
}

export interface Driver<Config = Record<string, unknown>, State extends PhaseState = PhaseState> {
  readonly descriptor: TargetKindDescriptor<Config>;
  /**
   * The driver's phases can run as separate tasks: a later task is given the state an earlier one returned (task
   * payload v2 `state`) and picks up from it. Without this, the agent accepts only the all-at-once run.
   */
  readonly separateSteps?: boolean;
  /**
   * A router operation on a routed target (weights for the slot a rollout started, a measure of per-slot counters,
   * maintenance on or off); `state` is what the rollout's start step returned, when the operation needs it. Resolves
   * with what the router reports afterwards (bounded JSON). Absent when the driver has no router.
   */
  route?(ctx: RouteContext<Config>, op: RouteOperation, state: State | undefined): Promise<Record<string, unknown>>;
  /** What this driver offers on this host now: a subset of the descriptor's capabilities. */
  capabilities(): readonly Capability[];
  /** Whether the driver can reach what it drives (the Docker socket answers, ...), for host facts and diagnostics. */
  available(): Promise<{ ok: boolean; detail: string }>;
  /** What runs on the target now. Never changes anything. */
  inspect(target: TargetRef): Promise<TargetInspection>;
  /** The sticker the target itself carries, if any. Never changes anything. */
  readSticker(target: TargetRef): Promise<TargetSticker | undefined>;

  /** Pulls and verifies every image by digest. Must not change what serves. */
  prepare(ctx: PhaseContext<Config>): Promise<State>;
  /** Starts the new instance beside the old one, or in its place where the kind cannot run both (logged as such). */
  start(ctx: PhaseContext<Config>, state: State): Promise<State>;
  /** Waits until the new instance is healthy or fails for good. Resolves with the verdict; throws only on faults. */
  health(ctx: PhaseContext<Config>, state: State): Promise<HealthReport>;
  /** Makes the new instance the one that serves. */
  switch(ctx: PhaseContext<Config>, state: State): Promise<State>;
  /** Stops and removes what served before. A failure here is a warning in the outcome, not a failed task. */
  retire(ctx: PhaseContext<Config>, state: State): Promise<State>;
  /** Puts back what served before the task, from the state alone. Returns what it did. */
  restore(ctx: PhaseContext<Config>, state: State): Promise<Record<string, unknown>>;
  /** What runs now, after every phase passed. */
  outcome(ctx: PhaseContext<Config>, state: State): DeployOutcome;
}

/** Anything a driver factory may need from the agent. */
export interface DriverFactoryOptions {
  logger: Logger;
  /** The driver's own section of the agent's resolved config (drivers.<kind>), checked with the registration's schema. */
  settings: Record<string, unknown>;
}

/**
 * How a driver joins the agent: its kind's descriptor, the schema of its section in the agent's config, and a factory
 * that loads its code only when called (so an agent pays no memory for kinds it does not serve). One line per kind in
 * drivers/index.ts.
 */
export interface DriverRegistration {
  descriptor: TargetKindDescriptor<unknown>;
  settings: ObjectSchema;
  /** Whether the driver is tried when the agent's config does not mention it. */
  enabledByDefault: boolean;
  /**
   * Why the driver needs WebAssembly, when it does: the agent then runs without node's --jitless, which removes it
   * (config/node-flags.ts).
   */
  needsWebAssembly?: string;
  create(options: DriverFactoryOptions): Promise<Driver<unknown>>;
}
