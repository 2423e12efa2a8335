// docker: one container on a Docker Engine, replaced digest-pinned image by image (docs/drivers/docker.md).
import type { FieldSpec } from "../config-schema.js";
import { singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { absolutePath, ENV_KEY_PATTERN, healthCheck, type HealthCheckConfig } from "./common.js";

/** Marks a previous container parked during a deploy; part of the on-host format, so it never changes. */
export const OLD_CONTAINER_MARKER = ".ferry-old-";
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export interface DockerPort {
  container: number;
  /** Default: the container port. */
  host?: number;
  /** Default: tcp. */
  protocol?: "tcp" | "udp";
}

export interface DockerVolume {
  /** An absolute host path (bind mount) or a named volume. */
  source: string;
  target: string;
  readOnly?: boolean;
}

/**
 * A routed target: the host router (HAProxy) serves `listen` and sends requests to one of two slots, each a
 * container `<container>-blue` / `<container>-green` listening on its own loopback port, told by an environment
 * variable. Blue-green, canary and A/B need it (docs/rollouts.md).
 */
export interface DockerRoute {
  /** The router's name for the service ([a-z0-9][a-z0-9_-]*): HAProxy backend `ferry_<service>`. */
  service: string;
  /** host:port the router listens on for the service's clients (documentation, and the generated config). */
  listen: string;
  slots: { blue: number; green: number };
  /** The environment variable a slot's container reads its port from; default PORT. */
  portEnv?: string;
  /** How long the old slot is drained after a switch before its container stops (earlier when no connection is left); default 30. */
  drainSeconds?: number;
}

export interface DockerTargetConfig {
  /** The container's name; the previous container is parked as `<container>.ferry-old-<id>` during a deploy. */
  container: string;
  /** Which of the release's components this target runs, when the release has several. */
  component?: string;
  socketPath?: string;
  /** Docker network mode; default "host". */
  network?: string;
  command?: string[];
  env?: Record<string, string>;
  ports?: DockerPort[];
  volumes?: DockerVolume[];
  healthCheck?: HealthCheckConfig;
  route?: DockerRoute;
}

const noColon = (s: string): string | undefined => (s.includes(":") ? "must not contain ':' (Docker's bind syntax uses it as a separator)" : undefined);

/** The container fields, shared with the ssh kind's `docker` section (the same container, on a host reached over SSH). */
export const dockerContainerFields: Record<string, FieldSpec> = {
  container: {
    type: "string",
    required: true,
    maxLength: 128,
    pattern: CONTAINER_NAME,
    hint: "must be a Docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
    check: (s) => (s.includes(OLD_CONTAINER_MARKER) ? `must not contain "${OLD_CONTAINER_MARKER}" (the driver parks previous containers under that suffix)` : undefined),
    doc: "the container's name",
  },
  component: { type: "string", maxLength: 128, doc: "which component of the release this target runs (needed when the release pins several)" },
  socketPath: { ...absolutePath, doc: "the engine's unix socket; default: the agent's docker.socket setting" },
  network: { type: "string", maxLength: 128, doc: "network mode; default host" },
  command: { type: "string-list", minItems: 1, doc: "overrides the image's CMD" },
  env: { type: "string-map", keyPattern: ENV_KEY_PATTERN, keyHint: "is not a valid environment variable name" },
  ports: {
    type: "list",
    items: {
      container: { type: "integer", required: true, min: 1, max: 65535 },
      host: { type: "integer", min: 1, max: 65535 },
      protocol: { type: "string", enum: ["tcp", "udp"] },
    },
  },
  volumes: {
    type: "list",
    items: {
      source: { type: "string", required: true, maxLength: 4096, check: noColon },
      target: { type: "string", required: true, maxLength: 4096, pattern: /^\//, hint: "must be an absolute path", check: noColon },
      readOnly: { type: "boolean" },
    },
  },
  healthCheck,
  route: {
    type: "object",
    doc: "put the host router in front: two slots on loopback ports, switched by weight (docs/rollouts.md)",
    fields: {
      service: { type: "string", required: true, maxLength: 63, pattern: /^[a-z0-9][a-z0-9_-]{0,62}$/, hint: "must be [a-z0-9][a-z0-9_-]* (the router's backend is ferry_<service>)" },
      listen: { type: "string", required: true, maxLength: 261, pattern: /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):\d{1,5}$/, hint: "must be host:port" },
      slots: {
        type: "object",
        required: true,
        fields: { blue: { type: "integer", required: true, min: 1, max: 65535 }, green: { type: "integer", required: true, min: 1, max: 65535 } },
        rules: [(o) => (o["blue"] === o["green"] ? ["green", "must differ from blue: each slot listens on its own port"] : undefined)],
      },
      portEnv: { type: "string", maxLength: 128, pattern: ENV_KEY_PATTERN, hint: "is not a valid environment variable name" },
      drainSeconds: { type: "integer", min: 0, max: 3600 },
    },
  },
};

export const dockerKind: TargetKindDescriptor<DockerTargetConfig> = {
  kind: "docker",
  title: "a container on a Docker Engine",
  config: { fields: dockerContainerFields },
  // Without a route, host networking gives old and new the same ports, so they never run side by side; with a route
  // each slot has its own port. An agent advertises these only when it has a router (docs/rollouts.md).
  capabilities: ["side-by-side", "router"],
  sticker: "container labels (ferry.*) and a sticker file in the agent's state directory",
  placement: "host",
  typed: (c) => c as unknown as DockerTargetConfig,
  imagesFor: (config, pins) => singleImage(config.component, pins),
};
