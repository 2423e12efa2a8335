// The registry of target drivers this agent can run.
//
// Drivers (docker, compose, ecs, nomad, ssh, winrm) arrive in later issues, each in its own folder behind one
// TargetDriver interface. Until then the registry only answers the one question the session needs — which target
// kinds to advertise in HostFacts.drivers — and an agent advertises none unless configured.

export interface DriverRegistry {
  /** Target kinds this agent can drive, e.g. ["docker", "compose"]; sorted, no duplicates. */
  availableDrivers(): string[];
}

/** A registry with a fixed list of kinds (empty by default). */
export class StaticDriverRegistry implements DriverRegistry {
  readonly #kinds: string[];

  constructor(kinds: Iterable<string> = []) {
    this.#kinds = [...new Set(kinds)].sort();
  }

  availableDrivers(): string[] {
    return [...this.#kinds];
  }
}
