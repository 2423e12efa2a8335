// The ECS target driver (docs/drivers/ecs.md) and how it joins the agent.
//
// The registration is all the agent loads up front: the driver's code, and @aws-sdk/client-ecs with it, is imported
// only when drivers.ecs is enabled, so an agent that serves no ECS service pays nothing for the SDK.
import { ecsKind, type ObjectSchema } from "@ferry/contract";

import type { DriverRegistration } from "../driver.js";

/** The agent config's `drivers.ecs` section. Credentials come from the AWS chain; this only says which profile. */
export const ecsSettings: ObjectSchema = {
  fields: {
    profile: { type: "string", maxLength: 128, pattern: /^[A-Za-z0-9_.@+=,-]+$/, hint: "must be an AWS profile name", doc: "the shared-config profile to take credentials from; default the AWS chain (environment, AWS_PROFILE, shared config, web identity, task or instance role)" },
    endpoint: { type: "string", maxLength: 2048, pattern: /^https?:\/\/\S+$/, hint: "must be an http(s) URL", doc: "the ECS API endpoint instead of the region's (a VPC endpoint, a FIPS endpoint, a test fake)" },
    pollIntervalMs: { type: "integer", min: 20, max: 60_000, doc: "how often a deployment is polled; default 5000" },
    maxAttempts: { type: "integer", min: 1, max: 10, doc: "attempts per API call, with the SDK's backoff on throttling and 5xx; default 5" },
  },
};


export const ecsRegistration: DriverRegistration = {
  descriptor: ecsKind,
  settings: ecsSettings,
  enabledByDefault: false,
  async create({ logger, settings }) {
    const { EcsDriver } = await import("./ecs-driver.js");
    return new EcsDriver({ logger, settings: settings });
  },
};

export type { EcsPhaseState } from "./phase-state.js";
export type { EcsSettings } from "./ecs-driver.js";
