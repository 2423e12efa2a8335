// A new task-definition revision from the current one: the same definition with only the mapped containers' images
// set to repository@sha256:…, and Ferry's sticker in its tags.
//
// DescribeTaskDefinition answers with members RegisterTaskDefinition does not take — the ARN, revision, status,
// requiresAttributes, compatibilities, registeredAt/By, deregisteredAt (ECS API Reference, TaskDefinition) — so they
// are dropped here by name; everything else is copied as it is, so a definition keeps every setting Ferry does not
// own (CPU, memory, roles, volumes, log configuration, other containers).
import type { ContainerDefinition, RegisterTaskDefinitionCommandInput, TaskDefinition } from "@aws-sdk/client-ecs";
import type { ImagePin } from "@ferry/contract";

import { DriverError } from "../driver.js";
import { isFerryTag, type Tag } from "./sticker-tags.js";

const READ_ONLY = ["taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities", "registeredAt", "registeredBy", "deregisteredAt"] as const;

export interface ContainerMapping {
  /** container name → component */
  containers: Record<string, string>;
}

/**
 * Which containers of `td` this target sets, to which component: the config's map, else its one containerName, else
 * the definition's only container. A name the definition does not have is TARGET_NOT_FOUND; nothing is changed.
 */
export function mapContainers(
  td: TaskDefinition,
  config: { containers?: Record<string, string>; containerName?: string },
  images: readonly ImagePin[],
): Record<string, string> {
  const wanted = targetContainers(td, config);
  let mapping: Record<string, string>;
  if (config.containers) mapping = { ...config.containers };
  else {
    const only = images[0];
    if (!only) throw new DriverError("RELEASE_COMPONENT_MISSING", "the task carries no image for this target", {});
    mapping = { [wanted[0]!]: only.component };
  }
  for (const [container, component] of Object.entries(mapping)) {
    if (!images.some((i) => i.component === component)) throw new DriverError("RELEASE_COMPONENT_MISSING", `container ${container} runs ${component}, and the task carries no image for it`, { container, component });
  }
  return mapping;
}

/**
 * The containers of `td` this target sets, whatever the release: the config's map, its one containerName, else the
 * definition's only container. A name the definition does not have is TARGET_NOT_FOUND naming it.
 */
export function targetContainers(td: TaskDefinition, config: { containers?: Record<string, string>; containerName?: string }): string[] {
  const names = (td.containerDefinitions ?? []).map((c) => c.name ?? "");
  const where = `task definition ${td.family}:${td.revision}`;
  let wanted: string[];
  if (config.containers) wanted = Object.keys(config.containers);
  else if (config.containerName) wanted = [config.containerName];
  else if (names.length === 1) wanted = [names[0]!];
  else throw new DriverError("INVALID_TARGET_CONFIG", `config.containerName: ${where} has several containers (${names.join(", ")}); name the one Ferry sets, or map them in config.containers`, { field: "config.containerName", containers: names });
  const unknown = wanted.filter((n) => !names.includes(n));
  if (unknown.length > 0) {
    throw new DriverError("TARGET_NOT_FOUND", `${where} has no container ${unknown.join(", ")} (it has ${names.join(", ")})`, { field: config.containers ? "config.containers" : "config.containerName", containers: names });
  }
  return wanted;
}

/** The image a container runs, by its component. */
export function imageFor(mapping: Record<string, string>, container: string, images: readonly ImagePin[]): ImagePin {
  return images.find((i) => i.component === mapping[container])!;
}

/** Whether `td` already runs exactly the pinned images in the mapped containers. */
export function runsImages(td: TaskDefinition, mapping: Record<string, string>, images: readonly ImagePin[]): boolean {
  return Object.keys(mapping).every((name) => td.containerDefinitions?.find((c) => c.name === name)?.image === imageFor(mapping, name, images).ref);
}

/** The RegisterTaskDefinition input for the next revision: a copy of `td` with the mapped images and `tags`. */
export function nextRevision(td: TaskDefinition, oldTags: readonly Tag[], mapping: Record<string, string>, images: readonly ImagePin[], sticker: readonly Tag[]): RegisterTaskDefinitionCommandInput {
  const copy = structuredClone(td) as Record<string, unknown>;
  for (const k of READ_ONLY) delete copy[k];
  const containers = (td.containerDefinitions ?? []).map((c): ContainerDefinition => (mapping[c.name ?? ""] !== undefined ? { ...c, image: imageFor(mapping, c.name!, images).ref } : { ...c }));
  const tags = [...oldTags.filter((t) => !isFerryTag(t.key)), ...sticker];
  return { ...(copy as unknown as RegisterTaskDefinitionCommandInput), containerDefinitions: containers, ...(tags.length > 0 ? { tags } : {}) };
}
