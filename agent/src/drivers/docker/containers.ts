// Reading a Docker target off the engine: the container named in the config, the previous containers a deploy
// parks beside it (`<container>.ferry-old-<id>`), which image each runs and which digest that image carries.
//
// A deploy that crashed half-way leaves a recognisable shape (see `describeLeftovers`), which both `inspect` (to tell
// an operator) and the next deploy (to recover before it starts) read from here.
import type { EngineClient } from "./engine/client.js";
import type { ContainerInspect } from "./engine/types.js";

import { OLD_CONTAINER_MARKER, type ImagePin } from "@ferry/contract";

import type { PhaseContext } from "../driver.js";
import { engineStatus } from "./errors.js";

/** The labels a deployed container carries: what runs there and which task put it there. */
export const LABELS = {
  release: "ferry.release",
  releaseName: "ferry.release.name",
  releaseVersion: "ferry.release.version",
  component: "ferry.component",
  digest: "ferry.digest",
  deployment: "ferry.deployment",
  task: "ferry.task",
  target: "ferry.target",
} as const;

export function deployLabels(ctx: PhaseContext<unknown>, pin: ImagePin): Record<string, string> {
  return {
    [LABELS.release]: ctx.release.id,
    [LABELS.releaseName]: ctx.release.name,
    [LABELS.releaseVersion]: ctx.release.version,
    [LABELS.component]: pin.component,
    [LABELS.digest]: pin.digest,
    [LABELS.deployment]: ctx.deploymentId,
    [LABELS.task]: ctx.taskId,
    [LABELS.target]: ctx.target.id,
  };
}

export function ferryLabels(labels: Record<string, string> | null | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => k.startsWith("ferry.")));
}

export function parkedName(container: string, oldId: string): string {
  return `${container}${OLD_CONTAINER_MARKER}${oldId.slice(0, 12)}`;
}

/** The repository part of an image reference: "reg:5000/a/b@sha256:…" and "reg:5000/a/b:tag" → "reg:5000/a/b". */
export function repositoryOf(imageRef: string): string {
  const at = imageRef.indexOf("@");
  if (at >= 0) return imageRef.slice(0, at);
  const colon = imageRef.lastIndexOf(":");
  return colon > imageRef.lastIndexOf("/") ? imageRef.slice(0, colon) : imageRef;
}

/** A container as the driver sees it. */
export interface ContainerView {
  id: string;
  /** Without the engine's leading "/". */
  name: string;
  /** The engine's state: created, running, exited, paused, restarting, removing, dead. */
  status: string;
  /** Running and not between two runs of a restart loop. */
  running: boolean;
  /** Docker is restarting it under its restart policy (it exited and has not started again yet). */
  restarting: boolean;
  /** Restarts under the restart policy since it was last started by hand. */
  restartCount: number;
  /** The engine's StartedAt of its current (or last) run. */
  startedAt: string;
  /** Its exit code when it last exited (0 while a run is under way). */
  exitCode: number;
  /** The reference it was created from (for Ferry's containers: repository@digest). */
  imageRef: string;
  imageId: string;
  repository: string;
  /** The digest the container's image carries for `repository` in the engine ("" if none does). */
  digest: string;
  labels: Record<string, string>;
  /** When the engine created it: RFC 3339 in UTC, with up to nine fraction digits (trailing zeros trimmed). */
  created: string;
}

/**
 * Orders two containers newest first by their `created` time. The engine trims trailing zeros of the fraction, so the
 * strings are padded to nine digits before they are compared, by code unit: `localeCompare` would compare them wrongly
 * too ("45.12345Z" after "45.123456789Z") and would make ICU's collation data resident in the agent.
 */
export function newestFirst(a: Pick<ContainerView, "created">, b: Pick<ContainerView, "created">): number {
  const key = (t: string) => t.replace(/(?:\.(\d{1,9}))?Z$/, (_m, f: string | undefined) => `.${(f ?? "").padEnd(9, "0")}Z`);
  const ka = key(a.created);
  const kb = key(b.created);
  return ka < kb ? 1 : ka > kb ? -1 : 0;
}

export interface TargetContainers {
  current: ContainerView | undefined;
  /** Parked previous containers, newest first. */
  parked: ContainerView[];
}

/** The digest among an image's RepoDigests for `repository`, preferring `preferred` when it is one of them. */
export function digestFor(repoDigests: string[] | undefined, repository: string, preferred?: string): string {
  const digests = (repoDigests ?? []).filter((d) => d.startsWith(`${repository}@`)).map((d) => d.slice(repository.length + 1));
  if (preferred && digests.includes(preferred)) return preferred;
  return digests[0] ?? "";
}

/** One container as the driver sees it, or undefined when it is gone. The compose driver reads services with it. */
export async function view(docker: EngineClient, id: string): Promise<ContainerView | undefined> {
  let info: ContainerInspect;
  try {
    info = await docker.getContainer(id).inspect();
  } catch (err) {
    // Removed between the listing and the inspect.
    if (engineStatus(err) === 404) return undefined;
    throw err;
  }
  const labels = info.Config.Labels ?? {};
  const imageRef = info.Config.Image;
  const repository = repositoryOf(imageRef);
  let repoDigests: string[] = [];
  try {
    repoDigests = (await docker.getImage(info.Image).inspect()).RepoDigests ?? [];
  } catch (err) {
    if (engineStatus(err) !== 404) throw err;
  }
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ""),
    status: info.State.Status,
    running: info.State.Running && !info.State.Restarting,
    restarting: info.State.Restarting,
    restartCount: info.RestartCount ?? 0,
    startedAt: info.State.StartedAt,
    exitCode: info.State.ExitCode,
    imageRef,
    imageId: info.Image,
    repository,
    digest: digestFor(repoDigests, repository, labels[LABELS.digest]),
    labels,
    created: info.Created,
  };
}

/** The target's container and any parked previous ones. */
export async function findContainers(docker: EngineClient, container: string): Promise<TargetContainers> {
  // The engine's name filter is a regular-expression match anywhere in the name; the exact check is ours.
  const listed = await docker.listContainers({ all: true, filters: { name: [container] } });
  const prefix = `/${container}${OLD_CONTAINER_MARKER}`;
  const currentId = listed.find((c) => c.Names.includes(`/${container}`))?.Id;
  const parkedIds = listed.filter((c) => c.Names.some((n) => n.startsWith(prefix))).sort((a, b) => b.Created - a.Created).map((c) => c.Id);
  // Independent reads: one round of concurrent inspects instead of one after another.
  const [current, ...parked] = await Promise.all([currentId ? view(docker, currentId) : undefined, ...parkedIds.map((id) => view(docker, id))]);
  return { current, parked: parked.filter((v): v is ContainerView => v !== undefined) };
}

/** A sentence for an operator when a deploy was interrupted, or undefined when the target looks settled. */
export function describeLeftovers(found: TargetContainers, container: string): string | undefined {
  const { current, parked } = found;
  if (parked.length === 0) return undefined;
  const names = parked.map((p) => `${p.name} (${p.status})`).join(", ");
  if (!current) {
    return `a deploy was interrupted after parking the previous container: ${container} is missing and the previous container is parked as ${names}; the next deploy puts it back first`;
  }
  if (!current.running && !current.restarting) {
    const task = current.labels[LABELS.task];
    return (
      `a deploy was interrupted: ${container} (${current.status}${task ? `, task ${task}` : ""}) is not running and the previous ` +
      `container is parked as ${names}; the next deploy removes the unfinished container and puts the previous one back first`
    );
  }
  const now = current.restarting ? "crash-loops (Docker keeps restarting it)" : "runs";
  return `a deploy was interrupted before its cleanup: ${container} ${now} and the previous container is still parked as ${names}; the next successful deploy removes it`;
}
