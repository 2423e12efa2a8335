// Composition root: resolved configuration in, wired components out. The CLI parses flags and environment and calls
// one of these; nothing here reads process.argv or process.env.
import type { EventEmitter } from "node:events";

import { readFile, stat } from "node:fs/promises";
import type { Logger } from "pino";
import { AgentError } from "./core/agent-error.js";
import type { AgentConfig } from "./config/agent-config.js";
import { enabledRegistrations } from "./config/driver-settings.js";

import { collectFacts } from "./core/facts.js";
import { enrol, type EnrolResult } from "./core/enrol.js";
import { Session, type SessionOptions, type SessionResult } from "./core/session.js";
import { StateDir } from "./core/state-dir.js";
import type { DriverRegistration } from "./drivers/driver.js";
import { DRIVER_REGISTRATIONS } from "./drivers/index.js";
import { DriverRegistry } from "./drivers/registry.js";
import { TaskRunner } from "./core/task-runner.js";
import { IdleCollector } from "./core/idle-collector.js";

export interface EnrolConfig extends RunConfig {
  /** Secret: never logged. */
  joinString: string;
  name?: string;
  force?: boolean;
}

/**
 * The agent's resolved configuration (config/agent-config.ts): flags > FERRY_AGENT_* environment > config file >
 * defaults, one section per driver. registryAuthFile holds registry credentials kept on the agent (Docker's
 * config.json form: {"auths": {"host:port": {"username", "password"} or {"auth": base64(user:pass)}}}), used for
 * registries the task brings no credentials for; never logged.
 */
export type RunConfig = AgentConfig;

type AgentRegistryAuth = { username?: string; password?: string; identityToken?: string };

/** Reads a Docker-style auth file; refuses one that others can read (it holds passwords). */
export async function readRegistryAuthFile(file: string): Promise<Map<string, AgentRegistryAuth>> {
  const st = await stat(file);
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
    throw new AgentError("REGISTRY_AUTH_INSECURE", "usage", `${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new AgentError("REGISTRY_AUTH_INVALID", "usage", `${file} is not valid JSON: ${(err as Error).message}`);
  }
  const auths = (parsed as { auths?: Record<string, { username?: unknown; password?: unknown; auth?: unknown; identitytoken?: unknown }> }).auths ?? {};
  const out = new Map<string, AgentRegistryAuth>();
  for (const [host, v] of Object.entries(auths)) {
    const entry: AgentRegistryAuth = {};
    if (typeof v.auth === "string") {
      const plain = Buffer.from(v.auth, "base64").toString("utf8");
      const i = plain.indexOf(":");
      if (i > 0) {
        entry.username = plain.slice(0, i);
        entry.password = plain.slice(i + 1);
      }
    }
    if (typeof v.username === "string") entry.username = v.username;
    if (typeof v.password === "string") entry.password = v.password;
    if (typeof v.identitytoken === "string") entry.identityToken = v.identitytoken;
    out.set(host.replace(/^https?:\/\//, "").replace(/\/.*$/, ""), entry);
  }
  return out;
}

export interface Runtime {
  logger: Logger;
  drivers?: DriverRegistry;
  /** Source of SIGINT/SIGTERM; default `process`. */
  signals?: Pick<EventEmitter, "on" | "off">;
  /** Extra session options (tests shorten intervals). */
  session?: Partial<Omit<SessionOptions, "stateDir" | "logger" | "facts">>;
}

export async function runEnrol(config: EnrolConfig, rt: Runtime): Promise<EnrolResult> {
  const drivers = rt.drivers ?? (await defaultDrivers(config, rt.logger));
  const opts: Parameters<typeof enrol>[0] = {
    joinString: config.joinString,
    stateDir: new StateDir(config.stateDir),
    facts: collectFacts(drivers),
    logger: rt.logger,
    force: config.force ?? false,
  };
  if (config.name !== undefined) opts.name = config.name;
  return enrol(opts);
}

/**
 * The drivers this host can run: each registered kind its config section enables (config.drivers, resolved with the
 * same registrations' schemas) whose target answers (an agent on a host without Docker does not advertise the docker
 * driver, so the control plane refuses to send it docker tasks). A kind's code is loaded only here, when it is enabled.
 */
export async function defaultDrivers(config: RunConfig, logger: Logger, registrations: readonly DriverRegistration[] = DRIVER_REGISTRATIONS): Promise<DriverRegistry> {
  const registry = new DriverRegistry();
  for (const reg of enabledRegistrations(config, registrations)) {
    const kind = reg.descriptor.kind;
    const driver = await reg.create({ logger, settings: config.drivers[kind]?.settings ?? {} });
    const up = await driver.available();
    if (up.ok) registry.register(driver, up.detail);
    else logger.warn({ kind, detail: up.detail }, `the ${kind} driver cannot reach its targets; it is not offered`);
  }
  return registry;
}

/** Runs the session until a signal stops it (resolves `stopped`) or it fails (resolves `failed`). */
export async function runAgent(config: RunConfig, rt: Runtime): Promise<SessionResult> {
  const drivers = rt.drivers ?? (await defaultDrivers(config, rt.logger));
  // The runner needs the session and the session's reports need the runner: tie the knot through a reference.
  const ref: { runner?: TaskRunner } = {};
  const session = new Session({
    ...rt.session,
    stateDir: new StateDir(config.stateDir),
    logger: rt.logger,
    facts: () => collectFacts(drivers),
    reports: {
      hello: () => ref.runner?.reports.hello() ?? { stickers: [], runningTaskIds: [] },
      heartbeat: () => ref.runner?.reports.heartbeat() ?? { runningTaskIds: [] },
    },
  });
  const agentAuth = config.registryAuthFile ? await readRegistryAuthFile(config.registryAuthFile) : new Map<string, AgentRegistryAuth>();
  const runner = await new TaskRunner({ stateDir: config.stateDir, session, drivers, logger: rt.logger, agentCredentials: (registry) => agentAuth.get(registry), observeEveryMs: config.observeIntervalSeconds * 1000 }).start();
  ref.runner = runner;
  const collector = new IdleCollector({ busy: () => runner.held().running > 0 });
  const signals = rt.signals ?? process;
  const onSignal = (signal: string): void => {
    rt.logger.info({ signal }, "signal received; stopping");
    void session.stop();
  };
  signals.on("SIGINT", onSignal);
  signals.on("SIGTERM", onSignal);
  try {
    return await session.run();
  } finally {
    signals.off("SIGINT", onSignal);
    signals.off("SIGTERM", onSignal);
    collector.stop();
    await runner.stop();
  }
}
