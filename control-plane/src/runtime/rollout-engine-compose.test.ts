// The rollout engine's slot strategies on compose targets, on both store backends: a compose target is routed when its
// config.routes names at least one service, and its agent offers side-by-side and router when its compose driver has
// a router. A scripted agent stand-in answers as the compose driver does (agent/src/drivers/compose/slots.ts): phase
// tasks return the driver state (the routed services' slots under `routed`), route tasks the weights and the counters
// summed over the routed services, with each service's own answer under `services`.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { TaskSigningKeyring } from "@ferry/pki";
import { composeLock, type TaskPayload } from "@ferry/contract";
import { testBackends, type TestBackend } from "../adapters/store/test-backends.js";
import type { ImageRegistry } from "../ports/registry.js";
import type { Store } from "../ports/store.js";
import { CatalogService } from "../domain/catalog/catalog-service.js";
import { DeploymentService } from "../domain/deploy/deployment-service.js";
import { TaskQueue } from "../domain/deploy/task-queue.js";
import { FerryError } from "../domain/errors.js";
import { RolloutService, type RolloutView } from "../domain/rollout/rollout-service.js";
import { RolloutStepper } from "../domain/rollout/rollout-stepper.js";
import { parseStrategy } from "../domain/rollout/strategy.js";
import { RolloutEngine } from "./rollout-engine.js";

const T0 = Date.UTC(2030, 0, 1);
let keyring: TaskSigningKeyring;
const dir = mkdtempSync(join(tmpdir(), "ferry-compose-rollouts-"));
before(async () => {
  keyring = await TaskSigningKeyring.loadOrCreate(join(dir, "task-signing"), { now: T0 - 1000 });
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

type Slot = "blue" | "green";
const other = (s: Slot): Slot => (s === "blue" ? "green" : "blue");
interface Counters { requests: number; errors5xx: number; avgResponseMs: number; connections: number }
/** The project's router for its routed web service, as the agent's HAProxy would report it. */
interface RouterModel { weights: Record<Slot, number>; counters: Record<Slot, Counters>; maintenance: string | null }

const ROUTE = { composeService: "web", service: "shop_web", listen: "127.0.0.1:8080", slots: { blue: 8081, green: 8082 } };
const composeConfig = (routes: unknown[] | undefined) => ({ project: "shop", directory: "/srv/shop", services: { web: "web", worker: "worker" }, ...(routes ? { routes } : {}) });

interface Fx {
  store: Store;
  clock: { t: number };
  rollouts: RolloutService;
  deployments: DeploymentService;
  router: RouterModel;
  engine(): RolloutEngine;
  agents(): Promise<TaskPayload[]>;
  traffic(requests: number, newErrors?: number): void;
  settle(engine: RolloutEngine): Promise<void>;
}

/** shop-1: a compose target routing web, on an agent whose compose driver has a router; other targets as asked. */
async function fixture(b: TestBackend, t: TestContext, extra: { name: string; routes?: unknown[]; caps?: string[] }[] = []): Promise<Fx> {
  const store = await b.open(t);
  const clock = { t: T0 };
  const now = () => clock.t;
  const catalog = new CatalogService({ store, registry: fakeRegistry, credentials: { get: async () => null }, clock: { now } });
  const signer = { sign: (p: TaskPayload) => keyring.sign(p), publicKeys: (at?: number) => keyring.publicKeys(at) };
  const deployments = new DeploymentService({ store, catalog, signer, clock: { now }, taskTtlMs: 3_600_000 });
  const queue = new TaskQueue({ store, clock: { now }, timings: { ackTimeoutMs: 30_000, runningLeaseMs: 60_000 } });
  const rollouts = new RolloutService({ store, catalog, deployments, clock: { now } });
  const stepper = new RolloutStepper({ store, deployments, clock: { now } });
  await catalog.createEnvironment({ name: "dev" }, "alice");
  await catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "alice");
  await catalog.createComponent({ name: "worker", repository: "127.0.0.1:5000/team/worker" }, "alice");
  const targets = [{ name: "shop-1", routes: [ROUTE], caps: ["several-images", "side-by-side", "router"] }, ...extra];
  for (const [i, x] of targets.entries()) {
    const facts = { drivers: ["compose"], driverFacts: [{ kind: "compose", capabilities: x.caps ?? ["several-images", "side-by-side", "router"] }], taskPayloadVersions: [1, 2] };
    await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, 'dev', 'online', $2)", [`agt_${i}`, JSON.stringify(facts)]);
    await catalog.createTarget({ environment: "dev", name: x.name, kind: "compose", agentId: `agt_${i}`, config: composeConfig(x.routes) }, "alice");
  }
  for (const v of ["1", "2"]) await catalog.createRelease({ name: "shop", version: v, components: { web: `:${v}`, worker: `:${v}` } }, "alice");
  const zero = (): Counters => ({ requests: 0, errors5xx: 0, avgResponseMs: 0, connections: 0 });
  const router: RouterModel = { weights: { blue: 0, green: 100 }, counters: { blue: zero(), green: zero() }, maintenance: null };

  const answer = (p: TaskPayload): Record<string, unknown> => {
    const m = router;
    const serving: Slot = m.weights.blue >= m.weights.green ? "blue" : "green";
    const carried = (p.state?.["routed"] as Record<string, { slot: { idle: Slot; active: Slot } }> | undefined)?.["web"]?.slot;
    if (p.action === "route") {
      const fresh: Slot = carried?.idle ?? other(serving);
      const op = p.route as { op: string; newWeight?: number; message?: string | null };
      if (op.op === "weights") {
        m.weights = { [fresh]: op.newWeight!, [other(fresh)]: 100 - op.newWeight! } as Record<Slot, number>;
        const one = { weights: { ...m.weights }, newSlot: fresh, stableSlot: other(fresh), split: null };
        return { ...one, services: { web: one } };
      }
      if (op.op === "measure") {
        const one = { epoch: "4711@1", at: clock.t, newSlot: fresh, stableSlot: other(fresh), new: { ...m.counters[fresh] }, stable: { ...m.counters[other(fresh)] }, weights: { ...m.weights }, split: null };
        return { ...one, services: { web: one } };
      }
      m.maintenance = op.message ?? null;
      return { maintenance: m.maintenance, services: { web: { maintenance: m.maintenance } } };
    }
    const phases = p.phases ?? ["prepare", "start", "health", "switch", "retire"];
    let slot = carried ? { ...carried } : { active: serving, idle: other(serving) };
    if (phases.includes("start")) slot = { active: serving, idle: other(serving) };
    if (phases.includes("switch")) m.weights = { [slot.idle]: 100, [slot.active]: 0 } as Record<Slot, number>;
    if (phases.includes("restore")) m.weights = { [slot.active]: 100, [slot.idle]: 0 } as Record<Slot, number>;
    // The driver reports the SHA-256 of the lock the task is signed for (derived from its pins and config.services).
    const lockSha256 = `sha256:${createHash("sha256").update(composeLock({ services: { web: "web", worker: "worker" } }, p.images).text).digest("hex")}`;
    return { running: [], lockSha256, state: { directory: "/srv/shop", changed: ["web", "worker"], routed: { web: { route: ROUTE, slot: { service: ROUTE.service, ...slot, port: ROUTE.slots[slot.idle] } } } } };
  };

  const fx: Fx = {
    store,
    clock,
    rollouts,
    deployments,
    router,
    engine: () => new RolloutEngine({ store, stepper, clock: { now }, replicaId: "cp-1", leaseMs: 30_000 }),
    async agents() {
      const queued = await store.query<{ id: string; agent_id: string; payload: Uint8Array }>("SELECT t.id, t.agent_id, t.payload FROM tasks t WHERE t.state = 'queued' ORDER BY t.id");
      for (const agent of new Set(queued.rows.map((q) => q.agent_id))) await queue.claim(agent);
      const sent: TaskPayload[] = [];
      for (const q of queued.rows) {
        const payload = JSON.parse(Buffer.from(q.payload).toString("utf8")) as TaskPayload;
        sent.push(payload);
        await queue.ack(q.agent_id, { taskId: q.id, accepted: true, code: "", message: "" });
        await queue.result(q.agent_id, { taskId: q.id, outcome: "succeeded", code: "", message: "", details: answer(payload), sticker: null, startedAt: clock.t, finishedAt: clock.t, logBytes: 0, attempt: 1 });
      }
      return sent;
    },
    traffic(requests, newErrors = 0) {
      const m = router;
      const fresh: Slot = m.weights.blue >= m.weights.green ? "green" : "blue";
      const toNew = Math.round((requests * m.weights[fresh]) / 100);
      m.counters[fresh] = { requests: m.counters[fresh].requests + toNew, errors5xx: m.counters[fresh].errors5xx + Math.min(newErrors, toNew), avgResponseMs: 12, connections: 0 };
      const s = other(fresh);
      m.counters[s] = { requests: m.counters[s].requests + requests - toNew, errors5xx: m.counters[s].errors5xx, avgResponseMs: 11, connections: 0 };
    },
    async settle(engine) {
      for (let i = 0; i < 50; i++) if ((await engine.tick()) === 0) return;
      throw new Error("the engine did not settle");
    },
  };
  const first = await deployments.deploy({ release: "shop@1", environment: "dev", targets: ["shop-1"] }, "alice");
  await fx.agents();
  assert.equal((await deployments.get(first.id)).state, "succeeded");
  return fx;
}

const CANARY = { kind: "canary", steps: [{ weight: 20, bakeSeconds: 30 }], analysis: { minRequests: 20, maxInconclusive: 0 } };
const create = (fx: Fx, strategy: unknown, targets = ["shop-1"]) => fx.rollouts.create({ release: "shop@2", environment: "dev", targets, strategy: parseStrategy(strategy) }, "alice");
const steps = (r: RolloutView) => r.steps.map((s) => `${s.phase === "rollback" ? "rb:" : ""}${s.kind}:${s.state}`);
const ops = (sent: TaskPayload[]) => sent.map((p) => `${p.target.kind}:${p.action}:${p.route ? JSON.stringify(p.route) : (p.phases ?? []).join(">")}`);
const deployed = async (fx: Fx) => (await fx.deployments.status("dev")).find((s) => s.target === "shop-1")?.deployed?.release;

for (const b of testBackends()) {
  describe(`rollout engine, slot strategies on compose targets (${b.name})`, () => {
    it("preflight: a compose target routing a service passes; one routing none, or whose agent has no router, is refused by name", async (t) => {
      const fx = await fixture(b, t, [
        { name: "plain-1" },
        { name: "plain-2", routes: [] },
        { name: "no-router", routes: [{ ...ROUTE, service: "other_web" }], caps: ["several-images"] },
      ]);
      await assert.rejects(create(fx, "blue-green", ["shop-1", "plain-1", "plain-2"]), (e: unknown) => code("TARGET_NOT_ROUTED")(e) && /config\.routes/.test((e as Error).message) && /not routed: plain-1, plain-2$/.test((e as Error).message));
      await assert.rejects(create(fx, CANARY, ["shop-1", "no-router"]), (e: unknown) => code("TARGET_DRIVER_UNAVAILABLE")(e) && /no-router/.test((e as Error).message) && !/shop-1/.test((e as Error).message));
      await assert.rejects(fx.deployments.maintenance({ environment: "dev", on: true, targets: ["plain-1"] }, "alice"), code("TARGET_NOT_ROUTED"));
      const { rollout } = await create(fx, "blue-green");
      assert.deepEqual(steps(rollout), ["wave:running", "wave:pending"]);
    });

    it("blue-green: the start state (routed slots) is carried into the switch; the release counts only after it", async (t) => {
      const fx = await fixture(b, t);
      // The first deploy (all at once) left the blue slot serving: the rollout starts in green.
      assert.deepEqual(fx.router.weights, { blue: 100, green: 0 });
      const { rollout } = await create(fx, "blue-green");
      const engine = fx.engine();
      const start = await fx.agents();
      assert.deepEqual(ops(start), ["compose:deploy:prepare>start>health"]);
      assert.equal(start[0]!.v, 2);
      assert.deepEqual(start[0]!.images.map((i) => i.component).sort(), ["web", "worker"]);
      await fx.settle(engine);
      assert.equal(await deployed(fx), "shop@1");
      const sw = await fx.agents();
      assert.deepEqual(ops(sw), ["compose:deploy:switch>retire"]);
      assert.deepEqual((sw[0]!.state?.["routed"] as Record<string, { slot: { idle: string } }>)["web"]!.slot.idle, "green");
      await fx.settle(engine);
      assert.equal((await fx.rollouts.get(rollout.id)).state, "succeeded");
      assert.equal(await deployed(fx), "shop@2");
      assert.deepEqual(fx.router.weights, { blue: 0, green: 100 });
    });

    it("canary passes on the summed counters and switches; a failing canary is rolled back with weight 0 first, then restore", async (t) => {
      const fx = await fixture(b, t);
      const { rollout } = await create(fx, CANARY);
      const engine = fx.engine();
      for (let i = 0; i < 3; i++) {
        const sent = await fx.agents();
        if (i === 1) assert.deepEqual(ops(sent), ['compose:route:{"newWeight":20,"op":"weights"}']);
        await fx.settle(engine);
      }
      fx.traffic(1000);
      fx.clock.t += 31_000;
      await fx.settle(engine);
      assert.deepEqual(ops(await fx.agents()), ['compose:route:{"op":"measure"}']);
      await fx.settle(engine);
      let r = await fx.rollouts.get(rollout.id);
      assert.equal((r.steps.find((s) => s.kind === "analysis")!.result["analysis"] as { verdict: string }).verdict, "pass");
      assert.deepEqual(ops(await fx.agents()), ["compose:deploy:switch>retire"]);
      await fx.settle(engine);
      r = await fx.rollouts.get(rollout.id);
      assert.equal(r.state, "succeeded");

      // Back to 1 with blue-green, then a canary of 2 whose new slot answers 5xx.
      await fx.rollouts.create({ release: "shop@1", environment: "dev", strategy: parseStrategy("blue-green") }, "alice");
      for (let i = 0; i < 2; i++) {
        await fx.agents();
        await fx.settle(engine);
      }
      assert.equal(await deployed(fx), "shop@1");
      const failing = await create(fx, CANARY);
      for (let i = 0; i < 3; i++) {
        await fx.agents();
        await fx.settle(engine);
      }
      fx.traffic(1000, 60);
      fx.clock.t += 31_000;
      await fx.settle(engine);
      await fx.agents();
      await fx.settle(engine);
      r = await fx.rollouts.get(failing.rollout.id);
      assert.equal(r.reason?.["code"], "ROLLOUT_ANALYSIS_FAILED");
      assert.deepEqual(ops(await fx.agents()), ['compose:route:{"newWeight":0,"op":"weights"}']);
      await fx.settle(engine);
      const restore = await fx.agents();
      assert.deepEqual(ops(restore), ["compose:rollback:restore"]);
      assert.ok((restore[0]!.state?.["routed"] as Record<string, unknown>)["web"], "restore carries the start step's state");
      await fx.settle(engine);
      r = await fx.rollouts.get(failing.rollout.id);
      assert.equal(r.state, "rolled_back");
      assert.equal(await deployed(fx), "shop@1");
      assert.equal(fx.router.weights[fx.router.weights.blue >= fx.router.weights.green ? "blue" : "green"], 100);
    });
  });
}
