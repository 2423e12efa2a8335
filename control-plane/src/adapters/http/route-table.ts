// Every route the server registers, as fastify reports it (the onRoute hook), so a test can walk all of them
// without a hand-kept list that would miss the next route added.
import type { FastifyInstance, RouteOptions } from "fastify";

const tables = new WeakMap<FastifyInstance, RouteOptions[]>();

/** Starts recording; call before any route is registered. */
export function recordRoutes(app: FastifyInstance): void {
  const routes: RouteOptions[] = [];
  tables.set(app, routes);
  app.addHook("onRoute", (route) => {
    routes.push(route);
  });
}

export function registeredRoutes(app: FastifyInstance): readonly RouteOptions[] {
  return tables.get(app) ?? [];
}
