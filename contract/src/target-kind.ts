// A target kind as both sides see it: its name, the schema of its config (the one definition both sides validate
// with), what a driver of the kind can do, where its version sticker lives, and which of a release's images a target
// of the kind runs. One descriptor per kind, in kinds/; the control plane lists the kinds it accepts and the agent
// registers a driver per kind, each in one line.
import { checkObject, ConfigError, type ObjectSchema } from "./config-schema.js";
import type { ImagePin, ReleasePin } from "./images.js";
import { pinOf } from "./images.js";

/**
 * What a driver of a kind can do. The control plane refuses, before anything is queued, a deploy that needs a
 * capability the serving agent does not advertise.
 *   side-by-side     the new instance can run next to the old one (beside a router slot, on another port), so the
 *                    switch can be without an outage
 *   several-images   one target runs several components (a Compose project); otherwise one image per target
 *   native-rollout   the platform rolls out by itself (ECS deployments, Nomad update blocks); Ferry follows it
 *   router           the driver can put a host router (HAProxy) in front of the target's instances
 */
export const CAPABILITIES = ["side-by-side", "several-images", "native-rollout", "router"] as const;
export type Capability = (typeof CAPABILITIES)[number];

export function isCapability(s: string): s is Capability {
  return (CAPABILITIES as readonly string[]).includes(s);
}

export interface TargetKindDescriptor<Config = Record<string, unknown>> {
  kind: string;
  /** One line for people: "a container on a Docker Engine". */
  title: string;
  config: ObjectSchema;
  /** What a driver of this kind can do at most; an agent advertises what its driver actually offers. */
  capabilities: readonly Capability[];
  /** Where the version sticker lives on the target, for people and docs. */
  sticker: string;
  /** Whether the kind needs an agent on the host itself ("host") or can be driven from a gateway agent nearby. */
  placement: "host" | "gateway";
  /** The typed config from a checked one (defaults filled in); pure. */
  typed(checked: Record<string, unknown>): Config;
  /**
   * The images a target of this kind runs from a release's pins, or a ConfigError-like refusal naming why. Pure:
   * both the control plane (when it plans tasks) and the driver (when it picks what to run) call it.
   */
  imagesFor(config: Config, pins: readonly ReleasePin[]): ImagePin[];
  /**
   * The components a target's config names, each with the field that names it, so the control plane refuses a target
   * that maps a component it does not know, when the target is created or changed (not at the first deploy). Kinds
   * whose config names no component leave it out.
   */
  componentsNamed?(config: Config): Array<{ field: string; component: string }>;
}

/** Checks a raw config against a kind's schema and returns it typed. Throws ConfigError naming the field. */
export function parseTargetConfig<C>(descriptor: TargetKindDescriptor<C>, raw: unknown): C {
  return descriptor.typed(checkObject(raw ?? {}, descriptor.config, "config"));
}

/** A release's components do not fit a target (missing, ambiguous). `code` is a stable API/driver code. */
export class ImageSelectionError extends Error {
  override readonly name = "ImageSelectionError";
  constructor(
    readonly code: "RELEASE_COMPONENT_MISSING" | "RELEASE_COMPONENT_AMBIGUOUS",
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/**
 * The one image a single-image target runs: the pin of `component` when the config names one, else the release's
 * only pin.
 */
export function singleImage(component: string | undefined, pins: readonly ReleasePin[]): ImagePin[] {
  const names = pins.map((p) => p.component).join(", ") || "none";
  if (component !== undefined) {
    const pin = pins.find((p) => p.component === component);
    if (!pin) throw new ImageSelectionError("RELEASE_COMPONENT_MISSING", `config.component: "${component}" is not among the release's components (${names})`, "config.component");
    return [pinOf(pin)];
  }
  if (pins.length !== 1) {
    const problem = pins.length === 0 ? "the release pins no image" : `the release pins several components (${names}); set config.component to pick one`;
    throw new ImageSelectionError("RELEASE_COMPONENT_AMBIGUOUS", `config.component: ${problem}`, "config.component");
  }
  return [pinOf(pins[0]!)];
}

export { ConfigError };
