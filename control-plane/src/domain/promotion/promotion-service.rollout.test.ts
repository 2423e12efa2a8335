// Promotions through the rollout engine: a promotion whose strategy (its own override, else the environment's) is
// not all-at-once creates a rollout when it is approved and follows that rollout to its end — also across a restart.
// On both store backends, with the rollout engine's fixture (runtime/rollout-engine.fixture.ts): environment dev, four
// docker targets on shop@1, a fake clock and scripted agents, real signed evidence.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { verifyEvidence, type EvidenceEnvelope } from "@ferry/pki";
import { testBackends } from "../../adapters/store/test-backends.js";
import { FAIL, loadKeys, rolloutFixture, v1, v2, type Keys, type RolloutFx } from "../../runtime/rollout-engine.fixture.js";
import { listAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import type { Principal } from "../auth/roles.js";

let keys: Keys;
before(async () => {
  keys = await loadKeys();
});
after(() => keys.remove());

const alice: Principal = { tokenId: "tok_alice", subject: "alice", roles: ["deployer"] };
const code = (c: string) => (e: unknown) => {
  assert.ok(e instanceof FerryError, `expected FerryError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  return true;
};

async function promotionPackets(fx: RolloutFx, id: string): Promise<Record<string, unknown>[]> {
  const r = await fx.store.query<{ envelope: EvidenceEnvelope }>("SELECT envelope FROM evidence WHERE subject_id = $1 ORDER BY seq", [id]);
  return r.rows.map((p) => {
    const v = verifyEvidence(p.envelope, [keys.evidenceKey.publicKey]);
    assert.ok(v.ok, JSON.stringify(v));
    return v.document;
  });
}

for (const b of testBackends()) {
  describe(`promotions through the rollout engine (${b.name})`, () => {
    it("a rolling promotion creates a rollout when approved and succeeds when the rollout does", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      const promotions = fx.promotions();
      const engine = fx.engine();
      const p = await promotions.request({ release: "shop@2", environment: "dev", strategy: { kind: "rolling", batch: 2, soakSeconds: 30 } }, alice);
      // dev has no gates: approved at once, and deploying through its rollout.
      assert.equal(p.state, "deploying");
      assert.equal(p.strategySource, "request");
      assert.deepEqual(p.strategy, { kind: "rolling", batch: { count: 2 }, soakSeconds: 30, rollback: "auto", failureThreshold: 0, approvalBetweenSteps: false });
      assert.ok(p.rolloutId);
      const rollout = await fx.rollouts.get(p.rolloutId);
      assert.equal(rollout.deploymentId, p.deploymentId);
      assert.equal(rollout.requestedBy, `promotion:${p.id}`);
      assert.deepEqual(rollout.steps.map((s) => s.kind), ["wave", "wait", "wave"]);
      // Batch 1 done: the promotion still deploys (the first wave's deployment succeeded, the rollout did not yet).
      await fx.agents();
      await fx.settle(engine);
      await promotions.sweep();
      assert.equal((await promotions.get(p.id)).state, "deploying");
      fx.clock.t += 31_000;
      await fx.settle(engine);
      await fx.agents();
      await fx.settle(engine);
      await promotions.sweep();
      const done = await promotions.get(p.id, { history: true });
      assert.equal(done.state, "succeeded");
      assert.equal(done.reason, `rollout ${p.rolloutId} succeeded`);
      assert.deepEqual(await fx.current(), { "web-1": v2, "web-2": v2, "web-3": v2, "web-4": v2 });
      assert.deepEqual(done.transitions!.map((x) => x.to), ["requested", "awaiting_gates", "approved", "deploying", "succeeded"]);
      assert.match(done.transitions![3]!.reason, new RegExp(`rollout ${p.rolloutId} \\(rolling\\)`));
      // Evidence: the decision carries the strategy approvers saw; the deployment packet names the rollout, its
      // outcome, and every wave's tasks.
      const [decision, deployment] = await promotionPackets(fx, p.id);
      assert.equal(decision!["kind"], "promotion.decision");
      assert.equal(((decision!["promotion"] as { strategy: { kind: string } }).strategy).kind, "rolling");
      assert.equal(deployment!["kind"], "promotion.deployment");
      assert.equal(deployment!["outcome"], "succeeded");
      const r = deployment!["rollout"] as { id: string; state: string; steps: { kind: string; state: string }[] };
      assert.equal(r.id, p.rolloutId);
      assert.equal(r.state, "succeeded");
      assert.deepEqual(r.steps.map((s) => `${s.kind}:${s.state}`), ["wave:succeeded", "wait:succeeded", "wave:succeeded"]);
      assert.deepEqual((deployment!["targets"] as { target: string }[]).map((x) => x.target).sort(), ["web-1", "web-2", "web-3", "web-4"]);
      assert.deepEqual(fx.events.filter((e) => e.type.startsWith("promotion.")).map((e) => e.type), ["promotion.requested", "promotion.approved", "promotion.deployed"]);
      assert.equal(fx.events.find((e) => e.type === "promotion.requested")!.data["strategy"], "rolling");
      // Release metadata and notes name the rollout.
      const meta = await promotions.releaseMetadata(p.id);
      assert.equal(meta["rolloutId"], p.rolloutId);
      assert.match(await promotions.releaseNotes(p.id), new RegExp(`rolling rollout ${p.rolloutId}`));
    });

    it("a failed rollout (rolled back) fails the promotion with the rollout's reason, and marks no earlier promotion rolled back", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      const promotions = fx.promotions();
      const engine = fx.engine();
      // An earlier, all-at-once promotion of shop@1: what runs now. Its path is the one it always was.
      const first = await promotions.request({ release: "shop@1", environment: "dev" }, alice);
      assert.equal(first.rolloutId, null);
      assert.equal(first.strategy.kind, "all-at-once");
      assert.equal(first.strategySource, "default");
      await fx.agents();
      await promotions.sweep();
      assert.equal((await promotions.get(first.id)).state, "succeeded");
      fx.clock.t += 60_000;
      // The environment's own strategy applies when the request names none.
      await fx.catalog.updateEnvironment("dev", { settings: { strategy: { kind: "rolling", batch: 2 } } }, "alice");
      const p = await promotions.request({ release: "shop@2", environment: "dev" }, alice);
      assert.equal(p.strategySource, "environment");
      assert.ok(p.rolloutId);
      await fx.agents();
      await fx.settle(engine);
      await fx.agents({ "web-4": FAIL });
      await fx.settle(engine);
      await promotions.sweep();
      assert.equal((await promotions.get(p.id)).state, "deploying", "deploying while the rollout rolls back");
      await fx.agents();
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(p.rolloutId)).state, "rolled_back");
      await promotions.sweep();
      const done = await promotions.get(p.id);
      assert.equal(done.state, "failed");
      assert.match(done.reason!, new RegExp(`^rollout ${p.rolloutId} rolled_back: batch 2 of 2: 1 of 2 targets failed`));
      assert.match(done.reason!, /web-4: HEALTH_CHECK_FAILED/);
      assert.deepEqual(await fx.current(), { "web-1": v1, "web-2": v1, "web-3": v1, "web-4": v1 });
      // The rollout's rollback wave put back what ran before it: the earlier promotion still stands.
      await promotions.sweep();
      assert.equal((await promotions.get(first.id)).state, "succeeded");
      const deployment = (await promotionPackets(fx, p.id)).find((d) => d["kind"] === "promotion.deployment")!;
      assert.equal(deployment["outcome"], "failed");
      assert.equal((deployment["rollout"] as { state: string }).state, "rolled_back");
      const actions = (deployment["targets"] as { action: string }[]).map((x) => x.action);
      assert.ok(actions.includes("rollback"), "the rollback wave's tasks are in the evidence");
      const failedEvent = fx.events.find((e) => e.type === "promotion.failed")!;
      assert.equal(failedEvent.data["rollout"], p.rolloutId);
      const audit = (await listAudit(fx.store, { limit: 500 })).find((a) => a.action === "promotion.failed" && a.object === p.id)!;
      assert.equal((audit.details as { rolloutState: string }).rolloutState, "rolled_back");
      // The rolled-back rollout's first wave succeeded on its own, but is no success of shop@2 in dev: an environment
      // after dev with a prior-environment gate refuses shop@2.
      const prior = await fx.store.query("SELECT 1 FROM deployments WHERE release_id = (SELECT id FROM releases WHERE version = '2') AND state = 'succeeded'");
      assert.ok(prior.rowCount > 0);
      await fx.catalog.createEnvironment({ name: "staging", settings: { gates: [{ kind: "prior-environment", name: "dev first", config: {} }] } }, "alice");
      await fx.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_s', 'agt_s', 'staging', 'online', $1)", [JSON.stringify({ drivers: ["docker"] })]);
      await fx.catalog.createTarget({ environment: "staging", name: "web-s", kind: "docker", agentId: "agt_s", config: { container: "web" } }, "alice");
      await assert.rejects(promotions.request({ release: "shop@2", environment: "staging" }, alice), code("PRIOR_ENVIRONMENT_NOT_DEPLOYED"));
      assert.equal((await promotions.request({ release: "shop@1", environment: "staging" }, alice)).state, "deploying");
    });

    it("a restarted control plane keeps following the rollout: an approval given meanwhile, a new engine and a new promotion service", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      const p = await fx.promotions().request({ release: "shop@2", environment: "dev", strategy: { kind: "rolling", batch: 2, approvalBetweenSteps: true } }, alice);
      await fx.agents();
      await fx.settle(fx.engine("cp-1"));
      // Restart: both services are new; nothing is in memory.
      const after = fx.promotions();
      await after.sweep();
      assert.equal((await after.get(p.id)).state, "deploying");
      await fx.rollouts.promote(p.rolloutId!, "dave");
      await fx.settle(fx.engine("cp-2"));
      await fx.agents();
      await fx.settle(fx.engine("cp-2"));
      await fx.promotions().sweep();
      const done = await after.get(p.id);
      assert.equal(done.state, "succeeded");
      // Exactly one rollout, and one promotion packet per kind, however many services ticked.
      assert.equal((await fx.store.query("SELECT 1 FROM rollouts")).rowCount, 1);
      assert.deepEqual((await promotionPackets(fx, p.id)).map((d) => d["kind"]), ["promotion.decision", "promotion.deployment"]);
      const approvalStep = (await fx.rollouts.get(p.rolloutId!)).steps.find((s) => s.kind === "approval")!;
      assert.equal(approvalStep.result["approvedBy"], "dave");
    });

    it("a promotion approved just before a crash gets its rollout from the next sweep, with the strategy it was requested with", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      const gates = [{ kind: "approvals", name: "dev approvers", config: { group: "dev-approvers", count: 1 } }];
      await fx.catalog.updateEnvironment("dev", { settings: { gates } }, "alice");
      const p = await fx.promotions().request({ release: "shop@2", environment: "dev", strategy: { kind: "rolling", batch: 3 } }, alice);
      assert.equal(p.state, "awaiting_gates");
      // The environment's setting changes while it waits: the promotion keeps what it was requested (and approved) with.
      await fx.catalog.updateEnvironment("dev", { settings: { gates, strategy: { kind: "rolling", batch: 1 } } }, "alice");
      // The approval transaction committed, then the process died before the rollout was created.
      await fx.store.query("UPDATE promotions SET state = 'approved', decided_at = $2 WHERE id = $1", [p.id, new Date(fx.clock.t)]);
      const restarted = fx.promotions();
      await restarted.sweep();
      await restarted.sweep();
      const deploying = await restarted.get(p.id);
      assert.equal(deploying.state, "deploying");
      const rollout = await fx.rollouts.get(deploying.rolloutId!);
      assert.deepEqual(rollout.strategy.kind === "rolling" && rollout.strategy.batch, { count: 3 });
      assert.equal(rollout.steps.length, 2, "batches of 3 of 4 targets");
      assert.equal((await fx.store.query("SELECT 1 FROM rollouts")).rowCount, 1, "one rollout, however many sweeps");
    });

    it("refuses at request time a strategy that does not parse, and one the agents or the targets cannot run; nothing is written", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      const promotions = fx.promotions();
      const count = async () => Number((await fx.store.query<{ n: string | number }>("SELECT count(*) AS n FROM promotions")).rows[0]!.n);
      const bad = await promotions.request({ release: "shop@2", environment: "dev", strategy: { kind: "rolling", batch: 0 } }, alice).catch((e: unknown) => e);
      assert.ok(code("VALIDATION_FAILED")(bad));
      assert.match((bad as FerryError).message, /^strategy\.batch/);
      await assert.rejects(promotions.request({ release: "shop@2", environment: "dev", strategy: "sideways" }, alice), code("VALIDATION_FAILED"));
      // Blue-green needs side-by-side and a router, which these docker agents do not offer.
      const driver = await promotions.request({ release: "shop@2", environment: "dev", strategy: "blue-green" }, alice).catch((e: unknown) => e);
      assert.ok(code("TARGET_DRIVER_UNAVAILABLE")(driver));
      assert.match((driver as FerryError).message, /does not offer side-by-side, router/);
      // With the capabilities there, targets that are not behind the router still cannot run it (as a deploy's would be).
      await fx.store.query("UPDATE agents SET facts = $1", [JSON.stringify({ drivers: ["docker"], driverFacts: [{ kind: "docker", capabilities: ["side-by-side", "router"] }], taskPayloadVersions: [1, 2] })]);
      await assert.rejects(promotions.request({ release: "shop@2", environment: "dev", strategy: "blue-green" }, alice), code("TARGET_NOT_ROUTED"));
      assert.equal(await count(), 0);
      const refusals = (await listAudit(fx.store, { limit: 500 })).filter((a) => a.action === "promotion.request" && a.outcome === "refused");
      assert.deepEqual(refusals.map((a) => (a.details as { code: string }).code), ["VALIDATION_FAILED", "VALIDATION_FAILED", "TARGET_DRIVER_UNAVAILABLE", "TARGET_NOT_ROUTED"]);
      // An explicit all-at-once overrides an environment's rolling strategy: the path as it always was.
      await fx.catalog.updateEnvironment("dev", { settings: { strategy: { kind: "rolling", batch: 1 } } }, "alice");
      const p = await promotions.request({ release: "shop@2", environment: "dev", strategy: "all-at-once" }, alice);
      assert.equal(p.rolloutId, null);
      assert.equal(p.strategySource, "request");
      assert.equal((await fx.deployments.get(p.deploymentId!)).tasks.length, 4);
    });
  });
}
