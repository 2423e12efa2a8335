// nomad: a HashiCorp Nomad job, driven from a gateway agent. No driver ships yet.
import { singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { httpUrl } from "./common.js";

export interface NomadTargetConfig {
  address: string;
  job: string;
  group?: string;
  task?: string;
  namespace?: string;
  region?: string;
}

export const nomadKind: TargetKindDescriptor<NomadTargetConfig> = {
  kind: "nomad",
  title: "a HashiCorp Nomad job",
  config: {
    fields: {
      address: { ...httpUrl("the Nomad HTTP API URL"), required: true },
      job: { type: "string", required: true, maxLength: 128 },
      group: { type: "string", maxLength: 128 },
      task: { type: "string", maxLength: 128 },
      namespace: { type: "string", maxLength: 128 },
      region: { type: "string", maxLength: 64 },
    },
  },
  capabilities: ["native-rollout"],
  sticker: "job meta",
  placement: "gateway",
  typed: (c) => c as unknown as NomadTargetConfig,
  imagesFor: (_config, pins) => singleImage(undefined, pins),
};
