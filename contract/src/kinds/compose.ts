// compose: a Docker Compose project on a host, its services mapped to components (docs/drivers/compose.md).
//
// The compose file is the operator's and stays on the host (config.directory + config.file); Ferry never edits it.
// What Ferry owns is the lock file beside it (compose-lock.ts): an override that pins every mapped service's image to
// repository@sha256:…, derived from the release's pins and config.services alone.
import type { FieldSpec, ObjectRule } from "../config-schema.js";
import { ImageSelectionError, type TargetKindDescriptor } from "../target-kind.js";
import { pinOf } from "../images.js";
import { absolutePath, healthCheck, type HealthCheckConfig } from "./common.js";
import { dockerContainerFields, type DockerRoute } from "./docker.js";

/** A Compose service name as Compose accepts it. */
export const COMPOSE_SERVICE_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export interface ComposeTargetConfig {
  project: string;
  directory: string;
  /** The operator's compose file, relative to directory. Default docker-compose.yml. */
  file?: string;
  /** Compose service → component. Without it, each component of the release is the service of the same name. */
  services?: Record<string, string>;
  healthCheck?: HealthCheckConfig;
  /** The engine's unix socket the Compose CLI talks to; default the driver's setting, else DOCKER_HOST. */
  socketPath?: string;
  /**
   * Services behind the host router: each runs its versions in two slots (one-off containers of the service on the
   * slots' loopback ports) switched by weight, as a routed docker target does (docs/drivers/compose.md).
   */
  routes?: ComposeRoute[];
}

/** A Compose service behind the host router: the docker kind's route, naming the Compose service it is for. */
export interface ComposeRoute extends DockerRoute {
  composeService: string;
}

const dockerRouteFields = (dockerContainerFields["route"] as { fields: Record<string, FieldSpec> }).fields;

const uniqueRoutes: ObjectRule = (o) => {
  const routes = Array.isArray(o["routes"]) ? (o["routes"] as Record<string, unknown>[]) : [];
  const seen = new Set<unknown>();
  const ports = new Set<unknown>();
  const services = o["services"] as Record<string, unknown> | undefined;
  for (const [i, r] of routes.entries()) {
    if (seen.has(r["composeService"])) return [`routes[${i}].composeService`, "is routed twice"];
    if (services && !Object.hasOwn(services, String(r["composeService"]))) return [`routes[${i}].composeService`, "must be a service of config.services"];
    seen.add(r["composeService"]);
    const slots = (r["slots"] ?? {}) as Record<string, unknown>;
    for (const p of [slots["blue"], slots["green"]]) {
      if (ports.has(p)) return [`routes[${i}].slots`, "uses a slot port another route uses"];
      ports.add(p);
    }
  }
  return undefined;
};

export const composeKind: TargetKindDescriptor<ComposeTargetConfig> = {
  kind: "compose",
  title: "a Docker Compose project on a host",
  config: {
    fields: {
      project: { type: "string", required: true, maxLength: 128, pattern: /^[a-z0-9][a-z0-9_-]*$/, hint: "must be a Compose project name (lowercase)" },
      directory: { ...absolutePath, required: true },
      file: {
        type: "string",
        maxLength: 255,
        pattern: /^[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml$/,
        hint: "must be a file name in directory ending in .yml or .yaml",
        doc: "the operator's compose file in directory; default docker-compose.yml",
      },
      services: {
        type: "string-map",
        maxItems: 64,
        keyPattern: COMPOSE_SERVICE_PATTERN,
        keyHint: "must be a Compose service name",
        doc: "Compose service → component; default: every component of the release is the service of the same name",
      },
      healthCheck,
      socketPath: { ...absolutePath, doc: "the engine's unix socket; default the driver's setting, else DOCKER_HOST" },
      routes: {
        type: "list",
        maxItems: 16,
        doc: "services behind the host router: two slots each, switched by weight with no downtime (docs/drivers/compose.md)",
        items: {
          composeService: { type: "string", required: true, maxLength: 63, pattern: COMPOSE_SERVICE_PATTERN, hint: "must be a Compose service name" },
          ...dockerRouteFields,
        },
      },
    },
    rules: [uniqueRoutes],
  },
  // side-by-side and router: routed services (config.routes) run two slots behind the host router, so the slot
  // strategies work on a project that routes at least one service. An agent advertises these only when its compose
  // driver has a router (docs/drivers/compose.md#rollouts-blue-green-canary-ab).
  capabilities: ["several-images", "side-by-side", "router"],
  sticker: "the lock file (ferry.lock.json) and service labels",
  placement: "host",
  typed: (c) => c as unknown as ComposeTargetConfig,
  componentsNamed: (config) => Object.entries(config.services ?? {}).map(([service, component]) => ({ field: `config.services.${service}`, component })),
  imagesFor: (config, pins) => {
    const wanted = new Set(Object.values(config.services ?? {}));
    if (wanted.size === 0) return pins.map(pinOf);
    const out = pins.filter((p) => wanted.has(p.component)).map(pinOf);
    const missing = [...wanted].filter((c) => !pins.some((p) => p.component === c));
    if (missing.length > 0) throw new ImageSelectionError("RELEASE_COMPONENT_MISSING", `config.services: the release pins no ${missing.join(", ")}`, "config.services");
    return out;
  },
};
