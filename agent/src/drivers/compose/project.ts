// A Compose project as the engine shows it: its containers, by the labels every Compose CLI (v1 and v2) sets on what
// it creates (com.docker.compose.project, com.docker.compose.service, com.docker.compose.oneoff).
import type { EngineClient } from "../docker/engine/client.js";

import { newestFirst, view, type ContainerView } from "../docker/containers.js";

export const COMPOSE_LABELS = { project: "com.docker.compose.project", service: "com.docker.compose.service", oneoff: "com.docker.compose.oneoff" } as const;

/** service → its containers (newest first), one-off `run` containers left out. */
export async function projectContainers(docker: EngineClient, project: string): Promise<Map<string, ContainerView[]>> {
  const listed = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_LABELS.project}=${project}`] } });
  const out = new Map<string, ContainerView[]>();
  const views = await Promise.all(listed.map((c) => view(docker, c.Id)));
  for (const v of views) {
    if (!v || v.labels[COMPOSE_LABELS.oneoff] === "True") continue;
    const service = v.labels[COMPOSE_LABELS.service];
    if (!service) continue;
    const list = out.get(service) ?? [];
    list.push(v);
    out.set(service, list);
  }
  for (const list of out.values()) list.sort(newestFirst);
  return out;
}

/** The container that stands for a service: a running one if any, else the newest. */
export function serviceContainer(containers: Map<string, ContainerView[]>, service: string): ContainerView | undefined {
  const list = containers.get(service) ?? [];
  return list.find((c) => c.running || c.restarting) ?? list[0];
}

/** Whether the container was created with a HEALTHCHECK (the service's compose healthcheck or the image's). */
export async function containerHasHealthcheck(docker: EngineClient, id: string): Promise<boolean> {
  const info = await docker.getContainer(id).inspect();
  const test = info.Config.Healthcheck?.Test;
  return !!test && test.length > 0 && test[0] !== "NONE";
}
