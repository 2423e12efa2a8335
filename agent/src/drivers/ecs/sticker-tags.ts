// The version sticker as ECS tags, on the task definition Ferry registers and on the service it deploys to.
//
// Tag values are at most 256 characters and keys 128 (ECS API Reference, Tag), so each image is one tag
// `ferry.image.<n>` = `<component>=<digest>` rather than one tag holding them all.
import type { TargetSticker } from "../driver.js";

export const TAGS = {
  deployment: "ferry.deployment",
  task: "ferry.task",
  release: "ferry.release",
  imagePrefix: "ferry.image.",
  /** On the service only: the task definition Ferry deployed, and the one before it (where a rollback goes). */
  taskDefinition: "ferry.task-definition",
  previousTaskDefinition: "ferry.previous-task-definition",
} as const;

export interface Tag {
  key: string;
  value: string;
}

export function stickerTags(s: TargetSticker): Tag[] {
  return [
    { key: TAGS.deployment, value: s.deploymentId },
    { key: TAGS.task, value: s.taskId },
    { key: TAGS.release, value: s.releaseId },
    ...s.images.map((i, n) => ({ key: `${TAGS.imagePrefix}${n + 1}`, value: `${i.component}=${i.digest}` })),
  ];
}

export function isFerryTag(key: string): boolean {
  return key.startsWith("ferry.");
}

export function tagMap(tags: readonly { key?: string | undefined; value?: string | undefined }[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.key !== undefined) out[t.key] = t.value ?? "";
  return out;
}

export function stickerFromTags(tags: Record<string, string>): TargetSticker | undefined {
  const deploymentId = tags[TAGS.deployment];
  const taskId = tags[TAGS.task];
  const releaseId = tags[TAGS.release];
  if (!deploymentId || !taskId || releaseId === undefined) return undefined;
  const images = Object.entries(tags)
    .filter(([k]) => k.startsWith(TAGS.imagePrefix))
    .sort(([a], [b]) => Number(a.slice(TAGS.imagePrefix.length)) - Number(b.slice(TAGS.imagePrefix.length)))
    .map(([, v]) => {
      const at = v.lastIndexOf("=");
      return { component: v.slice(0, at), digest: v.slice(at + 1) };
    });
  return { deploymentId, taskId, releaseId, images };
}
