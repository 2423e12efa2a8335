// Routed Compose services (config.routes): a service behind the host router runs each version in one of two slots, as
// a routed docker target does (docs/drivers/compose.md#routed-services-without-downtime):
//
//   start    the new version starts in the idle slot as a one-off container of the service (`run -d --no-deps`, with
//            the lock laid over the file, so it is the service's own settings with the pinned image), named
//            <project>_<service>_<slot>, told its slot's port in route.portEnv; the service's restart policy is set on
//            it (`run` leaves it out); the router learns the slot's address at weight 0
//   health   as for every changed service, and the target's http/tcp check pointed at the slot's port
//   switch   weights new 100 / old 0, read back; an A/B split in force is lifted
//   retire   the old slot drained, its container stopped and RETAINED: a rollback starts it again (no pull, no create)
//   restore  an A/B split lifted, traffic back to the old slot (started again if retire had stopped it), the new
//            container removed (or stopped again, when it was a retained one)
//
// Between start and switch, a rollout's `route` tasks move traffic (routeOperation below): weights or an A/B split on
// each routed service whose new slot start began, a measure summing their counters, maintenance on every one.
//
// The router, the slot choice, the weights and the health check's retargeting are the docker driver's pieces; the
// router operations are ../router-ops.ts, shared with it.
import type { ComposeRoute, ComposeTargetConfig, RouteOperation } from "@ferry/contract";
import type { EngineClient } from "../docker/engine/client.js";

import type { Router, Slot, Weights } from "../../routing/router.js";
import { otherSlot, SLOTS, type SlotCounters } from "../../routing/router.js";
import { removeContainer, startContainer, stopContainer } from "../docker/container-ops.js";
import { newestFirst, view, type ContainerView } from "../docker/containers.js";
import type { SlotState } from "../docker/phase-state.js";
import { DEFAULT_DRAIN_SECONDS, DEFAULT_PORT_ENV, pickSlots, weightsFor } from "../docker/slots.js";
import { DriverError } from "../driver.js";
import { liftSplit, measureService, newSlotOf, setMaintenance, setNewWeight, setSplit, type RoutedService } from "../router-ops.js";
import { COMPOSE_LABELS } from "./project.js";

export const SLOT_LABEL = "ferry.slot";

export const slotName = (project: string, service: string, slot: Slot): string => `${project}_${service}_${slot}`;

/** What start did for one routed service; restore and the later phases work from it alone. */
export interface RoutedStart {
  route: ComposeRoute;
  slot: SlotState;
  /** The new slot's container, once it exists. */
  newId?: string;
}

/** A routed service's slot containers (one-off containers of the service labelled with their slot), newest per slot. */
export async function slotContainers(docker: EngineClient, project: string, service: string): Promise<Record<Slot, ContainerView | undefined>> {
  const listed = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_LABELS.project}=${project}`, `${COMPOSE_LABELS.service}=${service}`, SLOT_LABEL] } });
  const views = (await Promise.all(listed.map((c) => view(docker, c.Id)))).filter((v): v is ContainerView => !!v).sort(newestFirst);
  const out: Record<Slot, ContainerView | undefined> = { blue: undefined, green: undefined };
  for (const slot of SLOTS) out[slot] = views.find((v) => v.labels[SLOT_LABEL] === slot);
  return out;
}

/**
 * A routed service's containers as the project view lists them: the slot that serves first (running, and the
 * heavier in the router when its weights are known), so a new version started beside it but never switched to (a
 * deploy interrupted before switch) does not pass for what runs.
 */
export async function routedServiceContainers(docker: EngineClient, project: string, service: string, weights?: Weights): Promise<ContainerView[]> {
  const slots = await slotContainers(docker, project, service);
  const weight = (c: ContainerView) => (weights ? weights[c.labels[SLOT_LABEL] as Slot] ?? 0 : 0);
  return SLOTS.map((s) => slots[s])
    .filter((c): c is ContainerView => !!c)
    .sort((a, b) => Number(b.running) - Number(a.running) || weight(b) - weight(a));
}

/** The engine's restart policy for a Compose `restart:` value (no, always, unless-stopped, on-failure[:n]). */
export function restartPolicy(value: string | undefined): { Name: string; MaximumRetryCount?: number } | undefined {
  if (!value || value === "no") return undefined;
  const m = /^(always|unless-stopped|on-failure)(?::(\d{1,4}))?$/.exec(value);
  if (!m) return undefined;
  return m[2] !== undefined ? { Name: m[1]!, MaximumRetryCount: Number(m[2]) } : { Name: m[1]! };
}

export interface SlotIo {
  docker: EngineClient;
  router: Router;
  project: string;
  stopTimeoutSeconds: number;
  log: (line: string) => void;
  /** Runs the service's new version as the named one-off container with the extra environment and label. */
  runOneOff: (service: string, name: string, env: string, label: string) => Promise<void>;
}

/** Chooses the slots and starts the new version in the idle one (state written as it goes, for restore). */
export async function startSlot(io: SlotIo, route: ComposeRoute, digest: string, ref: string, restart: string | undefined, record: (r: RoutedStart) => void): Promise<string> {
  const service = route.composeService;
  const [weights, slots] = await Promise.all([io.router.weights(route.service), slotContainers(io.docker, io.project, service)]);
  const { active, idle } = pickSlots(weights, { blue: !!slots.blue?.running, green: !!slots.green?.running });
  const port = route.slots[idle];
  const slot: SlotState = { service: route.service, active, idle, port, weightsBefore: weights };
  if (active) slot.activeId = slots[active]!.id;
  const started: RoutedStart = { route, slot };
  record(started);
  const name = slotName(io.project, service, idle);
  io.log(`${service}: ${active ? `the ${active} slot serves (weights blue ${weights.blue}, green ${weights.green})` : "nothing serves yet"}; the new version starts in the ${idle} slot on port ${port}`);
  const there = slots[idle];
  if (there && there.labels["ferry.digest"] === digest && there.imageRef === ref) {
    io.log(`${service}: ${name} (${there.id.slice(0, 12)}) is retained with ${ref}; starting it again instead of creating a container`);
    slot.reused = true;
    started.newId = there.id;
    if (!there.running) await startContainer(io.docker, there.id);
  } else {
    if (there) {
      io.log(`${service}: removing ${name} (${there.id.slice(0, 12)}), the version retained from before the last switch`);
      await removeContainer(io.docker, there.id);
      slot.removedIdle = there.id;
    }
    await io.runOneOff(service, name, `${route.portEnv ?? DEFAULT_PORT_ENV}=${port}`, `${SLOT_LABEL}=${idle}`);
    const info = await io.docker.getContainer(name).inspect();
    started.newId = info.Id;
    const policy = restartPolicy(restart);
    if (policy) await io.docker.getContainer(info.Id).update({ RestartPolicy: policy });
    io.log(`${service}: started ${name} (${info.Id.slice(0, 12)}) from ${ref}${policy ? `, restart ${restart}` : ""}`);
  }
  await io.router.setServer(route.service, idle, "127.0.0.1", port);
  io.log(`${service}: the router's ${idle} slot points at 127.0.0.1:${port} (weight ${weights[idle]})`);
  return started.newId;
}

export async function switchSlot(io: SlotIo, r: RoutedStart): Promise<void> {
  const got = await io.router.setWeights(r.slot.service, weightsFor(r.slot.idle));
  r.slot.switched = true;
  if (got[r.slot.idle] !== 100) {
    throw new DriverError("ROUTER_COMMAND_FAILED", `the router reports weights blue ${got.blue}, green ${got.green} after switching ${r.route.composeService} to ${r.slot.idle}`, { weights: got });
  }
  io.log(`${r.route.composeService}: the router sends every new request to the ${r.slot.idle} slot; weights blue ${got.blue}, green ${got.green}`);
  // An A/B split has done its work: left in force it would keep its share on a slot that a later deploy drains.
  if (await liftSplit(io.router, routedService(r.route))) io.log(`${r.route.composeService}: the A/B split is lifted`);
}

export async function retireSlot(io: SlotIo, r: RoutedStart, signal: AbortSignal): Promise<void> {
  const { slot } = r;
  if (!slot.active || !slot.activeId) return;
  const seconds = r.route.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
  slot.drain = await io.router.drain(slot.service, slot.active, { timeoutMs: seconds * 1000, signal });
  io.log(`${r.route.composeService}: the ${slot.active} slot ${slot.drain.drained ? `drained in ${slot.drain.waitedMs} ms` : `still had ${slot.drain.remaining} connection(s) after ${slot.drain.waitedMs} ms; stopping anyway`}`);
  await stopContainer(io.docker, slot.activeId, io.stopTimeoutSeconds);
  slot.oldStopped = true;
  io.log(`${r.route.composeService}: stopped ${slotName(io.project, r.route.composeService, slot.active)} and retained it: a rollback starts it again`);
}

export async function restoreSlot(io: SlotIo, r: RoutedStart): Promise<Record<string, unknown>> {
  const { slot } = r;
  const done: Record<string, unknown> = {};
  // A split in force sends its share to the new slot whatever the weights: lifted first.
  if (await liftSplit(io.router, routedService(r.route))) {
    io.log(`${r.route.composeService}: the A/B split is lifted`);
    done["splitLifted"] = true;
  }
  if (slot.active && slot.activeId) {
    if (slot.oldStopped) await startContainer(io.docker, slot.activeId);
    // Weights back even when switch never ran: a half-done switch may have moved one of them.
    await io.router.ready(slot.service, slot.active);
    done["weights"] = await io.router.setWeights(slot.service, weightsFor(slot.active));
    io.log(`${r.route.composeService}: every request goes to the ${slot.active} slot again`);
  }
  if (r.newId) {
    if (slot.reused) await stopContainer(io.docker, r.newId, io.stopTimeoutSeconds);
    else await removeContainer(io.docker, r.newId);
    done[slot.reused ? "stopped" : "removed"] = r.newId;
    io.log(`${r.route.composeService}: ${slot.reused ? "stopped the retained container again" : "removed the new container"} (${r.newId.slice(0, 12)})`);
  }
  if (slot.removedIdle) done["lostRetained"] = slot.removedIdle;
  return done;
}

/** A Compose route as the shared router operations name it. */
export function routedService(route: ComposeRoute): RoutedService {
  return { service: route.service, ...(route.split ? { split: route.split } : {}), whose: `the route of ${route.composeService}`, field: `config.routes (${route.composeService}).split` };
}

/**
 * A router operation between two steps of a rollout on a Compose target (a `route` task). `started` is what the
 * rollout's start step did per routed service (its state's `routed`), or undefined without that state.
 *
 *   weights      on each routed service whose new slot start began (every routed service without a start step's
 *                state): the new slot's share, or an A/B split (each of those routes must split by the key asked for,
 *                checked on all of them before any is changed); a start step that began no new slot leaves the
 *                weights as they are
 *   measure      the same services' counters, summed per side (requests, 5xx, open connections; the response time
 *                weighted by requests), with each service's own read in `services`
 *   maintenance  every routed service of the project
 *
 * The answer's newSlot, stableSlot and weights are those of the first service concerned (they move together); every
 * service's own answer is in `services`.
 */
export async function routeOperation(
  config: ComposeTargetConfig,
  router: Router,
  op: RouteOperation,
  started: Record<string, RoutedStart> | undefined,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const routes = config.routes ?? [];
  if (op.op === "maintenance") {
    const services: Record<string, unknown> = {};
    for (const r of routes) services[r.composeService] = await setMaintenance(router, routedService(r), op.message, (l) => log(`${r.composeService}: ${l}`));
    return { maintenance: op.message, services };
  }
  const chosen = started ? routes.filter((r) => started[r.composeService]) : routes;
  if (chosen.length === 0) {
    // The release changed no routed service: there is no new slot to give traffic to or to measure.
    const first = routes[0]!;
    const weights = await router.weights(first.service);
    const stableSlot = weights.blue >= weights.green ? "blue" : "green";
    log(`the rollout's start step began no new slot (no routed service changed): ${op.op === "weights" ? "the weights stay as they are" : "nothing new to measure"}`);
    if (op.op === "weights") return { weights, newSlot: otherSlot(stableSlot), stableSlot, split: null, services: {}, unchanged: true };
    const c = await router.counters(first.service);
    return { epoch: c.epoch, at: c.at, newSlot: otherSlot(stableSlot), stableSlot, new: c.slots[otherSlot(stableSlot)], stable: c.slots[stableSlot], weights, split: null, services: {}, unchanged: true };
  }
  const slots = new Map<string, Slot>();
  for (const r of chosen) slots.set(r.composeService, await newSlotOf(router, r.service, started?.[r.composeService]?.slot.idle));
  const services: Record<string, Record<string, unknown>> = {};
  if (op.op === "weights") {
    if (op.split) {
      // Every route concerned must split by the key asked for before any split is put in force: setSplit refuses a
      // route whose key differs (ROUTE_SPLIT_UNCONFIGURED) before it changes anything, so it is asked first for those.
      for (const r of chosen) {
        const key = r.split;
        if (!key || key.by !== op.split.by || key.name !== op.split.name) {
          await setSplit(router, routedService(r), { newSlot: slots.get(r.composeService)!, percent: op.newWeight, split: op.split }, log);
        }
      }
    }
    for (const r of chosen) {
      const newSlot = slots.get(r.composeService)!;
      const say = (l: string) => log(`${r.composeService}: ${l}`);
      services[r.composeService] = op.split ? await setSplit(router, routedService(r), { newSlot, percent: op.newWeight, split: op.split }, say) : await setNewWeight(router, routedService(r), newSlot, op.newWeight, say);
    }
    const first = services[chosen[0]!.composeService]!;
    return { weights: first["weights"], newSlot: first["newSlot"], stableSlot: first["stableSlot"], split: first["split"], services };
  }
  for (const r of chosen) services[r.composeService] = await measureService(router, routedService(r), slots.get(r.composeService)!);
  const reads = Object.values(services);
  const first = reads[0]!;
  const epochs = [...new Set(reads.map((m) => m["epoch"] as string))];
  return {
    epoch: epochs.join(","),
    at: Math.max(...reads.map((m) => m["at"] as number)),
    newSlot: first["newSlot"],
    stableSlot: first["stableSlot"],
    new: sumCounters(reads.map((m) => m["new"] as SlotCounters)),
    stable: sumCounters(reads.map((m) => m["stable"] as SlotCounters)),
    weights: first["weights"],
    split: first["split"],
    services,
  };
}

/** Several services' counters for one side as one: sums, and the response time weighted by requests. */
export function sumCounters(list: readonly SlotCounters[]): SlotCounters {
  const requests = list.reduce((n, c) => n + c.requests, 0);
  const weighted = requests > 0 ? list.reduce((n, c) => n + c.avgResponseMs * c.requests, 0) / requests : list.reduce((n, c) => n + c.avgResponseMs, 0) / Math.max(1, list.length);
  return {
    requests,
    errors5xx: list.reduce((n, c) => n + c.errors5xx, 0),
    avgResponseMs: Math.round(weighted * 1000) / 1000,
    connections: list.reduce((n, c) => n + c.connections, 0),
  };
}
