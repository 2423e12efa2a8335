// The Compose target driver (docs/drivers/compose.md) and how it joins the agent. Its code is loaded only when the
// agent creates the driver.
import { composeKind, type ObjectSchema } from "@ferry/contract";

import { hostRouter } from "../../routing/host-router.js";
import { dockerSettings } from "../docker/index.js";
import type { DriverRegistration } from "../driver.js";

/** The agent config's `drivers.compose` section. */
export const composeSettings: ObjectSchema = {
  fields: {
    socket: { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path", doc: "the engine's unix socket for targets whose config names none; default DOCKER_HOST (unix://) or /var/run/docker.sock" },
    cli: { type: "string", enum: ["v1", "v2"], doc: "use only docker-compose (v1) or only docker compose (v2); default: v2 when it runs, else v1" },
    settleSeconds: { type: "integer", min: 0, max: 600, doc: "how long a replaced service must run with no restart before it can count as healthy; default 3" },
    // The host router, as for the docker driver: routed services (config.routes) switch slots through it.
    router: dockerSettings.fields["router"]!,
    routerSocket: dockerSettings.fields["routerSocket"]!,
    routerMaintenanceMap: dockerSettings.fields["routerMaintenanceMap"]!,
    routerSplitMap: dockerSettings.fields["routerSplitMap"]!,
    stopTimeoutSeconds: { type: "integer", min: 1, max: 600, doc: "how long a retired slot's container gets to stop before the engine kills it; default 10" },
  },
};

export interface ComposeSettings {
  socket?: string;
  cli?: "v1" | "v2";
  settleSeconds?: number;
  router?: "haproxy";
  routerSocket?: string;
  routerMaintenanceMap?: string;
  routerSplitMap?: string;
  stopTimeoutSeconds?: number;
}

export const composeRegistration: DriverRegistration = {
  descriptor: composeKind,
  settings: composeSettings,
  enabledByDefault: true,
  async create({ logger, settings }) {
    const { ComposeDriver } = await import("./compose-driver.js");
    const s = settings as ComposeSettings;
    const router = await hostRouter(s);
    return new ComposeDriver({
      logger,
      ...(router ? { router } : {}),
      ...(s.stopTimeoutSeconds !== undefined ? { stopTimeoutSeconds: s.stopTimeoutSeconds } : {}),
      ...(s.socket !== undefined ? { socketPath: s.socket } : {}),
      ...(s.cli !== undefined ? { cli: s.cli } : {}),
      ...(s.settleSeconds !== undefined ? { settleSeconds: s.settleSeconds } : {}),
    });
  },
};

export type { ComposeDriver, ComposeDriverOptions } from "./compose-driver.js";
