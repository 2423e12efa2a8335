// The engine side of health checks: which check a target gets, and a container as health.ts reads it.
import type { HealthCheckConfig } from "@ferry/contract";
import type { EngineClient } from "./engine/client.js";
import type { ContainerInspect, ImageInspect } from "./engine/types.js";

import { DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_TIMEOUT_MS, type ContainerHealthState, type HealthTarget, type ResolvedHealthCheck } from "./health.js";

/**
 * The check to run: the configured one, else the image's own HEALTHCHECK when it defines one, else "none" (running
 * through the settle window). The image's HEALTHCHECK is honoured in every case (health.ts); choosing `docker` here
 * only makes an image without one a failure. `settleMs` is the target's healthCheck.settleSeconds, else the
 * agent-wide default from the driver's settings.
 */
export function resolveHealthCheck(config: { healthCheck?: HealthCheckConfig | undefined }, imageHealthcheck: boolean, defaultSettleMs: number): ResolvedHealthCheck {
  const hc = config.healthCheck;
  const timeoutMs = (hc?.timeoutSeconds ?? DEFAULT_HEALTH_TIMEOUT_MS / 1000) * 1000;
  const intervalMs = (hc?.intervalSeconds ?? DEFAULT_HEALTH_INTERVAL_MS / 1000) * 1000;
  const settleMs = hc?.settleSeconds !== undefined ? hc.settleSeconds * 1000 : defaultSettleMs;
  if (hc) {
    const check: ResolvedHealthCheck = { type: hc.type, timeoutMs, intervalMs, settleMs };
    if (hc.url !== undefined) check.url = hc.url;
    if (hc.port !== undefined) check.port = hc.port;
    return check;
  }
  if (imageHealthcheck) {
    return { type: "docker", timeoutMs, intervalMs, settleMs, chosenBecause: "no healthCheck configured; the image defines a HEALTHCHECK" };
  }
  return { type: "none", timeoutMs, intervalMs, settleMs, chosenBecause: "no healthCheck configured and the image defines no HEALTHCHECK: running with no restart through the settle window" };
}

export function imageHasHealthcheck(image: ImageInspect): boolean {
  const test = image.Config?.Healthcheck?.Test;
  return !!test && test.length > 0 && test[0] !== "NONE";
}

export function healthState(info: ContainerInspect): ContainerHealthState {
  const s = info.State;
  const state: ContainerHealthState = {
    running: s.Running,
    restarting: s.Restarting,
    status: s.Status,
    exitCode: s.ExitCode,
    restartCount: info.RestartCount ?? 0,
    startedAt: s.StartedAt,
  };
  if (s.Error) state.error = s.Error;
  if (s.Health) {
    state.health = {
      status: s.Health.Status,
      log: (s.Health.Log ?? []).map((e) => ({ start: e.Start, exitCode: e.ExitCode, output: e.Output })),
    };
  }
  return state;
}

export function containerHealthTarget(docker: EngineClient, id: string): HealthTarget {
  const c = docker.getContainer(id);
  return {
    async state() {
      return healthState(await c.inspect());
    },
    async logsTail(lines) {
      // Demultiplexed (a container without a TTY has its output framed) and bounded by the client.
      return c.logs({ stdout: true, stderr: true, tail: lines });
    },
    async lastExit(sinceMs) {
      // With `until`, the events endpoint answers with what it recorded and closes; `die` carries the exit code.
      // Timestamps as "seconds.fraction" (the engine reads both parts), so `until` is now and never in the future.
      const events = await docker.events({
        since: (sinceMs / 1000).toFixed(3),
        until: (Date.now() / 1000).toFixed(3),
        filters: { container: [id], type: ["container"], event: ["die"] },
      });
      let code: number | undefined;
      for (const e of events) {
        const exit = e.Actor?.Attributes?.["exitCode"];
        if (typeof exit === "string" && /^\d+$/.test(exit)) code = Number(exit);
      }
      return code;
    },
  };
}
