// compose: a Docker Compose project on a host, its services mapped to components. No driver ships yet; the schema
// is what the control plane accepts for such targets today.
import { ImageSelectionError, type TargetKindDescriptor } from "../target-kind.js";
import { pinOf } from "../images.js";
import { absolutePath, healthCheck, type HealthCheckConfig } from "./common.js";

export interface ComposeTargetConfig {
  project: string;
  directory: string;
  /** Compose service → component. */
  services?: Record<string, string>;
  healthCheck?: HealthCheckConfig;
}

export const composeKind: TargetKindDescriptor<ComposeTargetConfig> = {
  kind: "compose",
  title: "a Docker Compose project on a host",
  config: {
    fields: {
      project: { type: "string", required: true, maxLength: 128, pattern: /^[a-z0-9][a-z0-9_-]*$/, hint: "must be a Compose project name (lowercase)" },
      directory: { ...absolutePath, required: true },
      services: { type: "string-map", doc: "Compose service → component" },
      healthCheck,
    },
  },
  capabilities: ["several-images"],
  sticker: "the lock file and service labels",
  placement: "host",
  typed: (c) => c as unknown as ComposeTargetConfig,
  imagesFor: (config, pins) => {
    const wanted = new Set(Object.values(config.services ?? {}));
    if (wanted.size === 0) return pins.map(pinOf);
    const out = pins.filter((p) => wanted.has(p.component)).map(pinOf);
    const missing = [...wanted].filter((c) => !pins.some((p) => p.component === c));
    if (missing.length > 0) throw new ImageSelectionError("RELEASE_COMPONENT_MISSING", `config.services: the release pins no ${missing.join(", ")}`, "config.services");
    return out;
  },
};
