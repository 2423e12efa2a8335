// The host router: what sends a routed service's traffic to one of its two slots, driven by the agent.
//
// A routed service has one frontend (its listen address) and two slots behind it, blue and green, each a server on
// a loopback port of its own. Blue-green, canary and A/B run the new version in the idle slot and move traffic by
// weight; nothing is reloaded and no connection is dropped (docs/rollouts.md#the-router). One interface, so nginx,
// Traefik or Caddy can follow HAProxy: an implementation must change servers and weights at run time, read them back,
// drain a slot, count per slot, and say when its counters started again (the epoch).
import { createHash } from "node:crypto";

import type { Logger } from "pino";

export const SLOTS = ["blue", "green"] as const;
export type Slot = (typeof SLOTS)[number];

export function otherSlot(s: Slot): Slot {
  return s === "blue" ? "green" : "blue";
}

/** Share of new requests per slot, 0–100 each; what the router reports after a change, not what was asked. */
export type Weights = Record<Slot, number>;

export interface SlotCounters {
  /** Responses the slot gave since the router's epoch began (every status class). */
  requests: number;
  errors5xx: number;
  /** The router's recent average response time in ms (HAProxy: over the last 1024 responses). */
  avgResponseMs: number;
  /** Connections open to the slot now. */
  connections: number;
}

export interface RouterCounters {
  /** Changes whenever the router restarts (its counters start again from 0). */
  epoch: string;
  at: number;
  slots: Record<Slot, SlotCounters>;
}

export interface SlotState {
  address: string;
  port: number;
  weight: number;
  /** ready: takes traffic by weight; drain: finishes open connections, takes no new ones; maint: takes nothing. */
  state: "ready" | "drain" | "maint";
}

export interface DrainResult {
  drained: boolean;
  /** Connections still open when the drain ended (0 when drained). */
  remaining: number;
  waitedMs: number;
}

/**
 * An A/B split in force on a service: a request whose split value (a cookie or header, named in the router's own
 * config) is on the allowlist, or hashes into the first `percent` of 100 buckets, reaches `slot`; every other request
 * (and every request without the value) is balanced by the weights, which the driver sets to the stable slot. The
 * hash of a value never changes, so a user stays on one slot, and one inside 10 % stays inside at 20 %.
 */
export interface Split {
  /** The slot the split sends its share to (the rollout's new slot). */
  slot: Slot;
  /** 0–100. */
  percent: number;
  /** At most 100 values of 1–256 printable ASCII characters without spaces; read back sorted, without duplicates. */
  allowlist: string[];
}

/**
 * An allowlist as result details: up to 100 values of 256 characters would not fit a route result's bound (16 KiB),
 * so it is its count and the SHA-256 (hex) of its distinct values, sorted, joined by newlines.
 */
export function allowlistSummary(values: readonly string[]): { count: number; sha256: string } {
  const distinct = [...new Set(values)].sort();
  return { count: distinct.length, sha256: createHash("sha256").update(distinct.join("\n")).digest("hex") };
}

export interface RouterInfo {
  kind: string;
  version: string;
  epoch: string;
}

/** A router failure, with a stable code from RESULT_CODES (ROUTER_UNAVAILABLE, ROUTER_COMMAND_FAILED, ...). */
export class RouterError extends Error {
  override readonly name = "RouterError";
  constructor(
    readonly code: "ROUTER_UNAVAILABLE" | "ROUTER_COMMAND_FAILED" | "ROUTE_UNKNOWN",
    message: string,
  ) {
    super(message);
  }
}

export interface Router {
  readonly kind: string;
  /** The router answers: its kind, version and current epoch. Throws ROUTER_UNAVAILABLE otherwise. */
  info(): Promise<RouterInfo>;
  /** Points a slot at an address and port (where the slot's instance listens). */
  setServer(service: string, slot: Slot, address: string, port: number): Promise<SlotState>;
  /** Sets both slots' weights (each 0–100) and returns them as the router reports them afterwards. */
  setWeights(service: string, weights: Weights): Promise<Weights>;
  weights(service: string): Promise<Weights>;
  slots(service: string): Promise<Record<Slot, SlotState>>;
  /** Stops new traffic to a slot and waits until its connections are gone or `timeoutMs` passed; then takes it out. */
  drain(service: string, slot: Slot, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<DrainResult>;
  /** Puts a slot back in service (after a drain, for a rollback flip). */
  ready(service: string, slot: Slot): Promise<void>;
  counters(service: string): Promise<RouterCounters>;
  /** Maintenance on (every request answered 503 with `message`) or off (null). */
  setMaintenance(service: string, message: string | null): Promise<void>;
  maintenance(service: string): Promise<string | null>;
  /**
   * Puts an A/B split in force (its slot is put in service, as `ready` does) or lifts it (null), and returns the
   * split the router reports afterwards. Changes no weight: the caller sets those.
   */
  setSplit(service: string, split: Split | null): Promise<Split | null>;
  split(service: string): Promise<Split | null>;
}

export interface RouterFactoryOptions {
  logger: Logger;
}
