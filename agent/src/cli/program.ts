// The `ferry-agent` command line.
//
//   ferry-agent enrol --join STRING --state-dir DIR [--name NAME] [--force] [config options]
//   ferry-agent run --state-dir DIR [config options]
//   ferry-agent config --state-dir DIR [config options] [--json]    prints the resolved config and each value's source
//   ferry-agent node-flags COMMAND [COMMAND's options]    prints FERRY_AGENT_NODE_FLAGS as COMMAND should run with them
//   ferry-agent --version
//
// Config options (every command): --config FILE, --state-dir DIR, --log-level LEVEL, --observe-interval SECONDS,
// --registry-auth FILE, --driver KIND.KEY=VALUE (repeatable), --docker-socket PATH|off. They are resolved once, with
// FERRY_AGENT_* variables and the config file beneath them (config/agent-config.ts, docs/agent.md); FERRY_JOIN
// carries the join string. Exit codes, for installers and supervisors:
//   0 ok · 1 unreachable or internal failure · 2 usage or configuration error · 3 enrolment refused ·
//   4 revoked, unknown or expired identity: re-enrol (a supervisor should not restart on 4)
//
// stdout carries the JSON log (pretty-printed on a terminal) and nothing else, except for `config`, whose output is
// the config; one-line human summaries and errors go to stderr.
import type { EventEmitter } from "node:events";

import { Command, CommanderError, Option } from "commander";
import type { DestinationStream, Logger } from "pino";

import { resolveAgentConfig, type AgentConfig, type AgentFlags } from "../config/agent-config.js";
import { describeAgentConfig, formatConfigRows } from "../config/describe-config.js";
import { checkWebAssembly, nodeFlagsFor, webAssemblyUsers } from "../config/node-flags.js";
import { AgentError, isAgentError, type AgentErrorKind } from "../core/agent-error.js";
import { agentVersion } from "../core/facts.js";
import { createLogger, LOG_LEVELS, type LogLevel } from "../logger.js";
import { DRIVER_REGISTRATIONS } from "../drivers/index.js";
import { checkObject, ConfigError, dockerKind, type DockerRouteSplit, type ObjectSchema } from "@ferry/contract";
import { haproxyConfig } from "../routing/haproxy/haproxy-config.js";
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
  /** Relative paths resolve against it; default process.cwd(). */
  cwd?: string;
}

function pick(flag: unknown, env: string | undefined, name: string, envName: string): string {
  const value = typeof flag === "string" && flag !== "" ? flag : env;
  if (value === undefined || value === "") throw new AgentError("USAGE", "usage", `${name} is required (or set ${envName})`);
  return value;
}

/** The options every command takes: the agent's configuration, resolved by config/agent-config.ts. */
function withConfigOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--config <file>", "JSON config file (env FERRY_AGENT_CONFIG; default <state-dir>/agent.json when it exists)"))
    .addOption(new Option("--state-dir <dir>", "state directory for identity and keys (env FERRY_AGENT_STATE_DIR)"))
    .addOption(new Option("--log-level <level>", `log level: ${LOG_LEVELS.join(", ")} (env FERRY_AGENT_LOG_LEVEL; default info)`))
    .addOption(new Option("--observe-interval <seconds>", "how often targets with a sticker are checked for drift, 1 to 86400 (env FERRY_AGENT_OBSERVE_INTERVAL; default 60)"))
    .addOption(new Option("--registry-auth <file>", "registry credentials kept on this host, Docker config.json form, mode 0600 (env FERRY_AGENT_REGISTRY_AUTH)"))
    .addOption(
      new Option("--driver <kind.key=value>", "a driver setting, e.g. docker.socket=/run/docker.sock or docker.enabled=false; repeatable (env FERRY_AGENT_DRIVER_<KIND>_<KEY>)")
        .argParser((v: string, previous: string[] | undefined) => [...(previous ?? []), v]),
    )
    .addOption(new Option("--docker-socket <path>", "same as --driver docker.socket=PATH; \"off\" is --driver docker.enabled=false (env FERRY_AGENT_DOCKER_SOCKET)"));
}

function agentFlags(opts: Record<string, unknown>): AgentFlags {
  const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  const flags: AgentFlags = {};
  const set = <K extends Exclude<keyof AgentFlags, "driver">>(key: K, v: unknown): void => {
    const t = text(v);
    if (t !== undefined) flags[key] = t;
  };
  set("config", opts.config);
  set("stateDir", opts.stateDir);
  set("logLevel", opts.logLevel);
  set("observeInterval", opts.observeInterval);
  set("registryAuth", opts.registryAuth);
  set("dockerSocket", opts.dockerSocket);
  if (Array.isArray(opts.driver)) flags.driver = opts.driver.filter((d): d is string => typeof d === "string");
  return flags;
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

  // The same registrations check the driver sections here and create the drivers in main.ts (defaultDrivers).
  const registrations = DRIVER_REGISTRATIONS;
  const resolve = (opts: Record<string, unknown>): AgentConfig =>
    resolveAgentConfig({ flags: agentFlags(opts), env, registrations, ...(io.cwd !== undefined ? { cwd: io.cwd } : {}) });

  withConfigOptions(
    program
      .command("enrol")
      .alias("enroll")
      .description("enrol this host with a control plane using a join string from `ferry token create`")
      .addOption(new Option("--join <string>", "join string (env FERRY_JOIN; prefer the environment: flags show in ps)"))
      .option("--name <name>", "display name of this agent (default: host name)")
      .option("--force", "replace an identity already in the state directory", false),
  ).action(async (opts: Record<string, unknown>) => {
    const joinString = pick(opts.join, env.FERRY_JOIN, "--join", "FERRY_JOIN");
    const config = resolve(opts);
    checkWebAssembly(webAssemblyUsers(config, registrations));
    const lg = makeLogger(config.logLevel);
    // The drivers' sections matter here too: the host facts sent with the enrolment list the drivers this agent runs.
    const enrolConfig: Parameters<typeof runEnrol>[0] = { ...config, joinString, force: opts.force === true };
    if (typeof opts.name === "string") enrolConfig.name = opts.name;
    const result = await runEnrol(enrolConfig, runtime(lg));
    // stdout carries JSON log lines only (log shippers, jq); the human summary goes beside the errors.
    stderr.write(
      `enrolled as agent ${result.identity.agentId}` +
        (result.identity.environment ? ` in environment ${result.identity.environment}` : "") +
        `; start it with: ferry-agent run --state-dir ${config.stateDir}\n`,
    );
  });

  withConfigOptions(program.command("run").description("run the agent: connect to the control plane and keep the session")).action(
    async (opts: Record<string, unknown>) => {
      const config = resolve(opts);
      checkWebAssembly(webAssemblyUsers(config, registrations));
      const lg = makeLogger(config.logLevel);
      lg.info({ version: agentVersion(), node: process.version, nodeFlags: process.execArgv }, "starting");
      lg.debug({ config: describeAgentConfig(config, registrations) }, "configuration resolved");
      const result = await runAgent(config, runtime(lg));
      if (result.state === "failed") throw result.error;
    },
  );

  withConfigOptions(
    program
      .command("config")
      .description("print the configuration `run` would use, with where each value came from (secrets redacted)")
      .option("--json", "print JSON: [{key, value, source, from}]", false),
  ).action((opts: Record<string, unknown>) => {
    const rows = describeAgentConfig(resolve(opts), registrations);
    stdout.write(opts.json === true ? `${JSON.stringify(rows, (_k, v: unknown) => (v === undefined ? null : v), 2)}\n` : formatConfigRows(rows));
  });

  // The wrapper (installers/linux/install.sh) and the image's entry point call this before `run` and `enrol` when the
  // flags hold --jitless, passing the command line they were given: the command's own options (--join, --force …)
  // are ignored, the config options are resolved as the command would.
  withConfigOptions(
    program
      .command("node-flags")
      .description("print FERRY_AGENT_NODE_FLAGS as COMMAND should run with them under this configuration (docs/agent.md, \"Node flags\")")
      .argument("[command...]", "the command line the flags are for (its own options are ignored)")
      .allowUnknownOption(),
  ).action((_command: string[], opts: Record<string, unknown>) => {
    const config = resolve(opts);
    stdout.write(`${nodeFlagsFor(env.FERRY_AGENT_NODE_FLAGS ?? "", webAssemblyUsers(config, registrations))}\n`);
  });

  program
    .command("router")
    .description("the host router in front of routed targets (docs/rollouts.md)")
    .command("haproxy-config")
    .description("print the HAProxy configuration for one routed service (docs/rollouts.md#setting-up-haproxy)")
    .requiredOption("--service <name>", "the route's service name ([a-z0-9][a-z0-9_-]*)")
    .requiredOption("--listen <host:port>", "where HAProxy listens for the service's clients")
    .requiredOption("--blue <port>", "the blue slot's loopback port")
    .requiredOption("--green <port>", "the green slot's loopback port")
    .option("--socket <path>", "the admin runtime socket the agent uses", "/run/haproxy/ferry.sock")
    .option("--maintenance-map <path>", "the map file of maintenance messages", "/etc/haproxy/ferry-maintenance.map")
    .option("--split-cookie <name>", "A/B split: the cookie that recognises a user (the target's route.split)")
    .option("--split-header <name>", "A/B split: the header that recognises a user (the target's route.split)")
    .option("--split-map <path>", "the map file of A/B splits", "/etc/haproxy/ferry-split.map")
    .action((opts: Record<string, string>) => {
      // Checked with the docker descriptor's own route schema, so what this prints fits a target's config.
      const routeSchema = dockerKind.config.fields["route"] as unknown as ObjectSchema;
      const port = (s: string | undefined): unknown => (s !== undefined && /^\d{1,5}$/.test(s) ? Number(s) : s);
      let route: Record<string, unknown>;
      try {
        if (opts.splitCookie !== undefined && opts.splitHeader !== undefined) throw new ConfigError("--split-cookie", "a split goes by a cookie or by a header, not both");
        const split = opts.splitCookie !== undefined ? { by: "cookie", name: opts.splitCookie } : opts.splitHeader !== undefined ? { by: "header", name: opts.splitHeader } : undefined;
        route = checkObject({ service: opts.service, listen: opts.listen, slots: { blue: port(opts.blue), green: port(opts.green) }, ...(split ? { split } : {}) }, routeSchema, "route");
        for (const [k, flag] of [["socket", "--socket"], ["maintenanceMap", "--maintenance-map"], ["splitMap", "--split-map"]] as const) {
          if (!/^\/[^\s]{0,4095}$/.test(opts[k] ?? "")) throw new ConfigError(flag, "must be an absolute path without spaces");
        }
      } catch (err) {
        if (err instanceof ConfigError) throw new AgentError("USAGE", "usage", err.message);
        throw err;
      }
      const slots = route["slots"] as { blue: number; green: number };
      stdout.write(
        haproxyConfig({ socket: opts.socket!, maintenanceMap: opts.maintenanceMap!, ...(route["split"] ? { splitMap: opts.splitMap! } : {}) }, [
          {
            name: route["service"] as string,
            listen: route["listen"] as string,
            slots: { blue: { address: "127.0.0.1", port: slots.blue }, green: { address: "127.0.0.1", port: slots.green } },
            ...(route["split"] ? { split: route["split"] as DockerRouteSplit } : {}),
          },
        ]),
      );
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
