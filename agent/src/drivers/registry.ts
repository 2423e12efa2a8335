// The drivers an agent runs, by target kind, and what it advertises about them in HostFacts (the kinds, each
// driver's capabilities and status line, and the task payload versions the agent reads). The control plane refuses,
// before anything is queued, work for a target whose agent does not advertise the kind or a capability it needs.
import type { Capability } from "@ferry/contract";

import type { Driver } from "./driver.js";

export interface AdvertisedDriver {
  kind: string;
  capabilities: readonly Capability[];
  detail: string;
}

export interface AdvertisedDrivers {
  /** Target kinds this agent can drive, e.g. ["docker", "compose"]; sorted, no duplicates. */
  availableDrivers(): string[];
  /** Per kind: capabilities and status, in the order of availableDrivers(). */
  driverFacts(): AdvertisedDriver[];
}

export class DriverRegistry implements AdvertisedDrivers {
  readonly #drivers = new Map<string, { driver: Driver<unknown>; detail: string }>();

  /** Adds a driver; `detail` is its status line (from available()). */
  register(driver: Driver<unknown>, detail = ""): this {
    const kind = driver.descriptor.kind;
    if (this.#drivers.has(kind)) throw new Error(`a driver for ${kind} is already registered`);
    this.#drivers.set(kind, { driver, detail });
    return this;
  }

  get(kind: string): Driver<unknown> | undefined {
    return this.#drivers.get(kind)?.driver;
  }

  availableDrivers(): string[] {
    return [...this.#drivers.keys()].sort();
  }

  driverFacts(): AdvertisedDriver[] {
    return this.availableDrivers().map((kind) => {
      const entry = this.#drivers.get(kind)!;
      return { kind, capabilities: [...entry.driver.capabilities()], detail: entry.detail };
    });
  }
}

/** A fixed list of kinds with no capabilities (empty by default), for callers that only need the facts. */
export class StaticDriverRegistry implements AdvertisedDrivers {
  readonly #kinds: string[];

  constructor(kinds: Iterable<string> = []) {
    this.#kinds = [...new Set(kinds)].sort();
  }

  availableDrivers(): string[] {
    return [...this.#kinds];
  }

  driverFacts(): AdvertisedDriver[] {
    return this.#kinds.map((kind) => ({ kind, capabilities: [], detail: "" }));
  }
}
