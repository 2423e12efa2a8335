// The JSON API built in-process for tests, with the real domain services on a test store (see test-backends.ts),
// real keys in a temporary directory, and a fake registry (digest = sha256 of the reference) so nothing reaches a
// network. Requests go through fastify's inject(), the same routing, hooks and error handling as on a socket.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import pino from "pino";
import { EvidenceKey, FleetCa, TaskSigningKeyring } from "@ferry/pki";
import { createApiToken } from "../../domain/auth/api-tokens.js";
import { CatalogService } from "../../domain/catalog/catalog-service.js";
import { DeploymentService } from "../../domain/deploy/deployment-service.js";
import { TargetChecks } from "../../domain/deploy/target-checks.js";
import { FleetService } from "../../domain/fleet/fleet-service.js";
import { SqlWebhookStore } from "../../domain/notify/webhook-service.js";
import { EvidenceStore } from "../../domain/promotion/evidence-store.js";
import { createGateEngine, parseScanReport } from "../../domain/promotion/gate-engine.js";
import { PromotionService } from "../../domain/promotion/promotion-service.js";
import { SecurityRecords } from "../../domain/promotion/security-records.js";
import { RolloutService } from "../../domain/rollout/rollout-service.js";
import { checkStrategySetting } from "../../domain/rollout/strategy.js";
import { systemClock } from "../../ports/clock.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { Store } from "../../ports/store.js";
import { EnvAndFileCredentialStore } from "../registry/index.js";
import { createMetrics } from "./metrics.js";
import { buildHttpServer } from "./server.js";

export type TestHttpServer = Awaited<ReturnType<typeof buildHttpServer>>;

const digestOf = (ref: string) => `sha256:${createHash("sha256").update(ref).digest("hex")}`;
const fakeRegistry: ImageRegistry = {
  resolve: (reference) =>
    Promise.resolve({ repository: reference.replace(/:[^:/@]+$/, ""), digest: digestOf(reference), mediaType: "application/vnd.oci.image.manifest.v1+json", sourceTag: reference.split(":").pop() ?? null, platforms: [] }),
};

/**
 * Builds the API on `store`; closes it and removes its key directory when the test ends. Returns an admin token and
 * the directory holding the CA, task-signing keyring and evidence key. With `checks`, targets are checked by their
 * agents (an inspect task queued when one is created or changed) as in the server; without, they are never checked.
 */
export async function startTestHttpServer(t: TestContext, store: Store, opts: { checks?: boolean } = {}): Promise<{ app: TestHttpServer; adminToken: string; keyDir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "ferry-http-"));
  const clock = systemClock;
  const ca = await FleetCa.loadOrCreate(join(dir, "ca"));
  const keyring = await TaskSigningKeyring.loadOrCreate(join(dir, "task-signing"));
  const evidenceKey = await EvidenceKey.loadOrCreate(join(dir, "evidence"));
  const gates = createGateEngine();
  const fleet = new FleetService({ store, ca, clock, liveness: { heartbeatIntervalMs: 15_000, graceMs: 15_000 }, certLifetimeMs: 3_600_000, readyAt: () => 0 });
  const catalog = new CatalogService({ checkSettings: (s) => {
    gates.check(s);
    checkStrategySetting(s);
  }, store, registry: fakeRegistry, credentials: new EnvAndFileCredentialStore({ env: {} }), clock });
  const deployments = new DeploymentService({ store, catalog, signer: keyring, clock, taskTtlMs: 3_600_000 });
  const rollouts = new RolloutService({ store, catalog, deployments, clock });
  const evidence = new EvidenceStore({ store, key: evidenceKey, clock });
  const promotions = new PromotionService({ store, catalog, deployments, rollouts, gates, evidence, clock, ttlMs: 86_400_000, events: { emit: () => {} } });
  const app = await buildHttpServer({
    store,
    fleet,
    catalog,
    deployments,
    rollouts,
    keyring,
    taskTtlMs: 3_600_000,
    promotions,
    records: new SecurityRecords({ store, clock, parseReport: parseScanReport }),
    evidence,
    webhooks: new SqlWebhookStore({ store, clock }),
    metrics: createMetrics(),
    log: pino({ level: "silent" }),
    maxBodyBytes: 1 << 20,
    replicaId: "test",
    startedAt: clock.now(),
    version: "0.0.0-test",
    caFingerprint: ca.fingerprint,
    enrolEndpoint: () => "127.0.0.1:0",
    defaultJoinTokenTtlMs: 1_800_000,
    pingFleet: async () => ({ replicaSent: 0 }),
    ...(opts.checks ? { targetChecks: new TargetChecks({ store, signer: keyring, clock, taskTtlMs: 3_600_000 }) } : {}),
  });
  t.after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const admin = await createApiToken(store, { subject: "admin", roles: ["admin"], createdBy: "test", description: "" });
  return { app, adminToken: admin.secret, keyDir: dir };
}
