// The JSON API, /healthz, /metrics and the operator console.
//
// Every /api route declares the role it needs in its route config; one onRequest hook authenticates the bearer
// token and checks the role before any handler runs. Bodies are validated by JSON schema with unknown fields
// refused (Ajv's removeAdditional is off: silently dropping a misspelt field would hide the typo), body types are never
// coerced (schema-validators.ts), and the rules in input-rules.ts (no NUL, bounded JSON depth, no "__proto__" keys)
// hold for every route. Every refusal, down to those Node's HTTP parser makes, has the API's error shape (errors.ts).
import Fastify, { LogController, type FastifyBaseLogger } from "fastify";
import { API_TLS_DEFAULTS } from "./api-tls.js";
import type { Logger } from "pino";
import type { Store } from "../../ports/store.js";
import { authenticateApiToken } from "../../domain/auth/api-tokens.js";
import { TokenCache } from "./token-cache.js";
import { satisfies, type Role } from "../../domain/auth/roles.js";
import { audit } from "../../domain/audit/audit-log.js";
import { FerryError } from "../../domain/errors.js";
import type { FleetService } from "../../domain/fleet/fleet-service.js";
import { consoleRoutes } from "../console/routes.js";
import { clientErrorHandler } from "./client-errors.js";
import { sendError } from "./errors.js";
import { checkParameters, parseJsonBody } from "./input-rules.js";
import { recordRoutes } from "./route-table.js";
import { registerSchemaValidators } from "./schema-validators.js";
import "./request-principal.js";
import type { Metrics } from "./metrics.js";
import { fleetRoutes, type FleetRouteDeps } from "./routes/fleet.js";
import { auditRoutes } from "./routes/audit.js";
import { apiTokenRoutes } from "./routes/api-tokens.js";
import { catalogRoutes } from "./routes/catalog.js";
import type { TargetChecks } from "../../domain/deploy/target-checks.js";
import { deploymentRoutes } from "./routes/deployments.js";
import { rolloutRoutes } from "./routes/rollouts.js";
import type { RolloutService } from "../../domain/rollout/rollout-service.js";
import { signingKeyRoutes } from "./routes/signing-keys.js";
import { promotionRoutes } from "./routes/promotions.js";
import { webhookRoutes } from "./routes/webhooks.js";
import type { PromotionService } from "../../domain/promotion/promotion-service.js";
import type { SecurityRecords } from "../../domain/promotion/security-records.js";
import type { EvidenceStore } from "../../domain/promotion/evidence-store.js";
import type { SqlWebhookStore } from "../../domain/notify/webhook-service.js";
import type { AuditCheckpointer } from "../../domain/audit/audit-anchor.js";
import type { TaskSigningKeyring } from "@ferry/pki";
import type { DeploymentService } from "../../domain/deploy/deployment-service.js";
import type { CatalogService } from "../../domain/catalog/catalog-service.js";
import { registerIdempotency } from "./idempotency.js";
import { OpenApiCollector } from "./openapi.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Role required to call the route; routes without one are public (healthz, metrics, the console shell). */
    role?: Role;
  }
}

export interface HttpServerDeps extends FleetRouteDeps {
  store: Store;
  fleet: FleetService;
  catalog: CatalogService;
  deployments: DeploymentService;
  /** The rollout service; without it only all-at-once deployments are possible. */
  rollouts?: RolloutService;
  /** Target checks (inspect tasks at target creation); without it targets are shown with no check. */
  targetChecks?: TargetChecks;
  keyring: TaskSigningKeyring;
  taskTtlMs: number;
  promotions: PromotionService;
  records: SecurityRecords;
  evidence: EvidenceStore;
  webhooks: SqlWebhookStore;
  auditCheckpointer?: AuditCheckpointer;
  metrics: Metrics;
  log: Logger;
  maxBodyBytes: number;
  /** Serve HTTPS with this key and certificate chain (api-tls.ts); plain HTTP without. */
  https?: { key: string; cert: string } | null;
  replicaId: string;
  startedAt: number;
  version: string;
}

export async function buildHttpServer(d: HttpServerDeps) {
  // Typed as fastify's logger so the instance keeps fastify's default generics (pino's Logger differs only in them).
  const httpLog: FastifyBaseLogger = d.log.child({ component: "http" });
  const app = Fastify({
    ...(d.https ? { https: { ...API_TLS_DEFAULTS, key: d.https.key, cert: d.https.cert } } : {}),
    loggerInstance: httpLog,
    bodyLimit: d.maxBodyBytes,
    // Per-request lines would dominate the log at fleet scale; request metrics cover the traffic instead.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => `req_${Math.random().toString(36).slice(2, 12)}`,
    // Release references in paths run to 200 characters; fastify's default of 100 refused the longer ones.
    routerOptions: { maxParamLength: 512 },
    clientErrorHandler,
    frameworkErrors: (err, req, reply) => {
      void sendError(req, reply, err);
    },
    // Fastify's own answer while closing is a 503 outside the API's error shape; the hook below answers instead.
    return503OnClosing: false,
  });
  recordRoutes(app);
  registerSchemaValidators(app);
  // JSON is the only body the API reads; without a parser for text/plain, such a body is UNSUPPORTED_MEDIA_TYPE
  // rather than a string that then fails the body's schema.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.decorateRequest("principal", null);
  const tokens = new TokenCache((secret) => authenticateApiToken(d.store, secret));
  const openapi = new OpenApiCollector();
  openapi.attach(app);

  // Requests that reach a replica while it stops (pipelined, or on a busy keep-alive connection) are refused
  // before any work, so a load balancer or client retries them elsewhere.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async () => {
    if (closing) throw new FerryError("SERVER_SHUTTING_DOWN", "this replica is stopping; retry, or send the request to another replica");
  });

  app.addHook("onRequest", async (req) => {
    const role = req.routeOptions.config.role;
    if (!role) return;
    const header = req.headers.authorization;
    if (!header) throw new FerryError("UNAUTHENTICATED", "send an API token as 'Authorization: Bearer <token>'");
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new FerryError("UNAUTHENTICATED", "the Authorization header must be 'Bearer <token>'");
    const principal = await tokens.authenticate(m[1] as string);
    if (!satisfies(principal.roles, role)) {
      const err = new FerryError("FORBIDDEN", `this needs the ${role} role; ${principal.subject} has ${principal.roles.join(", ")}`, { required: role });
      // A change refused for want of a role is a decision worth keeping (e.g. an approval by a non-approver).
      if (req.method !== "GET" && req.method !== "HEAD") {
        await audit(d.store, {
          actor: principal.subject,
          action: `${req.method.toLowerCase()} ${req.routeOptions.url ?? req.url}`,
          object: req.url.split("?")[0] ?? req.url,
          outcome: "refused",
          details: { code: err.code, required: role, roles: principal.roles },
        }).catch((e: unknown) => httpLog.warn({ err: e }, "could not audit a refused request"));
      }
      throw err;
    }
    req.principal = principal;
  });

  app.addHook("onResponse", async (req, reply) => {
    d.metrics.httpRequests.observe(
      { method: req.method, route: req.routeOptions.url ?? "unmatched", status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.addHook("preValidation", async (req) => {
    checkParameters(req.params, "path");
    checkParameters(req.query, "query");
  });

  registerIdempotency(app, d.store);

  app.setErrorHandler((err, req, reply) => sendError(req, reply, err));
  app.setNotFoundHandler((req, reply) => sendError(req, reply, new FerryError("NOT_FOUND", `no route ${req.method} ${req.url.split("?")[0]}`)));

  // Reading is not enough: a damaged database can answer SELECT 1 while every audited write fails. /healthz also
  // proves the store can write — an audit record and a settings row inserted in a transaction that is then rolled
  // back, so nothing is kept — at most once per WRITE_PROBE_MS; the verdict is cached in between, so polling
  // /healthz cannot turn into write load.
  const WRITE_PROBE_MS = 5000;
  let probe: { at: number; error: string | null } | null = null;
  const rollback = new Error("write probe: roll back");
  const writeProbe = async (): Promise<string | null> => {
    const now = Date.now();
    if (probe && now - probe.at < WRITE_PROBE_MS) return probe.error;
    let error: string | null = null;
    try {
      await d.store.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO audit_log (seq, actor, action, object, outcome, prev_hash, hash) VALUES (-1, 'healthz', 'healthz.probe', '-', 'ok', '', '')`,
        );
        await tx.query("INSERT INTO control_plane_settings (key, value) VALUES ('healthz.probe', '{}'::jsonb) ON CONFLICT (key) DO UPDATE SET updated_at = now()");
        throw rollback;
      });
    } catch (err) {
      if (err !== rollback) error = (err as Error).message;
    }
    probe = { at: now, error };
    return error;
  };

  app.get("/healthz", async (_req, reply) => {
    try {
      await d.store.query("SELECT 1");
    } catch (err) {
      return reply.status(503).send({ status: "unavailable", store: d.store.kind, reason: (err as Error).message });
    }
    const writeError = await writeProbe();
    if (writeError !== null) {
      return reply.status(503).send({ status: "unavailable", store: d.store.kind, reason: `the store cannot write: ${writeError}` });
    }
    return { status: "ok", store: d.store.kind, replica: d.replicaId, uptimeSeconds: Math.round((Date.now() - d.startedAt) / 1000) };
  });

  app.get("/metrics", async (_req, reply) => {
    void reply.header("content-type", d.metrics.registry.contentType);
    return d.metrics.registry.metrics();
  });

  app.get("/api/v1/whoami", { config: { role: "viewer" }, schema: { summary: "The calling token's subject and roles" } }, async (req) => req.principal);

  await app.register(fleetRoutes(d), { prefix: "/api/v1" });
  await app.register(auditRoutes({ store: d.store, keys: () => d.evidence.publicKeys(), ...(d.auditCheckpointer ? { checkpointer: d.auditCheckpointer } : {}) }), { prefix: "/api/v1" });
  await app.register(catalogRoutes({ catalog: d.catalog, ...(d.targetChecks ? { checks: d.targetChecks } : {}) }), { prefix: "/api/v1" });
  await app.register(deploymentRoutes({ deployments: d.deployments, catalog: d.catalog, ...(d.rollouts ? { rollouts: d.rollouts } : {}) }), { prefix: "/api/v1" });
  if (d.rollouts) await app.register(rolloutRoutes({ rollouts: d.rollouts }), { prefix: "/api/v1" });
  await app.register(promotionRoutes({ promotions: d.promotions, records: d.records, evidence: d.evidence }), { prefix: "/api/v1" });
  await app.register(webhookRoutes({ webhooks: d.webhooks }), { prefix: "/api/v1" });
  await app.register(signingKeyRoutes({ store: d.store, keyring: d.keyring, taskTtlMs: d.taskTtlMs }), { prefix: "/api/v1" });
  await app.register(apiTokenRoutes({ store: d.store, onRevoke: () => tokens.clear() }), { prefix: "/api/v1" });
  app.get("/api/v1/openapi.json", async () => openapi.document(d.version));
  await app.register(consoleRoutes({ store: d.store, catalog: d.catalog, deployments: d.deployments, fleet: d.fleet, log: d.log, ...(d.targetChecks ? { targetChecks: d.targetChecks } : {}) }));
  return app;
}
