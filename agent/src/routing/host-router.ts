// The host router a driver's settings ask for (drivers.docker / drivers.compose: router, routerSocket,
// routerMaintenanceMap, routerSplitMap; docs/agent.md), with its defaults in one place. The HAProxy client is loaded
// only when a router is configured.
import type { Router } from "./router.js";

export interface HostRouterSettings {
  router?: "haproxy";
  routerSocket?: string;
  routerMaintenanceMap?: string;
  routerSplitMap?: string;
}

/** The configured host router, or undefined when the settings name none. */
export async function hostRouter(s: HostRouterSettings): Promise<Router | undefined> {
  if (s.router !== "haproxy") return undefined;
  const { HaproxyRouter } = await import("./haproxy/haproxy-router.js");
  return new HaproxyRouter({
    socket: s.routerSocket ?? "/run/haproxy/ferry.sock",
    maintenanceMap: s.routerMaintenanceMap ?? "/etc/haproxy/ferry-maintenance.map",
    splitMap: s.routerSplitMap ?? "/etc/haproxy/ferry-split.map",
  });
}
