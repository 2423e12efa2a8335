// Slot mode: a routed Docker target (config.route) runs its versions in two slots behind the host router, so a
// deploy never has an outage (docs/rollouts.md#blue-green-on-docker):
//
//   start    the new version starts in the idle slot, as <container>-<slot>, on the slot's own port (told through
//            route.portEnv), beside the version that serves; the router learns the slot's address (weight 0)
//   health   the same rules as replace mode, the check pointed at the slot's port
//   switch   the router gives the new slot all new requests (read back); the old slot keeps its open connections
//   retire   the old slot is drained (route.drainSeconds, or until no connection is left), then its container is
//            stopped and RETAINED: a rollback flips back to it without a pull or a create
//   restore  traffic back to the old slot (restarted if retire had stopped it), the new container removed (or, when it
//            was a retained one started again, stopped)
//
// A rollback is the same run with the previous release's digests: start finds the retained container in the idle
// slot carrying exactly that digest and image, and starts it again instead of creating one.
import type { DockerTargetConfig, RouteOperation } from "@ferry/contract";

import type { PhaseContext, RouteContext } from "../driver.js";
import { otherSlot, SLOTS, type Router, type Slot, type Weights } from "../../routing/router.js";
import { liftSplit, measureService, newSlotOf, setMaintenance, setNewWeight, setSplit, type RoutedService } from "../router-ops.js";
import { removeContainer, startContainer, stopContainer } from "./container-ops.js";
import { deployLabels, findContainers, LABELS, type ContainerView } from "./containers.js";
import { dockerError, engineMessage, isEngineUnreachable } from "./errors.js";
import type { ResolvedHealthCheck } from "./health.js";
import type { DockerEnv, DockerPhaseState, SlotState } from "./phase-state.js";
import { createOptions } from "./start.js";

export const DEFAULT_DRAIN_SECONDS = 30;
export const DEFAULT_PORT_ENV = "PORT";

export const slotContainer = (config: DockerTargetConfig, slot: Slot): string => `${config.container}-${slot}`;

function route(config: DockerTargetConfig): NonNullable<DockerTargetConfig["route"]> {
  if (!config.route) throw new Error("slot mode without a route");
  return config.route;
}

async function slotContainers(env: DockerEnv, config: DockerTargetConfig): Promise<Record<Slot, ContainerView | undefined>> {
  const [blue, green] = await Promise.all(SLOTS.map((s) => findContainers(env.docker, slotContainer(config, s)).then((f) => f.current)));
  return { blue, green };
}

export const weightsFor = (serving: Slot): Weights => (serving === "blue" ? { blue: 100, green: 0 } : { blue: 0, green: 100 });

/**
 * Which slot serves and which takes the new version: the serving slot is the one the router sends traffic to and
 * whose instance runs (heavier first); with none, the new version goes to the slot opposite the heavier one.
 */
export function pickSlots(weights: Weights, running: Record<Slot, boolean>): { active: Slot | null; idle: Slot } {
  const byWeight = [...SLOTS].sort((a, b) => weights[b] - weights[a]);
  const active = byWeight.find((s) => weights[s] > 0 && running[s]) ?? null;
  return { active, idle: active ? otherSlot(active) : otherSlot(byWeight[0]!) };
}

export async function slotStart(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv, router: Router, state: DockerPhaseState): Promise<DockerPhaseState> {
  const r = route(ctx.config);
  const log = (line: string) => ctx.progress.log(`start: ${line}`);
  const [weights, containers] = await Promise.all([router.weights(r.service), slotContainers(env, ctx.config)]);
  const { active, idle } = pickSlots(weights, { blue: !!containers.blue?.running, green: !!containers.green?.running });
  const port = r.slots[idle];
  const slot: SlotState = { service: r.service, active, idle, port, weightsBefore: weights };
  state.slot = slot;
  if (active) slot.activeId = containers[active]!.id;
  log(active ? `${slotContainer(ctx.config, active)} serves (weights blue ${weights.blue}, green ${weights.green}); the new version starts in the ${idle} slot on port ${port}` : `nothing serves yet; the new version starts in the ${idle} slot on port ${port}`);

  const name = slotContainer(ctx.config, idle);
  const there = containers[idle];
  if (there && there.labels[LABELS.digest] === state.image.digest && there.imageId === state.image.id) {
    // A retained version with exactly this digest: start it again (a rollback flip), no create.
    log(`${name} (${there.id.slice(0, 12)}) is retained with ${state.image.ref}; starting it again instead of creating a container`);
    slot.reused = true;
    state.newId = there.id;
    if (!there.running) await startContainer(env.docker, there.id);
  } else {
    if (there) {
      log(`removing ${name} (${there.id.slice(0, 12)}, ${there.labels[LABELS.digest] ?? "no digest label"}), the version retained from before the last switch`);
      await removeContainer(env.docker, there.id);
      slot.removedIdle = there.id;
    }
    const opts = createOptions(ctx, state, log);
    opts.name = name;
    opts.Labels = { ...deployLabels(ctx, state.image), "ferry.slot": idle };
    opts.Env = [...(opts.Env ?? []).filter((e) => !e.startsWith(`${r.portEnv ?? DEFAULT_PORT_ENV}=`)), `${r.portEnv ?? DEFAULT_PORT_ENV}=${port}`];
    const created = await env.docker.createContainer(opts).catch((err: unknown) => {
      if (isEngineUnreachable(err)) throw err;
      throw dockerError("CONTAINER_CREATE_FAILED", `creating ${name} from ${state.image.ref} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
    });
    state.newId = created.id;
    log(`created ${name} (${created.id.slice(0, 12)}) from ${state.image.ref}`);
    ctx.signal.throwIfAborted();
    await created.start().catch((err: unknown) => {
      if (isEngineUnreachable(err)) throw err;
      throw dockerError("CONTAINER_START_FAILED", `starting ${name} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
    });
  }
  const info = await env.docker.getContainer(state.newId).inspect();
  state.mark = { restartCount: info.RestartCount ?? 0, startedAt: info.State.StartedAt, atMs: Date.now() };
  if (info.Image !== state.image.id) {
    throw dockerError("DIGEST_MISMATCH", `${name} runs image ${info.Image}, not the verified image ${state.image.id} of ${state.image.ref}`, { expectedImageId: state.image.id, runningImageId: info.Image });
  }
  await router.setServer(r.service, idle, "127.0.0.1", port);
  log(`the router's ${idle} slot points at 127.0.0.1:${port} (weight ${weights[idle]}); ${slotContainer(ctx.config, active ?? otherSlot(idle))} keeps serving`);
  return state;
}

/** The configured check, pointed at the new slot's port. */
export function slotHealthCheck(check: ResolvedHealthCheck, port: number): ResolvedHealthCheck {
  const out = { ...check };
  if (out.type === "tcp") out.port = port;
  if (out.type === "http" && out.url) {
    const u = new URL(out.url);
    u.port = String(port);
    out.url = u.toString();
  }
  return out;
}

export async function slotSwitch(ctx: PhaseContext<DockerTargetConfig>, router: Router, state: DockerPhaseState): Promise<DockerPhaseState> {
  const slot = state.slot!;
  const got = await router.setWeights(slot.service, weightsFor(slot.idle));
  slot.switched = true;
  if (got[slot.idle] !== 100 || got[otherSlot(slot.idle)] !== 0) {
    throw dockerError("ROUTER_COMMAND_FAILED", `the router reports weights blue ${got.blue}, green ${got.green} after switching to ${slot.idle}`, { weights: got });
  }
  ctx.progress.log(`switch: the router sends every new request to the ${slot.idle} slot (${slotContainer(ctx.config, slot.idle)}); weights blue ${got.blue}, green ${got.green}`);
  // An A/B split has done its work: left in force it would keep its share on a slot that a later deploy drains.
  if (await liftSplit(router, { service: slot.service, ...(ctx.config.route?.split ? { split: ctx.config.route.split } : {}) })) ctx.progress.log("switch: the A/B split is lifted");
  return state;
}

export async function slotRetire(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv, router: Router, state: DockerPhaseState): Promise<DockerPhaseState> {
  const slot = state.slot!;
  const log = (line: string) => ctx.progress.log(`retire: ${line}`);
  if (!slot.active || !slot.activeId) {
    log("nothing served before; nothing to drain");
    return state;
  }
  const seconds = ctx.config.route?.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
  log(`draining the ${slot.active} slot (at most ${seconds} s, or until no connection is left)`);
  slot.drain = await router.drain(slot.service, slot.active, { timeoutMs: seconds * 1000, signal: ctx.signal });
  log(slot.drain.drained ? `drained in ${slot.drain.waitedMs} ms` : `${slot.drain.remaining} connection(s) still open after ${slot.drain.waitedMs} ms; stopping anyway`);
  await stopContainer(env.docker, slot.activeId, env.stopTimeoutSeconds);
  slot.oldStopped = true;
  log(`stopped ${slotContainer(ctx.config, slot.active)} (${slot.activeId.slice(0, 12)}) and retained it: a rollback flips back to it`);
  return state;
}

export async function slotRestore(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv, router: Router, state: Partial<DockerPhaseState>): Promise<Record<string, unknown>> {
  const slot = state.slot;
  const done: Record<string, unknown> = {};
  const log = (line: string) => ctx.progress.log(`restore: ${line}`);
  if (!slot) return done;
  // A split in force sends its share to the new slot whatever the weights: lifted first.
  if (await liftSplit(router, { service: slot.service, ...(ctx.config.route?.split ? { split: ctx.config.route.split } : {}) })) {
    log("the A/B split is lifted");
    done["splitLifted"] = true;
  }
  if (slot.active && slot.activeId) {
    if (slot.oldStopped) {
      await startContainer(env.docker, slot.activeId);
      log(`started ${slotContainer(ctx.config, slot.active)} again`);
    }
    // Weights back even when switch never ran: a half-done switch may have moved one of them.
    await router.ready(slot.service, slot.active);
    const w = await router.setWeights(slot.service, weightsFor(slot.active));
    log(`the router sends every request to the ${slot.active} slot again (weights blue ${w.blue}, green ${w.green})`);
    done["weights"] = w;
  }
  if (state.newId) {
    if (slot.reused) {
      await stopContainer(env.docker, state.newId, env.stopTimeoutSeconds);
      log(`stopped the retained container ${state.newId.slice(0, 12)} again`);
      done["stopped"] = state.newId;
    } else {
      await removeContainer(env.docker, state.newId);
      log(`removed the new container ${state.newId.slice(0, 12)}`);
      done["removed"] = state.newId;
    }
  }
  if (slot.removedIdle) done["lostRetained"] = `${slot.removedIdle} (the version retained in the ${slot.idle} slot was removed to make room)`;
  return done;
}

/**
 * A router operation between two steps of a rollout. Weights are given for the new slot (the one the rollout's start
 * step used, from its state); without that state the heavier slot counts as stable. A measure answers the counters
 * of both slots, named stable and new, with the router's epoch. The operations themselves are ../router-ops.ts.
 */
export async function routeOperation(ctx: RouteContext<DockerTargetConfig>, router: Router, op: RouteOperation, state: DockerPhaseState | undefined): Promise<Record<string, unknown>> {
  const r = routed(ctx.config, ctx.target.name);
  const log = (line: string) => ctx.progress.log(`route: ${line}`);
  const newSlot = await newSlotOf(router, r.service, state?.slot?.idle);
  switch (op.op) {
    case "weights":
      if (op.split) return setSplit(router, r, { newSlot, percent: op.newWeight, split: op.split }, log);
      return setNewWeight(router, r, newSlot, op.newWeight, log);
    case "measure":
      return measureService(router, r, newSlot);
    case "maintenance":
      return setMaintenance(router, r, op.message, log);
  }
}

/** The target's route as the shared router operations name it. */
function routed(config: DockerTargetConfig, target: string): RoutedService {
  const r = route(config);
  return { service: r.service, ...(r.split ? { split: r.split } : {}), whose: `the route of ${target}`, field: "config.route.split" };
}
