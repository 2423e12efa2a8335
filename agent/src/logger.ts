// The agent's root logger: pino JSON on stdout (pretty-printed when stdout is a terminal), secrets redacted.
//
// The root logger is created once by the CLI and passed down; components derive children carrying fixed fields
// (agentId). Redaction is a safety net for key material and join secrets that end up in a logged object by
// accident; the code itself never logs them.
import { pino, type DestinationStream, type Logger } from "pino";
import pretty from "pino-pretty";

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
  if (usePretty) return pino(options, pretty({ colorize: true, sync: true }));
  return opts.destination === undefined ? pino(options) : pino(options, opts.destination);
}
