// The Docker target driver (docs/drivers/docker.md) and how it joins the agent.
//
// The registration is all the agent loads up front: the driver's code (and dockerode with it) is imported only when
// the agent creates the driver, so an agent that serves no Docker target pays nothing for it.
import { dockerKind, type ObjectSchema } from "@ferry/contract";

import { hostRouter } from "../../routing/host-router.js";
import type { DriverRegistration } from "../driver.js";

/** The agent config's `drivers.docker` section. */
export const dockerSettings: ObjectSchema = {
  fields: {
    socket: { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path", doc: "the engine's unix socket for targets whose config names none; default DOCKER_HOST (unix://) or /var/run/docker.sock" },
    stopTimeoutSeconds: { type: "integer", min: 1, max: 600, doc: "how long the engine gives the previous container to stop before it kills it (docker stop -t); default 10" },
    settleSeconds: { type: "integer", min: 0, max: 600, doc: "how long a new container must run with no restart before it can count as healthy, for targets whose healthCheck sets none; default 3" },
    router: { type: "string", enum: ["haproxy"], doc: "the host router in front of routed targets (config.route); none by default (docs/rollouts.md)" },
    routerSocket: { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path", doc: "the router's admin socket (HAProxy: stats socket ... level admin); default /run/haproxy/ferry.sock" },
    routerMaintenanceMap: { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path", doc: "the map file of maintenance messages the HAProxy config reads; default /etc/haproxy/ferry-maintenance.map" },
    routerSplitMap: { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path", doc: "the map file of A/B splits the HAProxy config's split rules read; default /etc/haproxy/ferry-split.map" },
  },
};

export interface DockerSettings {
  socket?: string;
  stopTimeoutSeconds?: number;
  settleSeconds?: number;
  router?: "haproxy";
  routerSocket?: string;
  routerMaintenanceMap?: string;
  routerSplitMap?: string;
}

export const dockerRegistration: DriverRegistration = {
  descriptor: dockerKind,
  settings: dockerSettings,
  enabledByDefault: true,
  async create({ logger, settings }) {
    const { DockerDriver } = await import("./docker-driver.js");
    const s = settings as DockerSettings;
    const router = await hostRouter(s);
    return new DockerDriver({
      ...(router ? { router } : {}),
      logger,
      ...(s.socket !== undefined ? { socketPath: s.socket } : {}),
      ...(s.stopTimeoutSeconds !== undefined ? { stopTimeoutSeconds: s.stopTimeoutSeconds } : {}),
      ...(s.settleSeconds !== undefined ? { settleSeconds: s.settleSeconds } : {}),
    });
  },
};

export type { DockerDriver, DockerDriverOptions, DockerEngine } from "./docker-driver.js";
export type { DockerPhaseState } from "./phase-state.js";
export { LABELS as DOCKER_LABELS } from "./containers.js";
