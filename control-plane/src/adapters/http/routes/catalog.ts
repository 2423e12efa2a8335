// Environments, targets, components and releases. Reads need viewer; changes to the estate model need admin;
// cutting a release needs release-manager.
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { CatalogService, ReleaseView, TargetView } from "../../../domain/catalog/catalog-service.js";
import { MAX_CHECK_WAIT_SECONDS, type TargetChecks, type TargetCheckView } from "../../../domain/deploy/target-checks.js";
import { FerryError } from "../../../domain/errors.js";
import { TARGET_KINDS } from "../../../domain/catalog/target-kinds.js";
import { actor } from "../request-principal.js";
import { DEFAULT_LOG_BYTES, logRange, sendTaskLog } from "./task-log.js";

const NAME = { type: "string", minLength: 1, maxLength: 63 } as const;
const nameParam = { type: "object", properties: { name: NAME }, required: ["name"] } as const;
const envTargetParams = { type: "object", properties: { env: NAME, name: NAME }, required: ["env", "name"] } as const;
const settings = { type: "object" } as const;

// Release bodies are serialised once per release, not once per response. Views from the catalog's release cache are
// frozen and shared, so their JSON cannot change; anything else is serialised each time. The bytes are those
// fastify's default serialiser (JSON.stringify) would send, with its content type.
const releaseJson = new WeakMap<ReleaseView, string>();
function toJson(v: ReleaseView): string {
  let s = releaseJson.get(v);
  if (s === undefined) {
    s = JSON.stringify(v);
    if (Object.isFrozen(v)) releaseJson.set(v, s);
  }
  return s;
}
const sendJson = (reply: FastifyReply, body: string) => reply.type("application/json; charset=utf-8").send(body);

/** `?wait=<seconds>`: how long a change to a target waits for the check it asks for (docs/api.md). */
const waitQuery = { type: "object", additionalProperties: false, properties: { wait: { type: "integer", minimum: 0, maximum: MAX_CHECK_WAIT_SECONDS } } } as const;

export function catalogRoutes(d: { catalog: CatalogService; checks?: TargetChecks }): FastifyPluginAsync {
  const c = d.catalog;
  const checks = d.checks;
  // A target as the API shows it: with its latest check (null when never checked, or without a check service).
  const withCheck = async (t: TargetView): Promise<TargetView & { check: TargetCheckView | null }> => ({ ...t, check: checks ? await checks.get(t.id) : null });
  // Asks for a new check of the target and, with ?wait, waits for its answer.
  const checked = async (t: TargetView, wait: number | undefined): Promise<TargetView & { check: TargetCheckView | null }> => {
    if (!checks) return { ...t, check: null };
    const check = await checks.request(t.id);
    return { ...t, check: wait ? await checks.wait(t.id, wait) : check };
  };
  return async (app) => {
    // environments
    app.get("/environments", { config: { role: "viewer" }, schema: { summary: "List environments in order" } }, async () => ({ environments: await c.listEnvironments() }));
    app.post<{ Body: { name: string; position?: number; description?: string; settings?: Record<string, unknown> } }>(
      "/environments",
      {
        config: { role: "admin" },
        schema: {
          summary: "Create an environment (appended after the last unless a position is given)",
          body: { type: "object", additionalProperties: false, required: ["name"], properties: { name: NAME, position: { type: "integer", minimum: 1, maximum: 1_000_000 }, description: { type: "string", maxLength: 1000 }, settings } },
        },
      },
      async (req, reply) => reply.status(201).send(await c.createEnvironment(req.body, actor(req))),
    );
    app.get<{ Params: { name: string } }>("/environments/:name", { config: { role: "viewer" }, schema: { summary: "Get an environment", params: nameParam } }, async (req) => c.getEnvironment(req.params.name));
    app.patch<{ Params: { name: string }; Body: { position?: number; description?: string; settings?: Record<string, unknown> } }>(
      "/environments/:name",
      {
        config: { role: "admin" },
        schema: {
          summary: "Change an environment's position, description or settings",
          params: nameParam,
          body: { type: "object", additionalProperties: false, properties: { position: { type: "integer", minimum: 1, maximum: 1_000_000 }, description: { type: "string", maxLength: 1000 }, settings } },
        },
      },
      async (req) => c.updateEnvironment(req.params.name, req.body, actor(req)),
    );
    app.delete<{ Params: { name: string } }>("/environments/:name", { config: { role: "admin" }, schema: { summary: "Delete an environment without targets", params: nameParam } }, async (req, reply) => {
      await c.deleteEnvironment(req.params.name, actor(req));
      return reply.status(204).send();
    });

    // targets
    const targetBody = {
      type: "object",
      additionalProperties: false,
      required: ["name", "kind"],
      properties: { name: NAME, kind: { type: "string", maxLength: 32 }, agentId: { type: ["string", "null"], maxLength: 64 }, config: { type: "object" }, description: { type: "string", maxLength: 1000 } },
    } as const;
    app.get<{ Querystring: { environment?: string; kind?: string; agentId?: string } }>(
      "/targets",
      {
        config: { role: "viewer" },
        schema: {
          summary: "List targets, optionally by environment, kind or agent",
          querystring: { type: "object", additionalProperties: false, properties: { environment: NAME, kind: { type: "string", enum: [...TARGET_KINDS] }, agentId: { type: "string", maxLength: 64 } } },
        },
      },
      async (req) => {
        const targets = await c.listTargets(req.query);
        const found = checks ? await checks.forTargets(targets.map((t) => t.id)) : new Map<string, TargetCheckView>();
        return { targets: targets.map((t) => ({ ...t, check: found.get(t.id) ?? null })) };
      },
    );
    app.post<{ Params: { env: string }; Querystring: { wait?: number }; Body: { name: string; kind: string; agentId?: string | null; config?: unknown; description?: string } }>(
      "/environments/:env/targets",
      {
        config: { role: "admin" },
        schema: {
          summary: "Create a target in an environment; its agent is asked to check it (wait for the answer with ?wait=<seconds>)",
          params: { type: "object", properties: { env: NAME }, required: ["env"] },
          querystring: waitQuery,
          body: targetBody,
        },
      },
      async (req, reply) => reply.status(201).send(await checked(await c.createTarget({ ...req.body, environment: req.params.env }, actor(req)), req.query.wait)),
    );
    app.get<{ Params: { env: string; name: string } }>("/environments/:env/targets/:name", { config: { role: "viewer" }, schema: { summary: "Get a target, with its latest check", params: envTargetParams } }, async (req) =>
      withCheck(await c.getTarget(req.params.env, req.params.name)),
    );
    app.patch<{ Params: { env: string; name: string }; Querystring: { wait?: number }; Body: { agentId?: string | null; config?: unknown; description?: string } }>(
      "/environments/:env/targets/:name",
      {
        config: { role: "admin" },
        schema: {
          summary: "Change a target's agent, config or description; a new agent or config is checked again",
          params: envTargetParams,
          querystring: waitQuery,
          body: { type: "object", additionalProperties: false, properties: { agentId: { type: ["string", "null"], maxLength: 64 }, config: { type: "object" }, description: { type: "string", maxLength: 1000 } } },
        },
      },
      async (req) => {
        const t = await c.updateTarget(req.params.env, req.params.name, req.body, actor(req));
        return req.body.config !== undefined || req.body.agentId !== undefined ? checked(t, req.query.wait) : withCheck(t);
      },
    );
    app.post<{ Params: { env: string; name: string }; Querystring: { wait?: number } }>(
      "/environments/:env/targets/:name/check",
      { config: { role: "admin" }, schema: { summary: "Check a target again (wait for the answer with ?wait=<seconds>)", params: envTargetParams, querystring: waitQuery } },
      async (req, reply) => reply.status(202).send(await checked(await c.getTarget(req.params.env, req.params.name), req.query.wait)),
    );
    app.get<{ Params: { env: string; name: string }; Querystring: { offset?: number; limit?: number; task?: string } }>(
      "/environments/:env/targets/:name/check/log",
      {
        config: { role: "viewer" },
        schema: {
          summary: "The log of the target's latest check task (or of ?task=, one of its check tasks) from a byte offset (text/plain); X-Ferry-Task-Id names the task, X-Ferry-Log-Next and X-Ferry-Log-Complete tell where to continue",
          params: envTargetParams,
          querystring: { type: "object", additionalProperties: false, properties: { ...logRange, task: { type: "string", minLength: 1, maxLength: 64 } } },
        },
      },
      async (req, reply) => {
        const t = await c.getTarget(req.params.env, req.params.name);
        if (!checks) throw new FerryError("TASK_NOT_FOUND", `target ${t.id} was never checked`);
        const log = await checks.log(t.id, req.query.offset ?? 0, req.query.limit ?? DEFAULT_LOG_BYTES, req.query.task);
        return sendTaskLog(reply.header("x-ferry-task-id", log.taskId), log);
      },
    );
    app.delete<{ Params: { env: string; name: string } }>("/environments/:env/targets/:name", { config: { role: "admin" }, schema: { summary: "Delete a target", params: envTargetParams } }, async (req, reply) => {
      await c.deleteTarget(req.params.env, req.params.name, actor(req));
      return reply.status(204).send();
    });

    // components
    app.get("/components", { config: { role: "viewer" }, schema: { summary: "List components" } }, async () => ({ components: await c.listComponents() }));
    app.post<{ Body: { name: string; repository: string; credentialsRef?: string | null; description?: string } }>(
      "/components",
      {
        config: { role: "admin" },
        schema: {
          summary: "Register a component by image repository",
          body: { type: "object", additionalProperties: false, required: ["name", "repository"], properties: { name: NAME, repository: { type: "string", minLength: 1, maxLength: 255 }, credentialsRef: { type: ["string", "null"], maxLength: 63 }, description: { type: "string", maxLength: 1000 } } },
        },
      },
      async (req, reply) => reply.status(201).send(await c.createComponent(req.body, actor(req))),
    );
    app.get<{ Params: { name: string } }>("/components/:name", { config: { role: "viewer" }, schema: { summary: "Get a component", params: nameParam } }, async (req) => c.getComponent(req.params.name));
    app.patch<{ Params: { name: string }; Body: { repository?: string; credentialsRef?: string | null; description?: string } }>(
      "/components/:name",
      {
        config: { role: "admin" },
        schema: {
          summary: "Change a component",
          params: nameParam,
          body: { type: "object", additionalProperties: false, properties: { repository: { type: "string", minLength: 1, maxLength: 255 }, credentialsRef: { type: ["string", "null"], maxLength: 63 }, description: { type: "string", maxLength: 1000 } } },
        },
      },
      async (req) => c.updateComponent(req.params.name, req.body, actor(req)),
    );
    app.delete<{ Params: { name: string } }>("/components/:name", { config: { role: "admin" }, schema: { summary: "Delete a component no release pins", params: nameParam } }, async (req, reply) => {
      await c.deleteComponent(req.params.name, actor(req));
      return reply.status(204).send();
    });

    // releases (no update or delete: releases are immutable)
    app.post<{ Body: { name: string; version: string; components: Record<string, string>; notes?: string; provenance?: Record<string, unknown>; rollbackSafe?: boolean; rollbackNote?: string } }>(
      "/releases",
      {
        config: { role: "release-manager", idempotent: true },
        schema: {
          summary: "Cut a release: every tag is resolved to a digest now, once",
          body: {
            type: "object",
            additionalProperties: false,
            required: ["name", "version", "components"],
            properties: {
              name: NAME,
              version: { type: "string", minLength: 1, maxLength: 64 },
              components: { type: "object", additionalProperties: { type: "string", minLength: 1, maxLength: 512 }, minProperties: 1, maxProperties: 200 },
              notes: { type: "string", maxLength: 100_000 },
              provenance: { type: "object" },
              // false: a failed rollout of this release waits for an approval before rolling back (docs/rollouts.md).
              rollbackSafe: { type: "boolean" },
              rollbackNote: { type: "string", minLength: 1, maxLength: 500 },
            },
          },
        },
      },
      async (req, reply) => reply.status(201).send(await c.createRelease(req.body, actor(req))),
    );
    app.get<{ Querystring: { name?: string; component?: string; limit?: number; cursor?: string } }>(
      "/releases",
      {
        config: { role: "viewer" },
        schema: {
          summary: "List releases, newest first, with keyset pagination (nextCursor)",
          querystring: { type: "object", additionalProperties: false, properties: { name: NAME, component: NAME, limit: { type: "integer", minimum: 1, maximum: 500 }, cursor: { type: "string", maxLength: 512 } } },
        },
      },
      async (req, reply) => {
        const page = await c.listReleases(req.query);
        // = JSON.stringify({ releases: page.items, nextCursor: page.nextCursor })
        return sendJson(reply, `{"releases":[${page.items.map(toJson).join(",")}],"nextCursor":${JSON.stringify(page.nextCursor)}}`);
      },
    );
    app.get<{ Params: { ref: string } }>(
      "/releases/:ref",
      { config: { role: "viewer" }, schema: { summary: "Get a release by id or name@version", params: { type: "object", properties: { ref: { type: "string", minLength: 1, maxLength: 200 } }, required: ["ref"] } } },
      async (req, reply) => sendJson(reply, toJson(await c.getRelease(req.params.ref))),
    );
  };
}
