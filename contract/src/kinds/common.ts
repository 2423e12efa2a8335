// Field definitions more than one kind uses.
import type { FieldSpec, ObjectRule } from "../config-schema.js";

export const HOST_PATTERN = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})$/;
export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const absolutePath: FieldSpec = { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path" };

export function httpUrl(doc?: string): FieldSpec {
  return {
    type: "string",
    maxLength: 2048,
    pattern: /^https?:\/\/\S+$/,
    hint: "must be an http(s) URL",
    check: (s) => (URL.canParse(s) ? undefined : "must be an http(s) URL"),
    ...(doc ? { doc } : {}),
  };
}

export const HEALTH_CHECK_TYPES = ["docker", "http", "tcp", "none"] as const;
export type HealthCheckType = (typeof HEALTH_CHECK_TYPES)[number];

export interface HealthCheckConfig {
  type: HealthCheckType;
  url?: string;
  port?: number;
  timeoutSeconds?: number;
  intervalSeconds?: number;
  /** How long the new instance must keep running without a restart before it can count as healthy. */
  settleSeconds?: number;
}

const healthRules: ObjectRule[] = [
  (h) => (h["type"] === "http" && h["url"] === undefined ? ["url", "is required when type is http"] : undefined),
  (h) => (h["type"] === "tcp" && h["port"] === undefined ? ["port", "is required when type is tcp"] : undefined),
];

export const healthCheck: FieldSpec = {
  type: "object",
  doc: "how the new instance is judged healthy; default: the image's own HEALTHCHECK if it has one, else running through the settle window",
  fields: {
    type: { type: "string", required: true, enum: HEALTH_CHECK_TYPES },
    url: httpUrl("for http: GET until 2xx"),
    port: { type: "integer", min: 1, max: 65535, doc: "for tcp: connect to 127.0.0.1:port" },
    timeoutSeconds: { type: "integer", min: 1, max: 3600, doc: "default 60" },
    intervalSeconds: { type: "integer", min: 1, max: 600, doc: "default 1" },
    settleSeconds: { type: "integer", min: 0, max: 600, doc: "no restart allowed for this long after start; default 3" },
  },
  rules: healthRules,
};
