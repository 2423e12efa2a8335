// Who is calling: the principal the authentication hook (server.ts) puts on each request, and the helpers route
// handlers read it with. Kept apart from server.ts so route modules depend on this, not on the server that
// registers them.
import type { FastifyRequest } from "fastify";
import type { Principal } from "../../domain/auth/roles.js";
import { FerryError } from "../../domain/errors.js";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The subject to record as the actor of a change ("anonymous" on public routes). */
export function actor(req: FastifyRequest): string {
  return req.principal ? req.principal.subject : "anonymous";
}

/** The authenticated principal; for routes that declare a role, the hook has already set it. */
export function principalOf(req: FastifyRequest): Principal {
  const p = req.principal;
  if (!p) throw new FerryError("UNAUTHENTICATED", "send an API token as 'Authorization: Bearer <token>'");
  return p;
}
