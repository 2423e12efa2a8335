// `ferry-agent config`: the resolved configuration with each value's origin, so an operator can see which of flags,
// environment, file and defaults won. Driver settings left unset are listed too (with "driver default"), so the
// output doubles as the list of what can be set.
//
// Settings hold no secrets today (registry passwords stay in the registryAuthFile), but a driver may add one, so any
// setting whose name says it is secret is shown as "***" — in the text and in the JSON alike.
import type { AgentConfig } from "./agent-config.js";
import type { DriverSettingsSource } from "./driver-settings.js";
import type { SourceKind } from "./origin.js";

export interface ConfigRow {
  key: string;
  /** undefined: not set (no value, the driver's default applies). */
  value: unknown;
  source: SourceKind;
  /** The flag, variable or file key, "default" or "driver default". */
  from: string;
}

const SECRET_NAME = /password|secret|token|credential|private/i;
export const REDACTED = "***";

export function describeAgentConfig(config: AgentConfig, registrations: readonly DriverSettingsSource[]): ConfigRow[] {
  const rows: ConfigRow[] = [];
  const add = (key: string, value: unknown): void => {
    const origin = config.origins[key];
    const leaf = key.slice(key.lastIndexOf(".") + 1);
    rows.push({
      key,
      value: value !== undefined && SECRET_NAME.test(leaf) ? REDACTED : value,
      source: origin?.source ?? "default",
      from: origin?.name ?? (value === undefined ? "driver default" : "default"),
    });
  };
  add("configFile", config.configFile);
  add("stateDir", config.stateDir);
  add("logLevel", config.logLevel);
  add("observeIntervalSeconds", config.observeIntervalSeconds);
  add("registryAuthFile", config.registryAuthFile);
  // Plain code-unit order (kinds are ASCII names): localeCompare would load ICU's collation data, megabytes of the
  // node binary made resident for the life of the agent for one sort at start-up (docs/performance.md, "Footprint").
  for (const r of [...registrations].sort((a, b) => (a.descriptor.kind < b.descriptor.kind ? -1 : a.descriptor.kind > b.descriptor.kind ? 1 : 0))) {
    const kind = r.descriptor.kind;
    const section = config.drivers[kind];
    if (!section) continue;
    add(`drivers.${kind}.enabled`, section.enabled);
    for (const key of Object.keys(r.settings.fields)) add(`drivers.${kind}.${key}`, section.settings[key]);
  }
  return rows;
}

function show(value: unknown): string {
  if (value === undefined) return "-";
  if (value === null) return "(none)";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Three aligned columns: key, value, where it came from. */
export function formatConfigRows(rows: readonly ConfigRow[]): string {
  const cells = rows.map((r) => [r.key, show(r.value), r.from] as const);
  const w0 = Math.max(...cells.map((c) => c[0].length));
  const w1 = Math.max(...cells.map((c) => c[1].length));
  return cells.map(([k, v, f]) => `${k.padEnd(w0)}  ${v.padEnd(w1)}  ${f}`.trimEnd()).join("\n") + "\n";
}
