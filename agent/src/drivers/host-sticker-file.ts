// The version sticker as a file on a host a gateway agent reaches (ssh, winrm): one JSON document per target, the
// same format whichever way the file is written, so an operator reads every host's sticker alike.
import type { PhaseContext, TargetSticker } from "./driver.js";

export interface HostStickerFile {
  version: 1;
  targetId: string;
  deploymentId: string;
  taskId: string;
  releaseId: string;
  releaseName: string;
  releaseVersion: string;
  images: { component: string; repository: string; digest: string }[];
  writtenAt: string;
}

/** The sticker a task writes on its target. */
export function hostStickerFile(ctx: PhaseContext<unknown>): HostStickerFile {
  return {
    version: 1,
    targetId: ctx.target.id,
    deploymentId: ctx.deploymentId,
    taskId: ctx.taskId,
    releaseId: ctx.release.id,
    releaseName: ctx.release.name,
    releaseVersion: ctx.release.version,
    images: ctx.images.map((i) => ({ component: i.component, repository: i.repository, digest: i.digest })),
    writtenAt: new Date().toISOString(),
  };
}

/** The sticker read back from the file's text, or undefined when it is not Ferry's. */
export function parseHostStickerFile(text: string): HostStickerFile | undefined {
  if (text.trim() === "") return undefined;
  try {
    const s = JSON.parse(text) as HostStickerFile;
    return s.version === 1 && typeof s.releaseId === "string" && Array.isArray(s.images) ? s : undefined;
  } catch {
    return undefined;
  }
}

export function asTargetSticker(s: HostStickerFile): TargetSticker {
  return { deploymentId: s.deploymentId, taskId: s.taskId, releaseId: s.releaseId, images: s.images.map((i) => ({ component: i.component, digest: i.digest })) };
}
