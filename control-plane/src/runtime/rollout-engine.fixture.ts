// The estate the rollout engine's tests run on: environment dev with four docker targets web-1..web-4 (one agent
// each), component web, releases shop@1 (deployed everywhere, all at once: what a rollback goes back to) and shop@2,
// a fake registry (digest = sha256 of the reference), a fake clock, real signing and evidence keys, and a scripted
// agent stand-in that claims, accepts and finishes tasks through the task queue exactly as the gRPC service does.
// "Restarts" build a new engine (or promotion service) on the same store: everything must be in the rows.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { EvidenceKey, TaskSigningKeyring } from "@ferry/pki";
import type { TestBackend } from "../adapters/store/test-backends.js";
import { CatalogService } from "../domain/catalog/catalog-service.js";
import { digestOf, fakeRegistry, T0 } from "../domain/deploy/deploy.fixture.js";
import { DeploymentService } from "../domain/deploy/deployment-service.js";
import { TaskQueue } from "../domain/deploy/task-queue.js";
import { EvidenceStore } from "../domain/promotion/evidence-store.js";
import { createGateEngine } from "../domain/promotion/gate-engine.js";
import { PromotionService } from "../domain/promotion/promotion-service.js";
import { RolloutService } from "../domain/rollout/rollout-service.js";
import { RolloutStepper } from "../domain/rollout/rollout-stepper.js";
import type { TaskImage } from "../ports/signer.js";
import type { Store } from "../ports/store.js";
import { RolloutEngine } from "./rollout-engine.js";

export { digestOf, fakeRegistry, T0 };
export const TASK_TTL = 3_600_000;

export const v1 = digestOf("127.0.0.1:5000/team/web:1");
export const v2 = digestOf("127.0.0.1:5000/team/web:2");
export const FAIL = { outcome: "failed", code: "HEALTH_CHECK_FAILED" };

/** Keys shared by every test of a file: load once (before), remove after. */
export interface Keys {
  keyring: TaskSigningKeyring;
  evidenceKey: EvidenceKey;
  remove(): void;
}

export async function loadKeys(): Promise<Keys> {
  const dir = mkdtempSync(join(tmpdir(), "ferry-rollout-"));
  return {
    keyring: await TaskSigningKeyring.loadOrCreate(join(dir, "task-signing"), { now: T0 - 1000 }),
    evidenceKey: await EvidenceKey.loadOrCreate(join(dir, "evidence")),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface RolloutFx {
  store: Store;
  clock: { t: number };
  catalog: CatalogService;
  deployments: DeploymentService;
  queue: TaskQueue;
  evidence: EvidenceStore;
  rollouts: RolloutService;
  /** Webhook-style events of the engine and of promotions, in order. */
  events: { type: string; data: Record<string, unknown> }[];
  /** A new engine instance (a restarted control plane, or another replica). */
  engine(replica?: string): RolloutEngine;
  /** A new promotion service on the same store, deploying through the rollout service (a restarted control plane). */
  promotions(): PromotionService;
  /** The agent stand-in: claims, accepts and finishes every queued task; outcome per target name (default succeeded). */
  agents(outcomes?: Record<string, { outcome: string; code: string }>): Promise<{ target: string; action: string; images: TaskImage[] }[]>;
  /** Ticks `engine` until it makes no transition. */
  settle(engine: RolloutEngine): Promise<void>;
  /** Each target's newest recorded digest, by target name. */
  current(): Promise<Record<string, string>>;
}

export async function rolloutFixture(b: TestBackend, t: TestContext, keys: Keys): Promise<RolloutFx> {
  const store = await b.open(t);
  const clock = { t: T0 };
  const now = () => clock.t;
  const gates = createGateEngine();
  const catalog = new CatalogService({ store, registry: fakeRegistry, credentials: { get: async () => null }, clock: { now }, checkSettings: (x) => gates.check(x) });
  const deployments = new DeploymentService({ store, catalog, signer: keys.keyring, clock: { now }, taskTtlMs: TASK_TTL });
  const queue = new TaskQueue({ store, clock: { now }, timings: { ackTimeoutMs: 30_000, runningLeaseMs: 60_000 } });
  const rollouts = new RolloutService({ store, catalog, deployments, clock: { now } });
  const events: RolloutFx["events"] = [];
  const emit = { emit: (type: string, data: Record<string, unknown>) => void events.push({ type, data }) };
  const evidence = new EvidenceStore({ store, key: keys.evidenceKey, clock: { now } });
  const stepper = new RolloutStepper({ store, deployments, clock: { now }, evidence, events: emit });
  await catalog.createEnvironment({ name: "dev" }, "alice");
  await catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "alice");
  for (let i = 1; i <= 4; i++) {
    await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, 'dev', 'online', $2)", [`agt_${i}`, JSON.stringify({ drivers: ["docker"] })]);
    await catalog.createTarget({ environment: "dev", name: `web-${i}`, kind: "docker", agentId: `agt_${i}`, config: { container: `web-${i}` } }, "alice");
  }
  await catalog.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "alice");
  await catalog.createRelease({ name: "shop", version: "2", components: { web: ":2" } }, "alice");
  const fx: RolloutFx = {
    store,
    clock,
    catalog,
    deployments,
    queue,
    evidence,
    rollouts,
    events,
    engine: (replica = "cp-1") => new RolloutEngine({ store, stepper, clock: { now }, replicaId: replica, leaseMs: 30_000 }),
    promotions: () => new PromotionService({ store, catalog, deployments, rollouts, gates, evidence, events: emit, clock: { now }, ttlMs: 86_400_000 }),
    async agents(outcomes = {}) {
      const queued = await store.query<{ id: string; agent_id: string; name: string; action: string; images: TaskImage[] }>(
        "SELECT t.id, t.agent_id, tg.name, t.action, t.images FROM tasks t JOIN targets tg ON tg.id = t.target_id WHERE t.state = 'queued' ORDER BY tg.name",
      );
      for (const agent of new Set(queued.rows.map((q) => q.agent_id))) await queue.claim(agent);
      for (const q of queued.rows) {
        await queue.ack(q.agent_id, { taskId: q.id, accepted: true, code: "", message: "" });
        const o = outcomes[q.name] ?? { outcome: "succeeded", code: "" };
        await queue.result(q.agent_id, { taskId: q.id, outcome: o.outcome, code: o.code, message: o.code, details: {}, sticker: null, startedAt: clock.t, finishedAt: clock.t, logBytes: 0, attempt: 1 });
      }
      return queued.rows.map((q) => ({ target: q.name, action: q.action, images: q.images }));
    },
    async settle(engine) {
      for (let i = 0; i < 50; i++) if ((await engine.tick()) === 0) return;
      throw new Error("the engine did not settle");
    },
    async current() {
      const r = await store.query<{ name: string; digest: string }>(
        `SELECT tg.name, td.images->0->>'digest' AS digest FROM targets tg
           JOIN LATERAL (SELECT images FROM target_deployments x WHERE x.target_id = tg.id ORDER BY seq DESC LIMIT 1) td ON true ORDER BY tg.name`,
      );
      return Object.fromEntries(r.rows.map((x) => [x.name, x.digest]));
    },
  };
  await deployments.deploy({ release: "shop@1", environment: "dev" }, "alice");
  await fx.agents();
  return fx;
}
