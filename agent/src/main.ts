// Composition root: resolved configuration in, wired components out. The CLI parses flags and environment and calls
// one of these; nothing here reads process.argv or process.env.
import type { EventEmitter } from "node:events";

import type { Logger } from "pino";

import { collectFacts } from "./core/facts.js";
import { enrol, type EnrolResult } from "./core/enrol.js";
import { Session, type SessionOptions, type SessionResult } from "./core/session.js";
import { StateDir } from "./core/state-dir.js";
import { StaticDriverRegistry, type DriverRegistry } from "./drivers/registry.js";

export interface EnrolConfig {
  /** Secret: never logged. */
  joinString: string;
  stateDir: string;
  name?: string;
  force?: boolean;
}

export interface RunConfig {
  stateDir: string;
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
  const drivers = rt.drivers ?? new StaticDriverRegistry();
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

/** Runs the session until a signal stops it (resolves `stopped`) or it fails (resolves `failed`). */
export async function runAgent(config: RunConfig, rt: Runtime): Promise<SessionResult> {
  const drivers = rt.drivers ?? new StaticDriverRegistry();
  const session = new Session({
    ...rt.session,
    stateDir: new StateDir(config.stateDir),
    logger: rt.logger,
    facts: () => collectFacts(drivers),
  });
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
  }
}
