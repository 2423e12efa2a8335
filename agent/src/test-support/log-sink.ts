// Captures a logger's JSON lines in memory so tests can assert on what was (and was not) logged.
import { Writable } from "node:stream";

import type { Logger } from "pino";

import { createLogger } from "../logger.js";

export interface LogSink {
  logger: Logger;
  stream: Writable;
  lines: () => Record<string, unknown>[];
  text: () => string;
}

export function logSink(level: "trace" | "debug" | "info" = "debug"): LogSink {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const logger = createLogger({ level, destination: stream, pretty: false });
  const text = (): string => chunks.join("");
  return {
    logger,
    stream,
    text,
    lines: () =>
      text()
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
