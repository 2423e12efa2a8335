// API tokens: created with a subject and roles, shown once, stored hashed, revocable.
import type { FastifyPluginAsync } from "fastify";
import type { Store } from "../../../ports/store.js";
import { appendAudit } from "../../../domain/audit/audit-log.js";
import { createApiToken, listApiTokens, revokeApiToken } from "../../../domain/auth/api-tokens.js";
import { ROLES, type Role } from "../../../domain/auth/roles.js";
import { parseDuration } from "../../../domain/fleet/durations.js";
import { actor } from "../request-principal.js";

export function apiTokenRoutes(d: { store: Store; onRevoke: () => void }): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: { subject: string; roles: Role[]; description?: string; ttl?: string } }>(
      "/api-tokens",
      {
        config: { role: "admin", idempotent: true, secretResponse: true },
        schema: {
          summary: "Create an API token for a subject with roles; the secret is in this response only",
          body: {
            type: "object",
            additionalProperties: false,
            required: ["subject", "roles"],
            properties: {
              subject: { type: "string", minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9@._:+-]+$" },
              roles: { type: "array", minItems: 1, uniqueItems: true, items: { type: "string", enum: [...ROLES] } },
              description: { type: "string", maxLength: 500 },
              ttl: { type: "string", maxLength: 32 },
            },
          },
        },
      },
      async (req, reply) => {
        const expiresAt = req.body.ttl ? new Date(Date.now() + parseDuration(req.body.ttl, "ttl")) : null;
        const created = await d.store.transaction(async (tx) => {
          const t = await createApiToken(tx, { subject: req.body.subject, roles: req.body.roles, createdBy: actor(req), description: req.body.description ?? "", expiresAt });
          await appendAudit(tx, { actor: actor(req), action: "api-token.create", object: t.id, outcome: "ok", details: { subject: t.subject, roles: t.roles } });
          return t;
        });
        return reply.status(201).send(created);
      },
    );
    app.get("/api-tokens", { config: { role: "admin" }, schema: { summary: "List API tokens (never their secrets)" } }, async () => ({ apiTokens: await listApiTokens(d.store) }));
    app.post<{ Params: { id: string } }>(
      "/api-tokens/:id/revoke",
      { config: { role: "admin" }, schema: { summary: "Revoke an API token", params: { type: "object", properties: { id: { type: "string", maxLength: 64 } }, required: ["id"] } } },
      async (req) =>
        d.store.transaction(async (tx) => {
          const t = await revokeApiToken(tx, req.params.id);
          await appendAudit(tx, { actor: actor(req), action: "api-token.revoke", object: t.id, outcome: "ok" });
          return t;
        }).then((t) => {
          d.onRevoke();
          return t;
        }),
    );
  };
}
