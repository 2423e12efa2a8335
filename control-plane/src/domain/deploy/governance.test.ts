// The governance rule on both store backends: an environment with gates takes a release only through a promotion;
// direct deploys, rollbacks and retries there are refused and audited, unless a gate-override holder gives a reason —
// then the override is on the deployment, in the audit log and in a signed evidence packet. Environments without
// gates keep direct deploys.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { EvidenceKey, TaskSigningKeyring, verifyEvidence } from "@ferry/pki";
import { testBackends, type TestBackend } from "../../adapters/store/test-backends.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { Store } from "../../ports/store.js";
import { listAudit } from "../audit/audit-log.js";
import type { Principal } from "../auth/roles.js";
import { CatalogService } from "../catalog/catalog-service.js";
import { FerryError } from "../errors.js";
import { EvidenceStore } from "../promotion/evidence-store.js";
import { DeploymentService, type DeploymentView } from "./deployment-service.js";
import { enforceWithin } from "./governance.js";
import { TaskQueue } from "./task-queue.js";

const T0 = Date.UTC(2030, 0, 1);
let keyring: TaskSigningKeyring;
let evidenceKey: EvidenceKey;
const dir = mkdtempSync(join(tmpdir(), "ferry-governance-"));
before(async () => {
  keyring = await TaskSigningKeyring.loadOrCreate(join(dir, "task-signing"), { now: T0 - 1000 });
  evidenceKey = await EvidenceKey.loadOrCreate(join(dir, "evidence"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const code = (c: string) => (e: unknown) => {
  assert.ok(e instanceof FerryError, `expected FerryError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  return true;
};
const digestOf = (ref: string) => `sha256:${createHash("sha256").update(ref).digest("hex")}`;
const fakeRegistry: ImageRegistry = {
  resolve: (reference) =>
    Promise.resolve({ repository: reference.replace(/:[^:/@]+$/, ""), digest: digestOf(reference), mediaType: "application/vnd.oci.image.manifest.v1+json", sourceTag: reference.split(":").pop() ?? null, platforms: [] }),
};

const deployer: Principal = { tokenId: "tok_dep", subject: "dana", roles: ["deployer"] };
const overrider: Principal = { tokenId: "tok_ovr", subject: "olga", roles: ["deployer", "gate-override"] };

const PROD_GATES = [
  { kind: "approvals", name: "prod approvers", config: { group: "sre", count: 1 } },
  { kind: "freeze", name: "change freeze", config: { windows: [{ name: "always", timeZone: "UTC", cron: "0 0 * * *", durationMinutes: 1440 }] } },
];

async function setup(b: TestBackend, t: TestContext) {
  const store = await b.open(t);
  const now = () => T0;
  const catalog = new CatalogService({ store, registry: fakeRegistry, credentials: { get: async () => null }, clock: { now } });
  const evidence = new EvidenceStore({ store, key: evidenceKey, clock: { now } });
  const deployments = new DeploymentService({ store, catalog, signer: keyring, clock: { now }, taskTtlMs: 3_600_000, evidence });
  const queue = new TaskQueue({ store, clock: { now }, timings: { ackTimeoutMs: 30_000, runningLeaseMs: 60_000 } });
  await catalog.createEnvironment({ name: "dev" }, "alice");
  await catalog.createEnvironment({ name: "prod", settings: { gates: PROD_GATES } }, "alice");
  await catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "alice");
  for (const [agent, env] of [["agt_d", "dev"], ["agt_p", "prod"]] as const) {
    await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, $2, 'online', $3)", [agent, env, JSON.stringify({ drivers: ["docker"] })]);
  }
  await catalog.createTarget({ environment: "dev", name: "web-d", kind: "docker", agentId: "agt_d", config: { container: "web", component: "web" } }, "alice");
  await catalog.createTarget({ environment: "prod", name: "web-p", kind: "docker", agentId: "agt_p", config: { container: "web", component: "web" } }, "alice");
  await catalog.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "alice");
  await catalog.createRelease({ name: "shop", version: "2", components: { web: ":2" } }, "alice");
  const finish = async (dep: DeploymentView, outcome: "succeeded" | "failed"): Promise<DeploymentView> => {
    for (const task of dep.tasks) {
      await queue.claim(task.agentId);
      await queue.ack(task.agentId, { taskId: task.id, accepted: true, code: "", message: "" });
      await queue.result(task.agentId, { taskId: task.id, outcome, code: outcome === "succeeded" ? "" : "DEPLOY_FAILED", message: outcome, details: {}, sticker: null, startedAt: T0, finishedAt: T0, logBytes: 0, attempt: 1 });
    }
    return deployments.get(dep.id);
  };
  return { store, deployments, finish };
}

const n = async (store: Store, sql: string) => Number((await store.query<{ n: string | number }>(sql)).rows[0]!.n);

for (const b of testBackends()) {
  describe(`direct deploys into gated environments on ${b.name}`, () => {
    it("refuses a deployer's deploy, rollback and retry into prod, writes nothing but the audited refusal", async (t) => {
      const { store, deployments, finish } = await setup(b, t);
      await assert.rejects(deployments.deploy({ release: "shop@1", environment: "prod" }, "dana", { principal: deployer }), code("ENVIRONMENT_GATED"));
      await assert.rejects(deployments.rollback({ environment: "prod" }, "dana", { principal: deployer }), code("ENVIRONMENT_GATED"));
      // A failed deployment in prod (made with an override) cannot be retried without one either.
      const d = await deployments.deploy({ release: "shop@1", environment: "prod", override: { reason: "hotfix INC-42" } }, "olga", { principal: overrider });
      await finish(d, "failed");
      const before = await n(store, "SELECT count(*) AS n FROM deployments");
      await assert.rejects(deployments.retry(d.id, "dana", { principal: deployer }), code("ENVIRONMENT_GATED"));
      assert.equal(await n(store, "SELECT count(*) AS n FROM deployments"), before, "a refused retry creates no deployment");
      assert.equal(await n(store, "SELECT count(*) AS n FROM tasks WHERE state = 'queued'"), 0);
      const refused = (await listAudit(store)).filter((r) => r.outcome === "refused" && r.code === "ENVIRONMENT_GATED");
      assert.deepEqual(refused.map((r) => r.action), ["deployment.create", "deployment.rollback", "deployment.retry"]);
      assert.ok(refused.every((r) => r.object === "prod" && r.actor === "dana"));
    });

    it("refuses an override without the gate-override role or without a reason", async (t) => {
      const { store, deployments } = await setup(b, t);
      await assert.rejects(deployments.deploy({ release: "shop@1", environment: "prod", override: { reason: "please" } }, "dana", { principal: deployer }), code("FORBIDDEN"));
      await assert.rejects(deployments.deploy({ release: "shop@1", environment: "prod", override: { reason: "   " } }, "olga", { principal: overrider }), code("VALIDATION_FAILED"));
      assert.equal(await n(store, "SELECT count(*) AS n FROM deployments"), 0);
      const refused = (await listAudit(store)).filter((r) => r.outcome === "refused");
      assert.deepEqual(refused.map((r) => r.code), ["FORBIDDEN", "VALIDATION_FAILED"]);
    });

    it("lets a gate-override holder through with a reason: recorded on the deployment, audited and signed", async (t) => {
      const { store, deployments, finish } = await setup(b, t);
      const d = await deployments.deploy({ release: "shop@2", environment: "prod", override: { reason: "hotfix INC-42" } }, "olga", { principal: overrider });
      assert.equal(d.override?.by, "olga");
      assert.equal(d.override?.reason, "hotfix INC-42");
      assert.deepEqual(d.override?.roles, ["deployer", "gate-override"]);
      const ev = await store.query<{ id: string; kind: string; envelope: unknown }>("SELECT id, kind, envelope FROM evidence WHERE subject_id = $1", [d.id]);
      assert.equal(ev.rows.length, 1);
      assert.equal(ev.rows[0]!.id, d.override?.evidence);
      const v = verifyEvidence(ev.rows[0]!.envelope, [evidenceKey.publicKey]);
      assert.ok(v.ok, JSON.stringify(v));
      const doc = v.document as { kind: string; override: { by: string; reason: string }; gatesBypassed: { name: string }[]; targets: { target: string }[] };
      assert.equal(doc.kind, "deployment.override");
      assert.equal(doc.override.reason, "hotfix INC-42");
      assert.deepEqual(doc.gatesBypassed.map((g) => g.name), ["prod approvers", "change freeze"]);
      assert.deepEqual(doc.targets.map((x) => x.target), ["web-p"]);
      const audited = (await listAudit(store)).find((r) => r.action === "deployment.override");
      assert.equal(audited?.object, d.id);
      assert.equal((audited?.details as { reason: string }).reason, "hotfix INC-42");
      // Rollback with an override too.
      await finish(d, "succeeded");
      const first = await deployments.deploy({ release: "shop@1", environment: "prod", override: { reason: "second" } }, "olga", { principal: overrider });
      await finish(first, "succeeded");
      const rb = await deployments.rollback({ environment: "prod", override: { reason: "bad release" } }, "olga", { principal: overrider });
      assert.equal(rb.action, "rollback");
      assert.equal(rb.override?.reason, "bad release");
    });

    it("keeps direct deploys where there are no gates, and lets a promotion's own deployment through", async (t) => {
      const { deployments } = await setup(b, t);
      const dev = await deployments.deploy({ release: "shop@1", environment: "dev" }, "dana", { principal: deployer });
      assert.equal(dev.override, null);
      const promoted = await deployments.deploy({ release: "shop@1", environment: "prod" }, "promotion:prm_1", { promotion: "prm_1" });
      assert.equal(promoted.override, null);
    });

    it("re-checks inside the deployment's transaction, with the environment row locked", async (t) => {
      const { store } = await setup(b, t);
      const dep = { id: "dep_x", environment: "prod", action: "deploy" as const, releaseId: null, retryOf: null, targets: [] };
      await assert.rejects(store.transaction((tx) => enforceWithin(tx, { now: new Date(T0) }, dep, "deploy", { principal: deployer })), code("ENVIRONMENT_GATED"));
      await store.transaction((tx) => enforceWithin(tx, { now: new Date(T0) }, { ...dep, environment: "dev" }, "deploy", { principal: deployer }));
    });
  });
}
