// PromotionService on both store backends, with the real gate engine, a real evidence store signing with a real
// evidence key, and a real DeploymentService and TaskQueue. Releases come from a fake registry (digest = sha256 of
// the reference), so nothing reaches a network; deployments finish by driving the agent side of the task queue, as
// the gRPC service does. The clock is injected: expiry, freeze windows and evidence times are deterministic.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { EVIDENCE_GENESIS_HASH, EvidenceKey, TaskSigningKeyring, verifyEvidence, type EvidenceEnvelope } from "@ferry/pki";
import { testBackends, type TestBackend } from "../../adapters/store/test-backends.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { Store } from "../../ports/store.js";
import { listAudit, verifyChain } from "../audit/audit-log.js";
import type { Principal, Role } from "../auth/roles.js";
import { CatalogService, type ReleaseView } from "../catalog/catalog-service.js";
import { DeploymentService, type DeploymentView } from "../deploy/deployment-service.js";
import { RolloutService } from "../rollout/rollout-service.js";
import { TaskQueue } from "../deploy/task-queue.js";
import { FerryError } from "../errors.js";
import { EvidenceStore } from "./evidence-store.js";
import { createGateEngine, parseScanReport } from "./gate-engine.js";
import { digestSetHash } from "./gates/types.js";
import { PromotionService, type PromotionView } from "./promotion-service.js";
import { SecurityRecords } from "./security-records.js";

const T0 = Date.UTC(2030, 0, 2, 12); // a Wednesday, outside the freeze window below
const FROZEN_AT = Date.UTC(2030, 0, 5, 12); // Saturday: inside "weekend"
const TASK_TTL = 3_600_000;
const PROMOTION_TTL = 24 * 3_600_000;

let keyring: TaskSigningKeyring;
let evidenceKey: EvidenceKey;
const dir = mkdtempSync(join(tmpdir(), "ferry-promotion-"));
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

const who = (subject: string, ...roles: Role[]): Principal => ({ tokenId: `tok_${subject}`, subject, roles });
const alice = who("alice", "deployer", "release-manager");
const bob = who("bob", "approver");
const carol = who("carol", "approver");
const dave = who("dave", "approver");
const erin = who("erin", "viewer");
const root = who("root", "admin");

const trivy = (severity: "CRITICAL" | "LOW" | null) => ({
  SchemaVersion: 2,
  ArtifactName: "shop/web",
  Results: severity ? [{ Target: "busybox", Vulnerabilities: [{ VulnerabilityID: "CVE-2030-0001", PkgName: "busybox", InstalledVersion: "1.36", Severity: severity }] }] : [],
});

const GATES = {
  staging: [
    { kind: "prior-environment", name: "dev first", config: {} },
    { kind: "approvals", name: "staging approvers", config: { group: "staging-approvers", count: 1 } },
  ],
  prod: [
    { kind: "approvals", name: "prod approvers", config: { group: "prod-approvers", count: 2 } },
    { kind: "prior-environment", name: "staging first", config: {} },
    { kind: "security", name: "no highs", config: { blockAt: "high", requireReport: true } },
    { kind: "freeze", name: "weekend freeze", config: { windows: [{ name: "weekend", timeZone: "UTC", weekly: { days: ["sat", "sun"], start: "00:00", end: "24:00" } }], breakGlassRole: "release-manager" } },
    { kind: "policy", name: "registries", config: { rules: [{ type: "allowed-registries", registries: ["127.0.0.1:5000"] }] } },
  ],
};

interface Fixture {
  store: Store;
  clock: { t: number };
  catalog: CatalogService;
  deployments: DeploymentService;
  queue: TaskQueue;
  evidence: EvidenceStore;
  records: SecurityRecords;
  promotions: PromotionService;
  events: { type: string; data: Record<string, unknown> }[];
  /** Another PromotionService on the same store: a restarted process, or a second replica. */
  service(deployments?: DeploymentService): PromotionService;
  release(version: string): Promise<ReleaseView>;
  /** Claims, accepts and finishes every task of the deployment with the outcome given (default succeeded). */
  finish(deploymentId: string, outcome?: string): Promise<DeploymentView>;
  /** Requests, approves as needed and deploys the release through to succeeded in environment `env`. */
  promoteThrough(version: string, env: string): Promise<PromotionView>;
}

async function fixture(b: TestBackend, t: TestContext, store?: Store): Promise<Fixture> {
  store ??= await b.open(t);
  const s = store;
  const clock = { t: T0 };
  const now = () => clock.t;
  const gates = createGateEngine();
  const catalog = new CatalogService({ store: s, registry: fakeRegistry, credentials: { get: async () => null }, clock: { now }, checkSettings: (x) => gates.check(x) });
  const deployments = new DeploymentService({ store: s, catalog, signer: keyring, clock: { now }, taskTtlMs: TASK_TTL });
  const queue = new TaskQueue({ store: s, clock: { now }, timings: { ackTimeoutMs: 30_000, runningLeaseMs: 60_000 } });
  const evidence = new EvidenceStore({ store: s, key: evidenceKey, clock: { now } });
  const records = new SecurityRecords({ store: s, clock: { now }, parseReport: parseScanReport });
  const events: Fixture["events"] = [];
  const service = (deps: DeploymentService = deployments) =>
    new PromotionService({ store: s, catalog, deployments: deps, rollouts: new RolloutService({ store: s, catalog, deployments: deps, clock: { now } }), gates, evidence, events: { emit: (type, data) => events.push({ type, data }) }, clock: { now }, ttlMs: PROMOTION_TTL });
  const fx: Fixture = {
    store: s,
    clock,
    catalog,
    deployments,
    queue,
    evidence,
    records,
    promotions: service(),
    events,
    service,
    release: (version) => catalog.createRelease({ name: "shop", version, components: { web: `:${version}` }, notes: `Fixes the checkout for ${version}.`, provenance: { labels: { team: "shop" } } }, "alice"),
    async finish(deploymentId, outcome = "succeeded") {
      const dep = await deployments.get(deploymentId);
      for (const agentId of new Set(dep.tasks.map((x) => x.agentId))) await queue.claim(agentId);
      for (const task of dep.tasks) {
        await queue.ack(task.agentId, { taskId: task.id, accepted: true, code: "", message: "" });
        await queue.result(task.agentId, {
          taskId: task.id,
          outcome,
          code: outcome === "succeeded" ? "" : "DEPLOY_FAILED",
          message: outcome,
          details: {},
          sticker: null,
          startedAt: clock.t,
          finishedAt: clock.t,
          logBytes: 0,
          attempt: 1,
        });
      }
      return deployments.get(deploymentId);
    },
    async promoteThrough(version, env) {
      const p = await fx.promotions.request({ release: `shop@${version}`, environment: env }, alice);
      if (env === "staging") await fx.promotions.approve(p.id, bob);
      const deploying = await fx.promotions.get(p.id);
      assert.equal(deploying.state, "deploying", `${env}: ${JSON.stringify(deploying.gates)}`);
      await fx.finish(deploying.deploymentId!);
      await fx.promotions.tick(p.id);
      return fx.promotions.get(p.id, { history: true });
    },
  };
  return fx;
}

/**
 * dev (no gates) → staging (prior environment, 1 approval from staging-approvers) → prod (2 approvals from
 * prod-approvers, prior environment, security, weekend freeze, allowed registries); one docker target per
 * environment, each served by its own agent. bob and carol approve staging and prod, dave only prod.
 */
async function estate(fx: Fixture): Promise<void> {
  await fx.catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/shop/web" }, "alice");
  await fx.catalog.createEnvironment({ name: "dev" }, "alice");
  await fx.catalog.createEnvironment({ name: "staging", settings: { gates: GATES.staging } }, "alice");
  await fx.catalog.createEnvironment({ name: "prod", settings: { gates: GATES.prod } }, "alice");
  for (const env of ["dev", "staging", "prod"]) {
    await fx.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, $2, 'online', $3)", [`agt_${env}`, env, JSON.stringify({ drivers: ["docker"] })]);
    await fx.catalog.createTarget({ environment: env, name: `web-${env}`, kind: "docker", agentId: `agt_${env}`, config: { container: "web", component: "web" } }, "alice");
  }
  for (const s of ["bob", "carol"]) await fx.records.addToGroup("staging-approvers", s, "root");
  for (const s of ["bob", "carol", "dave"]) await fx.records.addToGroup("prod-approvers", s, "root");
}

const count = async (store: Store, table: string) => Number((await store.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);

/** Row counts of everything a promotion writes: a refusal must leave them as they were. */
const snapshot = async (store: Store) => {
  const out: Record<string, number> = {};
  for (const table of ["promotions", "promotion_transitions", "approvals", "deployments", "tasks", "evidence"]) out[table] = await count(store, table);
  const bg = await store.query<{ n: string | number }>("SELECT count(*) AS n FROM promotions WHERE break_glass IS NOT NULL");
  out["break_glass"] = Number(bg.rows[0]!.n);
  return out;
};

/** Runs op, expects it refused with `c`, and checks it left one audit record (refused, by the caller) and nothing else. */
async function refused(fx: Fixture, c: string, op: () => Promise<unknown>, by: string): Promise<FerryError> {
  const before = await snapshot(fx.store);
  const auditBefore = (await listAudit(fx.store, { limit: 10_000 })).length;
  let caught: unknown;
  await assert.rejects(op(), (e) => {
    caught = e;
    return code(c)(e);
  });
  assert.deepEqual(await snapshot(fx.store), before, `${c} wrote nothing`);
  const audit = await listAudit(fx.store, { limit: 10_000 });
  assert.equal(audit.length, auditBefore + 1, `${c} left one audit record`);
  const last = audit.at(-1)!;
  assert.equal(last.outcome, "refused");
  assert.equal(last.actor, by);
  assert.equal((last.details as { code?: string }).code, c);
  return caught as FerryError;
}

async function evidenceChain(store: Store): Promise<{ id: string; kind: string; subject: string; hash: string; envelope: EvidenceEnvelope }[]> {
  const r = await store.query<{ id: string; kind: string; subject_id: string; hash: string; previous_hash: string; envelope: EvidenceEnvelope }>("SELECT * FROM evidence ORDER BY seq");
  let previous = EVIDENCE_GENESIS_HASH;
  const keys = [{ keyId: evidenceKey.keyId, publicKeyPem: evidenceKey.publicKeyPem }];
  for (const row of r.rows) {
    const v = verifyEvidence(row.envelope, keys);
    assert.ok(v.ok, `evidence ${row.id} verifies: ${JSON.stringify(v)}`);
    assert.equal(v.hash, row.hash);
    assert.equal(row.previous_hash, previous);
    assert.equal(v.document["previousEvidenceHash"], previous, `${row.id} names the packet before it`);
    assert.equal(v.document["id"], row.id);
    assert.equal(v.document["kind"], row.kind);
    assert.equal(v.document["subjectId"], row.subject_id);
    previous = row.hash;
  }
  return r.rows.map((x) => ({ id: x.id, kind: x.kind, subject: x.subject_id, hash: x.hash, envelope: x.envelope }));
}

const states = (p: PromotionView) => (p.transitions ?? []).map((x) => [x.from, x.to, x.actor]);

for (const b of testBackends()) {
  describe(`PromotionService on ${b.name}`, () => {
    it("walks requested → awaiting_gates → approved → deploying → succeeded, attributed, with events and evidence", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      const rel = await fx.release("1");
      const p = await fx.promotions.request({ release: "shop@1", environment: "dev" }, alice);
      // No gates in dev: the request itself moves it as far as it can go.
      assert.equal(p.state, "deploying");
      assert.equal(p.requestedBy, "alice");
      assert.equal(p.digestSetHash, digestSetHash(rel.pins));
      assert.equal(p.expiresAt, new Date(T0 + PROMOTION_TTL).toISOString());
      assert.ok(p.deploymentId);
      const dep = await fx.deployments.get(p.deploymentId);
      assert.equal(dep.requestedBy, `promotion:${p.id}`);
      assert.equal(dep.releaseId, rel.id);
      assert.deepEqual(dep.tasks.map((x) => x.target.name), ["web-dev"]);

      fx.clock.t += 60_000;
      await fx.finish(dep.id);
      await fx.promotions.tick(p.id);
      const done = await fx.promotions.get(p.id, { history: true });
      assert.equal(done.state, "succeeded");
      assert.equal(done.reason, `deployment ${dep.id} succeeded`);
      assert.equal(done.decidedAt, new Date(T0).toISOString());
      assert.equal(done.finishedAt, new Date(T0 + 60_000).toISOString());
      assert.deepEqual(states(done), [
        [null, "requested", "alice"],
        ["requested", "awaiting_gates", "ferry"],
        ["awaiting_gates", "approved", "ferry"],
        ["approved", "deploying", "ferry"],
        ["deploying", "succeeded", "ferry"],
      ]);
      assert.deepEqual(done.transitions!.map((x) => x.seq), [1, 2, 3, 4, 5]);
      assert.equal(done.transitions!.at(-1)!.at, new Date(T0 + 60_000).toISOString());

      assert.deepEqual(fx.events.map((e) => e.type), ["promotion.requested", "promotion.approved", "promotion.deployed"]);
      assert.deepEqual(fx.events[0]!.data, { promotion: p.id, release: "shop@1", environment: "dev", requestedBy: "alice" });

      const chain = await evidenceChain(fx.store);
      assert.deepEqual(chain.map((e) => [e.kind, e.subject]), [["promotion.decision", p.id], ["promotion.deployment", p.id]]);
      assert.deepEqual(done.evidence!.map((e) => e.id), chain.map((e) => e.id));
      const decision = verifyEvidence(chain[0]!.envelope, [{ keyId: evidenceKey.keyId, publicKeyPem: evidenceKey.publicKeyPem }]);
      assert.ok(decision.ok);
      assert.equal(decision.document["decision"], "approved");
      const deployment = verifyEvidence(chain[1]!.envelope, [{ keyId: evidenceKey.keyId, publicKeyPem: evidenceKey.publicKeyPem }]);
      assert.ok(deployment.ok);
      assert.equal(deployment.document["outcome"], "succeeded");
      assert.equal(deployment.document["deployment"], dep.id);
      assert.deepEqual((deployment.document["targets"] as { target: string; state: string }[]).map((x) => [x.target, x.state]), [["web-dev", "succeeded"]]);
      assert.deepEqual((deployment.document["release"] as { images: string[] }).images, [`127.0.0.1:5000/shop/web@${rel.pins[0]!.digest}`]);

      const audit = (await listAudit(fx.store)).filter((r) => r.action.startsWith("promotion."));
      assert.deepEqual(audit.map((r) => [r.action, r.actor, r.outcome]), [
        ["promotion.request", "alice", "ok"],
        ["promotion.approved", "ferry", "ok"],
        ["promotion.succeeded", "ferry", "ok"],
      ]);
      assert.deepEqual(await verifyChain(fx.store), { ok: true, records: (await listAudit(fx.store)).length, head: (await listAudit(fx.store)).at(-1)!.hash });
      assert.deepEqual((await fx.promotions.list({ environment: "dev" })).map((x) => [x.id, x.state]), [[p.id, "succeeded"]]);
      assert.deepEqual((await fx.promotions.list({ state: "deploying" })).length, 0);
    });

    it("fails when its deployment fails, with the failure in the evidence", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const p = await fx.promotions.request({ release: "shop@1", environment: "dev" }, alice);
      await fx.finish(p.deploymentId!, "failed");
      await fx.promotions.sweep();
      const done = await fx.promotions.get(p.id, { history: true });
      assert.equal(done.state, "failed");
      assert.equal(done.reason, `deployment ${p.deploymentId} failed`);
      assert.deepEqual(states(done).at(-1), ["deploying", "failed", "ferry"]);
      assert.deepEqual(fx.events.map((e) => e.type), ["promotion.requested", "promotion.approved", "promotion.failed"]);
      const chain = (await evidenceChain(fx.store)).filter((e) => e.kind === "promotion.deployment");
      const last = verifyEvidence(chain.at(-1)!.envelope, [{ keyId: evidenceKey.keyId, publicKeyPem: evidenceKey.publicKeyPem }]);
      assert.ok(last.ok);
      assert.equal(last.document["outcome"], "failed");
      assert.deepEqual((last.document["targets"] as { state: string; code: string }[]).map((x) => [x.state, x.code]), [["failed", "DEPLOY_FAILED"]]);
      const audit = (await listAudit(fx.store)).filter((r) => r.action === "promotion.failed");
      assert.deepEqual(audit.map((r) => r.outcome), ["failed"]);
      // Over: the environment is free for the next promotion, and metadata exists only for successes.
      await assert.rejects(fx.promotions.releaseMetadata(p.id), code("PROMOTION_NOT_SUCCEEDED"));
      assert.equal((await fx.promotions.request({ release: "shop@1", environment: "dev" }, alice)).state, "deploying");
    });

    it("refuses at request time, before any approval, a promotion whose deployment could never be queued", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      // A target the environment's agent has no driver for: refused naming the target and kind, nothing written.
      await fx.catalog.createTarget({ environment: "dev", name: "jobs-dev", kind: "compose", agentId: "agt_dev", config: { project: "jobs", directory: "/srv/jobs" } }, "alice");
      const e = await refused(fx, "TARGET_DRIVER_UNAVAILABLE", () => fx.promotions.request({ release: "shop@1", environment: "dev" }, alice), "alice");
      assert.match(e.message, /target jobs-dev \(compose\): agent agt_dev has no compose driver \(it has: docker\)/);
      assert.deepEqual((e.details["targets"] as { target: string }[]).map((x) => x.target), ["jobs-dev"]);
      // A revoked agent: the same, at request time.
      await fx.catalog.createEnvironment({ name: "lab" }, "alice");
      await fx.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_lab', 'lab', 'lab', 'online', $1)", [JSON.stringify({ drivers: ["docker"] })]);
      await fx.catalog.createTarget({ environment: "lab", name: "web-lab", kind: "docker", agentId: "agt_lab", config: { container: "web", component: "web" } }, "alice");
      await fx.store.query("UPDATE agents SET revoked_at = now(), status = 'revoked' WHERE id = 'agt_lab'");
      await refused(fx, "TARGET_AGENT_MISMATCH", () => fx.promotions.request({ release: "shop@1", environment: "lab" }, alice), "alice");
      assert.equal(await count(fx.store, "deployments"), 0);
      assert.deepEqual(fx.events.map((e) => e.type), []);
    });

    it("waits for approvals from the group and refuses what separation of duties forbids, each refusal audited and writing nothing", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.promoteThrough("1", "dev");
      fx.events.length = 0;
      const p = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      assert.equal(p.state, "awaiting_gates");
      assert.deepEqual(p.gates.map((g) => [g.name, g.state]), [["dev first", "passed"], ["staging approvers", "pending"]]);
      assert.deepEqual(fx.events.map((e) => e.type), ["promotion.requested", "promotion.blocked"]);
      assert.deepEqual(fx.events[1]!.data["gates"], [{ name: "staging approvers", state: "pending", reason: p.gates[1]!.reason }]);
      const why = await fx.promotions.whyBlocked(p.id);
      assert.equal(why.blocked, true);
      assert.equal(why.state, "awaiting_gates");
      assert.match(why.gates[1]!.remedy!, /staging-approvers/);

      // The requester may not approve (nor reject) their own promotion, even as an approver.
      const selfApprover = who("alice", "deployer", "approver");
      await fx.records.addToGroup("staging-approvers", "alice", "root");
      await refused(fx, "SELF_APPROVAL", () => fx.promotions.approve(p.id, selfApprover), "alice");
      await refused(fx, "SELF_APPROVAL", () => fx.promotions.reject(p.id, selfApprover, "changed my mind"), "alice");
      // dave approves prod, not staging.
      const e = await refused(fx, "NOT_IN_APPROVER_GROUP", () => fx.promotions.approve(p.id, dave), "dave");
      assert.deepEqual(e.details, { groups: ["staging-approvers"] });
      // erin has no approver role.
      await refused(fx, "FORBIDDEN", () => fx.promotions.approve(p.id, erin), "erin");
      await refused(fx, "VALIDATION_FAILED", () => fx.promotions.reject(p.id, bob, "  "), "bob");
      await refused(fx, "PROMOTION_NOT_FOUND", () => fx.promotions.approve("prm_missing", bob), "bob");

      const approved = await fx.promotions.approve(p.id, bob, "looks good");
      assert.equal(approved.state, "deploying");
      assert.deepEqual(approved.approvals.map((a) => [a.subject, a.decision, a.comment]), [["bob", "approve", "looks good"]]);
      const row = await fx.store.query<{ digest_set_hash: string; groups: string[]; roles: string[] }>("SELECT digest_set_hash, groups, roles FROM approvals WHERE promotion_id = $1", [p.id]);
      assert.deepEqual(row.rows[0], { digest_set_hash: p.digestSetHash, groups: ["prod-approvers", "staging-approvers"], roles: ["approver"] });
      // Decided: neither a second decision by bob nor anyone else's is taken any more.
      await refused(fx, "PROMOTION_ALREADY_DECIDED", () => fx.promotions.approve(p.id, bob), "bob");
      await refused(fx, "PROMOTION_ALREADY_DECIDED", () => fx.promotions.reject(p.id, carol, "too late"), "carol");
      assert.deepEqual(fx.events.map((x) => x.type), ["promotion.requested", "promotion.blocked", "promotion.approved"]);
      const audit = (await listAudit(fx.store)).filter((r) => r.object === p.id);
      assert.deepEqual(audit.map((r) => [r.action, r.actor, r.outcome]), [
        ["promotion.request", "alice", "ok"],
        ["promotion.approve", "alice", "refused"],
        ["promotion.reject", "alice", "refused"],
        ["promotion.approve", "dave", "refused"],
        ["promotion.approve", "erin", "refused"],
        ["promotion.reject", "bob", "refused"],
        ["promotion.approve", "bob", "ok"],
        ["promotion.approved", "ferry", "ok"],
        ["promotion.approve", "bob", "refused"],
        ["promotion.reject", "carol", "refused"],
      ]);
    });

    it("counts a subject once (ALREADY_DECIDED_BY_SUBJECT) and needs every required approval", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.promoteThrough("1", "dev");
      await fx.promoteThrough("1", "staging");
      const rel = await fx.catalog.getRelease("shop@1");
      await fx.records.uploadScan({ digest: rel.pins[0]!.digest, report: trivy(null) }, "alice");
      const p = await fx.promotions.request({ release: "shop@1", environment: "prod" }, alice);
      assert.deepEqual(p.gates.map((g) => [g.name, g.state]), [["prod approvers", "pending"], ["staging first", "passed"], ["no highs", "passed"], ["weekend freeze", "passed"], ["registries", "passed"]]);
      await fx.promotions.approve(p.id, bob);
      await refused(fx, "ALREADY_DECIDED_BY_SUBJECT", () => fx.promotions.approve(p.id, bob), "bob");
      await refused(fx, "ALREADY_DECIDED_BY_SUBJECT", () => fx.promotions.reject(p.id, bob, "on second thought"), "bob");
      const one = await fx.promotions.get(p.id);
      assert.equal(one.state, "awaiting_gates");
      assert.match(one.gates[0]!.reason, /^1 of 2 approvals/);
      const two = await fx.promotions.approve(p.id, carol);
      assert.equal(two.state, "deploying");
      await fx.finish(two.deploymentId!);
      await fx.promotions.tick(p.id);
      assert.equal((await fx.promotions.get(p.id)).state, "succeeded");
    });

    it("binds approvals to the digest set: a decision for other images does not count", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.release("2");
      await fx.promoteThrough("1", "dev");
      await fx.promoteThrough("2", "dev");
      const p = await fx.promotions.request({ release: "shop@2", environment: "staging" }, alice);
      const v1 = digestSetHash((await fx.catalog.getRelease("shop@1")).pins);
      assert.notEqual(p.digestSetHash, v1);
      // An approval given for shop@1's images (carried over by hand, say) leaves the gate pending...
      await fx.store.query(
        "INSERT INTO approvals (promotion_id, subject, decision, roles, groups, digest_set_hash, comment, at) VALUES ($1, 'carol', 'approve', '{approver}', '{staging-approvers}', $2, '', $3)",
        [p.id, v1, new Date(fx.clock.t)],
      );
      await fx.promotions.tick(p.id);
      const still = await fx.promotions.get(p.id);
      assert.equal(still.state, "awaiting_gates");
      assert.equal(still.gates[1]!.state, "pending");
      // ...as does a rejection for other images; bob's approval, recorded for this digest set, passes it.
      await fx.store.query("UPDATE approvals SET decision = 'reject', comment = 'no' WHERE promotion_id = $1", [p.id]);
      await fx.promotions.tick(p.id);
      assert.equal((await fx.promotions.get(p.id)).state, "awaiting_gates");
      const ok = await fx.promotions.approve(p.id, bob);
      assert.equal(ok.state, "deploying");
      const decision = (await evidenceChain(fx.store)).filter((e) => e.subject === p.id)[0]!;
      const v = verifyEvidence(decision.envelope, [{ keyId: evidenceKey.keyId, publicKeyPem: evidenceKey.publicKeyPem }]);
      assert.ok(v.ok);
      assert.deepEqual((v.document["approvals"] as { subject: string; digestSetHash: string }[]).map((a) => [a.subject, a.digestSetHash]), [["carol", v1], ["bob", p.digestSetHash]]);
    });

    it("ends rejected on a rejection, cancelled on request, expired after its ttl", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.promoteThrough("1", "dev");
      fx.events.length = 0;

      const rejected = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      const r = await fx.promotions.reject(rejected.id, carol, "migration not reviewed");
      assert.equal(r.state, "rejected");
      assert.equal(r.reason, "rejected by carol: migration not reviewed");
      assert.ok(r.decidedAt);
      assert.deepEqual(states(await fx.promotions.get(rejected.id, { history: true })).at(-1), ["awaiting_gates", "rejected", "carol"]);
      assert.deepEqual(fx.events.filter((e) => e.data["promotion"] === rejected.id).map((e) => e.type), ["promotion.requested", "promotion.blocked", "promotion.rejected"]);
      const decision = (await evidenceChain(fx.store)).filter((e) => e.subject === rejected.id);
      assert.deepEqual(decision.map((e) => e.kind), ["promotion.decision"]);
      await refused(fx, "PROMOTION_ALREADY_DECIDED", () => fx.promotions.approve(rejected.id, bob), "bob");

      const cancelled = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      const c = await fx.promotions.cancel(cancelled.id, alice, "wrong window");
      assert.equal(c.state, "cancelled");
      assert.equal(c.reason, "wrong window");
      assert.deepEqual(states(await fx.promotions.get(cancelled.id, { history: true })).at(-1), ["awaiting_gates", "cancelled", "alice"]);
      await refused(fx, "PROMOTION_ALREADY_DECIDED", () => fx.promotions.cancel(cancelled.id, alice), "alice");
      await refused(fx, "PROMOTION_ALREADY_DECIDED", () => fx.promotions.approve(cancelled.id, bob), "bob");

      const expiring = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      fx.clock.t += PROMOTION_TTL; // exactly at expires_at: still waiting
      await fx.promotions.sweep();
      assert.equal((await fx.promotions.get(expiring.id)).state, "awaiting_gates");
      fx.clock.t += 1;
      assert.equal(await fx.promotions.sweep(), 1);
      const e = await fx.promotions.get(expiring.id, { history: true });
      assert.equal(e.state, "expired");
      assert.equal(e.finishedAt, new Date(fx.clock.t).toISOString());
      assert.deepEqual(states(e).at(-1), ["awaiting_gates", "expired", "ferry"]);
      await refused(fx, "PROMOTION_ALREADY_DECIDED", () => fx.promotions.approve(expiring.id, bob), "bob");
      assert.equal(await fx.promotions.sweep(), 0);
      // Nothing of these three deployed anything.
      assert.equal(await count(fx.store, "deployments"), 1);
      const audit = (await listAudit(fx.store)).filter((x) => x.action === "promotion.cancel");
      assert.deepEqual(audit.map((x) => [x.actor, x.outcome]), [["alice", "ok"], ["alice", "refused"]]);
    });

    it("allows one active promotion per environment; of two concurrent requests exactly one wins", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.release("2");
      await fx.promoteThrough("1", "dev");
      await fx.promoteThrough("2", "dev");
      const first = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      const e = await refused(fx, "PROMOTION_IN_PROGRESS", () => fx.promotions.request({ release: "shop@2", environment: "staging" }, alice), "alice");
      assert.deepEqual(e.details, { promotion: first.id });
      // Deploying still counts as active.
      const dev = await fx.promotions.request({ release: "shop@1", environment: "dev" }, alice);
      assert.equal(dev.state, "deploying");
      await refused(fx, "PROMOTION_IN_PROGRESS", () => fx.promotions.request({ release: "shop@2", environment: "dev" }, alice), "alice");
      await fx.promotions.cancel(first.id, alice);

      // Two requests at once, through two services (on PostgreSQL also through two connection pools).
      const other = b.kind === "postgres" ? await fixture(b, t, await b.open(t, { shareWith: fx.store })) : fx;
      const both = await Promise.allSettled([
        fx.promotions.request({ release: "shop@1", environment: "staging" }, alice),
        other.promotions.request({ release: "shop@2", environment: "staging" }, who("frank", "deployer")),
      ]);
      assert.equal(both.filter((s) => s.status === "fulfilled").length, 1, JSON.stringify(both.map((s) => s.status)));
      for (const s of both) if (s.status === "rejected") code("PROMOTION_IN_PROGRESS")(s.reason);
      const active = await fx.store.query("SELECT id FROM promotions WHERE environment = 'staging' AND state IN ('requested', 'awaiting_gates', 'approved', 'deploying')");
      assert.equal(active.rowCount, 1);
      const refusals = (await listAudit(fx.store)).filter((r) => r.action === "promotion.request" && r.outcome === "refused");
      assert.equal(refusals.length, 3);
    });

    it("refuses a release that never succeeded in the environment before (PRIOR_ENVIRONMENT_NOT_DEPLOYED)", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const e = await refused(fx, "PRIOR_ENVIRONMENT_NOT_DEPLOYED", () => fx.promotions.request({ release: "shop@1", environment: "staging" }, alice), "alice");
      assert.deepEqual(e.details, { environment: "staging", previousEnvironment: "dev" });
      assert.match(e.message, /has not been deployed successfully to dev/);
      // A failed deployment there does not count either.
      const dev = await fx.promotions.request({ release: "shop@1", environment: "dev" }, alice);
      await fx.finish(dev.deploymentId!, "failed");
      await fx.promotions.tick(dev.id);
      await refused(fx, "PRIOR_ENVIRONMENT_NOT_DEPLOYED", () => fx.promotions.request({ release: "shop@1", environment: "staging" }, alice), "alice");
      // Success in dev is not enough for prod, which comes after staging.
      await fx.promoteThrough("1", "dev");
      await refused(fx, "PRIOR_ENVIRONMENT_NOT_DEPLOYED", () => fx.promotions.request({ release: "shop@1", environment: "prod" }, alice), "alice");
      assert.equal((await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice)).state, "awaiting_gates");
      // The first environment cannot have a prior-environment gate met.
      await fx.catalog.updateEnvironment("dev", { settings: { gates: [{ kind: "prior-environment", config: {} }] } }, "root");
      const first = await refused(fx, "PRIOR_ENVIRONMENT_NOT_DEPLOYED", () => fx.promotions.request({ release: "shop@1", environment: "dev" }, alice), "alice");
      assert.equal(first.message, "dev requires a prior environment, but none comes before it");
    });

    it("blocks on scan findings until an exception, on a freeze until break-glass with a reason and the role", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.promoteThrough("1", "dev");
      await fx.promoteThrough("1", "staging");
      const digest = (await fx.catalog.getRelease("shop@1")).pins[0]!.digest;
      fx.clock.t = FROZEN_AT;
      const p = await fx.promotions.request({ release: "shop@1", environment: "prod" }, alice);
      await fx.promotions.approve(p.id, bob);
      await fx.promotions.approve(p.id, carol);
      const gate = async (name: string) => (await fx.promotions.whyBlocked(p.id)).gates.find((g) => g.name === name)!;
      assert.equal((await gate("no highs")).state, "pending");
      assert.match((await gate("no highs")).reason, /^no scan report for web/);
      await fx.records.uploadScan({ digest, report: trivy("CRITICAL") }, "alice");
      await fx.promotions.tick(p.id);
      assert.equal((await gate("no highs")).state, "failed");
      await fx.records.createException({ digest, maxSeverity: "critical", reason: "not reachable in our build", expires: "7d" }, "root");
      await fx.promotions.tick(p.id);
      assert.equal((await gate("no highs")).state, "passed");
      const frozen = await fx.promotions.whyBlocked(p.id);
      assert.equal(frozen.blocked, true);
      assert.deepEqual(frozen.gates.filter((g) => g.state !== "passed").map((g) => [g.name, g.state]), [["weekend freeze", "failed"]]);
      assert.match(frozen.gates[3]!.remedy!, /break glass with a reason \(role release-manager\)/);
      assert.equal((await fx.promotions.get(p.id)).state, "awaiting_gates");

      await refused(fx, "BREAK_GLASS_REASON_REQUIRED", () => fx.promotions.breakGlass(p.id, alice, "   "), "alice");
      const e = await refused(fx, "FORBIDDEN", () => fx.promotions.breakGlass(p.id, bob, "hotfix"), "bob");
      assert.deepEqual(e.details, { required: "release-manager" });
      await refused(fx, "PROMOTION_NOT_FOUND", () => fx.promotions.breakGlass("prm_missing", alice, "hotfix"), "alice");
      const forced = await fx.promotions.breakGlass(p.id, alice, "INC-42 hotfix");
      assert.equal(forced.state, "deploying");
      assert.deepEqual(forced.breakGlass, { by: "alice", roles: ["deployer", "release-manager"], reason: "INC-42 hotfix", at: new Date(FROZEN_AT).toISOString() });
      const freeze = forced.gates.find((g) => g.name === "weekend freeze")!;
      assert.equal(freeze.state, "passed");
      assert.equal(freeze.details["breakGlassUsed"], true);
      await refused(fx, "PROMOTION_ALREADY_DECIDED", () => fx.promotions.breakGlass(p.id, root, "again"), "root");
      const audit = (await listAudit(fx.store)).filter((r) => r.action === "promotion.break-glass");
      assert.deepEqual(audit.map((r) => [r.actor, r.outcome]), [["alice", "refused"], ["bob", "refused"], ["alice", "refused"], ["alice", "ok"], ["root", "refused"]]);
      const decision = (await evidenceChain(fx.store)).filter((x) => x.subject === p.id)[0]!;
      const v = verifyEvidence(decision.envelope, [{ keyId: evidenceKey.keyId, publicKeyPem: evidenceKey.publicKeyPem }]);
      assert.ok(v.ok);
      assert.deepEqual((v.document["promotion"] as { breakGlass: { reason: string } }).breakGlass.reason, "INC-42 hotfix");
      assert.deepEqual((v.document["gates"] as { name: string; state: string }[]).map((g) => g.state), ["passed", "passed", "passed", "passed", "passed"]);
    });

    it("never creates a second deployment however often or concurrently it is ticked and swept", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.promoteThrough("1", "dev");
      const p = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      await fx.store.query("INSERT INTO approvals (promotion_id, subject, decision, roles, groups, digest_set_hash, comment, at) VALUES ($1, 'bob', 'approve', '{approver}', '{staging-approvers}', $2, '', $3)", [p.id, p.digestSetHash, new Date(fx.clock.t)]);
      fx.events.length = 0;
      const deploymentsBefore = await count(fx.store, "deployments");
      // Two replicas tick at once, then everybody keeps ticking and sweeping.
      const other = b.kind === "postgres" ? await fixture(b, t, await b.open(t, { shareWith: fx.store })) : fx;
      const replica = other === fx ? fx.service() : other.promotions;
      await Promise.all([fx.promotions.tick(p.id), replica.tick(p.id), fx.promotions.sweep(), replica.sweep()]);
      for (let i = 0; i < 5; i++) await Promise.all([fx.promotions.tick(p.id), replica.sweep()]);
      assert.equal(await count(fx.store, "deployments"), deploymentsBefore + 1);
      const deploying = await fx.promotions.get(p.id, { history: true });
      assert.equal(deploying.state, "deploying");
      assert.deepEqual(states(deploying).slice(2), [["awaiting_gates", "approved", "ferry"], ["approved", "deploying", "ferry"]]);
      // One approval packet and one announcement, whichever replica won; no false alarm.
      assert.equal((await evidenceChain(fx.store)).filter((e) => e.subject === p.id).length, 1);
      assert.deepEqual([...fx.events, ...(other === fx ? [] : other.events)].map((e) => e.type), ["promotion.approved"]);
      fx.events.length = 0;
      if (other !== fx) other.events.length = 0;

      await fx.finish(deploying.deploymentId!);
      await Promise.all([fx.promotions.tick(p.id), replica.tick(p.id), fx.promotions.sweep(), replica.sweep()]);
      for (let i = 0; i < 3; i++) await fx.promotions.sweep();
      const done = await fx.promotions.get(p.id, { history: true });
      assert.equal(done.state, "succeeded");
      assert.equal(states(done).filter(([, to]) => to === "succeeded").length, 1);
      assert.equal((await evidenceChain(fx.store)).filter((e) => e.subject === p.id).length, 2);
      // Whichever replica won the row lock announced it, once.
      const announced = [...fx.events, ...(other === fx ? [] : other.events)].map((e) => e.type);
      assert.deepEqual(announced, ["promotion.deployed"]);
      assert.equal(await count(fx.store, "deployments"), deploymentsBefore + 1);
    });

    it("re-evaluates a waiting promotion on the sweep, writing only when its gates' results change", async (t) => {
      const fx = await fixture(b, t);
      await fx.catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/shop/web" }, "alice");
      await fx.catalog.createEnvironment({ name: "dev" }, "alice");
      // dev must have run the release for an hour, and nothing moves into qa from 13:00 to 14:00 UTC (T0 is 12:00).
      const gates = [
        { kind: "prior-environment", name: "dev soaked", config: { soak: "1h" } },
        { kind: "freeze", name: "lunch", config: { windows: [{ name: "lunch", timeZone: "UTC", weekly: { days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "13:00", end: "14:00" } }] } },
      ];
      await fx.catalog.createEnvironment({ name: "qa", settings: { gates } }, "alice");
      for (const env of ["dev", "qa"]) {
        await fx.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, $2, 'online', $3)", [`agt_${env}`, env, JSON.stringify({ drivers: ["docker"] })]);
        await fx.catalog.createTarget({ environment: env, name: `web-${env}`, kind: "docker", agentId: `agt_${env}`, config: { container: "web", component: "web" } }, "alice");
      }
      await fx.release("1");
      await fx.promoteThrough("1", "dev");
      await fx.store.query("UPDATE deployments SET finished_at = $1 WHERE environment = 'dev'", [new Date(fx.clock.t)]);
      const p = await fx.promotions.request({ release: "shop@1", environment: "qa" }, alice);
      assert.equal(p.state, "awaiting_gates", JSON.stringify(p.gates));
      const row = async () => (await fx.store.query<{ updated_at: Date; gate_results: { name: string; state: string }[] }>("SELECT updated_at, gate_results FROM promotions WHERE id = $1", [p.id])).rows[0]!;
      const gateStates = async () => (await row()).gate_results.map((g) => [g.name, g.state]);
      const written = await row();
      const auditBefore = (await listAudit(fx.store, { limit: 10_000 })).length;
      fx.events.length = 0;

      // 12:10 and 12:50: still soaking, the same results: the sweep writes nothing and announces nothing.
      for (const minutes of [10, 40]) {
        fx.clock.t += minutes * 60_000;
        assert.equal(await fx.promotions.sweep(), 1);
        assert.deepEqual(await row(), written);
      }
      assert.equal((await listAudit(fx.store, { limit: 10_000 })).length, auditBefore);
      assert.equal(fx.events.length, 0);

      // 13:20: the soak is over and the freeze has begun: other results, written and announced once.
      fx.clock.t += 30 * 60_000;
      await fx.promotions.sweep();
      assert.deepEqual(await gateStates(), [["dev soaked", "passed"], ["lunch", "failed"]]);
      assert.equal((await row()).updated_at.getTime(), fx.clock.t);
      assert.deepEqual(fx.events.map((e) => e.type), ["promotion.blocked"]);
      assert.equal((await listAudit(fx.store, { limit: 10_000 })).at(-1)!.action, "promotion.blocked");
      fx.clock.t += 5_000; // within the re-evaluation period: not evaluated again
      await fx.promotions.sweep();
      assert.deepEqual(fx.events.map((e) => e.type), ["promotion.blocked"]);

      // 14:00: the freeze lifts; the sweep approves and deploys.
      fx.clock.t = T0 + 2 * 3_600_000;
      await fx.promotions.sweep();
      const moved = await fx.promotions.get(p.id, { history: true });
      assert.equal(moved.state, "deploying");
      assert.deepEqual(states(moved).slice(-2), [["awaiting_gates", "approved", "ferry"], ["approved", "deploying", "ferry"]]);
      assert.deepEqual(fx.events.map((e) => e.type), ["promotion.blocked", "promotion.approved"]);
    });

    it("resumes after a restart: a new service on the same store carries every promotion on", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.release("2");
      await fx.promoteThrough("1", "dev");
      // A process that stops right after committing "approved", before its deployment exists.
      const hung = new Promise<never>(() => {});
      const dying = fx.service(Object.assign(Object.create(fx.deployments) as DeploymentService, { deploy: () => hung }));
      const staged = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      await fx.store.query("INSERT INTO approvals (promotion_id, subject, decision, roles, groups, digest_set_hash, comment, at) VALUES ($1, 'bob', 'approve', '{approver}', '{staging-approvers}', $2, '', $3)", [staged.id, staged.digestSetHash, new Date(fx.clock.t)]);
      void dying.tick(staged.id);
      await waitUntil(async () => (await fx.promotions.get(staged.id)).state === "approved");
      // A request through the same process: committed and approved, its deployment never created.
      void dying.request({ release: "shop@2", environment: "dev" }, alice);
      await waitUntil(async () => (await fx.promotions.list({ environment: "dev", state: "approved" })).length === 1);
      const devPromotion = (await fx.promotions.list({ environment: "dev", state: "approved" }))[0]!;
      assert.equal(devPromotion.deploymentId, null);

      const restarted = fx.service();
      assert.equal(await restarted.sweep(), 2);
      const s = await restarted.get(staged.id);
      const d = await restarted.get(devPromotion.id);
      assert.deepEqual([s.state, d.state], ["deploying", "deploying"]);
      await fx.finish(s.deploymentId!);
      await fx.finish(d.deploymentId!);
      await fx.service().sweep();
      assert.deepEqual([(await restarted.get(staged.id)).state, (await restarted.get(devPromotion.id)).state], ["succeeded", "succeeded"]);
      assert.equal(await count(fx.store, "deployments"), 3);
    });

    it("writes release metadata and notes for a successful promotion only", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      const rel = await fx.release("1");
      await fx.promoteThrough("1", "dev");
      const pending = await fx.promotions.request({ release: "shop@1", environment: "staging" }, alice);
      await assert.rejects(fx.promotions.releaseMetadata(pending.id), code("PROMOTION_NOT_SUCCEEDED"));
      await assert.rejects(fx.promotions.releaseNotes(pending.id), code("PROMOTION_NOT_SUCCEEDED"));
      await assert.rejects(fx.promotions.releaseMetadata("prm_missing"), code("PROMOTION_NOT_FOUND"));
      fx.clock.t += 1000;
      await fx.promotions.approve(pending.id, bob, "ship it");
      const dep = (await fx.promotions.get(pending.id)).deploymentId!;
      fx.clock.t += 1000;
      await fx.finish(dep);
      await fx.promotions.tick(pending.id);
      const p = await fx.promotions.get(pending.id, { history: true });

      const m = await fx.promotions.releaseMetadata(p.id);
      assert.deepEqual(m, {
        schema: "ferry.release-metadata/v1",
        release: { id: rel.id, name: "shop", version: "1", createdAt: rel.createdAt, createdBy: "alice" },
        images: [{ component: "web", repository: "127.0.0.1:5000/shop/web", digest: rel.pins[0]!.digest, image: `127.0.0.1:5000/shop/web@${rel.pins[0]!.digest}`, sourceTag: "1" }],
        digestSetHash: digestSetHash(rel.pins),
        environment: "staging",
        promotion: { id: p.id, requestedBy: "alice", requestedAt: new Date(T0).toISOString(), decidedAt: new Date(T0 + 1000).toISOString(), finishedAt: new Date(T0 + 2000).toISOString(), breakGlass: null },
        approvals: [{ subject: "bob", at: new Date(T0 + 1000).toISOString(), comment: "ship it" }],
        gates: p.gates.map((g) => ({ name: g.name, gate: g.gate, state: "passed", reason: g.reason })),
        deploymentId: dep,
        evidence: p.evidence!.map((e) => ({ id: e.id, kind: e.kind, sha256: e.hash })),
      });
      assert.deepEqual(p.evidence!.map((e) => e.kind), ["promotion.decision", "promotion.deployment"]);

      const notes = await fx.promotions.releaseNotes(p.id);
      assert.ok(notes.startsWith("# shop 1 in staging\n"), notes);
      for (const line of [
        `Promoted by promotion ${p.id}, requested by alice at ${new Date(T0).toISOString()}, deployed ${new Date(T0 + 2000).toISOString()} (deployment ${dep}).`,
        `- **web**: \`127.0.0.1:5000/shop/web@${rel.pins[0]!.digest}\` (from tag 1)`,
        `- bob at ${new Date(T0 + 1000).toISOString()}: ship it`,
        `- dev first: passed — ${p.gates[0]!.reason}`,
        `- promotion.decision: ${p.evidence![0]!.id} (sha256 ${p.evidence![0]!.hash})`,
        "Fixes the checkout for 1.",
      ]) {
        assert.ok(notes.split("\n").includes(line), `notes have: ${line}\n---\n${notes}`);
      }
      // No approvals gate: said so.
      const dev = (await fx.promotions.list({ environment: "dev" }))[0]!;
      assert.ok((await fx.promotions.releaseNotes(dev.id)).split("\n").includes("- none required"));
    });

    it("marks the latest successful promotion rolled_back once a rollback deployment succeeds there", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      const v1 = await fx.release("1");
      await fx.release("2");
      const first = await fx.promoteThrough("1", "dev");
      fx.clock.t += 1000;
      const second = await fx.promoteThrough("2", "dev");
      fx.events.length = 0;
      fx.clock.t += 1000;
      const back = await fx.deployments.rollback({ environment: "dev" }, "carol");
      assert.equal(back.releaseId, v1.id);
      await fx.promotions.sweep();
      assert.equal((await fx.promotions.get(second.id)).state, "succeeded", "not before the rollback succeeded");
      await fx.finish(back.id);
      await fx.promotions.sweep();
      await fx.promotions.sweep();
      const rolled = await fx.promotions.get(second.id, { history: true });
      assert.equal(rolled.state, "rolled_back");
      assert.equal(rolled.reason, `rolled back by deployment ${back.id}`);
      assert.deepEqual(states(rolled).at(-1), ["succeeded", "rolled_back", "ferry"]);
      // The earlier promotion is what runs again: it stays succeeded.
      assert.equal((await fx.promotions.get(first.id)).state, "succeeded");
      assert.deepEqual(fx.events.map((e) => [e.type, e.data["promotion"], e.data["deployment"]]), [["promotion.rolled_back", second.id, back.id]]);
      assert.deepEqual((await listAudit(fx.store)).filter((r) => r.action === "promotion.rolled_back").map((r) => r.object), [second.id]);
      // Its metadata is still there: it was deployed once.
      assert.equal((await fx.promotions.releaseMetadata(second.id))["deploymentId"], second.deploymentId);
    });

    it("chains every evidence packet to the one before it, across promotions", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.promoteThrough("1", "dev");
      await fx.promoteThrough("1", "staging");
      const rejected = await fx.promotions.request({ release: "shop@1", environment: "prod" }, alice);
      await fx.promotions.reject(rejected.id, dave, "not this week");
      const chain = await evidenceChain(fx.store);
      assert.deepEqual(chain.map((e) => e.kind), ["promotion.decision", "promotion.deployment", "promotion.decision", "promotion.deployment", "promotion.decision"]);
      assert.equal(new Set(chain.map((e) => e.hash)).size, chain.length);
      // Evidence lookups by id return the stored envelope.
      const got = await fx.evidence.get(chain[2]!.id);
      assert.equal(got.hash, chain[2]!.hash);
      assert.equal(got.previousHash, chain[1]!.hash);
      assert.equal(got.keyId, evidenceKey.keyId);
      // A tampered payload no longer verifies.
      const bad = { ...chain[0]!.envelope, payload: Buffer.from(JSON.stringify({ tampered: true })).toString("base64") };
      assert.equal(verifyEvidence(bad, [{ keyId: evidenceKey.keyId, publicKeyPem: evidenceKey.publicKeyPem }]).ok, false);
    });
  });
}

async function waitUntil(cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
