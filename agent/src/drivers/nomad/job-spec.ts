// Reading and changing a Nomad job as the API returns it (PascalCase JSON): which tasks a target sets, their images,
// and Ferry's sticker in the job's Meta.
import type { ImagePin } from "@ferry/contract";

import { DriverError, type TargetSticker } from "../driver.js";

export type NomadJob = Record<string, unknown> & {
  ID: string;
  Version: number;
  JobModifyIndex: number;
  Type?: string;
  Stable?: boolean;
  Meta?: Record<string, string> | null;
  TaskGroups: NomadGroup[];
};
export type NomadGroup = Record<string, unknown> & { Name: string; Count?: number; Update?: NomadUpdate | null; Tasks: NomadTask[] };
export type NomadTask = Record<string, unknown> & { Name: string; Driver: string; Config?: Record<string, unknown> | null };
export interface NomadUpdate {
  MaxParallel?: number;
  Canary?: number;
  AutoPromote?: boolean;
  AutoRevert?: boolean;
  HealthyDeadline?: number;
  ProgressDeadline?: number;
  MinHealthyTime?: number;
}

/** Task drivers whose image is `config.image` and pulled by reference (digests work). */
const IMAGE_DRIVERS = ["docker", "podman"];

export const META = {
  deployment: "ferry.deployment",
  task: "ferry.task",
  release: "ferry.release",
  imagePrefix: "ferry.image.",
} as const;

/** "group/task" → component: the config's map, else group/task, else the job's only task. Unknown names are refused. */
export function mapTasks(job: NomadJob, config: { tasks?: Record<string, string>; group?: string; task?: string; component?: string }, images: readonly Pick<ImagePin, "component">[]): Record<string, string> {
  const all = job.TaskGroups.flatMap((g) => g.Tasks.map((t) => `${g.Name}/${t.Name}`));
  let mapping: Record<string, string>;
  if (config.tasks) mapping = { ...config.tasks };
  else {
    const component = images[0]?.component ?? config.component ?? "";
    const candidates = all.filter((k) => (!config.group || k.startsWith(`${config.group}/`)) && (!config.task || k.endsWith(`/${config.task}`)));
    if (candidates.length !== 1) {
      if (config.group || config.task) {
        throw new DriverError("TARGET_NOT_FOUND", `job ${job.ID} has no task ${config.group ?? "*"}/${config.task ?? "*"}${candidates.length > 1 ? " that is unique" : ""} (it has ${all.join(", ")})`, { field: config.task ? "config.task" : "config.group", tasks: all });
      }
      throw new DriverError("INVALID_TARGET_CONFIG", `config.task: job ${job.ID} has several tasks (${all.join(", ")}); name the one Ferry sets (group and task), or map them in config.tasks`, { field: "config.task", tasks: all });
    }
    mapping = { [candidates[0]!]: component };
  }
  const unknown = Object.keys(mapping).filter((k) => !all.includes(k));
  if (unknown.length > 0) throw new DriverError("TARGET_NOT_FOUND", `job ${job.ID} has no task ${unknown.join(", ")} (it has ${all.join(", ")})`, { field: "config.tasks", tasks: all });
  for (const key of Object.keys(mapping)) {
    const t = taskOf(job, key);
    if (!IMAGE_DRIVERS.includes(t.Driver)) throw new DriverError("TARGET_UNSUPPORTED", `task ${key} of job ${job.ID} uses the ${t.Driver} task driver; Ferry sets images of docker and podman tasks`, { task: key, driver: t.Driver });
  }
  return mapping;
}

export function taskOf(job: NomadJob, key: string): NomadTask {
  const [group, task] = key.split("/");
  const t = job.TaskGroups.find((g) => g.Name === group)?.Tasks.find((x) => x.Name === task);
  if (!t) throw new DriverError("TARGET_NOT_FOUND", `job ${job.ID} version ${job.Version} has no task ${key}`, {});
  return t;
}

export function imageOf(job: NomadJob, key: string): string {
  const image = taskOf(job, key).Config?.["image"];
  return typeof image === "string" ? image : "";
}

export function pinFor(mapping: Record<string, string>, key: string, images: readonly ImagePin[]): ImagePin {
  const pin = images.find((i) => i.component === mapping[key]);
  if (!pin) throw new DriverError("RELEASE_COMPONENT_MISSING", `task ${key} runs ${mapping[key]}, and the task carries no image for it`, { task: key });
  return pin;
}

export function runsImages(job: NomadJob, mapping: Record<string, string>, images: readonly ImagePin[]): boolean {
  return Object.keys(mapping).every((k) => imageOf(job, k) === pinFor(mapping, k, images).ref);
}

/** The job to register: the current one with the mapped images and the sticker in Meta; indexes left to Nomad. */
export function nextJob(job: NomadJob, mapping: Record<string, string>, images: readonly ImagePin[], sticker: TargetSticker): Record<string, unknown> {
  const copy = structuredClone<NomadJob>(job);
  for (const key of Object.keys(mapping)) {
    const t = taskOf(copy, key);
    t.Config = { ...(t.Config ?? {}), image: pinFor(mapping, key, images).ref };
  }
  const meta = Object.fromEntries(Object.entries(copy.Meta ?? {}).filter(([k]) => !k.startsWith("ferry.")));
  copy.Meta = { ...meta, ...stickerMeta(sticker) };
  return copy;
}

export function stickerMeta(s: TargetSticker): Record<string, string> {
  return {
    [META.deployment]: s.deploymentId,
    [META.task]: s.taskId,
    [META.release]: s.releaseId,
    ...Object.fromEntries(s.images.map((i, n) => [`${META.imagePrefix}${n + 1}`, `${i.component}=${i.digest}`])),
  };
}

export function stickerFromMeta(meta: Record<string, string> | null | undefined): TargetSticker | undefined {
  const m = meta ?? {};
  if (!m[META.deployment] || !m[META.task] || m[META.release] === undefined) return undefined;
  const images = Object.entries(m)
    .filter(([k]) => k.startsWith(META.imagePrefix))
    .sort(([a], [b]) => Number(a.slice(META.imagePrefix.length)) - Number(b.slice(META.imagePrefix.length)))
    .map(([, v]) => ({ component: v.slice(0, v.lastIndexOf("=")), digest: v.slice(v.lastIndexOf("=") + 1) }));
  return { deploymentId: m[META.deployment]!, taskId: m[META.task]!, releaseId: m[META.release]!, images };
}

/** The digest a task's image reference pins, or "" for a tag (Nomad reports no digests of its own). */
export function digestOfRef(ref: string): string {
  return /@(sha256:[0-9a-f]{64})$/.exec(ref)?.[1] ?? "";
}
