// Judging a freshly started container: healthy, or failed for good.
//
// Healthy means all of these, at once:
//   - the container runs and has not restarted since start left it: its RestartCount and StartedAt are still the
//     ones start recorded (the `StartMark`), through the whole settle window (default 3 s after start). A container
//     that Docker restarts between two polls looks "running" at both; only the count and the start time give it away,
//     so they are compared on every poll and once more after the window has passed;
//   - the configured check passes (config.healthCheck.type):
//       docker  the image's own HEALTHCHECK reports healthy
//       http    GET url answers 2xx
//       tcp     127.0.0.1:port accepts a connection (targets use host networking, so the port is the host's)
//       none    nothing more than the first rule;
//   - when the image defines a HEALTHCHECK, whatever the configured check is, the engine says `healthy`.
//
// Failed at once, without waiting out the timeout:
//   - INSTANCE_CRASHED: the container exited, is restarting, or restarted (count or start time changed). Its exit
//     code and the last lines it printed go into the task log line by line (an operator reads the log, not the
//     result's details), and into the result too;
//   - HEALTH_CHECK_FAILED: the image's HEALTHCHECK says `unhealthy` (the engine has applied the image's retries
//     before it says so), or the configured check is `docker` and the image has no HEALTHCHECK.
// Failed at the timeout (HEALTH_CHECK_FAILED): the check never passed, with what it saw last (HTTP status and body,
// connect error, the engine's health log).
//
// Probes start fast (at once, then after 250 ms, 500 ms, ...) and back off to the configured interval: most
// services are up within a second, and a deploy should not pay a full interval for the first answer. While only the
// engine's own healthcheck verdict is awaited, its state is read every 250 ms (nextLookInMs).
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

import type { HealthCheckType } from "@ferry/contract";
import { httpProbe, snippet } from "../http-probe.js";

export const DEFAULT_HEALTH_TIMEOUT_MS = 60_000;
export const DEFAULT_HEALTH_INTERVAL_MS = 1_000;
/** How long a new container must run without a restart before it can count as healthy. */
export const DEFAULT_SETTLE_MS = 3_000;
const FIRST_PROBE_DELAY_MS = 250;
/** How often the engine's healthcheck status is read while it is the only thing awaited. */
const ENGINE_POLL_MS = 250;
/** Lines of the container's output written into the task log when it crashed. */
export const CRASH_LOG_LINES = 20;
const LOG_LINE_CHARS = 300;

export interface ResolvedHealthCheck {
  type: HealthCheckType;
  url?: string;
  port?: number;
  timeoutMs: number;
  intervalMs: number;
  settleMs: number;
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
  /** The engine's count of restarts under the restart policy since the container was last started by hand. */
  restartCount: number;
  /** The engine's StartedAt of the current run. */
  startedAt: string;
  /** The engine's HEALTHCHECK state; undefined when the image defines none. */
  health?: { status: string; log: HealthLogEntry[] };
}

export interface HealthLogEntry {
  start: string;
  exitCode: number;
  output: string;
}

/** The container as start left it: a restart after this is a crash. Plain JSON (kept in the phase state). */
export interface StartMark {
  restartCount: number;
  startedAt: string;
  /** The agent's clock (ms since the epoch) when start saw the container running: the settle window starts here. */
  atMs: number;
}

export interface HealthTarget {
  state(): Promise<ContainerHealthState>;
  /** The last lines the container printed (stdout and stderr, oldest first), for a failure report. */
  logsTail(lines: number): Promise<string>;
  /** The exit code of the container's last exit since `sinceMs`, if the engine recorded one (a restarted container
   *  runs again with ExitCode 0, so its state alone no longer says how it died). */
  lastExit(sinceMs: number): Promise<number | undefined>;
}

export interface HealthResult {
  ok: boolean;
  /** When not ok. */
  code?: "HEALTH_CHECK_FAILED" | "INSTANCE_CRASHED";
  type: HealthCheckType;
  attempts: number;
  elapsedMs: number;
  /** One line: what passed, or why it failed. */
  summary: string;
  /** What the check saw last (HTTP status and body, connect error, engine health log, container exit). */
  observed: Record<string, unknown>;
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

/** Why the container counts as crashed, or undefined while it runs as start left it. */
export function crashOf(state: ContainerHealthState, mark: StartMark): string | undefined {
  const restarts = state.restartCount - mark.restartCount;
  const since = restarts > 0 ? ` (restarted ${restarts} time${restarts === 1 ? "" : "s"} since it was started)` : "";
  if (state.restarting) return `the container is restarting: it exited and Docker is restarting it${since}`;
  if (!state.running) return `the container ${state.status === "exited" ? "exited" : `is ${state.status}`}${since}`;
  if (restarts !== 0 || state.startedAt !== mark.startedAt) return `the container exited and Docker restarted it${since || " (its start time changed)"}`;
  return undefined;
}

/**
 * How long to wait before the next look. A probe of our own (http, tcp) backs off from 250 ms to the interval. While
 * all that is missing is the engine's own healthcheck verdict (a `docker` check, or the image's HEALTHCHECK still
 * starting), the look is a cheap read of the container's state and the verdict can flip at any moment, so it is read
 * every 250 ms without backing off: otherwise a 1 s healthcheck that passes just after the 0.75 s look is seen a
 * second late. Once only the settle window is left, the next look is when it ends (or sooner, to catch a crash early).
 */
export function nextLookInMs(o: { check: ResolvedHealthCheck; checkPassed: boolean; imageOk: boolean; delay: number; now: number; deadline: number; settledAt: number }): number {
  const left = Math.max(0, o.deadline - o.now);
  if (o.checkPassed && o.imageOk) return Math.min(Math.max(0, o.settledAt - o.now), o.check.intervalMs);
  const waitingOnEngine = o.checkPassed ? !o.imageOk : o.check.type === "docker";
  if (waitingOnEngine) return Math.min(ENGINE_POLL_MS, left);
  return Math.min(o.delay, o.check.intervalMs, left);
}

/**
 * Polls until the container is healthy, fails for good, or the timeout passes. Throws only when `signal` aborts (with
 * its reason) or the engine cannot be read; every verdict is a HealthResult.
 */
export async function waitHealthy(
  check: ResolvedHealthCheck,
  target: HealthTarget,
  mark: StartMark,
  signal: AbortSignal,
  opts: { log?: (line: string) => void; tcpProbe?: (port: number, timeoutMs: number) => Promise<{ ok: boolean; observed: Record<string, unknown> }> } = {},
): Promise<HealthResult> {
  const started = Date.now();
  const settledAt = mark.atMs + check.settleMs;
  // The timeout bounds the wait for the check; the settle window is always waited out in full on top of it.
  const deadline = Math.max(started + check.timeoutMs, settledAt);
  const log = opts.log ?? (() => undefined);
  let attempts = 0;
  let observed: Record<string, unknown> = {};
  let checkPassed = check.type === "none";
  let delay = FIRST_PROBE_DELAY_MS;
  let lastLogged = "";

  const result = (ok: boolean, summary: string, code?: HealthResult["code"]): HealthResult => ({
    ok,
    ...(code ? { code } : {}),
    type: check.type,
    attempts,
    elapsedMs: Date.now() - started,
    summary,
    observed,
  });

  for (;;) {
    signal.throwIfAborted();
    attempts++;
    const remaining = deadline - Date.now();
    const probeTimeout = Math.max(500, Math.min(check.intervalMs, 10_000, remaining));
    // An http or tcp probe goes out together with the read of the container's state, not after it: the two are
    // independent, and the state still decides first (a container that crashed fails whatever the probe saw).
    // Neither probe rejects except on abort, which the `await` below rethrows. A check that passed once is not probed
    // again while the settle window runs out: from then on only the container's own state can fail it.
    const probing = checkPassed ? undefined : check.type === "http" ? httpProbe(check.url ?? "", probeTimeout, signal) : check.type === "tcp" ? (opts.tcpProbe ?? tcpProbe)(check.port ?? 0, probeTimeout) : undefined;
    probing?.catch(() => undefined);
    const state = await target.state();

    const crash = crashOf(state, mark);
    if (crash) {
      const report = await crashReport(crash, state, target, mark, log);
      observed = { ...observed, container: report.container };
      return result(false, report.summary, "INSTANCE_CRASHED");
    }

    if (state.health?.status === "unhealthy") {
      observed = { ...observed, healthcheck: engineHealth(state.health) };
      return result(false, "the image's HEALTHCHECK reports unhealthy", "HEALTH_CHECK_FAILED");
    }

    if (!checkPassed) {
      switch (check.type) {
        case "docker":
          if (!state.health) {
            observed = { error: "the image defines no HEALTHCHECK" };
            return result(false, "healthCheck.type is docker but the image defines no HEALTHCHECK", "HEALTH_CHECK_FAILED");
          }
          checkPassed = state.health.status === "healthy";
          break;
        case "http": {
          const r = await probing!;
          checkPassed = r.ok;
          observed = { ...observed, url: check.url, ...r.observed };
          break;
        }
        case "tcp": {
          const r = await probing!;
          checkPassed = r.ok;
          observed = { ...observed, port: check.port, ...r.observed };
          break;
        }
        case "none":
          break;
      }
    }
    if (state.health) observed = { ...observed, healthcheck: engineHealth(state.health) };
    const imageOk = !state.health || state.health.status === "healthy";
    const now = Date.now();
    observed = { ...observed, runningForMs: now - mark.atMs };
    if (checkPassed && imageOk && now >= settledAt) {
      const what = [check.type === "none" ? undefined : `${check.type} check passed`, state.health ? "HEALTHCHECK healthy" : undefined].filter(Boolean).join(", ");
      return result(true, `running with no restart for ${now - mark.atMs} ms${what ? `; ${what}` : ""} (${attempts} poll(s))`);
    }

    // One log line per change of what the check sees, not one per poll.
    const waiting = !checkPassed ? "the check has not passed" : !imageOk ? `the image's HEALTHCHECK is ${state.health?.status}` : "the settle window has not passed";
    const { runningForMs: _running, ...seen } = observed;
    const line = `${waiting}: ${JSON.stringify(seen)}`;
    if (line !== lastLogged) {
      log(`health: not yet healthy: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`);
      lastLogged = line;
    }
    if (now >= deadline) {
      const why = !checkPassed ? `the ${check.type} check did not pass` : `the image's HEALTHCHECK stayed ${state.health?.status}`;
      return result(false, `not healthy within ${Math.round(check.timeoutMs / 1000)} s: ${why}`, "HEALTH_CHECK_FAILED");
    }
    const wait = nextLookInMs({ check, checkPassed, imageOk, delay, now, deadline, settledAt });
    delay *= 2;
    // timers/promises rejects with its own AbortError; callers get the signal's reason, as from throwIfAborted.
    await sleep(wait, undefined, { signal }).catch((err: unknown) => {
      signal.throwIfAborted();
      throw err;
    });
  }
}

function engineHealth(h: { status: string; log: HealthLogEntry[] }): Record<string, unknown> {
  return { status: h.status, log: h.log.slice(-5).map((e) => ({ ...e, output: snippet(e.output) })) };
}

/** What an INSTANCE_CRASHED verdict says: exit code and output into the task log, line by line, and into the result. */
async function crashReport(
  why: string,
  state: ContainerHealthState,
  target: HealthTarget,
  mark: StartMark,
  log: (line: string) => void,
): Promise<{ summary: string; container: Record<string, unknown> }> {
  // A container that runs again after a restart has ExitCode 0 in its state; the engine's record of its exits knows.
  const exitCode = state.running && !state.restarting ? await target.lastExit(mark.atMs - 1000).catch(() => undefined) : state.exitCode;
  const logs = await target.logsTail(CRASH_LOG_LINES).catch((err: unknown) => `(could not read the container's output: ${(err as Error).message})`);
  const lines = logs.split("\n").map((l) => l.trimEnd()).filter((l) => l !== "").slice(-CRASH_LOG_LINES);
  const code = exitCode === undefined ? "unknown exit code" : `exit code ${exitCode}`;
  log(`health: ${why}; ${code}`);
  if (state.error) log(`health: the engine says: ${state.error}`);
  log(lines.length > 0 ? `health: its last ${lines.length} line(s) of output:` : "health: it printed nothing");
  for (const l of lines) log(`health:   | ${l.length > LOG_LINE_CHARS ? `${l.slice(0, LOG_LINE_CHARS)}…` : l}`);
  return {
    summary: `${why}; ${code}`,
    container: {
      status: state.status,
      ...(exitCode !== undefined ? { exitCode } : {}),
      restartCount: state.restartCount,
      restartsSinceStart: state.restartCount - mark.restartCount,
      ...(state.error ? { error: state.error } : {}),
      logs: snippet(lines.join("\n")),
    },
  };
}
