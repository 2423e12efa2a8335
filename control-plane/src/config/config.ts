// Control-plane configuration, resolved once at start-up.
//
// Precedence: command-line flags > environment (FERRY_*) > config file (--config, or <data-dir>/ferry.json when it
// exists) > defaults. RawConfig is what any one source may say (every field optional, strings as typed);
// ResolvedConfig is complete and validated. Every listener defaults to loopback: exposing the agent listeners is a
// deliberate act (--agent-listen 0.0.0.0:7071 --enrol-listen 0.0.0.0:7072 plus --advertise-host).
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { FerryError } from "../domain/errors.js";
import { parseDuration } from "../domain/fleet/durations.js";
import { WebhookTargetPolicy } from "../domain/notify/webhook-targets.js";

export interface RawConfig {
  config?: string;
  dataDir?: string;
  caDir?: string;
  databaseUrl?: string;
  apiListen?: string;
  apiTls?: string;
  apiTlsCert?: string;
  apiTlsKey?: string;
  agentListen?: string;
  enrolListen?: string;
  advertiseHost?: string;
  advertiseAgent?: string;
  advertiseEnrol?: string;
  tlsHosts?: string;
  heartbeatInterval?: string;
  livenessGrace?: string;
  lastSeenFlush?: string;
  certLifetime?: string;
  enrolRate?: string;
  enrolBurst?: string;
  streamRate?: string;
  streamBurst?: string;
  maxMessageBytes?: string;
  maxBodyBytes?: string;
  logLevel?: string;
  logFormat?: string;
  replicaId?: string;
  registryCredentials?: string;
  registryTimeout?: string;
  insecureRegistries?: string;
  registryInternalHosts?: string;
  taskSigningDir?: string;
  taskTtl?: string;
  taskAckTimeout?: string;
  taskLease?: string;
  taskSweepInterval?: string;
  evidenceKeyDir?: string;
  promotionTtl?: string;
  auditCheckpointInterval?: string;
  webhookAllow?: string;
  enrolPeerRate?: string;
  enrolPeerBurst?: string;
}

/**
 * off: plain HTTP. auto: HTTPS with a certificate Ferry's CA issues for the advertised names (tlsHosts). files: HTTPS
 * with the operator's certificate chain and key (PEM), re-read when the files change.
 */
export type ApiTls = { mode: "off" } | { mode: "auto" } | { mode: "files"; certFile: string; keyFile: string };

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ResolvedConfig {
  dataDir: string;
  /** The fleet CA's directory; replicas sharing one database must share it too (e.g. a mounted secret). */
  caDir: string;
  databaseUrl: string | null;
  apiListen: ListenAddress;
  /** How the API is served: plain HTTP, HTTPS with a certificate from Ferry's CA, or the operator's certificate. */
  apiTls: ApiTls;
  agentListen: ListenAddress;
  enrolListen: ListenAddress;
  /** host:port agents are told to use; a port of 0 means "the port actually bound". */
  advertiseAgent: string;
  advertiseEnrol: string;
  tlsHosts: string[];
  heartbeatIntervalMs: number;
  livenessGraceMs: number;
  lastSeenFlushMs: number;
  certLifetimeMs: number;
  enrolRate: number;
  enrolBurst: number;
  streamRate: number;
  streamBurst: number;
  maxMessageBytes: number;
  maxBodyBytes: number;
  logLevel: string;
  logFormat: "json" | "pretty" | "auto";
  replicaId: string;
  /** JSON file of registry credentials by reference name (mode 0600); FERRY_REGISTRY_CREDENTIALS_<REF> also works. */
  registryCredentials: string | null;
  registryTimeoutMs: number;
  /** Registries reached over plain HTTP (loopback registries always are). */
  insecureRegistries: string[];
  /** Loopback or link-local hosts a registry's redirects and token realms may name (see docs/registry.md). */
  registryInternalHosts: string[];
  /** The task-signing keyring's directory; replicas sharing one database must share it too, like the CA. */
  taskSigningDir: string;
  /** A queued task's signed lifetime: not delivered by then, it expires. */
  taskTtlMs: number;
  /** How long an offered task waits for the agent's answer before it is offered again. */
  taskAckTimeoutMs: number;
  /** Lease of a running task, renewed by the agent's heartbeats and progress; expired when the agent vanishes. */
  taskLeaseMs: number;
  /** How often each replica expires leases and looks for queued tasks it missed a notice about. */
  taskSweepIntervalMs: number;
  /** The evidence signing key's directory (ECDSA P-256); replicas share it like the CA. */
  evidenceKeyDir: string;
  /** How long a promotion may wait for its gates before it expires. */
  promotionTtlMs: number;
  /** How often the audit head is signed into a checkpoint (when it moved). */
  auditCheckpointIntervalMs: number;
  /**
   * Webhook destinations allowed although they are private, loopback or link-local (CIDRs, or host names matched
   * exactly); everything else of that kind is refused at subscription and at delivery (docs/webhooks.md).
   */
  webhookAllow: string[];
  /** Enrolments admitted per second, and at once, from one peer address (an IPv6 /64 counts as one). */
  enrolPeerRate: number;
  enrolPeerBurst: number;
}

const ENV_KEYS: Record<keyof RawConfig, string> = {
  config: "FERRY_CONFIG",
  dataDir: "FERRY_DATA_DIR",
  caDir: "FERRY_CA_DIR",
  databaseUrl: "FERRY_DATABASE_URL",
  apiListen: "FERRY_API_LISTEN",
  apiTls: "FERRY_API_TLS",
  apiTlsCert: "FERRY_API_TLS_CERT",
  apiTlsKey: "FERRY_API_TLS_KEY",
  agentListen: "FERRY_AGENT_LISTEN",
  enrolListen: "FERRY_ENROL_LISTEN",
  advertiseHost: "FERRY_ADVERTISE_HOST",
  advertiseAgent: "FERRY_ADVERTISE_AGENT",
  advertiseEnrol: "FERRY_ADVERTISE_ENROL",
  tlsHosts: "FERRY_TLS_HOSTS",
  heartbeatInterval: "FERRY_HEARTBEAT_INTERVAL",
  livenessGrace: "FERRY_LIVENESS_GRACE",
  lastSeenFlush: "FERRY_LAST_SEEN_FLUSH",
  certLifetime: "FERRY_CERT_LIFETIME",
  enrolRate: "FERRY_ENROL_RATE",
  enrolBurst: "FERRY_ENROL_BURST",
  streamRate: "FERRY_STREAM_RATE",
  streamBurst: "FERRY_STREAM_BURST",
  maxMessageBytes: "FERRY_MAX_MESSAGE_BYTES",
  maxBodyBytes: "FERRY_MAX_BODY_BYTES",
  logLevel: "FERRY_LOG_LEVEL",
  logFormat: "FERRY_LOG_FORMAT",
  replicaId: "FERRY_REPLICA_ID",
  registryCredentials: "FERRY_REGISTRY_CREDENTIALS_FILE",
  registryTimeout: "FERRY_REGISTRY_TIMEOUT",
  insecureRegistries: "FERRY_INSECURE_REGISTRIES",
  registryInternalHosts: "FERRY_REGISTRY_INTERNAL_HOSTS",
  taskSigningDir: "FERRY_TASK_SIGNING_DIR",
  taskTtl: "FERRY_TASK_TTL",
  taskAckTimeout: "FERRY_TASK_ACK_TIMEOUT",
  taskLease: "FERRY_TASK_LEASE",
  taskSweepInterval: "FERRY_TASK_SWEEP_INTERVAL",
  evidenceKeyDir: "FERRY_EVIDENCE_KEY_DIR",
  promotionTtl: "FERRY_PROMOTION_TTL",
  auditCheckpointInterval: "FERRY_AUDIT_CHECKPOINT_INTERVAL",
  webhookAllow: "FERRY_WEBHOOK_ALLOW",
  enrolPeerRate: "FERRY_ENROL_PEER_RATE",
  enrolPeerBurst: "FERRY_ENROL_PEER_BURST",
};

export const DEFAULTS = {
  dataDir: ".ferry",
  apiListen: "127.0.0.1:7070",
  agentListen: "127.0.0.1:7071",
  enrolListen: "127.0.0.1:7072",
  heartbeatInterval: "15s",
  certLifetime: "24h",
  enrolRate: "20",
  enrolBurst: "100",
  enrolPeerRate: "2",
  enrolPeerBurst: "20",
  streamRate: "1000",
  streamBurst: "2000",
  maxMessageBytes: String(1024 * 1024),
  maxBodyBytes: String(1024 * 1024),
  logLevel: "info",
  logFormat: "auto",
} as const;

export function rawFromEnv(env: NodeJS.ProcessEnv): RawConfig {
  const out: RawConfig = {};
  for (const [key, name] of Object.entries(ENV_KEYS) as Array<[keyof RawConfig, string]>) {
    const v = env[name];
    if (v !== undefined && v !== "") out[key] = v;
  }
  return out;
}

function rawFromFile(path: string): RawConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new FerryError("VALIDATION_FAILED", `config file ${path}: ${(err as Error).message}`, {}, { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new FerryError("VALIDATION_FAILED", `config file ${path}: expected a JSON object`);
  }
  const out: RawConfig = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (!Object.hasOwn(ENV_KEYS, k)) {
      throw new FerryError("VALIDATION_FAILED", `config file ${path}: unknown setting "${k}"`, { field: k });
    }
    out[k as keyof RawConfig] = String(v);
  }
  return out;
}

export function parseListen(text: string, field: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new FerryError("VALIDATION_FAILED", `${field}: "${text}" is not host:port (IPv6 as [::1]:7071)`, { field });
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

function positiveNumber(text: string, field: string, integer = true): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new FerryError("VALIDATION_FAILED", `${field}: "${text}" is not a positive ${integer ? "whole " : ""}number`, { field });
  }
  return n;
}

function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

// Bounds of the configured durations: each stays well inside Node's timer range (24.8 days) where it drives a
// timer, and inside what an operator could mean (docs/operations.md lists them).
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Merges the sources and validates. `flags` are the parsed command-line options. */
export function resolveConfig(flags: RawConfig, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ResolvedConfig {
  const fromEnv = rawFromEnv(env);
  const dataDirRaw = flags.dataDir ?? fromEnv.dataDir;
  const configPath = flags.config ?? fromEnv.config;
  let fromFile: RawConfig = {};
  if (configPath) fromFile = rawFromFile(resolve(cwd, configPath));
  else {
    const implicit = join(resolve(cwd, dataDirRaw ?? DEFAULTS.dataDir), "ferry.json");
    if (existsSync(implicit)) fromFile = rawFromFile(implicit);
  }
  const pick = <K extends keyof RawConfig>(k: K): string | undefined => flags[k] ?? fromEnv[k] ?? fromFile[k];
  const str = (k: keyof RawConfig & keyof typeof DEFAULTS): string => pick(k) ?? DEFAULTS[k];

  const dataDirText = pick("dataDir") ?? DEFAULTS.dataDir;
  const dataDir = isAbsolute(dataDirText) ? dataDirText : resolve(cwd, dataDirText);
  const heartbeatIntervalMs = parseDuration(str("heartbeatInterval"), "heartbeat-interval", { min: 100, max: 10 * MINUTE });
  const graceText = pick("livenessGrace");
  const livenessGraceMs = graceText ? parseDuration(graceText, "liveness-grace", { max: HOUR }) : heartbeatIntervalMs;
  const flushText = pick("lastSeenFlush");
  // At most once per 30 s per agent, and always at least one heartbeat interval inside the offline window, so no
  // replica reading the database ever sees an agent as silent that is in fact heartbeating.
  const lastSeenFlushMs = flushText ? parseDuration(flushText, "last-seen-flush", { max: HOUR }) : Math.min(30_000, 2 * heartbeatIntervalMs + livenessGraceMs);
  if (lastSeenFlushMs >= 3 * heartbeatIntervalMs + livenessGraceMs) {
    throw new FerryError(
      "VALIDATION_FAILED",
      "last-seen-flush must be shorter than the offline window (3 × heartbeat-interval + liveness-grace)",
      { field: "last-seen-flush" },
    );
  }
  const apiListen = parseListen(str("apiListen"), "api-listen");
  const apiTls = resolveApiTls(pick("apiTls"), pick("apiTlsCert"), pick("apiTlsKey"), apiListen, cwd);
  const agentListen = parseListen(str("agentListen"), "agent-listen");
  const enrolListen = parseListen(str("enrolListen"), "enrol-listen");
  const unspecified = (h: string): boolean => h === "0.0.0.0" || h === "::";
  const advertiseHost = pick("advertiseHost") ?? (unspecified(agentListen.host) ? hostname() : agentListen.host);
  const advertiseAgent = pick("advertiseAgent") ?? formatHostPort(advertiseHost, agentListen.port);
  const advertiseEnrol =
    pick("advertiseEnrol") ??
    formatHostPort(pick("advertiseHost") ?? (unspecified(enrolListen.host) ? hostname() : enrolListen.host), enrolListen.port);
  parseListen(advertiseAgent, "advertise-agent");
  parseListen(advertiseEnrol, "advertise-enrol");
  const tlsHosts = [
    ...new Set(
      ["localhost", "127.0.0.1", "::1", hostname(), advertiseHost, ...(pick("tlsHosts") ?? "").split(",")]
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    ),
  ];
  const logFormat = str("logFormat");
  if (logFormat !== "json" && logFormat !== "pretty" && logFormat !== "auto") {
    throw new FerryError("VALIDATION_FAILED", `log-format: "${logFormat}" is not json, pretty or auto`, { field: "log-format" });
  }
  const logLevel = str("logLevel");
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    throw new FerryError("VALIDATION_FAILED", `log-level: "${logLevel}" is not a pino level`, { field: "log-level" });
  }
  const caDirText = pick("caDir");
  return {
    dataDir,
    caDir: caDirText ? resolve(cwd, caDirText) : join(dataDir, "ca"),
    databaseUrl: pick("databaseUrl") ?? null,
    apiListen,
    apiTls,
    agentListen,
    enrolListen,
    advertiseAgent,
    advertiseEnrol,
    tlsHosts,
    heartbeatIntervalMs,
    livenessGraceMs,
    lastSeenFlushMs,
    certLifetimeMs: parseDuration(str("certLifetime"), "cert-lifetime", { min: MINUTE, max: 366 * DAY }),
    enrolRate: positiveNumber(str("enrolRate"), "enrol-rate", false),
    enrolBurst: positiveNumber(str("enrolBurst"), "enrol-burst"),
    streamRate: positiveNumber(str("streamRate"), "stream-rate", false),
    streamBurst: positiveNumber(str("streamBurst"), "stream-burst"),
    maxMessageBytes: positiveNumber(str("maxMessageBytes"), "max-message-bytes"),
    maxBodyBytes: positiveNumber(str("maxBodyBytes"), "max-body-bytes"),
    logLevel,
    logFormat,
    replicaId: pick("replicaId") ?? `${hostname()}-${process.pid}`,
    registryCredentials: pick("registryCredentials") ? resolve(cwd, pick("registryCredentials") as string) : null,
    registryTimeoutMs: parseDuration(pick("registryTimeout") ?? "10s", "registry-timeout", { min: 100, max: 10 * MINUTE }),
    insecureRegistries: (pick("insecureRegistries") ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0),
    registryInternalHosts: (pick("registryInternalHosts") ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0),
    taskSigningDir: pick("taskSigningDir") ? resolve(cwd, pick("taskSigningDir") as string) : join(dataDir, "task-signing"),
    taskTtlMs: parseDuration(pick("taskTtl") ?? "1h", "task-ttl", { min: 1000, max: 7 * DAY }),
    taskAckTimeoutMs: parseDuration(pick("taskAckTimeout") ?? "30s", "task-ack-timeout", { min: 100, max: HOUR }),
    evidenceKeyDir: pick("evidenceKeyDir") ? resolve(cwd, pick("evidenceKeyDir") as string) : join(dataDir, "evidence-key"),
    promotionTtlMs: parseDuration(pick("promotionTtl") ?? "7d", "promotion-ttl", { min: MINUTE, max: 366 * DAY }),
    auditCheckpointIntervalMs: parseDuration(pick("auditCheckpointInterval") ?? "10s", "audit-checkpoint-interval", { min: 1000, max: DAY }),
    webhookAllow: webhookAllowList(pick("webhookAllow") ?? ""),
    enrolPeerRate: positiveNumber(str("enrolPeerRate"), "enrol-peer-rate", false),
    enrolPeerBurst: positiveNumber(str("enrolPeerBurst"), "enrol-peer-burst"),
    taskSweepIntervalMs: parseDuration(pick("taskSweepInterval") ?? "2s", "task-sweep-interval", { min: 100, max: 10 * MINUTE }),
    taskLeaseMs: pick("taskLease") ? parseDuration(pick("taskLease") as string, "task-lease", { min: 1000, max: DAY }) : Math.max(60_000, 4 * heartbeatIntervalMs),
  };
}

function webhookAllowList(text: string): string[] {
  const list = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  try {
    new WebhookTargetPolicy(list);
  } catch (err) {
    throw new FerryError("VALIDATION_FAILED", (err as Error).message, { field: "webhook-allow" }, { cause: err });
  }
  return list;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The API's TLS: operator files when given; else what --api-tls says; else plain HTTP on loopback and HTTPS with a
 * Ferry-issued certificate anywhere else — bearer tokens never cross a network in clear unless asked to (--api-tls off,
 * e.g. behind a TLS-terminating proxy).
 */
function resolveApiTls(mode: string | undefined, certFile: string | undefined, keyFile: string | undefined, listen: ListenAddress, cwd: string): ApiTls {
  if (mode !== undefined && mode !== "off" && mode !== "auto") {
    throw new FerryError("VALIDATION_FAILED", `api-tls: "${mode}" is not off or auto (give --api-tls-cert and --api-tls-key for your own certificate)`, { field: "api-tls" });
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new FerryError("VALIDATION_FAILED", "api-tls-cert and api-tls-key go together: give both, or neither", { field: certFile === undefined ? "api-tls-cert" : "api-tls-key" });
  }
  if (certFile !== undefined && keyFile !== undefined) {
    if (mode !== undefined) throw new FerryError("VALIDATION_FAILED", `api-tls: "${mode}" conflicts with api-tls-cert/api-tls-key (the files already mean HTTPS with that certificate)`, { field: "api-tls" });
    return { mode: "files", certFile: resolve(cwd, certFile), keyFile: resolve(cwd, keyFile) };
  }
  if (mode === "off" || mode === "auto") return { mode };
  return isLoopbackHost(listen.host) ? { mode: "off" } : { mode: "auto" };
}

/** Redacts the password of a database URL for logs and the startup banner. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}
