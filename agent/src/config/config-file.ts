// The agent's JSON config file: `--config FILE`, FERRY_AGENT_CONFIG, or <state-dir>/agent.json when it exists.
//
//   {
//     "logLevel": "info",
//     "observeIntervalSeconds": 60,
//     "registryAuthFile": "/etc/ferry-agent/registry-auth.json",
//     "drivers": { "docker": { "socket": "/run/docker.sock", "stopTimeoutSeconds": 30 } }
//   }
//
// The file holds no secret itself (registry passwords stay in the registryAuthFile, mode 0600), but it decides which
// Docker Engine the agent deploys to and which credentials file it reads. Whoever can write it steers the agent, so it
// is refused when its group or others may write it, or when it belongs to someone other than the agent's own user or
// root. Reading it is harmless, so 0644 is fine. Relative paths in it are resolved against the file's directory.
import { readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";

import { AgentError } from "../core/agent-error.js";
import { addDriverFile, type DriverSettingsSource, type RawDriverSections } from "./driver-settings.js";
import { invalidValue, type Origin, type RawValue } from "./origin.js";

/** Far above any real config; stops a mistyped path (a log, a disk image) from being read into memory. */
export const CONFIG_FILE_MAX_BYTES = 64 * 1024;

export const FILE_KEYS = ["stateDir", "logLevel", "observeIntervalSeconds", "registryAuthFile", "drivers"] as const;
export type FileKey = (typeof FILE_KEYS)[number];

/** What one file says: every key optional, values as the JSON has them. */
export interface RawConfigFile {
  path: string;
  /** Relative paths in the file are resolved against this directory. */
  baseDir: string;
  values: Partial<Record<Exclude<FileKey, "drivers">, RawValue>>;
  drivers: RawDriverSections;
}

export function readConfigFile(path: string, registrations: readonly DriverSettingsSource[]): RawConfigFile {
  const whole: Origin = { source: "file", name: path };
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw invalidValue(whole, "is not a regular file");
    if (st.size > CONFIG_FILE_MAX_BYTES) throw invalidValue(whole, `is ${st.size} bytes; a config file may have at most ${CONFIG_FILE_MAX_BYTES}`);
    if (process.platform !== "win32") {
      if ((st.mode & 0o022) !== 0) {
        throw new AgentError(
          "CONFIG_INSECURE",
          "usage",
          `${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); it decides where the agent deploys and which credentials it reads: chmod go-w it`,
        );
      }
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
        throw new AgentError("CONFIG_INSECURE", "usage", `${path} belongs to uid ${st.uid}, neither this agent's user (uid ${uid}) nor root; chown it`);
      }
    }
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw invalidValue(whole, `cannot be read: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch (err) {
    throw invalidValue(whole, `is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw invalidValue(whole, "must hold a JSON object");
  const out: RawConfigFile = { path, baseDir: dirname(path), values: {}, drivers: {} };
  for (const [key, value] of Object.entries(parsed)) {
    const origin: Origin = { source: "file", name: `${path} ${key}` };
    if (!(FILE_KEYS as readonly string[]).includes(key)) throw invalidValue(origin, `unknown setting (known: ${FILE_KEYS.join(", ")})`);
    if (key === "drivers") addDriverFile(out.drivers, value, path, registrations);
    else out.values[key as Exclude<FileKey, "drivers">] = { value, origin };
  }
  return out;
}
