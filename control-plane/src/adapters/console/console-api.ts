// JSON read models for the console under /api/v1/console: the overview (matrix, fleet health, metrics) and the
// activity around an agent, a release and an environment. Same authentication and error shape as the rest of the API.
import type { FastifyPluginAsync } from "fastify";
import type { TargetChecks, TargetCheckView } from "../../domain/deploy/target-checks.js";
import type { Store } from "../../ports/store.js";
import type { CatalogService } from "../../domain/catalog/catalog-service.js";
import type { DeploymentService } from "../../domain/deploy/deployment-service.js";
import type { FleetService } from "../../domain/fleet/fleet-service.js";
import { activeFreezes, nextFreeze, nextWindowEnd, parseFreezeConfig } from "../../domain/promotion/gates/freeze.js";
import { buildMatrix } from "./estate-matrix.js";
import { consoleMetrics, deploymentsOfRelease, promotionsOfRelease, recentTasksOfAgent, scansOfDigests } from "./console-queries.js";

export interface ConsoleApiDeps {
  store: Store;
  catalog: CatalogService;
  deployments: DeploymentService;
  fleet: FleetService;
  /** Target checks, shown with the environment's targets; without it targets show no check. */
  targetChecks?: TargetChecks;
}

const ID = { type: "string", minLength: 1, maxLength: 200 } as const;
const CERT_WARN_MS = 2 * 3600_000;

export function consoleApiRoutes(d: ConsoleApiDeps): FastifyPluginAsync {
  return async (app) => {
    app.get("/console/overview", { config: { role: "viewer" }, schema: { summary: "The console's overview: environment × component matrix, fleet health and delivery metrics" } }, async () => {
      const now = new Date();
      const [envs, comps, statuses, agents, metrics] = await Promise.all([
        d.catalog.listEnvironments(),
        d.catalog.listComponents(),
        d.deployments.status(),
        d.fleet.listAgents(),
        consoleMetrics(d.store),
      ]);
      const fleet = { online: 0, offline: 0, revoked: 0, total: agents.length, reconnecting: 0, certificatesExpiringSoon: 0, clockSkewed: 0 };
      for (const a of agents) {
        fleet[a.status]++;
        if (a.status === "online" && !a.connected) fleet.reconnecting++;
        if (a.status !== "revoked" && a.certificate.notAfter && Date.parse(a.certificate.notAfter) - now.getTime() < CERT_WARN_MS) fleet.certificatesExpiringSoon++;
        if (a.clockSkewMs !== null && Math.abs(a.clockSkewMs) > 2000) fleet.clockSkewed++;
      }
      const perEnv = envs.map((e) => {
        const inEnv = agents.filter((a) => a.environment === e.name);
        const gates = Array.isArray(e.settings["gates"]) ? (e.settings["gates"] as { kind?: string }[]).map((g) => String(g.kind)) : [];
        return { name: e.name, position: e.position, gates, agents: { online: inEnv.filter((a) => a.status === "online").length, offline: inEnv.filter((a) => a.status === "offline").length } };
      });
      return {
        generatedAt: now.toISOString(),
        environments: perEnv,
        matrix: buildMatrix(envs.map((e) => e.name), comps.map((c) => c.name), statuses, agents, now),
        fleet,
        metrics,
      };
    });

    app.get<{ Params: { id: string } }>(
      "/console/agents/:id/activity",
      { config: { role: "viewer" }, schema: { summary: "The targets an agent serves and its recent tasks", params: { type: "object", properties: { id: ID }, required: ["id"] } } },
      async (req) => {
        const agent = await d.fleet.getAgent(req.params.id);
        const [targets, tasks] = await Promise.all([d.catalog.listTargets({ agentId: agent.id }), recentTasksOfAgent(d.store, agent.id)]);
        return { targets: targets.map((t) => ({ id: t.id, environment: t.environment, name: t.name, kind: t.kind })), tasks };
      },
    );

    app.get<{ Params: { ref: string } }>(
      "/console/releases/:ref/activity",
      { config: { role: "viewer" }, schema: { summary: "Where a release runs, its promotions, deployments and scan reports", params: { type: "object", properties: { ref: ID }, required: ["ref"] } } },
      async (req) => {
        const release = await d.catalog.getRelease(req.params.ref);
        const [statuses, promotions, deployments, scans] = await Promise.all([
          d.deployments.status(),
          promotionsOfRelease(d.store, release.id),
          deploymentsOfRelease(d.store, release.id),
          scansOfDigests(d.store, release.pins.map((p) => p.digest)),
        ]);
        const runningOn = statuses
          .filter((s) => s.deployed?.releaseId === release.id)
          .map((s) => ({ environment: s.environment, target: s.target, targetId: s.targetId, sync: s.sync, since: s.deployed?.finishedAt ?? null }));
        return { release, runningOn, promotions, deployments, scans };
      },
    );

    app.get<{ Params: { name: string } }>(
      "/console/environments/:name/activity",
      { config: { role: "viewer" }, schema: { summary: "An environment's gates, freeze windows (active and next), targets and agents", params: { type: "object", properties: { name: { type: "string", minLength: 1, maxLength: 63 } }, required: ["name"] } } },
      async (req) => {
        const env = await d.catalog.getEnvironment(req.params.name);
        const now = new Date();
        const gates = Array.isArray(env.settings["gates"]) ? (env.settings["gates"] as { kind?: string; name?: string; config?: unknown }[]) : [];
        const freezes = gates
          .filter((g) => g.kind === "freeze")
          .map((g) => {
            const cfg = parseFreezeConfig(g.config ?? {});
            const active = activeFreezes(cfg, now);
            const next = nextFreeze(cfg, now);
            const liftsAt = nextWindowEnd(cfg, now);
            return {
              gate: g.name ?? "freeze",
              windows: cfg.windows.map((w) =>
                w.type === "cron"
                  ? { name: w.name, timeZone: w.timeZone, type: w.type, cron: w.cron, durationMinutes: w.durationMinutes }
                  : { name: w.name, timeZone: w.timeZone, type: w.type, days: w.days, start: w.start, end: w.end },
              ),
              active: active.map((o) => ({ window: o.window, start: o.start.toISOString(), end: o.end.toISOString() })),
              liftsAt: liftsAt?.toISOString() ?? null,
              next: next ? { window: next.window, start: next.start.toISOString(), end: next.end.toISOString() } : null,
            };
          });
        const [targets, statuses, agents] = await Promise.all([d.catalog.listTargets({ environment: env.name }), d.deployments.status(env.name), d.fleet.listAgents({ environment: env.name })]);
        const checks = d.targetChecks ? await d.targetChecks.forTargets(targets.map((t) => t.id)) : new Map<string, TargetCheckView>();
        const checked = targets.map((t) => ({ ...t, check: checks.get(t.id) ?? null }));
        return { environment: env, gates, freezes, targets: checked, status: buildMatrix([env.name], [], statuses, agents, now), agents };
      },
    );
  };
}
