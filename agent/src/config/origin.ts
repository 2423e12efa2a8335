// Where a configuration value came from. Every error about a value names its origin, and `ferry-agent config` shows
// the origin of each value that won, so an operator can tell which of four places to fix.
import { AgentError } from "../core/agent-error.js";

export type SourceKind = "flag" | "env" | "file" | "default";

export interface Origin {
  source: SourceKind;
  /**
   * The flag, variable or file key as the operator wrote it: "--observe-interval", "--driver docker.socket",
   * "FERRY_AGENT_DRIVER_DOCKER_SOCKET", "/var/lib/ferry-agent/agent.json drivers.docker.socket", "default".
   * Never the value itself (a value may be a secret).
   */
  name: string;
}

/** One value as a source gave it: text from flags and the environment, a JSON value from the file. */
export interface RawValue {
  value: unknown;
  origin: Origin;
}

export const DEFAULT_ORIGIN: Origin = { source: "default", name: "default" };

/** Flags and environment variables carry text that is parsed per the setting's type; the file carries JSON. */
export function isText(origin: Origin): boolean {
  return origin.source === "flag" || origin.source === "env";
}

/** A value that cannot be used, named by where it came from. Exit 2: an operator must change the configuration. */
export function invalidValue(origin: Origin, problem: string): AgentError {
  return new AgentError("CONFIG_INVALID", "usage", `${origin.name}: ${problem}`);
}
