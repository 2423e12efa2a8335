// Outgoing webhooks: subscriptions (admin) and their delivery status.
import type { FastifyPluginAsync } from "fastify";
import type { SqlWebhookStore } from "../../../domain/notify/webhook-service.js";
import { WEBHOOK_EVENT_TYPES } from "../../../domain/notify/webhooks.js";
import { actor } from "../request-principal.js";

const idParam = { type: "object", properties: { id: { type: "string", minLength: 1, maxLength: 64 } }, required: ["id"] } as const;

export function webhookRoutes(d: { webhooks: SqlWebhookStore }): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: { url: string; events?: string[]; secret?: string } }>(
      "/webhooks",
      {
        config: { role: "admin" },
        schema: {
          summary: "Subscribe a URL to promotion events; deliveries are signed with HMAC-SHA256 (the secret is shown once)",
          body: {
            type: "object",
            additionalProperties: false,
            required: ["url"],
            properties: { url: { type: "string", minLength: 1, maxLength: 2000 }, events: { type: "array", items: { type: "string", enum: [...WEBHOOK_EVENT_TYPES] }, maxItems: 32 }, secret: { type: "string", maxLength: 256 } },
          },
        },
      },
      async (req, reply) => reply.status(201).send(await d.webhooks.create(req.body, actor(req))),
    );
    app.get("/webhooks", { config: { role: "admin" }, schema: { summary: "Webhook subscriptions (secrets are never shown)" } }, async () => ({ webhooks: await d.webhooks.list() }));
    app.post<{ Params: { id: string } }>("/webhooks/:id/disable", { config: { role: "admin" }, schema: { summary: "Stop delivering to a subscription", params: idParam } }, async (req) =>
      d.webhooks.setEnabled(req.params.id, false, actor(req)),
    );
    app.post<{ Params: { id: string } }>("/webhooks/:id/enable", { config: { role: "admin" }, schema: { summary: "Resume delivering to a subscription", params: idParam } }, async (req) =>
      d.webhooks.setEnabled(req.params.id, true, actor(req)),
    );
    app.get<{ Querystring: { subscription?: string; event?: string; status?: "pending" | "delivered" | "failed" | "dropped" } }>(
      "/webhooks/deliveries",
      {
        config: { role: "viewer" },
        schema: {
          summary: "Delivery status: pending, delivered, failed (retries exhausted) or dropped (queue full)",
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { subscription: { type: "string", maxLength: 64 }, event: { type: "string", maxLength: 64 }, status: { type: "string", enum: ["pending", "delivered", "failed", "dropped"] } },
          },
        },
      },
      async (req) => {
        const deliveries = await d.webhooks.listDeliveries({
          ...(req.query.subscription ? { subscriptionId: req.query.subscription } : {}),
          ...(req.query.event ? { eventId: req.query.event } : {}),
          ...(req.query.status ? { status: req.query.status } : {}),
        });
        // What a receiver answered can be anything its operator (or an attacker behind the URL) chose to send back:
        // admins see it, everyone else sees the status line only.
        const admin = req.principal?.roles.includes("admin") ?? false;
        return { deliveries: admin ? deliveries : deliveries.map(({ lastResponse: _hidden, ...rest }) => rest) };
      },
    );
  };
}
