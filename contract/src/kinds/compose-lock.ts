// The lock file of a Compose target: an override file that pins every mapped service's image to repository@digest.
//
// It is a pure function of two signed things, the task's image pins and the target's config.services, so the
// control plane (which stores it with the deployment) and the agent (which writes it on the host) derive the same
// bytes without the payload carrying them; a rollback, which re-signs the previous release's pins, yields the previous
// lock byte for byte. The text is JSON with sorted keys (JSON is YAML, and every Compose CLI reads it), so its SHA-256
// is stable. Per service it sets `image` and two labels, both functions of the pin only: a label that changed with
// every deployment would make Compose recreate services whose image did not change.
import type { ReleasePin } from "../images.js";
import { pinOf } from "../images.js";
import type { ComposeTargetConfig } from "./compose.js";

export const COMPOSE_LOCK_FILE = "ferry.lock.json";
export const COMPOSE_LOCK_LABELS = { component: "ferry.component", digest: "ferry.digest" } as const;

export interface ComposeLockService {
  service: string;
  component: string;
  repository: string;
  digest: string;
  ref: string;
}

export interface ComposeLock {
  /** Sorted by service name. */
  services: ComposeLockService[];
  /** The file's exact content. */
  text: string;
}

/** service → component for a target: config.services, else each pinned component as a service of the same name. */
export function composeServiceMap(config: Pick<ComposeTargetConfig, "services">, pins: readonly ReleasePin[]): Record<string, string> {
  if (config.services && Object.keys(config.services).length > 0) return config.services;
  return Object.fromEntries(pins.map((p) => [p.component, p.component]));
}

/** The lock for a target from the pins it runs. Throws when a mapped component has no pin (imagesFor refuses that first). */
export function composeLock(config: Pick<ComposeTargetConfig, "services">, pins: readonly ReleasePin[]): ComposeLock {
  const map = composeServiceMap(config, pins);
  const services = Object.keys(map)
    .sort()
    .map((service): ComposeLockService => {
      const component = map[service]!;
      const pin = pins.find((p) => p.component === component);
      if (!pin) throw new Error(`the release pins no ${component} for service ${service}`);
      const { repository, digest, ref } = pinOf(pin);
      return { service, component, repository, digest, ref };
    });
  const body: Record<string, unknown> = {};
  for (const s of services) {
    body[s.service] = { image: s.ref, labels: { [COMPOSE_LOCK_LABELS.component]: s.component, [COMPOSE_LOCK_LABELS.digest]: s.digest } };
  }
  // Keys are inserted in sorted order at every level, so JSON.stringify is canonical here.
  const text = `${JSON.stringify({ services: body }, null, 2)}\n`;
  return { services, text };
}

/** The services a lock file's text pins (service → ref), or a reason it is not a lock file Ferry wrote. */
export function parseComposeLock(text: string): { pins: Record<string, { ref: string; component: string; digest: string }> } | { problem: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { problem: `not JSON: ${(err as Error).message}` };
  }
  const services = (doc as { services?: unknown } | null)?.services;
  if (!services || typeof services !== "object") return { problem: "no services object" };
  const pins: Record<string, { ref: string; component: string; digest: string }> = {};
  for (const [name, s] of Object.entries(services as Record<string, { image?: unknown; labels?: Record<string, unknown> }>)) {
    if (typeof s?.image !== "string") return { problem: `service ${name} has no image` };
    const label = (key: string): string => {
      const v = s.labels?.[key];
      return typeof v === "string" ? v : "";
    };
    pins[name] = { ref: s.image, component: label(COMPOSE_LOCK_LABELS.component), digest: label(COMPOSE_LOCK_LABELS.digest) };
  }
  return { pins };
}
