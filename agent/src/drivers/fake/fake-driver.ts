// An in-memory driver for the agent core's own tests (task runner, journal, crash recovery, refusals), so they need
// no Docker Engine. It keeps a world of named slots, each serving a set of images, and does in memory what a real
// driver does on a host: prepare "pulls" (refusing digests the test marked unknown), start runs the new images beside
// the old ones, switch makes them serve, retire forgets the old ones, restore puts the old ones back. A script makes
// any phase fail, hang until the task is aborted, or report a health verdict; every call is recorded in order.
//
// It follows the same contract as a real driver — phases change the target only as their names say, state is plain
// JSON, restore works from the state alone — so a core test that passes against it holds for the real drivers too.
import { singleImage, type ImagePin, type Phase, type RouteOperation, type RouteSplit, type TargetKindDescriptor } from "@ferry/contract";

import {
  DriverError,
  type DeployOutcome,
  type Driver,
  type DriverRegistration,
  type HealthReport,
  type PhaseContext,
  type RouteContext,
  type TargetInspection,
  type TargetRef,
  type TargetSticker,
} from "../driver.js";
import { allowlistSummary } from "../../routing/router.js";

export interface FakeTargetConfig {
  /** The slot of the in-memory world this target is. */
  slot: string;
  component?: string;
}

export const fakeKind: TargetKindDescriptor<FakeTargetConfig> = {
  kind: "fake",
  title: "an in-memory target for tests",
  config: {
    fields: {
      slot: { type: "string", required: true, maxLength: 64, pattern: /^[a-z0-9-]+$/, hint: "must be lowercase letters, digits and dashes" },
      component: { type: "string", maxLength: 128 },
    },
  },
  capabilities: ["side-by-side"],
  sticker: "in memory",
  placement: "host",
  typed: (c) => c as unknown as FakeTargetConfig,
  imagesFor: (config, pins) => singleImage(config.component, pins),
};

export interface FakeScript {
  /** The phase that fails, with `failCode` (default: a code fitting the phase). */
  failIn?: Phase;
  failCode?: string;
  /** The health verdict (default ok). */
  health?: "ok" | "unhealthy" | "crashed";
  /** The phase that waits until the task is aborted. */
  hangIn?: Phase;
  restoreFails?: boolean;
  retireFails?: boolean;
  /** Called as each phase begins (a test can stop the agent here). */
  onPhase?: (phase: Phase | "inspect", taskId: string) => void | Promise<void>;
}

export interface FakeSlot {
  serving: ImagePin[];
  /** Started but not switched to yet. */
  candidate: ImagePin[];
  sticker?: TargetSticker;
}

/** One target's fake router. With a split, newWeight is the split's percent and the stable slot gets the rest. */
export interface FakeRoute {
  newWeight: number;
  split: RouteSplit | null;
  maintenance: string | null;
  requests: number;
}

interface FakeState {
  [key: string]: unknown;
  previous?: ImagePin[];
  previousSticker?: TargetSticker | null;
}

const DEFAULT_CODES: Record<Phase, string> = {
  prepare: "IMAGE_PULL_FAILED",
  start: "CONTAINER_START_FAILED",
  health: "HEALTH_CHECK_FAILED",
  switch: "AGENT_ERROR",
  retire: "AGENT_ERROR",
  restore: "RESTORE_FAILED",
};

export class FakeDriver implements Driver<FakeTargetConfig, FakeState> {
  readonly descriptor: TargetKindDescriptor<FakeTargetConfig>;
  readonly slots = new Map<string, FakeSlot>();
  /** Digests prepare refuses, as a registry without them would. */
  readonly unknownDigests = new Set<string>();
  /** Every phase call, in order: "prepare:tsk_…". */
  readonly calls: string[] = [];
  script: FakeScript = {};
  /** Phases run as separate tasks pick up from the state an earlier one returned (the state is plain JSON). */
  readonly separateSteps: boolean;
  /** The fake router's operations; absent when the test builds the fake without a router. */
  readonly route?: (ctx: RouteContext<FakeTargetConfig>, op: RouteOperation, state: FakeState | undefined) => Promise<Record<string, unknown>>;
  /** The fake router: the new slot's weight per target slot, its A/B split, and maintenance messages. */
  readonly routes = new Map<string, FakeRoute>();

  /**
   * `descriptor` lets a test put the fake behind another kind's descriptor (to run that kind's config checks through
   * the core); the slot is then the target's id.
   */
  constructor(opts: { descriptor?: TargetKindDescriptor<unknown>; separateSteps?: boolean; router?: boolean } = {}) {
    this.descriptor = (opts.descriptor ?? fakeKind) as TargetKindDescriptor<FakeTargetConfig>;
    this.separateSteps = opts.separateSteps ?? true;
    if (opts.router !== false) this.route = (ctx, op, state) => this.#route(ctx, op, state);
  }

  capabilities(): readonly ["side-by-side"] {
    return ["side-by-side"];
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    return { ok: true, detail: "in-memory fake driver" };
  }

  slot(name: string): FakeSlot {
    let s = this.slots.get(name);
    if (!s) {
      s = { serving: [], candidate: [] };
      this.slots.set(name, s);
    }
    return s;
  }

  async #enter(phase: Phase | "inspect", ctx: { taskId: string; signal?: AbortSignal }): Promise<void> {
    this.calls.push(`${phase}:${ctx.taskId}`);
    await this.script.onPhase?.(phase, ctx.taskId);
    if (this.script.hangIn === phase && ctx.signal) {
      await new Promise<void>((_, reject) => {
        const abort = (): void => reject(ctx.signal!.reason instanceof Error ? ctx.signal!.reason : new Error(String(ctx.signal!.reason)));
        if (ctx.signal!.aborted) abort();
        else ctx.signal!.addEventListener("abort", abort, { once: true });
      });
    }
    if (this.script.failIn === phase && phase !== "restore") {
      throw new DriverError(this.script.failCode ?? DEFAULT_CODES[phase], `scripted failure in ${phase}`);
    }
  }

  async #route(ctx: RouteContext<FakeTargetConfig>, op: RouteOperation, state: FakeState | undefined): Promise<Record<string, unknown>> {
    this.calls.push(`route:${op.op}:${ctx.taskId}`);
    const r: FakeRoute = this.routes.get(ctx.config.slot) ?? { newWeight: 0, split: null, maintenance: null, requests: 0 };
    this.routes.set(ctx.config.slot, r);
    // The split in the details only while one is in force, so results without one read as they always did.
    const split = (): { split?: Record<string, unknown> } =>
      r.split ? { split: { by: r.split.by, name: r.split.name, slot: "new", percent: r.newWeight, allowlist: allowlistSummary(r.split.allowlist) } } : {};
    switch (op.op) {
      case "weights":
        if (!state) throw new DriverError("ROUTER_COMMAND_FAILED", "weights need the state of the step that started the new slot");
        r.newWeight = op.newWeight;
        // As on a real router: a split sends requests without its cookie or header to the stable slot.
        r.split = op.split ? { ...op.split, allowlist: [...op.split.allowlist] } : null;
        return { weights: r.split ? { new: 0, stable: 100 } : { new: r.newWeight, stable: 100 - r.newWeight }, ...split() };
      case "measure":
        return { epoch: "fake", new: { requests: r.requests, errors5xx: 0, avgResponseMs: 1 }, stable: { requests: r.requests, errors5xx: 0, avgResponseMs: 1 }, ...split() };
      case "maintenance":
        r.maintenance = op.message;
        return { maintenance: r.maintenance };
    }
  }

  async inspect(target: TargetRef): Promise<TargetInspection> {
    this.calls.push(`inspect:${target.id}`);
    const slot = this.slots.get(slotOf(target));
    const serving = slot?.serving ?? [];
    return {
      state: serving.length > 0 ? "running" : "missing",
      running: serving.map((i) => ({ component: i.component, repository: i.repository, digest: i.digest })),
      labels: slot?.sticker ? { "ferry.deployment": slot.sticker.deploymentId, "ferry.task": slot.sticker.taskId } : {},
      details: { candidate: slot?.candidate.map((i) => i.ref) ?? [] },
    };
  }

  async readSticker(target: TargetRef): Promise<TargetSticker | undefined> {
    return this.slots.get(slotOf(target))?.sticker;
  }

  async prepare(ctx: PhaseContext<FakeTargetConfig>): Promise<FakeState> {
    await this.#enter("prepare", ctx);
    for (const image of ctx.images) {
      if (this.unknownDigests.has(image.digest)) throw new DriverError("IMAGE_PULL_FAILED", `manifest unknown: ${image.ref}`);
      ctx.progress.log(`prepare: have ${image.ref}`);
    }
    return {};
  }

  async start(ctx: PhaseContext<FakeTargetConfig>, state: FakeState): Promise<FakeState> {
    const slot = this.slot(slotOf(ctx.target));
    const next: FakeState = { ...state, previous: [...slot.serving], previousSticker: slot.sticker ?? null };
    await this.#enter("start", ctx);
    slot.candidate = [...ctx.images];
    ctx.progress.log(`start: ${ctx.images.map((i) => i.ref).join(", ")} beside ${slot.serving.map((i) => i.ref).join(", ") || "nothing"}`);
    return next;
  }

  async health(ctx: PhaseContext<FakeTargetConfig>, _state: FakeState): Promise<HealthReport> {
    await this.#enter("health", ctx);
    switch (this.script.health ?? "ok") {
      case "ok":
        return { ok: true, summary: "healthy (fake)", details: { type: "fake" } };
      case "unhealthy":
        return { ok: false, code: "HEALTH_CHECK_FAILED", summary: "the fake check said no", details: { type: "fake" } };
      case "crashed":
        ctx.progress.log("health: exit code 3; last output: boom");
        return { ok: false, code: "INSTANCE_CRASHED", summary: "exited with code 3", details: { exitCode: 3 } };
    }
  }

  async switch(ctx: PhaseContext<FakeTargetConfig>, state: FakeState): Promise<FakeState> {
    await this.#enter("switch", ctx);
    const slot = this.slot(slotOf(ctx.target));
    slot.serving = slot.candidate;
    slot.candidate = [];
    slot.sticker = { deploymentId: ctx.deploymentId, taskId: ctx.taskId, releaseId: ctx.release.id, images: ctx.images.map((i) => ({ component: i.component, digest: i.digest })) };
    return state;
  }

  async retire(ctx: PhaseContext<FakeTargetConfig>, state: FakeState): Promise<FakeState> {
    await this.#enter("retire", ctx);
    if (this.script.retireFails) throw new Error("scripted retire failure");
    return { ...state, previous: [] };
  }

  async restore(ctx: PhaseContext<FakeTargetConfig>, state: FakeState): Promise<Record<string, unknown>> {
    await this.#enter("restore", ctx);
    if (this.script.restoreFails) throw new Error("scripted restore failure");
    const slot = this.slot(slotOf(ctx.target));
    slot.candidate = [];
    slot.serving = [...(state.previous ?? slot.serving)];
    if (state.previousSticker !== undefined) {
      if (state.previousSticker === null) delete slot.sticker;
      else slot.sticker = state.previousSticker;
    }
    return { serving: slot.serving.map((i) => i.ref) };
  }

  outcome(ctx: PhaseContext<FakeTargetConfig>, _state: FakeState): DeployOutcome {
    return {
      running: this.slot(slotOf(ctx.target)).serving.map((i) => ({ component: i.component, repository: i.repository, digest: i.digest })),
      message: `${slotOf(ctx.target)} serves ${ctx.images.map((i) => i.ref).join(", ")}`,
    };
  }
}

function slotOf(target: TargetRef): string {
  const slot = target.config["slot"];
  return typeof slot === "string" ? slot : target.id;
}

/** A registration for tests that build an agent with the fake: `create` hands out the given instance. */
export function fakeRegistration(driver: FakeDriver): DriverRegistration {
  return {
    descriptor: fakeKind,
    settings: { fields: {} },
    enabledByDefault: true,
    create: async () => driver,
  };
}
