// A Docker target's config, checked again on the agent. The control plane checks the same fields when the target is
// created; the driver checks them with its own knowledge of Docker (reserved name suffixes, what a bind spec can
// hold, which health check needs which field) and turns the loose record into a typed one, so the rest of the
// driver never looks at `unknown`.
import { dockerError } from "./errors.js";

export type HealthCheckType = "docker" | "http" | "tcp" | "none";

export interface DockerHealthCheck {
  type: HealthCheckType;
  url?: string;
  port?: number;
  timeoutSeconds?: number;
  intervalSeconds?: number;
}

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

export interface DockerTargetConfig {
  /** The container's name; the previous container is parked as `<container>.ferry-old-<id>` during a deploy. */
  container: string;
  /** Which of the task's images this target runs, when the task carries several. */
  component?: string;
  socketPath?: string;
  /** Docker network mode; default "host". */
  network?: string;
  command?: string[];
  env?: Record<string, string>;
  ports?: DockerPort[];
  volumes?: DockerVolume[];
  /** Default: the image's own HEALTHCHECK if it has one, otherwise "none". */
  healthCheck?: DockerHealthCheck;
}

/** Marks a previous container parked during a deploy; part of the on-host format, so it never changes. */
export const OLD_CONTAINER_MARKER = ".ferry-old-";

const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FIELDS = ["container", "component", "socketPath", "network", "command", "env", "ports", "volumes", "healthCheck"];
const HEALTH_FIELDS = ["type", "url", "port", "timeoutSeconds", "intervalSeconds"];

function invalid(field: string, problem: string): never {
  // restored = true: a deploy refused for its config has changed nothing on the target.
  throw dockerError("INVALID_TARGET_CONFIG", `config.${field}: ${problem}`, { field: `config.${field}` }, true);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function unknownFields(obj: Record<string, unknown>, known: string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) invalid(`${path}${key}`, `unknown field (known: ${known.join(", ")})`);
  }
}

function str(v: unknown, field: string, maxLength = 1024): string {
  if (typeof v !== "string" || v.length === 0) invalid(field, "must be a non-empty string");
  if (v.length > maxLength) invalid(field, `must be at most ${maxLength} characters`);
  return v;
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v)) invalid(field, "must be a whole number");
  if (v < min || v > max) invalid(field, `must be between ${min} and ${max}`);
  return v;
}

function absolutePath(v: unknown, field: string): string {
  const s = str(v, field, 4096);
  if (!s.startsWith("/") || s.includes("\0")) invalid(field, "must be an absolute path");
  return s;
}

/** Validates a Docker target's config; throws DriverError("INVALID_TARGET_CONFIG") naming the field. */
export function parseDockerConfig(raw: Record<string, unknown>): DockerTargetConfig {
  if (!isObject(raw)) invalid("", "must be an object");
  unknownFields(raw, FIELDS, "");

  const container = str(raw["container"], "container", 128);
  if (!CONTAINER_NAME.test(container)) invalid("container", `"${container}" is not a Docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)`);
  if (container.includes(OLD_CONTAINER_MARKER)) invalid("container", `must not contain "${OLD_CONTAINER_MARKER}" (the driver parks previous containers under that suffix)`);
  const cfg: DockerTargetConfig = { container };

  if (raw["component"] !== undefined) cfg.component = str(raw["component"], "component", 128);
  if (raw["socketPath"] !== undefined) cfg.socketPath = absolutePath(raw["socketPath"], "socketPath");
  if (raw["network"] !== undefined) cfg.network = str(raw["network"], "network", 128);

  if (raw["command"] !== undefined) {
    const c = raw["command"];
    if (!Array.isArray(c) || c.some((s) => typeof s !== "string")) invalid("command", "must be a list of strings");
    if (c.length === 0) invalid("command", "must not be empty (leave it out to run the image's CMD)");
    cfg.command = [...(c as string[])];
  }

  if (raw["env"] !== undefined) {
    const e = raw["env"];
    if (!isObject(e)) invalid("env", "must be an object of strings");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(e)) {
      if (!ENV_KEY.test(k)) invalid(`env.${k}`, "is not a valid environment variable name");
      if (typeof v !== "string") invalid(`env.${k}`, "must be a string");
      env[k] = v;
    }
    cfg.env = env;
  }

  if (raw["ports"] !== undefined) {
    const list = raw["ports"];
    if (!Array.isArray(list)) invalid("ports", "must be a list");
    cfg.ports = list.map((p: unknown, i): DockerPort => {
      const f = `ports[${i}]`;
      if (!isObject(p)) invalid(f, "must be an object");
      unknownFields(p, ["container", "host", "protocol"], `${f}.`);
      const port: DockerPort = { container: int(p["container"], `${f}.container`, 1, 65535) };
      if (p["host"] !== undefined) port.host = int(p["host"], `${f}.host`, 1, 65535);
      if (p["protocol"] !== undefined) {
        if (p["protocol"] !== "tcp" && p["protocol"] !== "udp") invalid(`${f}.protocol`, "must be one of tcp, udp");
        port.protocol = p["protocol"];
      }
      return port;
    });
  }

  if (raw["volumes"] !== undefined) {
    const list = raw["volumes"];
    if (!Array.isArray(list)) invalid("volumes", "must be a list");
    cfg.volumes = list.map((v: unknown, i): DockerVolume => {
      const f = `volumes[${i}]`;
      if (!isObject(v)) invalid(f, "must be an object");
      unknownFields(v, ["source", "target", "readOnly"], `${f}.`);
      const source = str(v["source"], `${f}.source`, 4096);
      const target = absolutePath(v["target"], `${f}.target`);
      // Docker's bind syntax is source:target[:ro]; a colon in either would be read as a separator.
      if (source.includes(":")) invalid(`${f}.source`, "must not contain ':'");
      if (target.includes(":")) invalid(`${f}.target`, "must not contain ':'");
      const vol: DockerVolume = { source, target };
      if (v["readOnly"] !== undefined) {
        if (typeof v["readOnly"] !== "boolean") invalid(`${f}.readOnly`, "must be true or false");
        vol.readOnly = v["readOnly"];
      }
      return vol;
    });
  }

  if (raw["healthCheck"] !== undefined) cfg.healthCheck = parseHealthCheck(raw["healthCheck"]);
  return cfg;
}

function parseHealthCheck(h: unknown): DockerHealthCheck {
  if (!isObject(h)) invalid("healthCheck", "must be an object");
  unknownFields(h, HEALTH_FIELDS, "healthCheck.");
  const type = h["type"];
  if (type !== "docker" && type !== "http" && type !== "tcp" && type !== "none") invalid("healthCheck.type", "must be one of docker, http, tcp, none");
  const hc: DockerHealthCheck = { type };
  if (h["url"] !== undefined) {
    const url = str(h["url"], "healthCheck.url", 2048);
    if (!/^https?:\/\/\S+$/.test(url) || !URL.canParse(url)) invalid("healthCheck.url", "must be an http(s) URL");
    hc.url = url;
  }
  if (h["port"] !== undefined) hc.port = int(h["port"], "healthCheck.port", 1, 65535);
  if (h["timeoutSeconds"] !== undefined) hc.timeoutSeconds = int(h["timeoutSeconds"], "healthCheck.timeoutSeconds", 1, 3600);
  if (h["intervalSeconds"] !== undefined) hc.intervalSeconds = int(h["intervalSeconds"], "healthCheck.intervalSeconds", 1, 600);
  if (type === "http" && hc.url === undefined) invalid("healthCheck.url", "is required when healthCheck.type is http");
  if (type === "tcp" && hc.port === undefined) invalid("healthCheck.port", "is required when healthCheck.type is tcp");
  return hc;
}
