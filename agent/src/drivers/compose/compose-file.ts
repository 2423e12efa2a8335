// Reading the operator's compose file through the CLI: `config` loads and validates it (YAML, Compose's schema,
// variable interpolation, extends) with the lock file laid over it, and prints one normalised document.
//
// Ferry ships no YAML parser for this: it reads only the normalised output, which the CLI prints in one fixed block
// form (two-space indent, `services:` at the top, a service per key, its settings one level below). From it the
// driver needs two facts per service — whether it has `image` and whether it has `build` — and the service names.
import { DriverError } from "../driver.js";

export interface NormalisedService {
  name: string;
  keys: Set<string>;
  /** The settings written on one line (`restart: unless-stopped`), unquoted; block settings are only in keys. */
  values: Map<string, string>;
}

/** The services of `config`'s normalised output with their top-level keys. */
export function servicesOf(normalised: string): NormalisedService[] {
  const out: NormalisedService[] = [];
  let inServices = false;
  let current: NormalisedService | undefined;
  for (const line of normalised.split("\n")) {
    if (/^\S/.test(line)) {
      inServices = /^services:\s*$/.test(line);
      current = undefined;
      continue;
    }
    if (!inServices) continue;
    const service = /^ {2}([^\s:#][^:]*):\s*$/.exec(line);
    if (service) {
      current = { name: service[1]!.replace(/^['"]|['"]$/g, ""), keys: new Set(), values: new Map() };
      out.push(current);
      continue;
    }
    const key = /^ {4}([A-Za-z_][A-Za-z0-9_]*):(?: +(.*\S))?\s*$/.exec(line);
    if (key && current) {
      current.keys.add(key[1]!);
      if (key[2] !== undefined) current.values.set(key[1]!, key[2].replace(/^(['"])(.*)\1$/, "$2"));
    }
  }
  return out;
}

/**
 * The bad inputs a project can hold, judged on the operator's file alone (the lock would define any service it names):
 * a mapped service not in the file, and a service the lock does not pin that would have to be built (build: and no
 * image) — Ferry deploys images, it does not build.
 */
export function checkProject(normalised: string, mapped: readonly string[], file: string, routed: readonly string[] = []): NormalisedService[] {
  const services = servicesOf(normalised);
  if (services.length === 0) throw new DriverError("COMPOSE_FILE_INVALID", `${file} defines no services`, { file });
  const names = new Set(services.map((s) => s.name));
  const missing = mapped.filter((m) => !names.has(m));
  if (missing.length > 0) {
    throw new DriverError("COMPOSE_FILE_INVALID", `config.services maps ${missing.join(", ")}, which ${file} does not define (it has ${[...names].join(", ")})`, {
      field: "config.services",
      file,
      missing,
    });
  }
  // A mapped service gets its image from the lock; any other must name one in the file.
  const builds = services.filter((s) => s.keys.has("build") && !s.keys.has("image") && !mapped.includes(s.name)).map((s) => s.name);
  if (builds.length > 0) {
    throw new DriverError("COMPOSE_FILE_INVALID", `${builds.join(", ")} in ${file} ha${builds.length === 1 ? "s" : "ve"} build: and no image: Ferry deploys images, it does not build; give the service an image or map it to a component`, {
      file,
      services: builds,
    });
  }
  // A routed service runs twice side by side, each slot on its own loopback port: on the host's network, with no
  // fixed container name or published ports that the second slot would collide with.
  for (const name of routed) {
    const s = services.find((x) => x.name === name);
    if (!s) continue;
    const problem =
      s.values.get("network_mode") !== "host"
        ? "runs with network_mode: host (each slot listens on its own loopback port, told by route.portEnv)"
        : s.keys.has("container_name")
          ? "has no container_name (two slots run side by side)"
          : s.keys.has("ports")
            ? "publishes no ports (each slot listens on its own port; the router listens for clients)"
            : undefined;
    if (problem) throw new DriverError("COMPOSE_FILE_INVALID", `${name} in ${file} is routed (config.routes), so it must be one that ${problem}`, { file, service: name, field: "config.routes" });
  }
  return services;
}
