// ecs: an AWS ECS service, driven from a gateway agent through the ECS API (docs/drivers/ecs.md).
//
// Credentials are deliberately not part of the config: it travels in signed tasks and is stored by the control
// plane. The gateway agent's own config (drivers.ecs: profile, endpoint) and the standard AWS credential chain give
// them. The config says which service, which of its task definition's containers Ferry sets, and how ECS rolls out.
import { ImageSelectionError, singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { pinOf } from "../images.js";

export interface EcsDeploymentSettings {
  /** ECS deploymentConfiguration.maximumPercent; default the service's own. */
  maximumPercent?: number;
  /** ECS deploymentConfiguration.minimumHealthyPercent; default the service's own. */
  minimumHealthyPercent?: number;
  /** Whether ECS itself rolls back when its circuit breaker trips; default true. The circuit breaker is always on. */
  circuitBreakerRollback?: boolean;
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
