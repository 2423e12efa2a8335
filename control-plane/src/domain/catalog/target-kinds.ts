// The kinds of target Ferry deploys to, and what each one's config must say. Drivers on the agent validate again
// with their own knowledge of the target; this is the control plane's check at the door, so a typo is refused when
// the target is created rather than when a deployment runs.
import { FerryError } from "../errors.js";
import { checkObject, type FieldSpec } from "./config-schema.js";

export const TARGET_KINDS = ["docker", "compose", "ecs", "nomad", "ssh", "winrm"] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})$/;
const ABS_PATH = /^\/[^\0]*$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

const healthCheck: FieldSpec = {
  type: "object",
  fields: {
    type: { type: "string", required: true, enum: ["docker", "http", "tcp", "none"] },
    url: { type: "string", pattern: /^https?:\/\/\S+$/, hint: "must be an http(s) URL" },
    port: { type: "integer", min: 1, max: 65535 },
    timeoutSeconds: { type: "integer", min: 1, max: 3600 },
    intervalSeconds: { type: "integer", min: 1, max: 600 },
  },
};

export const TARGET_CONFIG_FIELDS: Record<TargetKind, Record<string, FieldSpec>> = {
  docker: {
    container: { type: "string", required: true, pattern: CONTAINER_NAME, hint: "must be a Docker container name" },
    component: { type: "string" },
    socketPath: { type: "string", pattern: ABS_PATH, hint: "must be an absolute path" },
    network: { type: "string", maxLength: 128 },
    command: { type: "string-list" },
    env: { type: "string-map", keyPattern: ENV_KEY },
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
        source: { type: "string", required: true },
        target: { type: "string", required: true, pattern: ABS_PATH, hint: "must be an absolute path" },
        readOnly: { type: "boolean" },
      },
    },
    healthCheck,
  },
  compose: {
    project: { type: "string", required: true, pattern: /^[a-z0-9][a-z0-9_-]*$/, hint: "must be a Compose project name (lowercase)" },
    directory: { type: "string", required: true, pattern: ABS_PATH, hint: "must be an absolute path" },
    services: { type: "string-map" },
    healthCheck,
  },
  ecs: {
    region: { type: "string", required: true, pattern: /^[a-z]{2}(-[a-z]+)+-\d$/, hint: "must be an AWS region such as eu-west-1" },
    cluster: { type: "string", required: true, maxLength: 255 },
    service: { type: "string", required: true, maxLength: 255 },
    containerName: { type: "string", maxLength: 255 },
    steadyStateTimeoutSeconds: { type: "integer", min: 30, max: 7200 },
  },
  nomad: {
    address: { type: "string", required: true, pattern: /^https?:\/\/\S+$/, hint: "must be the Nomad HTTP API URL" },
    job: { type: "string", required: true, maxLength: 128 },
    group: { type: "string", maxLength: 128 },
    task: { type: "string", maxLength: 128 },
    namespace: { type: "string", maxLength: 128 },
    region: { type: "string", maxLength: 64 },
  },
  ssh: {
    host: { type: "string", required: true, pattern: HOST, hint: "must be a host name or IP address" },
    port: { type: "integer", min: 1, max: 65535 },
    user: { type: "string", required: true, maxLength: 64 },
    credentialsRef: { type: "string", maxLength: 128 },
    stickerPath: { type: "string", pattern: ABS_PATH, hint: "must be an absolute path" },
    deployScript: { type: "string", maxLength: 65_536 },
  },
  winrm: {
    host: { type: "string", required: true, pattern: HOST, hint: "must be a host name or IP address" },
    port: { type: "integer", min: 1, max: 65535 },
    user: { type: "string", required: true, maxLength: 128 },
    transport: { type: "string", enum: ["https", "http"] },
    credentialsRef: { type: "string", maxLength: 128 },
    stickerPath: { type: "string", maxLength: 1024 },
  },
};

export function isTargetKind(s: string): s is TargetKind {
  return (TARGET_KINDS as readonly string[]).includes(s);
}

/** Validates a target's config for its kind; throws VALIDATION_FAILED naming the field. */
export function checkTargetConfig(kind: string, config: unknown): Record<string, unknown> {
  if (!isTargetKind(kind)) {
    throw new FerryError("UNKNOWN_TARGET_KIND", `kind: "${kind}" is not a target kind (one of ${TARGET_KINDS.join(", ")})`, { field: "kind" });
  }
  return checkObject(config ?? {}, TARGET_CONFIG_FIELDS[kind], "config");
}
