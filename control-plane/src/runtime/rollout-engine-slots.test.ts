// The rollout engine running blue-green, canary and A/B on both store backends. A scripted agent stand-in answers
// every task as the agent's routed Docker driver does (agent/src/drivers/docker/slots.ts): phase tasks return the
// driver state in details.state, route tasks return the weights and the counters of a modelled router whose traffic
// the test drives. Time is a fake clock; "restarts" build a new engine instance on the same store.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import type { TaskPayload } from "@ferry/contract";
import { testBackends, type TestBackend } from "../adapters/store/test-backends.js";
import type { Store } from "../ports/store.js";
import { listAudit } from "../domain/audit/audit-log.js";
import { code, deployFixture, fileKeyring } from "../domain/deploy/deploy.fixture.js";
import type { DeploymentService } from "../domain/deploy/deployment-service.js";
import { RolloutService, type RolloutView } from "../domain/rollout/rollout-service.js";
import { RolloutStepper } from "../domain/rollout/rollout-stepper.js";
import { parseStrategy } from "../domain/rollout/strategy.js";
import { RolloutEngine } from "./rollout-engine.js";
import { TASK_TTL, v1, v2 } from "./rollout-engine.fixture.js";

const keys = fileKeyring("ferry-slots-");

type Slot = "blue" | "green";
interface Counters { requests: number; errors5xx: number; avgResponseMs: number }
/** One target's router as the agent's HAProxy would report it. */
interface RouterModel { weights: Record<Slot, number>; counters: Record<Slot, Counters>; epoch: string; maintenance: string | null; digest: Record<Slot, string | null> }
const other = (s: Slot): Slot => (s === "blue" ? "green" : "blue");

interface Sent { target: string; payload: TaskPayload }

interface Fx {
  store: Store;
  clock: { t: number };
  rollouts: RolloutService;
  deployments: DeploymentService;
  routers: Record<string, RouterModel>;
  /** Every payload handed to the task signer, in order. */
  signed: TaskPayload[];
  engine(replica?: string): RolloutEngine;
  /** Answers every queued task as the routed Docker driver would; returns what was sent. */
  agents(fail?: Record<string, { outcome: string; code: string }>): Promise<Sent[]>;
  /** Requests through each target's router, split by its weights; `newErrors` of the new slot's answer 5xx. */
  traffic(requests: number, newErrors?: number): void;
  settle(engine: RolloutEngine): Promise<void>;
}

async function fixture(b: TestBackend, t: TestContext, opts: { v1Only?: string[]; plain?: string[] } = {}): Promise<Fx> {
  const signed: TaskPayload[] = [];
  const signer = { sign: (p: TaskPayload) => (signed.push(p), keys.keyring.sign(p)), publicKeys: (at?: number) => keys.keyring.publicKeys(at) };
  const { store, clock, now, catalog, deployments, queue } = await deployFixture(b, t, { signer, taskTtlMs: TASK_TTL });
  const rollouts = new RolloutService({ store, catalog, deployments, clock: { now } });
  const stepper = new RolloutStepper({ store, deployments, clock: { now } });
  await catalog.createEnvironment({ name: "dev" }, "alice");
  await catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "alice");
  const routers: Record<string, RouterModel> = {};
  for (let i = 1; i <= 2; i++) {
    const name = `web-${i}`;
    const facts = { drivers: ["docker"], driverFacts: [{ kind: "docker", capabilities: ["side-by-side", "router"] }], taskPayloadVersions: opts.v1Only?.includes(name) ? [1] : [1, 2] };
    await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, 'dev', 'online', $2)", [`agt_${i}`, JSON.stringify(facts)]);
    const route = { service: "web", listen: "127.0.0.1:8080", slots: { blue: 8081, green: 8082 } };
    await catalog.createTarget({ environment: "dev", name, kind: "docker", agentId: `agt_${i}`, config: { container: name, ...(opts.plain?.includes(name) ? {} : { route }) } }, "alice");
    const zero = () => ({ requests: 0, errors5xx: 0, avgResponseMs: 0 });
    routers[name] = { weights: { blue: 0, green: 100 }, counters: { blue: zero(), green: zero() }, epoch: "4711@1", maintenance: null, digest: { blue: null, green: null } };
  }
  await catalog.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "alice");
  await catalog.createRelease({ name: "shop", version: "2", components: { web: ":2" } }, "alice");

  const answer = (name: string, p: TaskPayload): Record<string, unknown> => {
    const m = routers[name]!;
    const serving: Slot = m.weights.blue >= m.weights.green ? "blue" : "green";
    const carried = p.state?.["slot"] as { idle: Slot; active: Slot } | undefined;
    if (p.action === "route") {
      const fresh: Slot = carried?.idle ?? other(serving);
      const op = p.route as { op: string; newWeight?: number; message?: string | null };
      if (op.op === "weights") {
        m.weights = { [fresh]: op.newWeight!, [other(fresh)]: 100 - op.newWeight! } as Record<Slot, number>;
        return { weights: { ...m.weights }, newSlot: fresh, stableSlot: other(fresh) };
      }
      if (op.op === "measure") return { epoch: m.epoch, at: clock.t, newSlot: fresh, stableSlot: other(fresh), new: { ...m.counters[fresh], connections: 0 }, stable: { ...m.counters[other(fresh)], connections: 0 }, weights: { ...m.weights } };
      m.maintenance = op.message ?? null;
      return { maintenance: m.maintenance };
    }
    const phases = p.phases ?? ["prepare", "start", "health", "switch", "retire"];
    let slot = carried ? { ...carried } : { active: serving, idle: other(serving) };
    if (phases.includes("start")) {
      slot = { active: serving, idle: other(serving) };
      m.digest[slot.idle] = p.images[0]!.digest;
    }
    if (phases.includes("switch")) m.weights = { [slot.idle]: 100, [slot.active]: 0 } as Record<Slot, number>;
    if (phases.includes("restore")) {
      m.weights = { [slot.active]: 100, [slot.idle]: 0 } as Record<Slot, number>;
      m.digest[slot.idle] = null;
    }
    return { running: [], state: { slot, image: { digest: p.images[0]?.digest ?? null } } };
  };

  const fx: Fx = {
    store,
    clock,
    rollouts,
    deployments,
    routers,
    signed,
    engine: (replica = "cp-1") => new RolloutEngine({ store, stepper, clock: { now }, replicaId: replica, leaseMs: 30_000 }),
    async agents(fail = {}) {
      const queued = await store.query<{ id: string; agent_id: string; name: string; payload: Uint8Array }>(
        "SELECT t.id, t.agent_id, tg.name, t.payload FROM tasks t JOIN targets tg ON tg.id = t.target_id WHERE t.state = 'queued' ORDER BY tg.name",
      );
      for (const agent of new Set(queued.rows.map((q) => q.agent_id))) await queue.claim(agent);
      const sent: Sent[] = [];
      for (const q of queued.rows) {
        const payload = JSON.parse(Buffer.from(q.payload).toString("utf8")) as TaskPayload;
        sent.push({ target: q.name, payload });
        await queue.ack(q.agent_id, { taskId: q.id, accepted: true, code: "", message: "" });
        const f = fail[q.name];
        const details = f ? { restored: true } : answer(q.name, payload);
        await queue.result(q.agent_id, { taskId: q.id, outcome: f?.outcome ?? "succeeded", code: f?.code ?? "", message: "", details, sticker: null, startedAt: clock.t, finishedAt: clock.t, logBytes: 0, attempt: 1 });
      }
      return sent;
    },
    traffic(requests, newErrors = 0) {
      for (const m of Object.values(routers)) {
        const fresh: Slot = m.weights.blue >= m.weights.green ? "green" : "blue";
        const toNew = Math.round((requests * m.weights[fresh]) / 100);
        m.counters[fresh] = { requests: m.counters[fresh].requests + toNew, errors5xx: m.counters[fresh].errors5xx + Math.min(newErrors, toNew), avgResponseMs: 12 };
        const s = other(fresh);
        m.counters[s] = { requests: m.counters[s].requests + requests - toNew, errors5xx: m.counters[s].errors5xx, avgResponseMs: 11 };
      }
    },
    async settle(engine) {
      for (let i = 0; i < 50; i++) if ((await engine.tick()) === 0) return;
      throw new Error("the engine did not settle");
    },
  };
  // Release 1 everywhere, all at once (a routed target's all-at-once task is itself a blue-green run).
  await deployments.deploy({ release: "shop@1", environment: "dev" }, "alice");
  await fx.agents();
  return fx;
}

const stepStates = (r: RolloutView) => r.steps.map((s) => `${s.phase === "rollback" ? "rb:" : ""}${s.kind}:${s.state}`);
const create = (fx: Fx, strategy: unknown) => fx.rollouts.create({ release: "shop@2", environment: "dev", strategy: parseStrategy(strategy) }, "alice");
const current = async (store: Store) =>
  Object.fromEntries(
    (
      await store.query<{ name: string; digest: string }>(
        `SELECT tg.name, td.images->0->>'digest' AS digest FROM targets tg
           JOIN LATERAL (SELECT images FROM target_deployments x WHERE x.target_id = tg.id ORDER BY seq DESC LIMIT 1) td ON true ORDER BY tg.name`,
      )
    ).rows.map((r) => [r.name, r.digest]),
  );
const ops = (sent: Sent[]) => sent.map((s) => `${s.target}:${s.payload.action}:${s.payload.route ? JSON.stringify(s.payload.route) : (s.payload.phases ?? []).join(">")}`);
const CANARY = { kind: "canary", steps: [{ weight: 10, bakeSeconds: 30 }], analysis: { minRequests: 20, maxInconclusive: 1 } };

for (const b of testBackends()) {
  describe(`rollout engine, slot strategies (${b.name})`, () => {
    it("blue-green: starts beside with v2 phases, carries the start state into the switch across a restart, records the new release only after it", async (t) => {
      const fx = await fixture(b, t);
      const { rollout, deployment } = await create(fx, { kind: "blue-green" });
      assert.deepEqual(stepStates(rollout), ["wave:running", "wave:pending"]);
      assert.equal(deployment.tasks.length, 2);
      const start = await fx.agents();
      assert.deepEqual(ops(start), ["web-1:deploy:prepare>start>health", "web-2:deploy:prepare>start>health"]);
      assert.equal(start[0]!.payload.v, 2);
      assert.equal(start[0]!.payload.state, undefined);
      // A restart between the waves: the replica queuing the switch finds the start state in the rows.
      await fx.settle(fx.engine("cp-2"));
      assert.deepEqual(await current(fx.store), { "web-1": v1, "web-2": v1 }, "a start-beside step does not change what a target runs");
      const status = await fx.deployments.status("dev");
      assert.ok(status.every((s) => s.deployed?.release === "shop@1"));
      const sw = await fx.agents();
      assert.deepEqual(ops(sw), ["web-1:deploy:switch>retire", "web-2:deploy:switch>retire"]);
      assert.deepEqual(sw[0]!.payload.state?.["slot"], { active: "blue", idle: "green" }, "the switch carries the start step's state");
      await fx.settle(fx.engine("cp-3"));
      const r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "succeeded");
      assert.deepEqual(await current(fx.store), { "web-1": v2, "web-2": v2 });
      assert.equal(typeof (r.steps[1]!.result["carriedFrom"] as Record<string, string>)["web-1"], "string");
      assert.deepEqual(fx.routers["web-1"]!.weights, { blue: 0, green: 100 });
    });

    it("canary passes: weights then a baseline measure, bake, analysis on the counter deltas, switch", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, CANARY);
      assert.deepEqual(stepStates(rollout), ["wave:running", "weights:pending", "wait:pending", "analysis:pending", "wave:pending"]);
      const engine = fx.engine();
      await fx.agents();
      fx.traffic(1000); // before the canary gets traffic: must not count in the analysis
      await fx.settle(engine);
      const w = await fx.agents();
      assert.deepEqual(ops(w), ['web-1:route:{"newWeight":10,"op":"weights"}', 'web-2:route:{"newWeight":10,"op":"weights"}']);
      assert.deepEqual(w[0]!.payload.state?.["slot"], { active: "blue", idle: "green" });
      await fx.settle(engine);
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"op":"measure"}', 'web-2:route:{"op":"measure"}'], "the weights step reads its baseline right after");
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r).slice(1, 4), ["weights:succeeded", "wait:running", "analysis:pending"]);
      const wt = Object.values(r.steps[1]!.result["targets"] as Record<string, { weights: unknown; state: string }>);
      assert.deepEqual(wt.map((x) => [x.state, x.weights]), [["succeeded", { stable: 90, new: 10 }], ["succeeded", { stable: 90, new: 10 }]]);
      fx.traffic(1000);
      fx.clock.t += 31_000;
      await fx.settle(engine);
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"op":"measure"}', 'web-2:route:{"op":"measure"}']);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      const analysis = r.steps[3]!.result["analysis"] as { verdict: string; attempt: number; perTarget: { target: string; verdict: string; measurements: { name: string }[]; deltas: { new: { requests: number } } }[]; external: unknown[] };
      assert.deepEqual(Object.keys(analysis).sort(), ["attempt", "external", "perTarget", "verdict"]);
      assert.equal(analysis.verdict, "pass");
      assert.equal(analysis.attempt, 1);
      assert.deepEqual(analysis.external, []);
      assert.deepEqual(analysis.perTarget.map((p) => [p.target, p.verdict, p.deltas.new.requests]), [["web-1", "pass", 100], ["web-2", "pass", 100]]);
      assert.deepEqual(analysis.perTarget[0]!.measurements.map((m) => m.name), ["error-rate", "requests", "latency-ratio"]);
      assert.deepEqual(ops(await fx.agents()), ["web-1:deploy:switch>retire", "web-2:deploy:switch>retire"]);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "succeeded");
      assert.deepEqual(await current(fx.store), { "web-1": v2, "web-2": v2 });
    });

    it("canary fails its analysis: weight 0 is queued in the same tick, then the new slot is restored from the start state", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, CANARY);
      const engine = fx.engine();
      await fx.agents();
      await fx.settle(engine);
      await fx.agents();
      await fx.settle(engine);
      await fx.agents();
      await fx.settle(engine);
      fx.traffic(1000, 40);
      fx.clock.t += 31_000;
      await fx.settle(engine);
      await fx.agents();
      await engine.tick();
      let r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolling_back");
      assert.equal(r.reason?.["code"], "ROLLOUT_ANALYSIS_FAILED");
      assert.equal((r.steps[3]!.result["analysis"] as { verdict: string }).verdict, "fail");
      assert.deepEqual(stepStates(r).slice(4), ["wave:skipped", "rb:weights:running", "rb:wave:pending"], "one tick: analysis failed, rollback planned, weight 0 queued");
      const zero = await fx.agents();
      assert.deepEqual(ops(zero), ['web-1:route:{"newWeight":0,"op":"weights"}', 'web-2:route:{"newWeight":0,"op":"weights"}']);
      assert.deepEqual(fx.routers["web-1"]!.weights, { blue: 100, green: 0 });
      await fx.settle(engine);
      const restore = await fx.agents();
      assert.deepEqual(ops(restore), ["web-1:rollback:restore", "web-2:rollback:restore"]);
      assert.deepEqual(restore[0]!.payload.state?.["slot"], { active: "blue", idle: "green" }, "restore carries the start step's state");
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolled_back");
      assert.deepEqual(await current(fx.store), { "web-1": v1, "web-2": v1 });
      assert.equal(fx.routers["web-1"]!.digest.green, null);
    });

    it("an HTTP probe failing during the bake fails the analysis even with clean counters; the probe's answer is in the result", async (t) => {
      // A real probe target on loopback that answers 503, reached by the engine's own external checks.
      const probe = createServer((_req, res) => res.writeHead(503).end("degraded"));
      await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
      t.after(() => new Promise<void>((resolve) => probe.close(() => resolve())));
      const probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/health`;
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { ...CANARY, analysis: { ...CANARY.analysis, probeUrl } });
      const engine = fx.engine();
      for (let i = 0; i < 3; i++) {
        await fx.agents();
        await fx.settle(engine);
      }
      fx.traffic(1000);
      fx.clock.t += 31_000;
      await fx.settle(engine);
      await fx.agents();
      await engine.tick();
      const r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolling_back");
      assert.equal(r.reason?.["code"], "ROLLOUT_ANALYSIS_FAILED");
      const analysis = r.steps[3]!.result["analysis"] as { verdict: string; external: { name: string; ok: boolean | null; value: unknown }[]; perTarget: { measurements: { name: string; verdict: string }[] }[] };
      assert.equal(analysis.verdict, "fail");
      assert.deepEqual(analysis.external.map((e) => [e.name, e.ok, e.value]), [["probe", false, 503]]);
      assert.deepEqual(analysis.perTarget[0]!.measurements.filter((m) => m.verdict === "fail").map((m) => m.name), ["probe"], "the counters alone pass");
    });

    it("an inconclusive analysis bakes again from a fresh baseline, up to maxInconclusive, then fails", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, CANARY);
      const engine = fx.engine();
      for (let i = 0; i < 3; i++) {
        await fx.agents();
        await fx.settle(engine);
      }
      fx.traffic(50); // 5 requests reach each canary: too few
      fx.clock.t += 31_000;
      await fx.settle(engine);
      await fx.agents();
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      const step = r.steps[3]!;
      assert.equal(step.state, "running");
      assert.equal((step.result["analysis"] as { verdict: string; attempt: number }).verdict, "inconclusive");
      assert.equal(step.result["attempt"], 2);
      assert.equal(step.result["stage"], "bake");
      assert.deepEqual(await fx.agents(), [], "nothing is measured before the second bake ends");
      fx.traffic(50);
      fx.clock.t += 31_000;
      await fx.settle(engine);
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"op":"measure"}', 'web-2:route:{"op":"measure"}']);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.reason?.["code"], "ROLLOUT_ANALYSIS_INCONCLUSIVE");
      const a = r.steps[3]!.result["analysis"] as { attempt: number; perTarget: { deltas: { new: { requests: number } } }[] };
      assert.equal(a.attempt, 2);
      assert.equal(a.perTarget[0]!.deltas.new.requests, 5, "the second analysis counts from the re-taken baseline");
      assert.equal((r.steps[3]!.result["earlier"] as unknown[]).length, 1);
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"newWeight":0,"op":"weights"}', 'web-2:route:{"newWeight":0,"op":"weights"}']);
    });

    it("A/B: the weights step puts the split into the signed route operation", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { kind: "ab", split: { by: "cookie", name: "uid", percent: 20 }, allowlist: ["tester"], bakeSeconds: 60 });
      const engine = fx.engine();
      await fx.agents();
      await fx.settle(engine);
      const split = { by: "cookie", name: "uid", allowlist: ["tester"] };
      // What the engine handed to the signer for the A/B step (the rollback's weight 0 comes after, without a split).
      const routes = fx.signed.filter((p) => p.action === "route" && (p.route as { newWeight?: number }).newWeight === 20);
      assert.ok(routes.length >= 1);
      for (const p of routes) assert.deepEqual(p.route, { op: "weights", newWeight: 20, split });
      const r = await fx.rollouts.get(rollout.id);
      const queued = await fx.store.query<{ payload: Uint8Array }>("SELECT payload FROM tasks WHERE state = 'queued' AND action = 'route'");
      if (r.steps[1]!.state !== "failed") {
        // A contract whose weights op takes a split: the signed payload carries it.
        assert.equal(r.steps[1]!.state, "running");
        assert.equal(queued.rows.length, 2);
        assert.deepEqual(routes.map((p) => p.target.name), ["web-1", "web-2"]);
        for (const q of queued.rows) assert.deepEqual((JSON.parse(Buffer.from(q.payload).toString("utf8")) as TaskPayload).route, { op: "weights", newWeight: 20, split });
      } else {
        // A contract that does not know the split refuses to sign it: the step fails cleanly (no task half-queued),
        // and the rollout rolls back what it started rather than retrying forever.
        assert.equal(r.reason?.["code"], "INTERNAL");
        assert.match(String(r.reason?.["message"]), /could not be signed: .*split/);
        assert.equal(r.state, "rolling_back");
      }
    });

    it("an abort during the bake takes traffic off the canary first, then restores", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, CANARY);
      const engine = fx.engine();
      for (let i = 0; i < 3; i++) {
        await fx.agents();
        await fx.settle(engine);
      }
      assert.deepEqual(fx.routers["web-2"]!.weights, { blue: 90, green: 10 });
      await fx.rollouts.abort(rollout.id, "dave", "bad idea");
      await engine.tick();
      const r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r), ["wave:succeeded", "weights:succeeded", "wait:skipped", "analysis:skipped", "wave:skipped", "rb:weights:running", "rb:wave:pending"]);
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"newWeight":0,"op":"weights"}', 'web-2:route:{"newWeight":0,"op":"weights"}']);
      await fx.settle(engine);
      assert.deepEqual(ops(await fx.agents()), ["web-1:rollback:restore", "web-2:rollback:restore"]);
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(rollout.id)).state, "rolled_back");
      assert.deepEqual(fx.routers["web-2"]!.weights, { blue: 100, green: 0 });
    });

    it("resumes after a restart at every step kind: a wave with carried state, weights (mid-stage), a re-bake, an analysis, a slot rollback", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, { ...CANARY, steps: [{ weight: 10, bakeSeconds: 30 }, { weight: 50, bakeSeconds: 30 }] });
      let n = 0;
      const fresh = () => fx.engine(`cp-${++n}`);
      await fx.agents();
      await fx.settle(fresh());
      // Weights: the weights tasks answered, then the control plane dies before the measure is queued.
      await fx.agents();
      await fresh().tick();
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"op":"measure"}', 'web-2:route:{"op":"measure"}']);
      await fx.settle(fresh());
      fx.traffic(1000);
      fx.clock.t += 31_000;
      // Analysis: queued by one replica, concluded by another.
      await fx.settle(fresh());
      await fx.agents();
      await fx.settle(fresh());
      let r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r).slice(0, 6), ["wave:succeeded", "weights:succeeded", "wait:succeeded", "analysis:succeeded", "weights:running", "wait:pending"]);
      // Second canary step: weights 50, then an inconclusive analysis; the re-bake survives a restart.
      await fx.agents();
      await fx.settle(fresh());
      await fx.agents();
      await fx.settle(fresh());
      fx.clock.t += 31_000;
      await fx.settle(fresh());
      await fx.agents();
      await fx.settle(fresh());
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.steps[6]!.result["stage"], "bake");
      await fx.settle(fresh());
      assert.deepEqual(await fx.agents(), []);
      fx.traffic(1000, 100);
      fx.clock.t += 31_000;
      await fx.settle(fresh());
      await fx.agents();
      await fx.settle(fresh());
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.reason?.["code"], "ROLLOUT_ANALYSIS_FAILED");
      // Rollback: weight 0 and restore, each step finished by another replica.
      await fx.agents();
      await fx.settle(fresh());
      const restore = await fx.agents();
      assert.deepEqual(ops(restore), ["web-1:rollback:restore", "web-2:rollback:restore"]);
      assert.deepEqual(restore[1]!.payload.state?.["slot"], { active: "blue", idle: "green" });
      await fx.settle(fresh());
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "rolled_back");
      // Every task exactly once: 2 (release 1) + 2 start + (2 weights + 2 measure) x2 + 2 + 2 + 2 analyses... counted by kind.
      const byKind = await fx.store.query<{ action: string; n: string | number }>("SELECT action, count(*) AS n FROM tasks GROUP BY action ORDER BY action");
      assert.deepEqual(byKind.rows.map((x) => [x.action, Number(x.n)]), [["deploy", 4], ["rollback", 2], ["route", 2 * 2 + 2 * 2 + 2 + 2 * 2 + 2]]);
      const audit = (await listAudit(fx.store, { limit: 500 })).map((a) => a.action);
      assert.ok(audit.includes("rollout.step.retry"));
    });

    it("a partly failed switch flips the switched targets back with their previous digests", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, "blue-green");
      const engine = fx.engine();
      await fx.agents();
      await fx.settle(engine);
      await fx.agents({ "web-2": { outcome: "failed", code: "ROUTER_COMMAND_FAILED" } });
      await fx.settle(engine);
      const r = await fx.rollouts.get(rollout.id);
      assert.deepEqual(stepStates(r), ["wave:succeeded", "wave:failed", "rb:weights:running", "rb:wave:pending", "rb:wave:pending"]);
      assert.deepEqual(ops(await fx.agents()), ['web-2:route:{"newWeight":0,"op":"weights"}']);
      await fx.settle(engine);
      assert.deepEqual(ops(await fx.agents()), ["web-2:rollback:restore"]);
      await fx.settle(engine);
      const flip = await fx.agents();
      assert.deepEqual(ops(flip), ["web-1:rollback:prepare>start>health>switch>retire"]);
      assert.equal(flip[0]!.payload.images[0]!.digest, v1);
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(rollout.id)).state, "rolled_back");
      assert.deepEqual(await current(fx.store), { "web-1": v1, "web-2": v1 });
    });

    it("refuses a slot strategy on targets whose agent reads v1 only, or that are not routed, naming them", async (t) => {
      const fx = await fixture(b, t, { v1Only: ["web-2"] });
      await assert.rejects(create(fx, CANARY), (e: unknown) => code("TARGET_DRIVER_UNAVAILABLE")(e) && /web-2/.test((e as Error).message) && !/web-1/.test((e as Error).message));
      const fx2 = await fixture(b, t, { plain: ["web-1", "web-2"] });
      await assert.rejects(create(fx2, "blue-green"), (e: unknown) => code("TARGET_NOT_ROUTED")(e) && /web-1, web-2/.test((e as Error).message));
      await assert.rejects(fx2.deployments.maintenance({ environment: "dev", on: true }, "alice"), code("TARGET_NOT_ROUTED"));
    });

    it("maintenance on and off: one signed maintenance route task per routed target, audited, bounded message", async (t) => {
      const fx = await fixture(b, t);
      await assert.rejects(fx.deployments.maintenance({ environment: "dev", on: true, message: 'say "hi"' }, "alice"), code("VALIDATION_FAILED"));
      await assert.rejects(fx.deployments.maintenance({ environment: "dev", on: true, message: "x".repeat(257) }, "alice"), code("VALIDATION_FAILED"));
      await assert.rejects(fx.deployments.maintenance({ environment: "dev", on: true, targets: ["nope"] }, "alice"), code("TARGET_NOT_FOUND"));
      const dep = await fx.deployments.maintenance({ environment: "dev", on: true, message: "back at 10:00", targets: ["web-1"] }, "alice");
      assert.equal(dep.action, "route");
      assert.equal(dep.releaseId, null);
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"message":"back at 10:00","op":"maintenance"}']);
      assert.equal(fx.routers["web-1"]!.maintenance, "back at 10:00");
      assert.equal((await fx.deployments.get(dep.id)).state, "succeeded");
      await fx.deployments.maintenance({ environment: "dev", on: false }, "alice");
      assert.deepEqual(ops(await fx.agents()), ['web-1:route:{"message":null,"op":"maintenance"}', 'web-2:route:{"message":null,"op":"maintenance"}']);
      assert.equal(fx.routers["web-1"]!.maintenance, null);
      assert.deepEqual(await current(fx.store), { "web-1": v1, "web-2": v1 }, "a route task never changes what a target runs");
      const audit = (await listAudit(fx.store, { limit: 100 })).map((a) => a.action);
      assert.ok(audit.includes("maintenance.on") && audit.includes("maintenance.off"));
      // A target of an active rollout belongs to it.
      await create(fx, "blue-green");
      await assert.rejects(fx.deployments.maintenance({ environment: "dev", on: true }, "alice"), code("DEPLOYMENT_IN_PROGRESS"));
    });
  });
}
