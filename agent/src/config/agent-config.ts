// The agent's configuration, resolved once at start-up (docs/agent.md).
//
// Sources, highest first: command-line flags > FERRY_AGENT_* environment variables > a JSON config file
// (--config FILE, FERRY_AGENT_CONFIG, else <state-dir>/agent.json when it exists) > the documented defaults below.
// The raw types are what a source said (every value optional, text or JSON as read, each with its origin); AgentConfig
// is complete and checked, and keeps each value's origin so `ferry-agent config` can show what won and why.
//
// Every problem is an AgentError of kind "usage" (exit 2) whose message starts with where the value came from
// ("FERRY_AGENT_OBSERVE_INTERVAL: …", "/var/lib/ferry-agent/agent.json drivers.docker.socket: …").
//
// Driver settings live in one section per driver (drivers.<kind>); the schemas come from the driver registrations the
// caller passes in, so this module imports no driver. Empty environment variables count as unset (an EnvironmentFile
// line `FERRY_AGENT_LOG_LEVEL=` means "not set"), and so do empty top-level flags.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

import { AgentError } from "../core/agent-error.js";
import { LOG_LEVELS, type LogLevel } from "../logger.js";
import { readConfigFile, type RawConfigFile } from "./config-file.js";
import {
  addDriverEnv,
  addDriverFlag,
  addDriverValue,
  checkDriverSections,
  checkRegistrations,
  mergeDriverSections,
  type DriverSection,
  type DriverSettingsSource,
  type RawDriverSections,
  type Sourced,
} from "./driver-settings.js";
import { DEFAULT_ORIGIN, invalidValue, isText, type Origin, type RawValue } from "./origin.js";

export type { DriverSection, DriverSettingsSource } from "./driver-settings.js";
export type { Origin, SourceKind } from "./origin.js";

export const AGENT_CONFIG_FILE_NAME = "agent.json";

export const AGENT_CONFIG_DEFAULTS = {
  logLevel: "info" as LogLevel,
  observeIntervalSeconds: 60,
} as const;

/** Drift observation: at least every second (it costs an engine call per target), at most once a day. */
export const OBSERVE_INTERVAL_BOUNDS = { min: 1, max: 86_400 } as const;
/** Paths are bounded like any other input (PATH_MAX on Linux). */
const MAX_PATH = 4096;

/** The top-level settings, by the name they have in the file and in AgentConfig. */
type TopKey = "stateDir" | "logLevel" | "observeIntervalSeconds" | "registryAuthFile";

export const AGENT_FLAG_NAMES: Record<TopKey | "config", string> = {
  config: "--config",
  stateDir: "--state-dir",
  logLevel: "--log-level",
  observeIntervalSeconds: "--observe-interval",
  registryAuthFile: "--registry-auth",
};

export const AGENT_ENV_NAMES: Record<TopKey | "config" | "dockerSocket", string> = {
  config: "FERRY_AGENT_CONFIG",
  stateDir: "FERRY_AGENT_STATE_DIR",
  logLevel: "FERRY_AGENT_LOG_LEVEL",
  observeIntervalSeconds: "FERRY_AGENT_OBSERVE_INTERVAL",
  registryAuthFile: "FERRY_AGENT_REGISTRY_AUTH",
  // Alias of drivers.docker.socket, kept for existing installs ("off" = drivers.docker.enabled=false).
  dockerSocket: "FERRY_AGENT_DOCKER_SOCKET",
};

/** The parsed command-line options, as commander hands them over. */
export interface AgentFlags {
  config?: string;
  stateDir?: string;
  logLevel?: string;
  observeInterval?: string;
  registryAuth?: string;
  /** Alias of --driver docker.socket=PATH; "off" means --driver docker.enabled=false. */
  dockerSocket?: string;
  /** Repeatable KIND.KEY=VALUE. */
  driver?: readonly string[];
}

/** What one source said. */
export interface RawAgentConfig {
  /** Only flags and the environment can name the config file. */
  config?: RawValue;
  stateDir?: RawValue;
  logLevel?: RawValue;
  observeIntervalSeconds?: RawValue;
  registryAuthFile?: RawValue;
  drivers: RawDriverSections;
}

export interface AgentConfig {
  /** Absolute. */
  stateDir: string;
  logLevel: LogLevel;
  /** How often targets with a sticker are observed for drift. */
  observeIntervalSeconds: number;
  /** Registry credentials kept on this host (Docker's config.json form, mode 0600); absolute, or null. */
  registryAuthFile: string | null;
  /** One section per registered driver, by kind. */
  drivers: Record<string, DriverSection>;
  /** The config file that was read, or null. */
  configFile: string | null;
  /** Where each value came from, by its key ("logLevel", "drivers.docker.socket", "configFile"). */
  origins: Record<string, Origin>;
}

export interface ResolveAgentConfigInput {
  flags: AgentFlags;
  env: NodeJS.ProcessEnv;
  /** Relative paths from flags and the environment resolve against it; default process.cwd(). */
  cwd?: string;
  /** The drivers this build has; their schemas check the driver sections. */
  registrations: readonly DriverSettingsSource[];
}

const DOCKER = "docker";

function dockerSocketAlias(sections: RawDriverSections, value: string, origin: Origin): void {
  if (value === "off") addDriverValue(sections, DOCKER, "enabled", { value: "false", origin });
  else addDriverValue(sections, DOCKER, "socket", { value, origin });
}

function requireDockerKind(registrations: readonly DriverSettingsSource[], origin: Origin): void {
  if (!registrations.some((r) => r.descriptor.kind === DOCKER)) {
    throw invalidValue(origin, `this agent has no docker driver (known: ${registrations.map((r) => r.descriptor.kind).join(", ") || "none"})`);
  }
}

export function rawFromFlags(flags: AgentFlags, registrations: readonly DriverSettingsSource[]): RawAgentConfig {
  const out: RawAgentConfig = { drivers: {} };
  const text = (v: string | undefined, key: TopKey | "config"): void => {
    if (v !== undefined && v !== "") out[key] = { value: v, origin: { source: "flag", name: AGENT_FLAG_NAMES[key] } };
  };
  text(flags.config, "config");
  text(flags.stateDir, "stateDir");
  text(flags.logLevel, "logLevel");
  text(flags.observeInterval, "observeIntervalSeconds");
  text(flags.registryAuth, "registryAuthFile");
  for (const spec of flags.driver ?? []) addDriverFlag(out.drivers, spec, registrations);
  if (flags.dockerSocket !== undefined && flags.dockerSocket !== "") {
    const origin: Origin = { source: "flag", name: "--docker-socket" };
    requireDockerKind(registrations, origin);
    dockerSocketAlias(out.drivers, flags.dockerSocket, origin);
  }
  return out;
}

export function rawFromEnv(env: NodeJS.ProcessEnv, registrations: readonly DriverSettingsSource[]): RawAgentConfig {
  const out: RawAgentConfig = { drivers: {} };
  for (const key of ["config", "stateDir", "logLevel", "observeIntervalSeconds", "registryAuthFile"] as const) {
    const name = AGENT_ENV_NAMES[key];
    const v = env[name];
    if (v !== undefined && v !== "") out[key] = { value: v, origin: { source: "env", name } };
  }
  addDriverEnv(out.drivers, env, registrations);
  const socket = env[AGENT_ENV_NAMES.dockerSocket];
  if (socket !== undefined && socket !== "") {
    const origin: Origin = { source: "env", name: AGENT_ENV_NAMES.dockerSocket };
    requireDockerKind(registrations, origin);
    dockerSocketAlias(out.drivers, socket, origin);
  }
  return out;
}

/** One source's values, each checked; paths made absolute against `baseDir`. */
interface CheckedLayer {
  stateDir?: Sourced<string>;
  logLevel?: Sourced<LogLevel>;
  observeIntervalSeconds?: Sourced<number>;
  registryAuthFile?: Sourced<string>;
  drivers: ReturnType<typeof checkDriverSections>;
}

function checkPath(raw: RawValue, baseDir: string): Sourced<string> {
  const v = raw.value;
  if (typeof v !== "string" || v === "") throw invalidValue(raw.origin, "must be a non-empty string (a path)");
  if (v.length > MAX_PATH) throw invalidValue(raw.origin, `must be at most ${MAX_PATH} characters`);
  if (v.includes("\0")) throw invalidValue(raw.origin, "must not contain NUL bytes");
  return { value: resolve(baseDir, v), origin: raw.origin };
}

function checkLogLevel(raw: RawValue): Sourced<LogLevel> {
  if (typeof raw.value !== "string" || !(LOG_LEVELS as readonly string[]).includes(raw.value)) {
    throw invalidValue(raw.origin, `${JSON.stringify(raw.value)} is not one of ${LOG_LEVELS.join(", ")}`);
  }
  return { value: raw.value as LogLevel, origin: raw.origin };
}

function checkObserveInterval(raw: RawValue): Sourced<number> {
  const { min, max } = OBSERVE_INTERVAL_BOUNDS;
  let n = NaN;
  // Text must be plain decimal: "0x10", "1e3" or " 5" are more likely mistakes than intent.
  if (isText(raw.origin)) n = typeof raw.value === "string" && /^[0-9]{1,6}(\.[0-9]{1,3})?$/.test(raw.value) ? Number(raw.value) : NaN;
  else if (typeof raw.value === "number") n = raw.value;
  if (!Number.isFinite(n) || n < min || n > max) {
    const shown = typeof raw.value === "string" ? `"${raw.value}"` : JSON.stringify(raw.value);
    throw invalidValue(raw.origin, `${shown} is not a number of seconds from ${min} to ${max}`);
  }
  return { value: n, origin: raw.origin };
}

function checkLayer(raw: RawAgentConfig, baseDir: string, registrations: readonly DriverSettingsSource[]): CheckedLayer {
  const out: CheckedLayer = { drivers: checkDriverSections(raw.drivers, registrations) };
  if (raw.stateDir) out.stateDir = checkPath(raw.stateDir, baseDir);
  if (raw.logLevel) out.logLevel = checkLogLevel(raw.logLevel);
  if (raw.observeIntervalSeconds) out.observeIntervalSeconds = checkObserveInterval(raw.observeIntervalSeconds);
  if (raw.registryAuthFile) out.registryAuthFile = checkPath(raw.registryAuthFile, baseDir);
  return out;
}

function rawFromFile(file: RawConfigFile): RawAgentConfig {
  return { ...file.values, drivers: file.drivers };
}

function stateDirRequired(extra = ""): AgentError {
  return new AgentError("USAGE", "usage", `--state-dir is required (or set FERRY_AGENT_STATE_DIR)${extra}`);
}

/** Merges the sources and checks everything once. Throws AgentError (kind "usage") naming the value at fault. */
export function resolveAgentConfig(input: ResolveAgentConfigInput): AgentConfig {
  const cwd = input.cwd ?? process.cwd();
  const regs = input.registrations;
  checkRegistrations(regs);

  // Flags and environment are checked before any file is read: a mistyped flag is reported as such, whatever the
  // file holds.
  const rawFlags = rawFromFlags(input.flags, regs);
  const rawEnv = rawFromEnv(input.env, regs);
  const flags = checkLayer(rawFlags, cwd, regs);
  const env = checkLayer(rawEnv, cwd, regs);

  const origins: Record<string, Origin> = {};
  const explicit = rawFlags.config ?? rawEnv.config;
  let fileLayer: CheckedLayer = { drivers: {} };
  let configFile: string | null = null;
  const earlyStateDir = flags.stateDir ?? env.stateDir;
  if (explicit) {
    const path = checkPath(explicit, cwd).value;
    const file = readConfigFile(path, regs);
    fileLayer = checkLayer(rawFromFile(file), file.baseDir, regs);
    configFile = path;
    origins["configFile"] = explicit.origin;
  } else if (earlyStateDir) {
    const path = join(earlyStateDir.value, AGENT_CONFIG_FILE_NAME);
    if (existsSync(path)) {
      const file = readConfigFile(path, regs);
      // The file was found through the state directory; letting it name another would make the two disagree.
      if (file.values.stateDir) {
        throw invalidValue(file.values.stateDir.origin, `cannot be set in the state directory's own ${AGENT_CONFIG_FILE_NAME}; use --state-dir or FERRY_AGENT_STATE_DIR`);
      }
      fileLayer = checkLayer(rawFromFile(file), file.baseDir, regs);
      configFile = path;
      origins["configFile"] = { source: "default", name: `${AGENT_CONFIG_FILE_NAME} in the state directory` };
    }
  }
  if (configFile === null) origins["configFile"] = DEFAULT_ORIGIN;

  const layers = [flags, env, fileLayer];
  const pick = <K extends Exclude<keyof CheckedLayer, "drivers">>(key: K): CheckedLayer[K] => layers.map((l) => l[key]).find((v) => v !== undefined);

  const stateDir = pick("stateDir");
  if (!stateDir) throw stateDirRequired(explicit ? `, or stateDir in ${configFile ?? "the config file"}` : "");
  const logLevel = pick("logLevel") ?? { value: AGENT_CONFIG_DEFAULTS.logLevel, origin: DEFAULT_ORIGIN };
  const observe = pick("observeIntervalSeconds") ?? { value: AGENT_CONFIG_DEFAULTS.observeIntervalSeconds, origin: DEFAULT_ORIGIN };
  const registryAuthFile = pick("registryAuthFile");
  origins["stateDir"] = stateDir.origin;
  origins["logLevel"] = logLevel.origin;
  origins["observeIntervalSeconds"] = observe.origin;
  origins["registryAuthFile"] = registryAuthFile?.origin ?? DEFAULT_ORIGIN;
  const drivers = mergeDriverSections(layers.map((l) => l.drivers), regs, origins);

  return {
    stateDir: stateDir.value,
    logLevel: logLevel.value,
    observeIntervalSeconds: observe.value,
    registryAuthFile: registryAuthFile?.value ?? null,
    drivers,
    configFile,
    origins,
  };
}
