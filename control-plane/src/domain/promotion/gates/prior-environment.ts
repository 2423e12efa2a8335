// Prior-environment gate: the same release must have succeeded in the environment before this one, and (with a
// soak) must have stayed there for a while. The first environment in order has nothing before it and passes.
//
// The caller passes the latest success of this release in the previous environment as `priorSuccess`; the soak is
// counted from its finish. A success recorded for any other environment does not count.
import { checkObject } from "../../catalog/config-schema.js";
import { formatDuration, parseDuration } from "../../fleet/durations.js";
import { isoSeconds, type GateContext, type GateEvaluator, type GateResult } from "./types.js";

export interface PriorEnvironmentConfig {
  /** Milliseconds the release must have run in the previous environment; 0 for none. */
  soakMs: number;
}

export type PriorEnvironmentInput = Pick<GateContext, "promotion" | "release" | "priorSuccess">;

const KIND = "prior-environment";

export const priorEnvironmentGate: GateEvaluator<PriorEnvironmentConfig, PriorEnvironmentInput> = {
  kind: KIND,

  parseConfig(raw: unknown): PriorEnvironmentConfig {
    const c = checkObject(raw ?? {}, { soak: { type: "string", maxLength: 32 } }, "config");
    return { soakMs: c.soak === undefined || c.soak === null ? 0 : parseDuration(c.soak as string, "config.soak") };
  },

  evaluate(config: PriorEnvironmentConfig, input: PriorEnvironmentInput, now: Date): GateResult {
    const prev = input.promotion.previousEnvironment;
    const rel = `${input.release.name}@${input.release.version}`;
    const base = { gate: KIND, name: KIND };
    if (prev === null) {
      return { ...base, state: "passed", reason: `${input.promotion.environment} is the first environment`, remedy: null, details: { previousEnvironment: null } };
    }
    const success = input.priorSuccess;
    if (success === null || success.environment !== prev) {
      return {
        ...base, state: "pending",
        reason: `release ${rel} has not succeeded in ${prev}`,
        remedy: `deploy it to ${prev} first`,
        details: { previousEnvironment: prev, priorSuccess: null, soak: config.soakMs ? formatDuration(config.soakMs) : null },
      };
    }
    const soakEnds = new Date(success.finishedAt.getTime() + config.soakMs);
    const details = {
      previousEnvironment: prev,
      priorSuccess: { environment: success.environment, finishedAt: success.finishedAt.toISOString() },
      soak: config.soakMs ? formatDuration(config.soakMs) : null,
      soakEndsAt: config.soakMs ? soakEnds.toISOString() : null,
    };
    if (now.getTime() < soakEnds.getTime()) {
      return {
        ...base, state: "pending",
        reason: `release ${rel} succeeded in ${prev} at ${isoSeconds(success.finishedAt)} and is soaking for ${formatDuration(config.soakMs)}`,
        remedy: `soak ends at ${isoSeconds(soakEnds)}`,
        details,
      };
    }
    return {
      ...base, state: "passed",
      reason: `release ${rel} succeeded in ${prev} at ${isoSeconds(success.finishedAt)}` +
        (config.soakMs ? ` and soaked for ${formatDuration(config.soakMs)}` : ""),
      remedy: null, details,
    };
  },
};
