// Fleet endpoints: agents, join tokens, certificate revocation, fleet ping.
import type { FastifyPluginAsync } from "fastify";
import { encodeJoinString } from "@ferry/pki";
import { parseDuration } from "../../../domain/fleet/durations.js";
import type { AgentStatus, FleetService } from "../../../domain/fleet/fleet-service.js";
import { actor } from "../request-principal.js";

export interface FleetRouteDeps {
  fleet: FleetService;
  caFingerprint: string;
  enrolEndpoint: () => string;
  defaultJoinTokenTtlMs: number;
  /** Pings every agent connected to any replica; resolves with the count this replica reached. */
  pingFleet: () => Promise<{ replicaSent: number }>;
}

const idParam = {
  type: "object",
  properties: { id: { type: "string", minLength: 1, maxLength: 64 } },
  required: ["id"],
} as const;

export function fleetRoutes(d: FleetRouteDeps): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: { environment?: string; status?: AgentStatus } }>(
      "/agents",
      {
        config: { role: "viewer" },
        schema: {
          summary: "List agents, optionally by environment or status",
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              environment: { type: "string", maxLength: 63 },
              status: { type: "string", enum: ["online", "offline", "revoked"] },
            },
          },
        },
      },
      async (req) => {
        const filter: { environment?: string; status?: AgentStatus } = {};
        if (req.query.environment) filter.environment = req.query.environment;
        if (req.query.status) filter.status = req.query.status;
        const agents = await d.fleet.listAgents(filter);
        return { agents, count: agents.length };
      },
    );

    app.get<{ Params: { id: string } }>("/agents/:id", { config: { role: "viewer" }, schema: { summary: "Get an agent", params: idParam } }, async (req) =>
      d.fleet.getAgent(req.params.id),
    );

    app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>(
      "/agents/:id/revoke",
      {
        config: { role: "admin" },
        schema: {
          summary: "Revoke an agent and all its certificates; its stream closes on every replica",
          params: idParam,
          body: { type: "object", additionalProperties: false, properties: { reason: { type: "string", maxLength: 500 } } },
        },
      },
      async (req) => d.fleet.revokeAgent(req.params.id, actor(req), req.body?.reason ?? ""),
    );

    app.post<{ Params: { serial: string }; Body: { reason?: string } | undefined }>(
      "/certificates/:serial/revoke",
      {
        config: { role: "admin" },
        schema: {
          summary: "Revoke one certificate by serial",
          params: { type: "object", properties: { serial: { type: "string", pattern: "^[0-9a-fA-F:]{2,128}$" } }, required: ["serial"] },
          body: { type: "object", additionalProperties: false, properties: { reason: { type: "string", maxLength: 500 } } },
        },
      },
      async (req) => {
        await d.fleet.revokeSerial(req.params.serial, actor(req), req.body?.reason ?? "");
        return { serial: req.params.serial.toLowerCase().replace(/:/g, ""), revoked: true };
      },
    );

    app.post<{ Body: { environment: string; ttl?: string; uses?: number; labels?: Record<string, string> } }>(
      "/join-tokens",
      {
        config: { role: "admin", idempotent: true, secretResponse: true },
        schema: {
          summary: "Create a join token; the join string is in this response only",
          body: {
            type: "object",
            additionalProperties: false,
            required: ["environment"],
            properties: {
              environment: { type: "string", minLength: 1, maxLength: 63 },
              ttl: { type: "string", minLength: 1, maxLength: 32 },
              uses: { type: "integer", minimum: 1, maximum: 10000 },
              labels: { type: "object", additionalProperties: { type: "string", maxLength: 128 }, maxProperties: 32 },
            },
          },
        },
      },
      async (req, reply) => {
        const ttlMs = req.body.ttl ? parseDuration(req.body.ttl, "ttl") : d.defaultJoinTokenTtlMs;
        const { token, secret } = await d.fleet.createJoinToken({
          environment: req.body.environment,
          ttlMs,
          uses: req.body.uses ?? 1,
          labels: req.body.labels ?? {},
          createdBy: actor(req),
        });
        const joinString = encodeJoinString({ enrolEndpoint: d.enrolEndpoint(), caFingerprint: d.caFingerprint, token: secret });
        return reply.status(201).send({ ...token, joinString });
      },
    );

    app.get("/join-tokens", { config: { role: "admin" }, schema: { summary: "List join tokens (never their secrets)" } }, async () => {
      const tokens = await d.fleet.listJoinTokens();
      return { joinTokens: tokens, count: tokens.length };
    });

    app.post<{ Params: { id: string } }>("/join-tokens/:id/revoke", { config: { role: "admin" }, schema: { summary: "Revoke a join token", params: idParam } }, async (req) =>
      d.fleet.revokeJoinToken(req.params.id, actor(req)),
    );

    app.post("/fleet/ping", { config: { role: "admin" }, schema: { summary: "Send an in-stream Ping to every connected agent on every replica" } }, async () => d.pingFleet());

    app.get("/fleet/summary", { config: { role: "viewer" }, schema: { summary: "Counts by status, CA fingerprint and enrolment endpoint" } }, async () => {
      const agents = await d.fleet.listAgents();
      const byStatus: Record<string, number> = { online: 0, offline: 0, revoked: 0 };
      for (const a of agents) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
      return { total: agents.length, ...byStatus, caFingerprint: d.caFingerprint, enrolEndpoint: d.enrolEndpoint() };
    });
  };
}
