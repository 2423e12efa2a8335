// Rollouts: a deployment with a strategy other than all-at-once, as a plan of steps the rollout engine executes
// (docs/rollouts.md#the-engine). Reading needs viewer; pause, resume, promote and abort need deployer.
import type { FastifyPluginAsync } from "fastify";
import type { RolloutService } from "../../../domain/rollout/rollout-service.js";
import { actor } from "../request-principal.js";

const ID = { type: "string", minLength: 1, maxLength: 64 } as const;
const idParam = { type: "object", properties: { id: ID }, required: ["id"] } as const;

export function rolloutRoutes(d: { rollouts: RolloutService }): FastifyPluginAsync {
  const s = d.rollouts;
  return async (app) => {
    app.get<{ Querystring: { environment?: string; state?: string; limit?: number; cursor?: string } }>(
      "/rollouts",
      {
        config: { role: "viewer" },
        schema: {
          summary: "List rollouts, newest first, with their steps, keyset pagination (nextCursor)",
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              environment: { type: "string", minLength: 1, maxLength: 63 },
              state: { type: "string", enum: ["running", "halted", "rolling_back", "succeeded", "failed", "rolled_back"] },
              limit: { type: "integer", minimum: 1, maximum: 200 },
              cursor: { type: "string", maxLength: 512 },
            },
          },
        },
      },
      async (req) => {
        const page = await s.list(req.query);
        return { rollouts: page.items, nextCursor: page.nextCursor };
      },
    );
    app.get<{ Params: { id: string } }>(
      "/rollouts/:id",
      { config: { role: "viewer" }, schema: { summary: "Get a rollout: its plan as steps with their state, attempts, deadlines and results", params: idParam } },
      async (req) => s.get(req.params.id),
    );
    const action = (name: "pause" | "resume" | "promote" | "abort", summary: string): void => {
      app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>(
        `/rollouts/:id/${name}`,
        {
          config: { role: "deployer" },
          preValidation: async (req) => {
            if (req.body === undefined || req.body === null) req.body = {};
          },
          schema: {
            summary,
            params: idParam,
            body: { type: "object", additionalProperties: false, properties: name === "abort" ? { reason: { type: "string", maxLength: 1024 } } : {} },
          },
        },
        async (req) => (name === "abort" ? s.abort(req.params.id, actor(req), req.body?.reason ?? "") : s[name](req.params.id, actor(req))),
      );
    };
    action("pause", "Start no new step (a wave already queued runs to its end)");
    action("resume", "Continue a paused rollout");
    action("promote", "End the current soak or bake now, or give the current approval");
    action("abort", "Stop the rollout and roll every target it updated back to its previous digests");
  };
}
