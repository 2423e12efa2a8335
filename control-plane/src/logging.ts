// pino, configured once. JSON lines by default (what log shippers want); pretty when stdout is a terminal.
// Secrets are redacted by path wherever they might appear in a logged object.
import { pino, type Logger } from "pino";

export const REDACT_PATHS = [
  "token",
  "secret",
  "joinToken",
  "joinString",
  "password",
  "keyPem",
  "privateKeyPem",
  "*.token",
  "*.secret",
  "*.joinToken",
  "*.joinString",
  "*.password",
  "*.keyPem",
  "*.privateKeyPem",
  "req.headers.authorization",
  "headers.authorization",
];

export function createLogger(opts: { level: string; format: "json" | "pretty" | "auto"; name?: string }): Logger {
  const pretty = opts.format === "pretty" || (opts.format === "auto" && process.stdout.isTTY === true);
  return pino({
    name: opts.name ?? "ferry",
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    ...(pretty ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } } : {}),
  });
}
