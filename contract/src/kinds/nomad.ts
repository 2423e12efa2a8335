// nomad: a HashiCorp Nomad job, driven from a gateway agent through the Nomad HTTP API (docs/drivers/nomad.md).
//
// The ACL token and TLS material are not part of the config (it travels in signed tasks and is stored by the
// control plane): the gateway agent's drivers.nomad section names them. The config says which job, which of its
// tasks Ferry sets, and may name another API address than the agent's default.
import { ImageSelectionError, singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { pinOf } from "../images.js";
import { httpUrl } from "./common.js";

export interface NomadTargetConfig {
  /** The Nomad HTTP API; default the agent's drivers.nomad.address. */
  address?: string;
  job: string;
  namespace?: string;
  region?: string;
  /** The one task whose image Ferry sets (single-image targets): its group and name; default the job's only task. */
  group?: string;
  task?: string;
  component?: string;
  /** "group/task" → component, when Ferry sets several tasks. */
  tasks?: Record<string, string>;
  /** How long Ferry follows a deployment before it gives up; default 900. */
  deploymentTimeoutSeconds?: number;
  /**
   * How long a deployment may go without a newly healthy allocation before Ferry fails it, for jobs whose update
   * block sets no progress_deadline; default 600.
   */
  progressTimeoutSeconds?: number;
  /**
   * Ferry's analysis of the canaries before it promotes them (jobs whose update block has canaries and no
   * auto_promote): every canary allocation stays healthy for the whole bake, and the probe, if any, answers 2xx.
   */
  canaryAnalysis?: NomadCanaryAnalysis;
}

export interface NomadCanaryAnalysis {
  /** How long the canaries must stay healthy (and the probe pass) before Ferry promotes them; default 60. */
  bakeSeconds?: number;
  /** An http(s) URL the gateway agent GETs during the bake (e.g. the canaries' service address); 2xx passes. */
  probeUrl?: string;
  /** Each probe's timeout; default 2000. */
  probeTimeoutMs?: number;
  /** Time between probes; default 5. */
  probeIntervalSeconds?: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const nomadKind: TargetKindDescriptor<NomadTargetConfig> = {
  kind: "nomad",
  title: "a HashiCorp Nomad job",
  config: {
    fields: {
      address: httpUrl("the Nomad HTTP API URL; default the agent's drivers.nomad.address"),
      job: { type: "string", required: true, maxLength: 128, pattern: NAME, hint: "must be a Nomad job id" },
      namespace: { type: "string", maxLength: 128, pattern: NAME, hint: "must be a Nomad namespace" },
      region: { type: "string", maxLength: 64, pattern: NAME, hint: "must be a Nomad region" },
      group: { type: "string", maxLength: 128, pattern: NAME, hint: "must be a task group name" },
      task: { type: "string", maxLength: 128, pattern: NAME, hint: "must be a task name" },
      component: { type: "string", maxLength: 128, doc: "the component a single-image target runs; default the release's only one" },
      tasks: { type: "string-map", maxItems: 32, keyPattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, keyHint: "must be group/task", doc: "group/task → component, when Ferry sets several tasks" },
      deploymentTimeoutSeconds: { type: "integer", min: 30, max: 7200, doc: "how long Ferry follows a deployment; default 900" },
      progressTimeoutSeconds: { type: "integer", min: 10, max: 7200, doc: "for jobs without a progress_deadline: fail a deployment with no newly healthy allocation for this long; default 600" },
      canaryAnalysis: {
        type: "object",
        doc: "Ferry's analysis before it promotes canaries: healthy for the whole bake, and an optional HTTP probe",
        fields: {
          bakeSeconds: { type: "integer", min: 0, max: 3600, doc: "how long the canaries must stay healthy before promotion; default 60" },
          probeUrl: httpUrl("a URL the gateway agent GETs during the bake; 2xx passes"),
          probeTimeoutMs: { type: "integer", min: 100, max: 30_000, doc: "each probe's timeout; default 2000" },
          probeIntervalSeconds: { type: "integer", min: 1, max: 300, doc: "time between probes; default 5" },
        },
      },
    },
    rules: [
      (c) => (c["tasks"] !== undefined && (c["group"] !== undefined || c["task"] !== undefined || c["component"] !== undefined) ? ["tasks", "cannot be combined with group, task or component"] : undefined),
      (c) => (c["tasks"] !== undefined && Object.keys(c["tasks"] as object).length === 0 ? ["tasks", "must map at least one task"] : undefined),
    ],
  },
  capabilities: ["native-rollout", "several-images"],
  sticker: "job meta",
  placement: "gateway",
  typed: (c) => c as unknown as NomadTargetConfig,
  imagesFor: (config, pins) => {
    if (!config.tasks) return singleImage(config.component, pins);
    const wanted = [...new Set(Object.values(config.tasks))];
    const missing = wanted.filter((c) => !pins.some((p) => p.component === c));
    if (missing.length > 0) {
      throw new ImageSelectionError("RELEASE_COMPONENT_MISSING", `config.tasks: the release pins no ${missing.join(", ")} (it pins ${pins.map((p) => p.component).join(", ") || "nothing"})`, "config.tasks");
    }
    return pins.filter((p) => wanted.includes(p.component)).map(pinOf);
  },
};
