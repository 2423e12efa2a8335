// Router operations on one routed service, shared by the drivers that put services behind the host router (a routed
// docker target's one service, a Compose project's routed services): the weights a rollout gives its new slot, an
// A/B split, a counter read, maintenance, and lifting a split (docs/rollouts.md#the-router).
//
// A service is named by its router name and the split key its route configures; the new slot is the one a rollout's
// start step used. Messages name the route as the caller's config does (`whose`, `field`).
import type { DockerRouteSplit, RouteSplit } from "@ferry/contract";

import { allowlistSummary, otherSlot, RouterError, type Router, type Slot, type Split, type Weights } from "../routing/router.js";
import { DriverError } from "./driver.js";

export interface RoutedService {
  /** The router's name for the service (HAProxy backend ferry_<service>). */
  service: string;
  split?: DockerRouteSplit;
  /** How messages name the route ("the route of web") and its split key's field ("config.route.split"). */
  whose: string;
  field: string;
}

/** The slot a rollout's new version is in; without a start step's state, the one opposite the heavier slot. */
export async function newSlotOf(router: Router, service: string, fromState: Slot | undefined): Promise<Slot> {
  if (fromState) return fromState;
  const w = await router.weights(service);
  return w.blue >= w.green ? "green" : "blue";
}

/**
 * The A/B split in force on a route that has a split key. A router without the split map has none (its config has no
 * split rules), which is no reason to fail a measure, a switch or a restore.
 */
export async function splitInForce(router: Router, r: Pick<RoutedService, "service" | "split">): Promise<Split | null> {
  if (!r.split) return null;
  return router.split(r.service).catch((err: unknown) => {
    if (err instanceof RouterError && err.code === "ROUTE_UNKNOWN") return null;
    throw err;
  });
}

/** Lifts the A/B split in force, if any; says whether there was one. */
export async function liftSplit(router: Router, r: Pick<RoutedService, "service" | "split">): Promise<boolean> {
  if (!(await splitInForce(router, r))) return false;
  await router.setSplit(r.service, null);
  return true;
}

/** The split as result details (the allowlist as its count and digest: allowlistSummary). */
export function splitDetails(key: DockerRouteSplit, split: Split | null): Record<string, unknown> | null {
  if (!split) return null;
  return { by: key.by, name: key.name, slot: split.slot, percent: split.percent, allowlist: allowlistSummary(split.allowlist) };
}

/** The new slot gets `newWeight` % of new requests, the stable one the rest; a split in force is lifted first. */
export async function setNewWeight(router: Router, r: RoutedService, newSlot: Slot, newWeight: number, log: (line: string) => void): Promise<Record<string, unknown>> {
  const stable = otherSlot(newSlot);
  const lifted = await liftSplit(router, r);
  const asked = { [newSlot]: newWeight, [stable]: 100 - newWeight } as Weights;
  const got = await router.setWeights(r.service, asked);
  log(`${lifted ? "the A/B split is lifted; " : ""}the ${newSlot} slot (new) gets ${got[newSlot]}% of new requests, the ${stable} slot ${got[stable]}%`);
  return { weights: got, newSlot, stableSlot: stable, split: null };
}

/** Both slots' counters (named stable and new) with the router's epoch, the weights, and the split in force. */
export async function measureService(router: Router, r: RoutedService, newSlot: Slot): Promise<Record<string, unknown>> {
  const stable = otherSlot(newSlot);
  const c = await router.counters(r.service);
  const split = r.split ? splitDetails(r.split, await splitInForce(router, r)) : null;
  return { epoch: c.epoch, at: c.at, newSlot, stableSlot: stable, new: c.slots[newSlot], stable: c.slots[stable], weights: await router.weights(r.service), split };
}

/** Maintenance on (every request answered 503 with the message) or off. */
export async function setMaintenance(router: Router, r: RoutedService, message: string | null, log: (line: string) => void): Promise<Record<string, unknown>> {
  await router.setMaintenance(r.service, message);
  log(message === null ? "maintenance off" : `maintenance on: every request is answered 503 "${message}"`);
  return { maintenance: await router.maintenance(r.service) };
}

/**
 * An A/B split: requests without the route's cookie or header go to the stable slot (weights stable 100, new 0); a
 * request whose value is allowlisted or hashes under `percent` goes to the new slot. The split is read back and must
 * be what was asked.
 */
export async function setSplit(router: Router, r: RoutedService, a: { newSlot: Slot; percent: number; split: RouteSplit }, log: (line: string) => void): Promise<Record<string, unknown>> {
  const key = r.split;
  const asked = `${a.split.by} ${a.split.name}`;
  if (!key) {
    throw new DriverError("ROUTE_SPLIT_UNCONFIGURED", `an A/B split by ${asked} was asked for, but ${r.whose} names no split key (${r.field}; docs/rollouts.md#ab-split)`, { asked: { by: a.split.by, name: a.split.name } });
  }
  if (key.by !== a.split.by || key.name !== a.split.name) {
    throw new DriverError("ROUTE_SPLIT_UNCONFIGURED", `an A/B split by ${asked} was asked for, but ${r.whose} splits by ${key.by} ${key.name} (${r.field}; the router's rules are generated from it)`, {
      asked: { by: a.split.by, name: a.split.name },
      configured: key,
    });
  }
  const stable = otherSlot(a.newSlot);
  const weights = await router.setWeights(r.service, { [stable]: 100, [a.newSlot]: 0 } as Weights);
  const got = await router.setSplit(r.service, { slot: a.newSlot, percent: a.percent, allowlist: a.split.allowlist });
  const want = [...new Set(a.split.allowlist)].sort();
  if (!got || got.slot !== a.newSlot || got.percent !== a.percent || got.allowlist.join("\n") !== want.join("\n")) {
    throw new DriverError("ROUTER_COMMAND_FAILED", `the router reports the split ${JSON.stringify(got && { ...got, allowlist: got.allowlist.length })} after setting ${a.newSlot} at ${a.percent}% with ${want.length} allowlisted values`, {});
  }
  log(`A/B split by ${asked}: the ${a.newSlot} slot (new) gets the values hashing under ${got.percent}% and ${got.allowlist.length} allowlisted value(s); requests without the ${key.by} go to the ${stable} slot`);
  return { weights, newSlot: a.newSlot, stableSlot: stable, split: splitDetails(key, got) };
}
