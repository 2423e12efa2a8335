// The agent's root logger: pino JSON on stdout (pretty-printed when stdout is a terminal), secrets redacted.
// pino-pretty is loaded only when output is pretty: an agent under a supervisor writes JSON and never pays for it.
//
// The root logger is created once by the CLI and passed down; components derive children carrying fixed fields
// (agentId). Redaction is a safety net for key material and join secrets that end up in a logged object by
// accident; the code itself never logs them.
import { pino, type DestinationStream, type Logger } from "pino";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const REDACT_PATHS = [
  "joinString",
  "join",
  "joinToken",
  "token",
  "privateKeyPem",
  "keyPem",
  "csrPem",
  "*.joinString",
  "*.join",
  "*.joinToken",
  "*.token",
  "*.privateKeyPem",
  "*.keyPem",
  "*.csrPem",
];

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default stdout. Tests pass a sink. */
  destination?: DestinationStream;
  /** Human-readable output; default: when stdout is a terminal and no destination is given. */
  pretty?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options = {
    name: "ferry-agent",
    level: opts.level ?? "info",
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
  };
  const usePretty = opts.pretty ?? (opts.destination === undefined && process.stdout.isTTY === true);
  if (usePretty) return pino(options, prettyStdout());
  return opts.destination === undefined ? pino(options) : pino(options, opts.destination);
}

/**
 * A destination that pretty-prints to stdout once pino-pretty is loaded (one import() on the first tick); lines
 * written before that are kept in order and written then. Should the import fail, the lines go out as JSON.
 */
function prettyStdout(): DestinationStream {
  let target: { write(line: string): unknown } | undefined;
  const pending: string[] = [];
  void import("pino-pretty").then(
    ({ default: pretty }) => pretty({ colorize: true, sync: true }),
    () => process.stdout,
  ).then((t) => {
    target = t;
    for (const line of pending.splice(0)) t.write(line);
  });
  return {
    write(line: string) {
      if (target) target.write(line);
      else pending.push(line);
    },
  };
}
