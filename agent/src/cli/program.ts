// The `ferry-agent` command line.
//
//   ferry-agent enrol --join STRING --state-dir DIR [--name NAME] [--force]
//   ferry-agent run --state-dir DIR [--log-level info]
//   ferry-agent --version
//
// Flags win over the environment (FERRY_JOIN, FERRY_AGENT_STATE_DIR, FERRY_AGENT_LOG_LEVEL). Exit codes, for
// installers and supervisors:
//   0 ok · 1 unreachable or internal failure · 2 usage or configuration error · 3 enrolment refused ·
//   4 revoked, unknown or expired identity: re-enrol (a supervisor should not restart on 4)
//
// stdout carries the JSON log (pretty-printed on a terminal) and nothing else; one-line human summaries and errors
// go to stderr.
import type { EventEmitter } from "node:events";

import { Command, CommanderError, Option } from "commander";
import type { DestinationStream, Logger } from "pino";

import { AgentError, isAgentError, type AgentErrorKind } from "../core/agent-error.js";
import { agentVersion } from "../core/facts.js";
import { createLogger, LOG_LEVELS, type LogLevel } from "../logger.js";
import { runAgent, runEnrol, type Runtime } from "../main.js";

export const EXIT = { ok: 0, failure: 1, usage: 2, refused: 3, reenrol: 4 } as const;

const EXIT_BY_KIND: Record<AgentErrorKind, number> = {
  usage: EXIT.usage,
  refused: EXIT.refused,
  reenrol: EXIT.reenrol,
  unavailable: EXIT.failure,
  internal: EXIT.failure,
};

export interface CliIo {
  stdout?: { write(s: string): unknown };
  stderr?: { write(s: string): unknown };
  env?: NodeJS.ProcessEnv;
  /** Log sink instead of stdout (tests). */
  logDestination?: DestinationStream;
  signals?: Pick<EventEmitter, "on" | "off">;
  /** Extra runtime wiring (tests shorten session intervals). */
  runtime?: Partial<Omit<Runtime, "logger">>;
}

function usage(message: string): AgentError {
  return new AgentError("USAGE", "usage", message);
}

function pick(flag: unknown, env: string | undefined, name: string, envName: string): string {
  const value = typeof flag === "string" && flag !== "" ? flag : env;
  if (value === undefined || value === "") throw usage(`${name} is required (or set ${envName})`);
  return value;
}

function level(flag: unknown, env: string | undefined): LogLevel {
  const value = typeof flag === "string" ? flag : (env ?? "info");
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw usage(`log level "${value}" is not one of ${LOG_LEVELS.join(", ")}`);
  }
  return value as LogLevel;
}

/** Parses `args` (without node and script) and runs the command. Returns the exit code; never calls process.exit. */
export async function runCli(args: string[], io: CliIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  let exitCode: number = EXIT.ok;
  let logger: Logger | undefined;

  const makeLogger = (lvl: LogLevel): Logger => {
    logger = createLogger(io.logDestination === undefined ? { level: lvl } : { level: lvl, destination: io.logDestination });
    return logger;
  };
  const runtime = (lg: Logger): Runtime => ({ ...io.runtime, logger: lg, ...(io.signals ? { signals: io.signals } : {}) });

  const program = new Command("ferry-agent")
    .description("Ferry agent: enrols this host with a Ferry control plane and keeps its session")
    .version(agentVersion(), "-V, --version", "print the agent version")
    .exitOverride()
    .configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s) })
    .showHelpAfterError("(run ferry-agent --help for usage)");

  program
    .command("enrol")
    .alias("enroll")
    .description("enrol this host with a control plane using a join string from `ferry token create`")
    .addOption(new Option("--join <string>", "join string (env FERRY_JOIN; prefer the environment: flags show in ps)"))
    .addOption(new Option("--state-dir <dir>", "state directory for identity and keys (env FERRY_AGENT_STATE_DIR)"))
    .option("--name <name>", "display name of this agent (default: host name)")
    .option("--force", "replace an identity already in the state directory", false)
    .addOption(new Option("--log-level <level>", "log level (env FERRY_AGENT_LOG_LEVEL)").choices(LOG_LEVELS))
    .action(async (opts: Record<string, unknown>) => {
      const stateDir = pick(opts.stateDir, env.FERRY_AGENT_STATE_DIR, "--state-dir", "FERRY_AGENT_STATE_DIR");
      const joinString = pick(opts.join, env.FERRY_JOIN, "--join", "FERRY_JOIN");
      const lg = makeLogger(level(opts.logLevel, env.FERRY_AGENT_LOG_LEVEL));
      const config: Parameters<typeof runEnrol>[0] = { joinString, stateDir, force: opts.force === true };
      if (typeof opts.name === "string") config.name = opts.name;
      const result = await runEnrol(config, runtime(lg));
      // stdout carries JSON log lines only (log shippers, jq); the human summary goes beside the errors.
      stderr.write(
        `enrolled as agent ${result.identity.agentId}` +
          (result.identity.environment ? ` in environment ${result.identity.environment}` : "") +
          `; start it with: ferry-agent run --state-dir ${stateDir}\n`,
      );
    });

  program
    .command("run")
    .description("run the agent: connect to the control plane and keep the session")
    .addOption(new Option("--state-dir <dir>", "state directory written by `enrol` (env FERRY_AGENT_STATE_DIR)"))
    .addOption(new Option("--log-level <level>", "log level (env FERRY_AGENT_LOG_LEVEL)").choices(LOG_LEVELS))
    .addOption(new Option("--docker-socket <path>", "Docker Engine socket, or \"off\" (env FERRY_AGENT_DOCKER_SOCKET; default DOCKER_HOST's unix socket, else /var/run/docker.sock)"))
    .addOption(new Option("--registry-auth <file>", "registry credentials kept on this host, Docker config.json form, mode 0600 (env FERRY_AGENT_REGISTRY_AUTH)"))
    .addOption(new Option("--observe-interval <seconds>", "how often targets with a sticker are checked for drift (env FERRY_AGENT_OBSERVE_INTERVAL; default 60)"))
    .action(async (opts: Record<string, unknown>) => {
      const stateDir = pick(opts.stateDir, env.FERRY_AGENT_STATE_DIR, "--state-dir", "FERRY_AGENT_STATE_DIR");
      const lg = makeLogger(level(opts.logLevel, env.FERRY_AGENT_LOG_LEVEL));
      const dockerSocket = (opts.dockerSocket as string | undefined) ?? env.FERRY_AGENT_DOCKER_SOCKET;
      const registryAuthFile = (opts.registryAuth as string | undefined) ?? env.FERRY_AGENT_REGISTRY_AUTH;
      const observeText = (opts.observeInterval as string | undefined) ?? env.FERRY_AGENT_OBSERVE_INTERVAL;
      let observeEveryMs: number | undefined;
      if (observeText !== undefined) {
        const seconds = Number(observeText);
        if (!Number.isFinite(seconds) || seconds < 1 || seconds > 86_400) {
          throw new AgentError("USAGE", "usage", `--observe-interval: "${observeText}" is not a number of seconds from 1 to 86400`);
        }
        observeEveryMs = seconds * 1000;
      }
      const result = await runAgent(
        { stateDir, ...(dockerSocket ? { dockerSocket } : {}), ...(registryAuthFile ? { registryAuthFile } : {}), ...(observeEveryMs ? { observeEveryMs } : {}) },
        runtime(lg),
      );
      if (result.state === "failed") throw result.error;
    });

  try {
    await program.parseAsync(args, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version "errors" are successes; everything else commander reports is a usage error.
      exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else if (isAgentError(err)) {
      exitCode = EXIT_BY_KIND[err.kind];
      stderr.write(`ferry-agent: ${err.code}: ${err.message}\n`);
    } else {
      exitCode = EXIT.failure;
      logger?.error({ err }, "unexpected failure");
      stderr.write(`ferry-agent: ${(err as Error).message ?? String(err)}\n`);
    }
  }
  logger?.flush();
  return exitCode;
}
