// The agent's config has one section per driver: drivers.<kind> = { enabled?, ...settings }. The settings' schema is
// the driver registration's own (an ObjectSchema from @ferry/contract), so a driver is the single source of what its
// section may say; this file only knows how the four sources spell a driver setting:
//
//   flag   --driver docker.socket=/run/docker.sock        (repeatable; the key as in the file)
//   env    FERRY_AGENT_DRIVER_DOCKER_SOCKET=/run/docker.sock  (key in SCREAMING_SNAKE: STOP_TIMEOUT_SECONDS)
//   file   {"drivers": {"docker": {"socket": "/run/docker.sock"}}}
//
// Text from flags and the environment is parsed by the field's type (integer, boolean true/false, a comma-separated
// string-list, JSON for maps, objects and lists); the file's JSON values are taken as they are. Every value from every
// source is checked, even one a higher source overrides, so a broken file does not lie in wait for the day a flag is
// dropped. Unknown kinds and unknown keys are refused from every source.
import { checkObject, ConfigError, type FieldSpec, type ObjectSchema } from "@ferry/contract";

import { DEFAULT_ORIGIN, invalidValue, isText, type Origin, type RawValue } from "./origin.js";

/** What the resolver needs of a driver registration (DriverRegistration satisfies it). */
export interface DriverSettingsSource {
  descriptor: { readonly kind: string };
  settings: ObjectSchema;
  /** Whether the driver is tried when the config neither enables nor configures it. */
  enabledByDefault: boolean;
}

/** drivers.<kind>.<key> as one source gave them ("enabled" included). */
export type RawDriverSections = Record<string, Record<string, RawValue>>;

/** A value that passed its field's check, with where it came from. */
export interface Sourced<T> {
  value: T;
  origin: Origin;
}

export type CheckedDriverSections = Record<string, Record<string, Sourced<unknown>>>;

export interface DriverSection {
  /** Whether the agent tries this driver (it still offers it only when what it drives answers). */
  enabled: boolean;
  /** The settings that were given, checked with the registration's schema; unset keys take the driver's defaults. */
  settings: Record<string, unknown>;
}

const ENABLED = "enabled";
const ENABLED_SPEC: FieldSpec = { type: "boolean", doc: "whether the agent tries this driver" };
const KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
export const DRIVER_ENV_PREFIX = "FERRY_AGENT_DRIVER_";

/** The registrations a configuration enables: its `drivers.<kind>.enabled`, else the registration's default. */
export function enabledRegistrations<R extends { descriptor: { kind: string }; enabledByDefault: boolean }>(
  config: { drivers: Record<string, DriverSection> },
  registrations: readonly R[],
): R[] {
  return registrations.filter((reg) => config.drivers[reg.descriptor.kind]?.enabled ?? reg.enabledByDefault);
}

/**
 * Refuses a registration list the resolver cannot serve honestly: duplicate or odd kinds, a setting named "enabled"
 * (reserved for the section's switch), or a number without bounds (every number an operator can set is bounded).
 * These are faults of the build, not of the operator, so they are plain errors.
 */
export function checkRegistrations(registrations: readonly DriverSettingsSource[]): void {
  const seen = new Set<string>();
  for (const r of registrations) {
    const kind = r.descriptor.kind;
    if (!KIND_PATTERN.test(kind)) throw new Error(`driver registration: kind "${kind}" is not [a-z][a-z0-9-]*`);
    if (seen.has(kind)) throw new Error(`driver registration: kind "${kind}" is registered twice`);
    seen.add(kind);
    if (Object.hasOwn(r.settings.fields, ENABLED)) throw new Error(`driver registration ${kind}: the setting name "enabled" is reserved`);
    checkBounded(r.settings.fields, `drivers.${kind}`);
  }
}

function checkBounded(fields: Record<string, FieldSpec>, path: string): void {
  for (const [key, spec] of Object.entries(fields)) {
    if (spec.type === "integer" && (spec.min === undefined || spec.max === undefined)) {
      throw new Error(`driver registration: ${path}.${key} is a number without min and max`);
    }
    if (spec.type === "object") checkBounded(spec.fields, `${path}.${key}`);
    if (spec.type === "list") checkBounded(spec.items, `${path}.${key}[]`);
  }
}

function registrationFor(registrations: readonly DriverSettingsSource[], kind: string, origin: Origin): DriverSettingsSource {
  const r = registrations.find((x) => x.descriptor.kind === kind);
  if (!r) throw invalidValue(origin, `unknown driver kind "${kind}" (known: ${knownKinds(registrations)})`);
  return r;
}

function knownKinds(registrations: readonly DriverSettingsSource[]): string {
  return registrations.map((r) => r.descriptor.kind).join(", ") || "none";
}

function knownKeys(r: DriverSettingsSource): string[] {
  return [ENABLED, ...Object.keys(r.settings.fields)];
}

function requireKnownKey(r: DriverSettingsSource, key: string, origin: Origin): void {
  if (!knownKeys(r).includes(key)) {
    throw invalidValue(origin, `unknown setting "${key}" of driver ${r.descriptor.kind} (known: ${knownKeys(r).join(", ")})`);
  }
}

/** Adds one value to a source's sections; two spellings of one key in the same source must not disagree silently. */
export function addDriverValue(sections: RawDriverSections, kind: string, key: string, raw: RawValue): void {
  const section = (sections[kind] ??= {});
  const existing = section[key];
  // A repeated --driver flag for the same key: the last one wins, as with any repeated flag. Two different spellings
  // (--docker-socket and --driver docker.socket) in one source are a mistake worth stopping for.
  if (existing && existing.origin.name !== raw.origin.name) {
    throw invalidValue(raw.origin, `${existing.origin.name} also sets drivers.${kind}.${key}; keep one`);
  }
  section[key] = raw;
}

/** Parses one `--driver KIND.KEY=VALUE` flag into `sections`. */
export function addDriverFlag(sections: RawDriverSections, spec: string, registrations: readonly DriverSettingsSource[]): void {
  const eq = spec.indexOf("=");
  const target = eq < 0 ? spec : spec.slice(0, eq);
  const m = /^([^.]+)\.([^.]+)$/.exec(target);
  if (eq < 0 || !m) {
    // Only the part before "=" is echoed: what follows may be a secret.
    throw invalidValue({ source: "flag", name: "--driver" }, `"${target}" is not KIND.KEY=VALUE (e.g. --driver docker.socket=/run/docker.sock)`);
  }
  const [kind, key] = [m[1] as string, m[2] as string];
  const origin: Origin = { source: "flag", name: `--driver ${kind}.${key}` };
  const r = registrationFor(registrations, kind, origin);
  requireKnownKey(r, key, origin);
  const value = spec.slice(eq + 1);
  if (value === "") throw invalidValue(origin, "needs a value after \"=\" (leave the flag out to use the file's value or the default)");
  addDriverValue(sections, kind, key, { value, origin });
}

/** STOP_TIMEOUT_SECONDS → stopTimeoutSeconds. */
export function camelFromSnake(snake: string): string {
  return snake.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** stopTimeoutSeconds → STOP_TIMEOUT_SECONDS. */
export function snakeFromCamel(camel: string): string {
  return camel.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

export function driverEnvName(kind: string, key: string): string {
  return `${DRIVER_ENV_PREFIX}${kind.toUpperCase().replace(/-/g, "_")}_${snakeFromCamel(key)}`;
}

/** Reads every FERRY_AGENT_DRIVER_<KIND>_<KEY> variable into `sections`; empty variables count as unset. */
export function addDriverEnv(sections: RawDriverSections, env: NodeJS.ProcessEnv, registrations: readonly DriverSettingsSource[]): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(DRIVER_ENV_PREFIX) || value === undefined || value === "") continue;
    const origin: Origin = { source: "env", name };
    const rest = name.slice(DRIVER_ENV_PREFIX.length);
    // Kinds may contain "-" (spelt "_" here), so match whole kind prefixes instead of splitting at the first "_".
    const r = registrations.find((x) => rest.startsWith(`${x.descriptor.kind.toUpperCase().replace(/-/g, "_")}_`));
    if (!r) {
      throw invalidValue(origin, `no driver kind matches (known: ${knownKinds(registrations)}; the form is ${DRIVER_ENV_PREFIX}<KIND>_<KEY>)`);
    }
    const kind = r.descriptor.kind;
    const snake = rest.slice(kind.length + 1);
    const key = knownKeys(r).find((k) => snakeFromCamel(k) === snake);
    if (!key) {
      throw invalidValue(origin, `unknown setting of driver ${kind} (known: ${knownKeys(r).map((k) => driverEnvName(kind, k)).join(", ")})`);
    }
    addDriverValue(sections, kind, key, { value, origin });
  }
}

/**
 * Reads a file's `drivers` object into `sections`. `file` is the file's path for messages.
 */
export function addDriverFile(sections: RawDriverSections, drivers: unknown, file: string, registrations: readonly DriverSettingsSource[]): void {
  const at = (path: string): Origin => ({ source: "file", name: `${file} ${path}` });
  if (!isObject(drivers)) throw invalidValue(at("drivers"), "must be an object of driver sections ({\"docker\": {...}})");
  for (const [kind, section] of Object.entries(drivers)) {
    const r = registrationFor(registrations, kind, at(`drivers.${kind}`));
    if (!isObject(section)) throw invalidValue(at(`drivers.${kind}`), "must be an object");
    for (const [key, value] of Object.entries(section)) {
      const origin = at(`drivers.${kind}.${key}`);
      requireKnownKey(r, key, origin);
      addDriverValue(sections, kind, key, { value, origin });
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Text from a flag or variable, turned into the JSON value the field's type expects. */
function fromText(text: string, spec: FieldSpec, origin: Origin): unknown {
  switch (spec.type) {
    case "string":
      return text;
    case "integer":
      if (!/^-?[0-9]{1,15}$/.test(text)) throw invalidValue(origin, `"${text}" is not a whole number`);
      return Number(text);
    case "boolean":
      if (text === "true") return true;
      if (text === "false") return false;
      throw invalidValue(origin, `"${text}" is not true or false`);
    case "string-list":
      return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "string-map":
    case "object":
    case "list":
      try {
        return JSON.parse(text) as unknown;
      } catch {
        // No parser message: it quotes the text, which may hold a secret.
        throw invalidValue(origin, `is not valid JSON (a ${spec.type} is given as JSON text)`);
      }
  }
}

function checkValue(kind: string, key: string, raw: RawValue, schema: ObjectSchema): unknown {
  const spec = key === ENABLED ? ENABLED_SPEC : schema.fields[key];
  if (!spec) throw invalidValue(raw.origin, `unknown setting "${key}"`);
  if (raw.value === null) throw invalidValue(raw.origin, "must not be null (leave the setting out to use the default)");
  const value = isText(raw.origin) && typeof raw.value === "string" ? fromText(raw.value, spec, raw.origin) : raw.value;
  const path = `drivers.${kind}`;
  try {
    return checkObject({ [key]: value }, { fields: { [key]: spec } }, path)[key];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Keep the part of the path below the key (a nested field of an object setting), after the origin's own name.
    const below = err.path.slice(`${path}.${key}`.length);
    throw invalidValue({ ...raw.origin, name: `${raw.origin.name}${below}` }, err.problem);
  }
}

/** Checks every value of one source. */
export function checkDriverSections(sections: RawDriverSections, registrations: readonly DriverSettingsSource[]): CheckedDriverSections {
  const out: CheckedDriverSections = {};
  for (const [kind, section] of Object.entries(sections)) {
    const r = registrationFor(registrations, kind, DEFAULT_ORIGIN);
    const checked: Record<string, Sourced<unknown>> = {};
    for (const [key, raw] of Object.entries(section)) checked[key] = { value: checkValue(kind, key, raw, r.settings), origin: raw.origin };
    out[kind] = checked;
  }
  return out;
}

/**
 * Merges checked sources (highest first) into one section per registered driver, and records each value's origin
 * under "drivers.<kind>.<key>". A driver not switched on or off explicitly is enabled when any of its settings were
 * given (configuring a driver and having it ignored would surprise), else by its registration's default.
 */
export function mergeDriverSections(
  layers: readonly CheckedDriverSections[],
  registrations: readonly DriverSettingsSource[],
  origins: Record<string, Origin>,
): Record<string, DriverSection> {
  const out: Record<string, DriverSection> = {};
  for (const r of registrations) {
    const kind = r.descriptor.kind;
    const settings: Record<string, unknown> = {};
    const settingOrigins: Record<string, Origin> = {};
    for (const key of Object.keys(r.settings.fields)) {
      const won = layers.map((l) => l[kind]?.[key]).find((v) => v !== undefined);
      if (won === undefined) continue;
      settings[key] = won.value;
      settingOrigins[key] = won.origin;
    }
    const explicit = layers.map((l) => l[kind]?.[ENABLED]).find((v) => v !== undefined);
    let enabled: boolean;
    if (explicit) {
      enabled = explicit.value as boolean;
      origins[`drivers.${kind}.${ENABLED}`] = explicit.origin;
    } else if (!r.enabledByDefault && Object.keys(settings).length > 0) {
      enabled = true;
      origins[`drivers.${kind}.${ENABLED}`] = { source: "default", name: "implied: settings given" };
    } else {
      enabled = r.enabledByDefault;
      origins[`drivers.${kind}.${ENABLED}`] = DEFAULT_ORIGIN;
    }
    for (const [key, origin] of Object.entries(settingOrigins)) origins[`drivers.${kind}.${key}`] = origin;
    // Each value passed its own field check; the whole section is checked too, for required settings and the
    // schema's cross-field rules, but only when the driver will run (a switched-off driver needs nothing).
    if (enabled) checkSection(kind, settings, r.settings, settingOrigins);
    out[kind] = { enabled, settings };
  }
  return out;
}

function checkSection(kind: string, settings: Record<string, unknown>, schema: ObjectSchema, settingOrigins: Record<string, Origin>): void {
  const path = `drivers.${kind}`;
  try {
    checkObject(settings, schema, path);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const key = err.path.slice(path.length + 1).split(/[.[]/)[0] ?? "";
    const origin = settingOrigins[key];
    if (origin) throw invalidValue(origin, err.problem);
    throw invalidValue(
      { source: "default", name: err.path },
      `${err.problem} (set it with --driver ${kind}.${key}=…, ${driverEnvName(kind, key)}, or drivers.${kind}.${key} in the config file)`,
    );
  }
}
