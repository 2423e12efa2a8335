// The rollout engine on both store backends, with a scripted agent stand-in that claims, accepts and finishes tasks
// through the task queue exactly as the gRPC service does. Time is a fake clock: soaks and deadlines pass by moving
// it, never by sleeping. "Restarts" throw the engine instance away and build a new one (another replica id) on the
// same store: everything the engine needs must be in the rows.
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import { verifyEvidence, type EvidenceEnvelope } from "@ferry/pki";
import { testBackends, type TestBackend } from "../adapters/store/test-backends.js";
import { listAudit } from "../domain/audit/audit-log.js";
import { CatalogService } from "../domain/catalog/catalog-service.js";
import { DeploymentService } from "../domain/deploy/deployment-service.js";
import { FerryError } from "../domain/errors.js";
import type { RolloutView } from "../domain/rollout/rollout-service.js";
import { RolloutStepper } from "../domain/rollout/rollout-stepper.js";
import { parseStrategy } from "../domain/rollout/strategy.js";
import { RolloutEngine } from "./rollout-engine.js";
import { FAIL, TASK_TTL, fakeRegistry, loadKeys, rolloutFixture, v1, v2, type Keys, type RolloutFx } from "./rollout-engine.fixture.js";

let keys: Keys;
before(async () => {
  keys = await loadKeys();
});
after(() => keys.remove());

const code = (c: string) => (e: unknown) => {
  assert.ok(e instanceof FerryError, `expected FerryError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  return true;
};
type Fx = RolloutFx;
const fixture = (b: TestBackend, t: TestContext): Promise<Fx> => rolloutFixture(b, t, keys);
const stepStates = (r: RolloutView) => r.steps.map((s) => `${s.phase === "rollback" ? "rb:" : ""}${s.kind}:${s.state}`);
const create = (fx: Fx, strategy: unknown) => fx.rollouts.create({ release: "shop@2", environment: "dev", strategy: parseStrategy(strategy) }, "alice");

for (const b of testBackends()) {
  describe(`rollout engine (${b.name})`, () => {
    it("rolls batches with a soak, and a failed batch rolls back every target it updated to exactly its previous digests", async (t) => {
      const fx = await fixture(b, t);
      const { rollout, deployment } = await create(fx, { kind: "rolling", batch: 1, soakSeconds: 60 });
      assert.equal(rollout.state, "running");
      assert.deepEqual(deployment.tasks.map((x) => x.target.name), ["web-1"]);
      assert.deepEqual(stepStates(rollout), ["wave:running", "wait:pending", "wave:pending", "wait:pending", "wave:pending", "wait:pending", "wave:pending"]);
      const engine = fx.engine();
      await fx.settle(engine);
      assert.deepEqual((await fx.agents()).map((x) => x.target), ["web-1"]);
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r).slice(0, 3), ["wave:succeeded", "wait:running", "wave:pending"]);
      assert.deepEqual(await fx.agents(), [], "nothing is queued during the soak");
      fx.clock.t += 61_000;
      await fx.settle(engine);
      assert.deepEqual((await fx.agents()).map((x) => x.target), ["web-2"]);
      fx.clock.t += 1000;
      await fx.settle(engine);
      fx.clock.t += 61_000;
      await fx.settle(engine);
      // Batch 3 fails: web-1 and web-2 (updated) go back to release 1; web-3 was restored by its agent.
      assert.deepEqual((await fx.agents({ "web-3": FAIL })).map((x) => [x.target, x.action, x.images[0]!.digest]), [["web-3", "deploy", v2]]);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolling_back");
      assert.equal(r.reason?.["code"], "ROLLOUT_WAVE_FAILED");
      assert.deepEqual(stepStates(r), ["wave:succeeded", "wait:succeeded", "wave:succeeded", "wait:succeeded", "wave:failed", "wait:skipped", "wave:skipped", "rb:wave:running"]);
      const rb = await fx.agents();
      assert.deepEqual(rb.map((x) => [x.target, x.action, x.images[0]!.digest]), [["web-1", "rollback", v1], ["web-2", "rollback", v1]]);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolled_back");
      assert.ok(r.finishedAt);
      assert.deepEqual(await fx.current(), { "web-1": v1, "web-2": v1, "web-3": v1, "web-4": v1 });
      const failed = r.steps[4]!;
      assert.equal((failed.result["error"] as { code: string }).code, "ROLLOUT_WAVE_FAILED");
      assert.equal((failed.result["targets"] as Record<string, { code: string }>)[Object.keys(failed.result["targets"] as object)[0]!]!.code, "HEALTH_CHECK_FAILED");
      const audit = (await listAudit(fx.store, { limit: 500 })).map((a) => a.action);
      for (const a of ["rollout.create", "rollout.step.start", "rollout.step.succeeded", "rollout.step.failed", "rollout.rollback", "rollout.rolled_back"]) assert.ok(audit.includes(a), a);
      assert.deepEqual([...new Set(fx.events.map((e) => e.type))].sort(), ["rollout.rolled_back", "rollout.rolling_back", "rollout.step"]);
      // Signed evidence: one packet per finished step, one per decision; the rollback's says which step failed, what
      // its targets reported, and exactly what each updated target went back to.
      const packets = await fx.store.query<{ kind: string; envelope: EvidenceEnvelope }>("SELECT kind, envelope FROM evidence WHERE subject_id = $1 ORDER BY seq", [rollout.id]);
      const docs = packets.rows.map((p) => {
        const v = verifyEvidence(p.envelope, [keys.evidenceKey.publicKey]);
        assert.ok(v.ok, JSON.stringify(v));
        return v.document;
      });
      assert.deepEqual(docs.map((d) => `${String(d["kind"])}:${String(d["outcome"] ?? d["decision"])}`), [
        "rollout.step:succeeded", "rollout.step:succeeded", "rollout.step:succeeded", "rollout.step:succeeded", "rollout.step:failed",
        "rollout.decision:rollback", "rollout.step:succeeded", "rollout.decision:rolled_back",
      ]);
      const decision = docs[5]!;
      assert.deepEqual(decision["failedStep"], { index: 4, name: "batch 3 of 4", state: "failed" });
      assert.equal(Object.values(decision["measured"] as Record<string, { code: string }>)[0]!.code, "HEALTH_CHECK_FAILED");
      assert.deepEqual((decision["rollingBack"] as { target: string; images: string[] }[]).map((x) => [x.target, x.images]), [
        ["web-1", ["127.0.0.1:5000/team/web@" + v1]],
        ["web-2", ["127.0.0.1:5000/team/web@" + v1]],
      ]);
      assert.equal(r.steps[4]!.result["evidence"], (await fx.store.query<{ id: string }>("SELECT id FROM evidence WHERE subject_id = $1 ORDER BY seq OFFSET 4 LIMIT 1", [rollout.id])).rows[0]!.id);
    });

    it("finishes a rolling deploy and leaves every target on the new release; the targets are its own while it runs", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { kind: "rolling", batch: "50%" });
      const engine = fx.engine();
      await assert.rejects(fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-4"] }, "bob"), code("DEPLOYMENT_IN_PROGRESS"));
      await fx.agents();
      await fx.settle(engine);
      await fx.agents();
      await fx.settle(engine);
      const r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "succeeded");
      assert.deepEqual(await fx.current(), { "web-1": v2, "web-2": v2, "web-3": v2, "web-4": v2 });
      // Finished: the targets are free again.
      await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-4"] }, "bob");
    });

    it("queues a target again after a retryable failure, and fails the wave after its retries", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { kind: "rolling", batch: 2 });
      const engine = fx.engine();
      const flaky = { outcome: "errored", code: "DOCKER_UNAVAILABLE" };
      await fx.agents({ "web-2": flaky });
      await fx.settle(engine);
      assert.deepEqual((await fx.agents()).map((x) => x.target), ["web-2"], "only the failed target is queued again");
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r), ["wave:succeeded", "wave:running"]);
      assert.equal(r.steps[0]!.attempts, 2);
      // Batch 2: web-4 keeps failing with a retryable code: 1 + 2 retries, then the wave fails.
      for (let i = 0; i < 3; i++) {
        await fx.agents({ "web-4": flaky });
        await fx.settle(engine);
      }
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.steps[1]!.state, "failed");
      assert.equal(r.steps[1]!.attempts, 3);
      assert.deepEqual((await fx.agents()).map((x) => [x.target, x.action]), [["web-1", "rollback"], ["web-2", "rollback"], ["web-3", "rollback"]]);
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(rollout.id)).state, "rolled_back");
    });

    it("resumes after a restart at every step kind: a running wave, a soak, an approval, a rollback wave, and a dead replica's lease", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { kind: "rolling", batch: 1, soakSeconds: 30, approvalBetweenSteps: true });
      // Wave running: the engine that saw it queued is gone; a new one reads its result.
      await fx.settle(fx.engine("cp-1"));
      await fx.agents();
      await fx.settle(fx.engine("cp-2"));
      let r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r).slice(0, 3), ["wave:succeeded", "wait:running", "approval:pending"]);
      // Soak: its end is in the row; a new instance before it waits, after it moves on.
      await fx.settle(fx.engine("cp-3"));
      assert.equal((await fx.rollouts.get(rollout.id)).steps[1]!.state, "running");
      fx.clock.t += 31_000;
      await fx.settle(fx.engine("cp-4"));
      r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r).slice(0, 4), ["wave:succeeded", "wait:succeeded", "approval:running", "wave:pending"]);
      // Approval: a restart does not approve it; promote does.
      await fx.settle(fx.engine("cp-5"));
      assert.equal((await fx.rollouts.get(rollout.id)).steps[2]!.state, "running");
      await fx.rollouts.promote(rollout.id, "carol");
      // A replica claims the rollout and dies mid-tick: its lease holds the rollout until it runs out.
      await fx.store.query("UPDATE rollouts SET lease_owner = 'cp-dead', lease_expires_at = $2 WHERE id = $1", [rollout.id, new Date(fx.clock.t + 30_000)]);
      assert.equal(await fx.engine("cp-6").tick(), 0);
      fx.clock.t += 31_000;
      await fx.settle(fx.engine("cp-6"));
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.steps[2]!.result["approvedBy"], "carol");
      assert.equal(r.steps[3]!.state, "running");
      // Rollback wave: batch 2 fails, the rollback of web-1 is queued, and a new instance finishes it.
      await fx.agents({ "web-2": FAIL });
      await fx.settle(fx.engine("cp-7"));
      assert.deepEqual((await fx.agents()).map((x) => [x.target, x.action]), [["web-1", "rollback"]]);
      await fx.settle(fx.engine("cp-8"));
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolled_back");
      assert.deepEqual(await fx.current(), { "web-1": v1, "web-2": v1, "web-3": v1, "web-4": v1 });
      // Every wave was queued exactly once per attempt, whatever the restarts.
      const tasks = await fx.store.query<{ n: string | number }>("SELECT count(*) AS n FROM tasks");
      assert.equal(Number(tasks.rows[0]!.n), 4 + 2 + 1);
    });

    it("pauses between steps, resumes, promotes a soak, and an abort rolls back what was updated", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { kind: "rolling", batch: 1, soakSeconds: 3600 });
      const engine = fx.engine();
      await fx.rollouts.pause(rollout.id, "dave");
      await assert.rejects(fx.rollouts.pause(rollout.id, "dave"), code("ROLLOUT_STATE_CONFLICT"));
      await fx.agents();
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      assert.equal(r.paused, true);
      assert.deepEqual(stepStates(r).slice(0, 2), ["wave:succeeded", "wait:pending"], "a paused rollout finishes its running wave and starts nothing");
      await assert.rejects(fx.rollouts.promote(rollout.id, "dave"), code("ROLLOUT_STATE_CONFLICT"));
      await fx.rollouts.resume(rollout.id, "dave");
      await fx.settle(engine);
      await fx.rollouts.promote(rollout.id, "dave");
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.steps[1]!.result["endedBy"], "promote");
      assert.deepEqual((await fx.agents()).map((x) => x.target), ["web-2"]);
      await fx.settle(engine);
      await fx.rollouts.abort(rollout.id, "dave", "wrong release");
      await assert.rejects(fx.rollouts.abort(rollout.id, "dave"), code("ROLLOUT_STATE_CONFLICT"));
      await fx.settle(engine);
      assert.deepEqual((await fx.agents()).map((x) => [x.target, x.action]), [["web-1", "rollback"], ["web-2", "rollback"]]);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolled_back");
      assert.deepEqual(r.reason, { code: "ROLLOUT_ABORTED", message: "wrong release", by: "dave" });
      await assert.rejects(fx.rollouts.resume(rollout.id, "dave"), code("ROLLOUT_STATE_CONFLICT"));
      await assert.rejects(fx.rollouts.get("rol_nope"), code("ROLLOUT_NOT_FOUND"));
      const audit = (await listAudit(fx.store, { limit: 500 })).map((a) => a.action);
      for (const a of ["rollout.pause", "rollout.resume", "rollout.promote", "rollout.abort"]) assert.ok(audit.includes(a), a);
    });

    it("times a wave out: undelivered tasks are cancelled, a running one counts as updated and is rolled back once it ends", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { kind: "rolling", batch: 2 });
      const engine = fx.engine();
      // web-1's agent takes its task and goes quiet; web-2's agent never takes it.
      const task = (await fx.store.query<{ id: string }>("SELECT t.id FROM tasks t JOIN targets tg ON tg.id = t.target_id WHERE tg.name = 'web-1' AND t.state = 'queued'")).rows[0]!.id;
      await fx.queue.claim("agt_1");
      await fx.queue.ack("agt_1", { taskId: task, accepted: true, code: "", message: "" });
      fx.clock.t += 899_000;
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(rollout.id)).steps[0]!.state, "running");
      fx.clock.t += 2000;
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolling_back");
      assert.equal(r.reason?.["code"], "ROLLOUT_STEP_TIMEOUT");
      const outcomes = Object.values(r.steps[0]!.result["targets"] as Record<string, { name: string; state: string }>).map((o) => [o.name, o.state]).sort();
      assert.deepEqual(outcomes, [["web-1", "running"], ["web-2", "cancelled"]]);
      // The rollback waits for web-1's task to end (two tasks never race on a target), then puts release 1 back.
      assert.deepEqual(stepStates(r).slice(-1), ["rb:wave:pending"]);
      await fx.queue.result("agt_1", { taskId: task, outcome: "succeeded", code: "", message: "", details: {}, sticker: null, startedAt: fx.clock.t, finishedAt: fx.clock.t, logBytes: 0, attempt: 1 });
      await fx.settle(engine);
      assert.deepEqual((await fx.agents()).map((x) => [x.target, x.action, x.images[0]!.digest]), [["web-1", "rollback", v1]]);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolled_back");
      assert.deepEqual(await fx.current(), { "web-1": v1, "web-2": v1, "web-3": v1, "web-4": v1 });
      const status = engine.status();
      assert.equal(status.name, "rollout-engine");
      assert.ok(status.transitions > 0 && status.ticks > 0 && status.lastError === null);
    });

    it("two replicas on separate pools tick at once: each wave is queued once and the rollout ends the same", { skip: b.kind !== "postgres" ? "needs two pools on PostgreSQL" : false }, async (t) => {
      const fx = await fixture(b, t);
      const other = await b.open(t, { shareWith: fx.store });
      const now = () => fx.clock.t;
      const catalog2 = new CatalogService({ store: other, registry: fakeRegistry, credentials: { get: async () => null }, clock: { now } });
      const deployments2 = new DeploymentService({ store: other, catalog: catalog2, signer: keys.keyring, clock: { now }, taskTtlMs: TASK_TTL });
      const replica2 = new RolloutEngine({ store: other, stepper: new RolloutStepper({ store: other, deployments: deployments2, clock: { now } }), clock: { now }, replicaId: "cp-2" });
      const replica1 = fx.engine("cp-1");
      const { rollout } = await create(fx, { kind: "rolling", batch: 1 });
      for (let i = 0; i < 4; i++) {
        await fx.agents();
        for (let k = 0; k < 3; k++) await Promise.all([replica1.tick(), replica2.tick()]);
      }
      const r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "succeeded");
      const tasks = await fx.store.query<{ n: string | number }>("SELECT count(*) AS n FROM tasks WHERE action = 'deploy'");
      assert.equal(Number(tasks.rows[0]!.n), 4 + 4, "one task per target for release 1, one per target for the rollout");
    });

    it("fails a wave that cannot be queued (its target's agent was revoked meanwhile) and rolls back", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { kind: "rolling", batch: 1 });
      const engine = fx.engine();
      await fx.agents();
      await fx.store.query("UPDATE agents SET revoked_at = now() WHERE id = 'agt_2'");
      await fx.settle(engine);
      const r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolling_back");
      assert.equal(r.reason?.["code"], "TARGET_AGENT_MISMATCH");
      assert.equal(r.steps[1]!.state, "failed");
      assert.equal(r.steps[1]!.attempts, 0, "nothing was queued for it");
      assert.deepEqual((await fx.agents()).map((x) => [x.target, x.action]), [["web-1", "rollback"]]);
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(rollout.id)).state, "rolled_back");
    });

    it("halts on failure with manual rollback until an operator aborts; refuses a slot strategy on agents without a router", async (t) => {
      const fx = await fixture(b, t);
      await assert.rejects(create(fx, "blue-green"), code("TARGET_DRIVER_UNAVAILABLE"));
      const { rollout } = await create(fx, { kind: "rolling", batch: 2, rollback: "manual" });
      const engine = fx.engine();
      await fx.agents({ "web-2": FAIL });
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "halted");
      assert.deepEqual(await fx.agents(), []);
      await fx.rollouts.abort(rollout.id, "erin");
      await fx.settle(engine);
      assert.deepEqual((await fx.agents()).map((x) => [x.target, x.action]), [["web-1", "rollback"]]);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolled_back");
      assert.equal(r.reason?.["code"], "ROLLOUT_WAVE_FAILED");
      assert.equal(r.reason?.["abortedBy"], "erin");
      const list = await fx.rollouts.list({ environment: "dev" });
      assert.deepEqual(list.items.map((x) => x.id), [rollout.id]);
    });
  });
}
