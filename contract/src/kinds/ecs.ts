// ecs: an AWS ECS service, driven from a gateway agent through the ECS API (docs/drivers/ecs.md).
//
// Credentials are deliberately not part of the config: it travels in signed tasks and is stored by the control
// plane. The gateway agent's own config (drivers.ecs: profile, endpoint) and the standard AWS credential chain give
// them. The config says which service, which of its task definition's containers Ferry sets, and how ECS rolls out.
import { ImageSelectionError, singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { pinOf } from "../images.js";
import { httpUrl } from "./common.js";

export interface EcsDeploymentSettings {
  /** ECS deploymentConfiguration.maximumPercent; default the service's own. */
  maximumPercent?: number;
  /** ECS deploymentConfiguration.minimumHealthyPercent; default the service's own. */
  minimumHealthyPercent?: number;
  /** Whether ECS itself rolls back when its circuit breaker trips; default true. The circuit breaker is always on. */
  circuitBreakerRollback?: boolean;
}

/**
 * Ferry's checks of a service deployed by ECS's own BLUE_GREEN, LINEAR or CANARY strategy (docs/drivers/ecs.md#ecss-own-strategies):
 * during every bake (BAKE_TIME, each LINEAR/CANARY step) the target revision's tasks must keep running and the probe,
 * if any, answer 2xx; at the stages where Ferry's gate function is a lifecycle hook, Ferry runs the same checks for
 * gateSeconds (probing testProbeUrl, the test listener) and records its verdict for the function to answer ECS with.
 */
export interface EcsNativeSettings {
  /** The Lambda ARN of Ferry's gate function among the service's lifecycle hooks (docs/drivers/ecs.md#the-gate-function). */
  gateHookArn?: string;
  /** Ferry answers the service's PAUSE lifecycle hooks: it checks, then continues or rolls back (ContinueServiceDeployment). */
  pauseGate?: boolean;
  /** How long Ferry checks at a gate before it records its verdict; default 60. */
  gateSeconds?: number;
  /** A production URL the gateway agent GETs during each bake; 2xx passes. */
  probeUrl?: string;
  /** A URL of the test listener probed at a gate; default probeUrl. */
  testProbeUrl?: string;
  /** Each probe's timeout; default 2000. */
  probeTimeoutMs?: number;
  /** Time between probes; default 5. */
  probeIntervalSeconds?: number;
}

export interface EcsTargetConfig {
  region: string;
  cluster: string;
  service: string;
  /** The one container whose image Ferry sets (single-image targets); default the task definition's only container. */
  containerName?: string;
  /** The component a single-image target runs; default the release's only one. */
  component?: string;
  /** Container name → component, for a task definition whose several containers Ferry sets. */
  containers?: Record<string, string>;
  deployment?: EcsDeploymentSettings;
  /** Ferry's checks and gates for a service that uses ECS's BLUE_GREEN, LINEAR or CANARY strategy. */
  native?: EcsNativeSettings;
  /** How long Ferry follows the ECS deployment before it gives up; default 900. */
  steadyStateTimeoutSeconds?: number;
}

const CONTAINER_NAME = /^[A-Za-z0-9_-]{1,255}$/;

export const ecsKind: TargetKindDescriptor<EcsTargetConfig> = {
  kind: "ecs",
  title: "an AWS ECS service",
  config: {
    fields: {
      region: { type: "string", required: true, maxLength: 32, pattern: /^[a-z]{2}(-[a-z]+)+-\d$/, hint: "must be an AWS region such as eu-west-1" },
      cluster: { type: "string", required: true, maxLength: 255, pattern: /^(arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster\/)?[A-Za-z0-9_-]{1,255}$/, hint: "must be a cluster name or ARN" },
      service: { type: "string", required: true, maxLength: 255, pattern: /^[A-Za-z0-9_-]{1,255}$/, hint: "must be an ECS service name (letters, digits, - and _)" },
      containerName: { type: "string", maxLength: 255, pattern: CONTAINER_NAME, hint: "must be a container name (letters, digits, - and _)", doc: "the container whose image is set; default the task definition's only container" },
      component: { type: "string", maxLength: 128, doc: "the component a single-image target runs; default the release's only one" },
      containers: { type: "string-map", maxItems: 10, keyPattern: CONTAINER_NAME, keyHint: "must be a container name (letters, digits, - and _)", doc: "container name → component, when Ferry sets several containers" },
      deployment: {
        type: "object",
        doc: "how ECS rolls out; the circuit breaker is always enabled",
        fields: {
          maximumPercent: { type: "integer", min: 100, max: 200, doc: "default: the service's own" },
          minimumHealthyPercent: { type: "integer", min: 0, max: 100, doc: "default: the service's own" },
          circuitBreakerRollback: { type: "boolean", doc: "ECS rolls back by itself when the circuit breaker trips; default true" },
        },
      },
      native: {
        type: "object",
        doc: "Ferry's checks during the bakes of ECS's BLUE_GREEN, LINEAR and CANARY strategies, and its gate at lifecycle-hook stages",
        fields: {
          gateHookArn: {
            type: "string",
            maxLength: 256,
            pattern: /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?$/,
            hint: "must be a Lambda function ARN",
            doc: "Ferry's gate function among the service's lifecycle hooks; at its stages Ferry checks, then answers through it",
          },
          pauseGate: { type: "boolean", doc: "Ferry answers the service's PAUSE hooks: it checks, then continues or rolls back the deployment" },
          gateSeconds: { type: "integer", min: 1, max: 3600, doc: "how long Ferry checks at a gate before its verdict; default 60" },
          probeUrl: httpUrl("a URL the gateway agent GETs during every bake; 2xx passes"),
          testProbeUrl: httpUrl("a URL of the test listener probed at a gate; default probeUrl"),
          probeTimeoutMs: { type: "integer", min: 100, max: 30_000, doc: "each probe's timeout; default 2000" },
          probeIntervalSeconds: { type: "integer", min: 1, max: 300, doc: "time between probes; default 5" },
        },
      },
      steadyStateTimeoutSeconds: { type: "integer", min: 30, max: 7200, doc: "how long Ferry follows the deployment; default 900" },
    },
    rules: [
      (c) => (c["containers"] !== undefined && (c["containerName"] !== undefined || c["component"] !== undefined) ? ["containers", "cannot be combined with containerName or component"] : undefined),
      (c) => (c["containers"] !== undefined && Object.keys(c["containers"] as object).length === 0 ? ["containers", "must map at least one container"] : undefined),
    ],
  },
  capabilities: ["native-rollout", "several-images"],
  sticker: "task-definition and service tags",
  placement: "gateway",
  typed: (c) => c as unknown as EcsTargetConfig,
  imagesFor: (config, pins) => {
    if (!config.containers) return singleImage(config.component, pins);
    const wanted = [...new Set(Object.values(config.containers))];
    const missing = wanted.filter((c) => !pins.some((p) => p.component === c));
    if (missing.length > 0) {
      throw new ImageSelectionError("RELEASE_COMPONENT_MISSING", `config.containers: the release pins no ${missing.join(", ")} (it pins ${pins.map((p) => p.component).join(", ") || "nothing"})`, "config.containers");
    }
    return pins.filter((p) => wanted.includes(p.component)).map(pinOf);
  },
};
