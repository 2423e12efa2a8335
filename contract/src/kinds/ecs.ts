// ecs: an AWS ECS service, driven from a gateway agent. No driver ships yet.
import { singleImage, type TargetKindDescriptor } from "../target-kind.js";

export interface EcsTargetConfig {
  region: string;
  cluster: string;
  service: string;
  containerName?: string;
  steadyStateTimeoutSeconds?: number;
}

export const ecsKind: TargetKindDescriptor<EcsTargetConfig> = {
  kind: "ecs",
  title: "an AWS ECS service",
  config: {
    fields: {
      region: { type: "string", required: true, maxLength: 32, pattern: /^[a-z]{2}(-[a-z]+)+-\d$/, hint: "must be an AWS region such as eu-west-1" },
      cluster: { type: "string", required: true, maxLength: 255 },
      service: { type: "string", required: true, maxLength: 255 },
      containerName: { type: "string", maxLength: 255 },
      steadyStateTimeoutSeconds: { type: "integer", min: 30, max: 7200 },
    },
  },
  capabilities: ["native-rollout"],
  sticker: "task-definition and service tags",
  placement: "gateway",
  typed: (c) => c as unknown as EcsTargetConfig,
  imagesFor: (_config, pins) => singleImage(undefined, pins),
};
