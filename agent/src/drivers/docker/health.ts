// Waiting for a freshly started container to become healthy.
//
// Four kinds of check (config.healthCheck.type):
//   docker  the container's own HEALTHCHECK state, as the engine reports it (healthy / unhealthy / starting)
//   http    GET url until it answers 2xx
//   tcp     connect to 127.0.0.1:port until it accepts (targets use host networking, so the port is the host's)
//   none    the container is still running after a short settle time
//
// Every poll also looks at the container itself: a container that exits or restarts fails the check at once (with
// its exit code and the tail of its output) instead of waiting out the timeout. On failure the result carries what
// the check saw last — the engine's health log, the last HTTP status and a body snippet, or the last connect error —
// because "unhealthy" alone tells an operator nothing.
//
// Probes start fast (the first at once, then after 250 ms, 500 ms, ...) and back off to the configured interval: most
// services are up within a second, and a deploy should not pay a full interval for the first answer.
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

import type { HealthCheckType } from "./config.js";

export const DEFAULT_HEALTH_TIMEOUT_MS = 60_000;
export const DEFAULT_HEALTH_INTERVAL_MS = 1_000;
/** How long a container must keep running to pass a "none" check. */
export const DEFAULT_SETTLE_MS = 2_000;
const FIRST_PROBE_DELAY_MS = 250;
const SNIPPET_CHARS = 512;

export interface ResolvedHealthCheck {
  type: HealthCheckType;
  url?: string;
  port?: number;
  timeoutMs: number;
  intervalMs: number;
  /** Why this check was chosen when the config named none ("the image defines a HEALTHCHECK", ...). */
  chosenBecause?: string;
}

/** The slice of container state a check needs (from a container inspect). */
export interface ContainerHealthState {
  running: boolean;
  restarting: boolean;
  status: string;
  exitCode: number;
  error?: string;
  /** The engine's HEALTHCHECK state; undefined when the image defines none. */
  health?: { status: string; log: HealthLogEntry[] };
}

export interface HealthLogEntry {
  start: string;
  exitCode: number;
  output: string;
}

export interface HealthTarget {
  state(): Promise<ContainerHealthState>;
  /** The last lines the container printed, for a failure report. */
  logsTail(): Promise<string>;
}

export interface HealthResult {
  ok: boolean;
  type: HealthCheckType;
  attempts: number;
  elapsedMs: number;
  /** One line: what passed, or why it failed. */
  summary: string;
  /** What the check saw last (HTTP status and body, connect error, engine health log, container exit). */
  observed: Record<string, unknown>;
}

function snippet(s: string): string {
  const t = s.trim();
  return t.length > SNIPPET_CHARS ? `${t.slice(0, SNIPPET_CHARS)}…` : t;
}

async function httpProbe(url: string, timeoutMs: number, signal: AbortSignal): Promise<{ ok: boolean; observed: Record<string, unknown> }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), redirect: "manual" });
    const body = snippet(await res.text());
    return { ok: res.status >= 200 && res.status < 300, observed: { status: res.status, body } };
  } catch (err) {
    signal.throwIfAborted();
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, observed: { error: cause?.code ?? cause?.message ?? (err as Error).message } };
  }
}

function tcpProbe(port: number, timeoutMs: number): Promise<{ ok: boolean; observed: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (ok: boolean, observed: Record<string, unknown>) => {
      socket.destroy();
      resolve({ ok, observed });
    };
    socket.setTimeout(timeoutMs, () => done(false, { error: `no connection within ${timeoutMs} ms` }));
    socket.once("connect", () => done(true, { connected: `127.0.0.1:${port}` }));
    socket.once("error", (err: NodeJS.ErrnoException) => done(false, { error: err.code ?? err.message }));
  });
}

/**
 * Polls until the check passes, fails for good, or times out. Throws only when `signal` aborts (with its reason);
 * every other outcome is a HealthResult.
 */
export async function waitHealthy(
  check: ResolvedHealthCheck,
  target: HealthTarget,
  signal: AbortSignal,
  opts: { settleMs?: number; log?: (line: string) => void } = {},
): Promise<HealthResult> {
  const started = Date.now();
  const deadline = started + check.timeoutMs;
  const settleMs = Math.min(opts.settleMs ?? DEFAULT_SETTLE_MS, check.timeoutMs);
  const log = opts.log ?? (() => undefined);
  let attempts = 0;
  let observed: Record<string, unknown> = {};
  let delay = FIRST_PROBE_DELAY_MS;
  let lastLogged = "";

  const result = (ok: boolean, summary: string): HealthResult => ({ ok, type: check.type, attempts, elapsedMs: Date.now() - started, summary, observed });

  for (;;) {
    signal.throwIfAborted();
    attempts++;
    const remaining = deadline - Date.now();
    const probeTimeout = Math.max(500, Math.min(check.intervalMs, 10_000, remaining));
    // An http or tcp probe goes out together with the read of the container's state, not after it: the two are
    // independent, and the state still decides first (a container that is gone fails the check whatever the probe
    // saw). Neither probe rejects except on abort, which the `await` below rethrows.
    const probing = check.type === "http" ? httpProbe(check.url ?? "", probeTimeout, signal) : check.type === "tcp" ? tcpProbe(check.port ?? 0, probeTimeout) : undefined;
    probing?.catch(() => undefined);
    const state = await target.state();
    if (!state.running || state.restarting) {
      const logs = await target.logsTail().catch((err: unknown) => `(could not read the container's output: ${(err as Error).message})`);
      observed = { ...observed, container: { status: state.status, exitCode: state.exitCode, ...(state.error ? { error: state.error } : {}), logs: snippet(logs) } };
      return result(false, `the container is ${state.restarting ? "restarting" : state.status} (exit code ${state.exitCode}) instead of running`);
    }

    let ok = false;
    switch (check.type) {
      case "docker": {
        if (!state.health) {
          observed = { error: "the image defines no HEALTHCHECK" };
          return result(false, "healthCheck.type is docker but the image defines no HEALTHCHECK");
        }
        observed = { status: state.health.status, log: state.health.log.slice(-5).map((e) => ({ ...e, output: snippet(e.output) })) };
        if (state.health.status === "healthy") ok = true;
        // The engine has already applied the image's retries before it says unhealthy.
        else if (state.health.status === "unhealthy") return result(false, "the container's HEALTHCHECK reports unhealthy");
        break;
      }
      case "http": {
        const r = await probing!;
        ok = r.ok;
        observed = { url: check.url, ...r.observed };
        break;
      }
      case "tcp": {
        const r = await probing!;
        ok = r.ok;
        observed = { port: check.port, ...r.observed };
        break;
      }
      case "none": {
        observed = { runningForMs: Date.now() - started };
        ok = Date.now() - started >= settleMs;
        break;
      }
    }
    if (ok) return result(true, check.type === "none" ? `running for ${Date.now() - started} ms` : `healthy after ${attempts} probe(s)`);

    // One log line per change of what the probe sees, not one per probe.
    const line = JSON.stringify(observed);
    if (line !== lastLogged && check.type !== "none") {
      log(`health: not yet healthy: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`);
      lastLogged = line;
    }
    if (Date.now() >= deadline) return result(false, `not healthy within ${Math.round(check.timeoutMs / 1000)} s`);
    const wait = Math.min(delay, check.intervalMs, Math.max(0, deadline - Date.now()));
    delay *= 2;
    // timers/promises rejects with its own AbortError; callers get the signal's reason, as from throwIfAborted.
    await sleep(wait, undefined, { signal }).catch((err: unknown) => {
      signal.throwIfAborted();
      throw err;
    });
  }
}
