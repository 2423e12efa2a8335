// Deployments, rollbacks and what runs where. Deploying and rolling back need deployer; reading needs viewer.
// Into an environment with gates, a direct deploy, rollback or retry also needs an override: { "override":
// { "reason": "…" } } from a caller with the gate-override role (domain/deploy/governance.ts, docs/gates.md).
import type { FastifyPluginAsync } from "fastify";
import type { CatalogService } from "../../../domain/catalog/catalog-service.js";
import type { DeploymentService } from "../../../domain/deploy/deployment-service.js";
import { FerryError } from "../../../domain/errors.js";
import type { RolloutService } from "../../../domain/rollout/rollout-service.js";
import { parseStrategy } from "../../../domain/rollout/strategy.js";
import { actor } from "../request-principal.js";
import { DEFAULT_LOG_BYTES, logRange, sendTaskLog } from "./task-log.js";

const NAME = { type: "string", minLength: 1, maxLength: 63 } as const;
const ID = { type: "string", minLength: 1, maxLength: 64 } as const;
const idParam = { type: "object", properties: { id: ID }, required: ["id"] } as const;
const targetsList = { type: "array", items: NAME, maxItems: 500 } as const;
const override = {
  type: "object",
  additionalProperties: false,
  required: ["reason"],
  properties: { reason: { type: "string", minLength: 1, maxLength: 1000 } },
} as const;

export function deploymentRoutes(d: { deployments: DeploymentService; catalog?: CatalogService; rollouts?: RolloutService }): FastifyPluginAsync {
  const s = d.deployments;
  return async (app) => {
    app.post<{ Body: { release: string; environment: string; targets?: string[]; override?: { reason: string }; strategy?: unknown } }>(
      "/deployments",
      {
        config: { role: "deployer", idempotent: true },
        schema: {
          summary: "Deploy a release (id or name@version) to an environment's targets: one signed task per target",
          body: {
            type: "object",
            additionalProperties: false,
            required: ["release", "environment"],
            properties: {
              release: { type: "string", minLength: 1, maxLength: 200 },
              environment: NAME,
              targets: targetsList,
              override,
              // Checked by the strategy parser (domain/rollout/strategy.ts), which names the offending field.
              strategy: { type: ["string", "object"], maxLength: 32, maxProperties: 16 },
            },
          },
        },
      },
      async (req, reply) => {
        const { strategy: requested, ...input } = req.body;
        // All-at-once (the default) is the deployment path as it always was; any other strategy is a rollout whose
        // first wave is the deployment returned, with the rollout beside it.
        if (d.catalog && d.rollouts) {
          const strategy = d.rollouts.resolveStrategy(await d.catalog.getEnvironment(input.environment), requested);
          if (strategy.kind !== "all-at-once") {
            const { rollout, deployment } = await d.rollouts.create({ ...input, strategy }, actor(req), { principal: req.principal });
            return reply.status(201).send({ ...deployment, rollout });
          }
        } else if (requested !== undefined && parseStrategy(requested).kind !== "all-at-once") {
          throw new FerryError("ROLLOUT_STRATEGY_UNSUPPORTED", "this server runs no rollout engine; only all-at-once deployments are possible");
        }
        return reply.status(201).send(await s.deploy(input, actor(req), { principal: req.principal }));
      },
    );
    app.post<{ Body: { environment: string; targets?: string[]; override?: { reason: string } } }>(
      "/rollbacks",
      {
        config: { role: "deployer", idempotent: true },
        schema: {
          summary: "Put back, on each target, the images it ran before its current ones (its newest earlier success with other images)",
          body: { type: "object", additionalProperties: false, required: ["environment"], properties: { environment: NAME, targets: targetsList, override } },
        },
      },
      async (req, reply) => reply.status(201).send(await s.rollback(req.body, actor(req), { principal: req.principal })),
    );
    app.post<{ Params: { env: string }; Body: { on: boolean; message?: string; targets?: string[] } }>(
      "/environments/:env/maintenance",
      {
        config: { role: "deployer", idempotent: true },
        schema: {
          summary: "Maintenance on (every request answered 503 with the message) or off, on the environment's routed targets: one signed route task per target",
          params: { type: "object", properties: { env: NAME }, required: ["env"] },
          body: {
            type: "object",
            additionalProperties: false,
            required: ["on"],
            properties: { on: { type: "boolean" }, message: { type: "string", minLength: 1, maxLength: 256 }, targets: targetsList },
          },
        },
      },
      async (req, reply) => reply.status(201).send(await s.maintenance({ environment: req.params.env, ...req.body }, actor(req))),
    );
    app.get<{ Querystring: { environment?: string; state?: string; limit?: number; cursor?: string } }>(
      "/deployments",
      {
        config: { role: "viewer" },
        schema: {
          summary: "List deployments, newest first, with keyset pagination (nextCursor)",
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              environment: NAME,
              state: { type: "string", enum: ["queued", "running", "succeeded", "failed", "cancelled"] },
              limit: { type: "integer", minimum: 1, maximum: 200 },
              cursor: { type: "string", maxLength: 512 },
            },
          },
        },
      },
      async (req) => {
        const page = await s.list(req.query);
        return { deployments: page.items, nextCursor: page.nextCursor };
      },
    );
    app.get<{ Params: { id: string } }>(
      "/deployments/:id",
      {
        config: { role: "viewer" },
        schema: { summary: "Get a deployment with its tasks and each task's newest 100 progress events (eventsTotal counts all; page with /tasks/{task}/events)", params: idParam },
      },
      async (req) => s.get(req.params.id, { events: true }),
    );
    app.get<{ Params: { id: string; task: string }; Querystring: { after?: number; limit?: number } }>(
      "/deployments/:id/tasks/:task/events",
      {
        config: { role: "viewer" },
        schema: {
          summary: "A task's progress events, oldest first, after a sequence number; nextAfter continues (null on the last page)",
          params: { type: "object", properties: { id: ID, task: ID }, required: ["id", "task"] },
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { after: { type: "integer", minimum: 0, maximum: 2_147_483_647 }, limit: { type: "integer", minimum: 1, maximum: 500 } },
          },
        },
      },
      async (req) => s.taskEvents(req.params.id, req.params.task, req.query.after ?? 0, req.query.limit ?? 500),
    );
    app.post<{ Params: { id: string }; Body: { override?: { reason: string } } | undefined }>(
      "/deployments/:id/retry",
      {
        config: { role: "deployer", idempotent: true },
        // The body is optional (only an override goes in it): no body is an empty one.
        preValidation: async (req) => {
          if (req.body === undefined || req.body === null) req.body = {};
        },
        schema: {
          summary: "Deploy again to the targets whose tasks did not succeed",
          params: idParam,
          body: { type: "object", additionalProperties: false, properties: { override } },
        },
      },
      async (req, reply) => reply.status(201).send(await s.retry(req.params.id, actor(req), { principal: req.principal, override: req.body?.override ?? null })),
    );
    app.post<{ Params: { id: string } }>(
      "/deployments/:id/cancel",
      { config: { role: "deployer" }, schema: { summary: "Cancel the tasks no agent has picked up yet", params: idParam } },
      async (req) => s.cancel(req.params.id, actor(req)),
    );
    app.get<{ Params: { id: string; task: string }; Querystring: { offset?: number; limit?: number } }>(
      "/deployments/:id/tasks/:task/log",
      {
        config: { role: "viewer" },
        schema: {
          summary: "A task's log from a byte offset (text/plain); X-Ferry-Log-Next and X-Ferry-Log-Complete tell where to continue",
          params: { type: "object", properties: { id: ID, task: ID }, required: ["id", "task"] },
          querystring: { type: "object", additionalProperties: false, properties: logRange },
        },
      },
      async (req, reply) => sendTaskLog(reply, await s.taskLog(req.params.id, req.params.task, req.query.offset ?? 0, req.query.limit ?? DEFAULT_LOG_BYTES)),
    );
    app.get<{ Params: { id: string; task: string } }>(
      "/deployments/:id/tasks/:task/lock",
      {
        config: { role: "viewer" },
        schema: {
          summary: "The lock file a compose task writes on its target, as stored when it was queued: {fileName, sha256, text} (LOCK_NOT_FOUND for other kinds)",
          params: { type: "object", properties: { id: ID, task: ID }, required: ["id", "task"] },
        },
      },
      async (req) => s.taskLock(req.params.id, req.params.task),
    );
    app.get<{ Querystring: { environment?: string } }>(
      "/status",
      {
        config: { role: "viewer" },
        schema: { summary: "What is deployed where, from Ferry's records and the agents' stickers, with drift marked", querystring: { type: "object", additionalProperties: false, properties: { environment: NAME } } },
      },
      async (req) => ({ targets: await s.status(req.query.environment) }),
    );
  };
}
