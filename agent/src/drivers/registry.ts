// What HostFacts.drivers advertises: the target kinds an agent can drive. The real registry of drivers is
// DriverRegistry in ./types.ts (it satisfies this interface); StaticDriverRegistry advertises a fixed list, for
// callers that only need the facts (enrolment and session tests, simulated agents).

export interface AdvertisedDrivers {
  /** Target kinds this agent can drive, e.g. ["docker", "compose"]; sorted, no duplicates. */
  availableDrivers(): string[];
}

/** A fixed list of kinds (empty by default). */
export class StaticDriverRegistry implements AdvertisedDrivers {
  readonly #kinds: string[];

  constructor(kinds: Iterable<string> = []) {
    this.#kinds = [...new Set(kinds)].sort();
  }

  availableDrivers(): string[] {
    return [...this.#kinds];
  }
}
