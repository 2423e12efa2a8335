// Messages between bench/api/main.ts and its child processes (Node IPC channel, JSON).
import type { Summary } from "./stats.js";

/** main → load generator: run one measurement. */
export interface LoadCommand {
  type: "run";
  label: string;
  baseUrl: string;
  /** Sent as "Authorization: Bearer …" when set. */
  token: string | null;
  /** Paths taken in turn (each connection starts at a different offset). */
  paths: string[];
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** A hard bound on requests in the measured window. */
  maxRequests: number;
}

export interface LoadResult {
  type: "result";
  label: string;
  latencyMs: Summary;
  requests: number;
  errors: number;
  /** First non-2xx status or error message seen, for the report. */
  firstError: string | null;
  elapsedMs: number;
  requestsPerSecond: number;
  meanResponseBytes: number;
}

export type ToGenerator = LoadCommand | { type: "exit" };

/** baseline server → main, once listening. */
export interface BaselineReady {
  type: "ready";
  url: string;
  fastifyVersion: string;
}
