// A release marked not safe to roll back automatically: when a rollout of it fails with rollback auto, the rollback
// waits for an operator's approval (promote runs it, abort declines it). On both store backends, with the engine's
// fixture (rollout-engine.fixture.ts): fake clock, scripted agents, real signed evidence.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { verifyEvidence, type EvidenceEnvelope } from "@ferry/pki";
import { testBackends } from "../adapters/store/test-backends.js";
import { listAudit } from "../domain/audit/audit-log.js";
import { FerryError } from "../domain/errors.js";
import type { RolloutView } from "../domain/rollout/rollout-service.js";
import { parseStrategy } from "../domain/rollout/strategy.js";
import { FAIL, digestOf, loadKeys, rolloutFixture, v1, type Keys, type RolloutFx } from "./rollout-engine.fixture.js";

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
const v3 = digestOf("127.0.0.1:5000/team/web:3");
const stepStates = (r: RolloutView) => r.steps.map((s) => `${s.phase === "rollback" ? "rb:" : ""}${s.kind}:${s.state}`);

/** shop@<version>, not safe to roll back, rolled out in batches of 2: batch 1 succeeds, batch 2 fails on web-3 (web-4 succeeds). */
async function failedRollout(fx: RolloutFx, strategy: unknown = { kind: "rolling", batch: 2 }, version = "3"): Promise<RolloutView> {
  const rel = await fx.catalog.createRelease({ name: "shop", version, components: { web: `:${version}` }, rollbackSafe: false, rollbackNote: "migration 42 drops the legacy orders table" }, "alice");
  assert.equal(rel.rollbackSafe, false);
  const { rollout } = await fx.rollouts.create({ release: `shop@${version}`, environment: "dev", strategy: parseStrategy(strategy) }, "alice");
  const engine = fx.engine();
  await fx.agents();
  await fx.settle(engine);
  await fx.agents({ "web-3": FAIL });
  await fx.settle(engine);
  return fx.rollouts.get(rollout.id);
}

async function packets(fx: RolloutFx, subject: string): Promise<Record<string, unknown>[]> {
  const r = await fx.store.query<{ envelope: EvidenceEnvelope }>("SELECT envelope FROM evidence WHERE subject_id = $1 ORDER BY seq", [subject]);
  return r.rows.map((p) => {
    const v = verifyEvidence(p.envelope, [keys.evidenceKey.publicKey]);
    assert.ok(v.ok, JSON.stringify(v));
    return v.document;
  });
}

for (const b of testBackends()) {
  describe(`rollback approval for releases not safe to roll back (${b.name})`, () => {
    it("waits for an approval instead of rolling back; promote runs the rollback, recorded with who approved", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      let r = await failedRollout(fx);
      assert.equal(r.state, "rolling_back");
      assert.deepEqual(stepStates(r), ["wave:succeeded", "wave:failed", "rb:approval:running", "rb:wave:pending"]);
      const approval = r.steps[2]!;
      assert.match(String(approval.spec["reason"]), /shop@3 is marked not safe to roll back automatically \(migration 42 drops the legacy orders table\)/);
      // Nothing is rolled back while it waits, however long the engine ticks and however often it restarts.
      fx.clock.t += 3_600_000;
      await fx.settle(fx.engine("cp-2"));
      assert.deepEqual(await fx.agents(), []);
      assert.deepEqual(await fx.current(), { "web-1": v3, "web-2": v3, "web-3": v1, "web-4": v3 });
      // The targets still belong to the rollout.
      await assert.rejects(fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1"] }, "bob"), code("DEPLOYMENT_IN_PROGRESS"));
      // Pause and resume are for running rollouts; promote gives the approval.
      await assert.rejects(fx.rollouts.pause(r.id, "dave"), code("ROLLOUT_STATE_CONFLICT"));
      await fx.rollouts.promote(r.id, "dave");
      await fx.settle(fx.engine("cp-3"));
      assert.deepEqual((await fx.agents()).map((x) => [x.target, x.action, x.images[0]!.digest]), [["web-1", "rollback", v1], ["web-2", "rollback", v1], ["web-4", "rollback", v1]]);
      await fx.settle(fx.engine("cp-3"));
      r = await fx.rollouts.get(r.id);
      assert.equal(r.state, "rolled_back");
      assert.equal(r.steps[2]!.result["approvedBy"], "dave");
      assert.deepEqual(await fx.current(), { "web-1": v1, "web-2": v1, "web-3": v1, "web-4": v1 });
      // Evidence: the rollback decision says it needed an approval and why; the approval step's packet names dave.
      const docs = await packets(fx, r.id);
      const decision = docs.find((d) => d["decision"] === "rollback")!;
      assert.match(String(decision["approvalRequired"]), /not safe to roll back automatically/);
      const approved = docs.find((d) => d["kind"] === "rollout.step" && (d["step"] as { kind: string }).kind === "approval" && (d["step"] as { phase: string }).phase === "rollback");
      assert.equal(approved?.["outcome"], "succeeded");
      assert.equal(approved?.["promotedBy"], "dave");
      const audit = await listAudit(fx.store, { limit: 500 });
      const rollback = audit.find((a) => a.action === "rollout.rollback")!;
      assert.match(String((rollback.details as { approvalRequired?: string }).approvalRequired), /shop@3/);
      assert.ok(audit.some((a) => a.action === "rollout.promote" && a.actor === "dave" && a.object === r.id));
      assert.ok(audit.some((a) => a.action === "rollout.step.succeeded" && (a.details as { approvedBy?: string }).approvedBy === "dave"));
    });

    it("an abort while the rollback waits declines it: nothing is rolled back, the rollout fails naming who declined", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      let r = await failedRollout(fx);
      await fx.rollouts.abort(r.id, "erin", "rolling forward with shop@4 instead");
      await assert.rejects(fx.rollouts.abort(r.id, "erin"), code("ROLLOUT_STATE_CONFLICT"));
      await fx.settle(fx.engine());
      assert.deepEqual(await fx.agents(), [], "no rollback task");
      r = await fx.rollouts.get(r.id);
      assert.equal(r.state, "failed");
      assert.ok(r.finishedAt);
      assert.deepEqual(stepStates(r), ["wave:succeeded", "wave:failed", "rb:approval:skipped", "rb:wave:skipped"]);
      assert.equal(r.steps[2]!.result["declinedBy"], "erin");
      assert.equal(r.reason?.["code"], "ROLLOUT_WAVE_FAILED", "the failure stays the reason");
      const declined = r.reason?.["rollbackDeclined"] as { by: string; reason: string };
      assert.deepEqual([declined.by, declined.reason], ["erin", "rolling forward with shop@4 instead"]);
      assert.deepEqual(await fx.current(), { "web-1": v3, "web-2": v3, "web-3": v1, "web-4": v3 }, "the updated targets keep the new release");
      const final = (await packets(fx, r.id)).at(-1)!;
      assert.equal(final["decision"], "failed");
      assert.equal((final["rollbackDeclined"] as { by: string }).by, "erin");
      assert.ok(fx.events.some((e) => e.type === "rollout.failed" && e.data["rollout"] === r.id));
      // Finished: the targets are free for the roll forward.
      await fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-1"] }, "bob");
    });

    it("no approval within the step's deadline fails the rollout without rolling back; promote and abort are refused after", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      let r = await failedRollout(fx);
      fx.clock.t += 7 * 24 * 3_600_000 + 1000;
      await fx.settle(fx.engine());
      r = await fx.rollouts.get(r.id);
      assert.equal(r.state, "failed");
      assert.equal((r.reason?.["rollbackFailed"] as { code: string }).code, "ROLLOUT_STEP_TIMEOUT");
      assert.deepEqual(await fx.agents(), []);
      await assert.rejects(fx.rollouts.promote(r.id, "dave"), code("ROLLOUT_STATE_CONFLICT"));
      await assert.rejects(fx.rollouts.abort(r.id, "dave"), code("ROLLOUT_STATE_CONFLICT"));
    });

    it("rolls back at once when the release is safe, when rollback is manual the halt is unchanged, and an operator's abort needs no second approval", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      // shop@2 is safe: the failed batch rolls back by itself, no approval step.
      const { rollout } = await fx.rollouts.create({ release: "shop@2", environment: "dev", strategy: parseStrategy({ kind: "rolling", batch: 2 }) }, "alice");
      const engine = fx.engine();
      await fx.agents();
      await fx.settle(engine);
      await fx.agents({ "web-3": FAIL });
      await fx.settle(engine);
      assert.deepEqual(stepStates(await fx.rollouts.get(rollout.id)), ["wave:succeeded", "wave:failed", "rb:wave:running"]);
      await fx.agents();
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(rollout.id)).state, "rolled_back");
      // shop@3 is not safe, but an operator's abort of a running rollout is the decision to roll back.
      await fx.catalog.createRelease({ name: "shop", version: "3", components: { web: ":3" }, rollbackSafe: false }, "alice");
      const second = (await fx.rollouts.create({ release: "shop@3", environment: "dev", strategy: parseStrategy({ kind: "rolling", batch: 2, soakSeconds: 600 }) }, "alice")).rollout;
      await fx.agents();
      await fx.settle(engine);
      await fx.rollouts.abort(second.id, "dave");
      await fx.settle(engine);
      assert.deepEqual(stepStates(await fx.rollouts.get(second.id)), ["wave:succeeded", "wait:skipped", "wave:skipped", "rb:wave:running"]);
      // With rollback manual the rollout halts as before; the abort that follows rolls back without another approval.
      await fx.agents();
      await fx.settle(engine);
      const third = await failedRollout(fx, { kind: "rolling", batch: 2, rollback: "manual" }, "4");
      assert.equal(third.state, "halted");
      await fx.rollouts.abort(third.id, "dave");
      await fx.settle(engine);
      assert.deepEqual(stepStates(await fx.rollouts.get(third.id)), ["wave:succeeded", "wave:failed", "rb:wave:running"]);
    });
  });
}

describe("release flag validation", () => {
  for (const b of testBackends().slice(0, 1)) {
    it("rollbackSafe is a boolean (default true) and a note goes only with false; both are in the release view", async (t) => {
      const fx = await rolloutFixture(b, t, keys);
      assert.equal((await fx.catalog.getRelease("shop@1")).rollbackSafe, true);
      assert.equal((await fx.catalog.getRelease("shop@1")).rollbackNote, null);
      const bad = async (input: Record<string, unknown>, field: string) =>
        assert.rejects(fx.catalog.createRelease({ name: "shop", version: "9", components: { web: ":9" }, ...input }, "alice"), (e: unknown) => code("VALIDATION_FAILED")(e) && (e as FerryError).details["field"] === field);
      await bad({ rollbackSafe: "no" }, "rollbackSafe");
      await bad({ rollbackNote: "irreversible" }, "rollbackNote");
      await bad({ rollbackSafe: true, rollbackNote: "irreversible" }, "rollbackNote");
      await bad({ rollbackSafe: false, rollbackNote: "   " }, "rollbackNote");
      await bad({ rollbackSafe: false, rollbackNote: "x".repeat(501) }, "rollbackNote");
      await bad({ rollbackSafe: false, rollbackNote: "bell\u0007" }, "rollbackNote");
      assert.equal((await fx.store.query("SELECT 1 FROM releases WHERE version = '9'")).rowCount, 0, "nothing written");
      const rel = await fx.catalog.createRelease({ name: "shop", version: "9", components: { web: ":9" }, rollbackSafe: false, rollbackNote: " drops a column " }, "alice");
      assert.deepEqual([rel.rollbackSafe, rel.rollbackNote], [false, "drops a column"]);
      // Read back by another catalog instance (no cache): from the row.
      const again = await fx.store.query<{ rollback_safe: boolean; rollback_note: string }>("SELECT rollback_safe, rollback_note FROM releases WHERE id = $1", [rel.id]);
      assert.deepEqual(again.rows[0], { rollback_safe: false, rollback_note: "drops a column" });
      const audit = (await listAudit(fx.store, { limit: 100 })).filter((a) => a.action === "release.create").at(-1)!;
      assert.equal((audit.details as { rollbackSafe?: boolean }).rollbackSafe, false);
    });
  }
});
