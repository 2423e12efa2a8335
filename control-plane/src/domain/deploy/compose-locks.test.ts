// Lock files stored with the deployment, on both store backends: the control plane derives a compose task's lock when
// it queues the task, exactly as the agent's driver will from the signed payload; a rollback's lock is the earlier
// deployment's byte for byte; a success reporting another lock (or none) is recorded as COMPOSE_LOCK_MISMATCH and not
// as deployed; other kinds have no lock.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { composeKind, composeLock, type TaskPayload } from "@ferry/contract";
import { TaskSigningKeyring } from "@ferry/pki";
import { testBackends, type TestBackend } from "../../adapters/store/test-backends.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { Store } from "../../ports/store.js";
import { CatalogService } from "../catalog/catalog-service.js";
import { FerryError } from "../errors.js";
import { lockFor } from "./compose-locks.js";
import { DeploymentService, type DeploymentView } from "./deployment-service.js";
import { TaskQueue } from "./task-queue.js";

const T0 = Date.UTC(2030, 0, 1);
let keyring: TaskSigningKeyring;
const dir = mkdtempSync(join(tmpdir(), "ferry-locks-"));
before(async () => {
  keyring = await TaskSigningKeyring.loadOrCreate(join(dir, "task-signing"), { now: T0 - 1000 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (s: string) => createHash("sha256").update(s).digest("hex");
const sha = (s: string) => `sha256:${hex(s)}`;
const registry: ImageRegistry = {
  resolve: (reference) =>
    Promise.resolve({ repository: reference.replace(/:[^:/@]+$/, ""), digest: sha(reference), mediaType: "application/vnd.oci.image.manifest.v1+json", sourceTag: reference.split(":").pop() ?? null, platforms: [] }),
};
const SERVICES = { web: "shop-web", worker: "shop-worker", sidecar: "shop-sidecar" };
const code = (c: string) => (e: unknown) => e instanceof FerryError && e.code === c;

interface Fx {
  store: Store;
  deployments: DeploymentService;
  queue: TaskQueue;
  catalog: CatalogService;
  /** Claims, accepts and reports the deployment's tasks succeeded with the given details (default: the lock the agent derives). */
  succeed(dep: DeploymentView, details?: (payload: TaskPayload) => Record<string, unknown>): Promise<DeploymentView>;
}

/** What the agent's compose driver derives from the signed payload: composeLock over imagesFor the payload's images. */
function agentLock(payload: TaskPayload): string {
  const config = composeKind.typed(payload.target.config);
  return composeLock(config, composeKind.imagesFor(config, payload.images)).text;
}

async function fixture(b: TestBackend, t: TestContext): Promise<Fx> {
  const store = await b.open(t);
  const clock = { now: () => T0 };
  const catalog = new CatalogService({ store, registry, credentials: { get: async () => null }, clock });
  const deployments = new DeploymentService({ store, catalog, signer: keyring, clock, taskTtlMs: 3_600_000 });
  const queue = new TaskQueue({ store, clock, timings: { ackTimeoutMs: 30_000, runningLeaseMs: 60_000 } });
  await catalog.createEnvironment({ name: "dev" }, "alice");
  for (const c of Object.values(SERVICES)) await catalog.createComponent({ name: c, repository: `127.0.0.1:5000/shop/${c}` }, "alice");
  await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_1', 'agt_1', 'dev', 'online', $1)", [JSON.stringify({ drivers: ["compose", "docker"] })]);
  await catalog.createTarget({ environment: "dev", name: "shop", kind: "compose", agentId: "agt_1", config: { project: "shop", directory: "/srv/shop", services: SERVICES } }, "alice");
  const succeed: Fx["succeed"] = async (dep, details = (p) => ({ lockSha256: sha(agentLock(p)), lock: agentLock(p) })) => {
    const claimed = await queue.claim("agt_1");
    for (const task of dep.tasks) {
      const offer = claimed.find((c) => c.id === task.id);
      assert.ok(offer, `task ${task.id} offered`);
      const payload = JSON.parse(Buffer.from(offer.payload).toString("utf8")) as TaskPayload;
      await queue.ack("agt_1", { taskId: task.id, accepted: true, code: "", message: "" });
      await queue.result("agt_1", { taskId: task.id, outcome: "succeeded", code: "", message: "done", details: details(payload), sticker: null, startedAt: T0, finishedAt: T0, logBytes: 0, attempt: 1 });
    }
    return deployments.get(dep.id);
  };
  return { store, deployments, queue, catalog, succeed };
}

const release = (fx: Fx, version: string, web: string) =>
  fx.catalog.createRelease({ name: "shop", version, components: { "shop-web": `:${web}`, "shop-worker": ":1", "shop-sidecar": ":1" } }, "alice");

describe("lockFor", () => {
  it("derives a compose lock and none for other kinds", () => {
    const images = [{ component: "web", repository: "r/web", digest: `sha256:${"a".repeat(64)}`, ref: `r/web@sha256:${"a".repeat(64)}` }];
    const lock = lockFor({ kind: "compose", config: { project: "p", directory: "/srv/p" } }, images);
    assert.ok(lock);
    assert.equal(lock.fileName, "ferry.lock.json");
    assert.equal(lock.sha256, sha(lock.text));
    assert.match(lock.text, /"image": "r\/web@sha256:a{64}"/);
    assert.equal(lockFor({ kind: "docker", config: { container: "web" } }, images), undefined);
  });
  it("refuses a mapped component without a pin with RELEASE_COMPONENT_MISSING", () => {
    assert.throws(() => lockFor({ kind: "compose", config: { project: "p", directory: "/srv/p", services: { web: "api" } } }, []), code("RELEASE_COMPONENT_MISSING"));
  });
});

for (const b of testBackends()) {
  describe(`compose locks on ${b.name}`, () => {
    it("stores the lock the agent derives from the signed payload, and a rollback's lock is the earlier one byte for byte", async (t) => {
      const fx = await fixture(b, t);
      await release(fx, "1", "1");
      await release(fx, "2", "2");
      const d1 = await fx.succeed(await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "alice"));
      assert.equal(d1.state, "succeeded");
      const task1 = d1.tasks[0]!;
      const lock1 = await fx.deployments.taskLock(d1.id, task1.id);
      assert.equal(task1.lockSha256, lock1.sha256);
      assert.equal(lock1.sha256, sha(lock1.text));
      assert.equal(lock1.fileName, "ferry.lock.json");
      assert.deepEqual(lock1.target, { id: task1.target.id, name: "shop" });
      // The lock the agent will write: derived from the delivered payload exactly as the driver does.
      const stored = await fx.store.query<{ payload: Uint8Array }>("SELECT payload FROM tasks WHERE id = $1", [task1.id]);
      assert.equal(agentLock(JSON.parse(Buffer.from(stored.rows[0]!.payload).toString("utf8")) as TaskPayload), lock1.text);

      const d2 = await fx.succeed(await fx.deployments.deploy({ release: "shop@2", environment: "dev" }, "alice"));
      const lock2 = await fx.deployments.taskLock(d2.id, d2.tasks[0]!.id);
      assert.notEqual(lock2.sha256, lock1.sha256);

      const rb = await fx.succeed(await fx.deployments.rollback({ environment: "dev" }, "alice"));
      assert.equal(rb.action, "rollback");
      assert.equal(rb.state, "succeeded");
      const lockBack = await fx.deployments.taskLock(rb.id, rb.tasks[0]!.id);
      assert.equal(lockBack.text, lock1.text);
      assert.equal(lockBack.sha256, lock1.sha256);
      assert.equal(rb.tasks[0]!.lockSha256, lock1.sha256);
    });

    it("records a success with another lock, or none, as COMPOSE_LOCK_MISMATCH and not as deployed", async (t) => {
      const fx = await fixture(b, t);
      await release(fx, "1", "1");
      const other = `sha256:${"0".repeat(63)}1`;
      const d1 = await fx.succeed(await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "alice"), () => ({ lockSha256: other }));
      const t1 = d1.tasks[0]!;
      assert.equal(d1.state, "failed");
      assert.equal(t1.state, "errored");
      assert.equal(t1.code, "COMPOSE_LOCK_MISMATCH");
      assert.match(t1.message ?? "", new RegExp(other));
      assert.equal(t1.details?.["expectedLockSha256"], t1.lockSha256);
      assert.equal(t1.details?.["reportedLockSha256"], other);

      const d2 = await fx.succeed(await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "alice"), () => ({}));
      assert.equal(d2.tasks[0]!.code, "COMPOSE_LOCK_MISMATCH");
      assert.equal(d2.tasks[0]!.details?.["reportedLockSha256"], null);
      const recorded = await fx.store.query<{ n: string | number }>("SELECT count(*) AS n FROM target_deployments");
      assert.equal(Number(recorded.rows[0]!.n), 0, "no mismatched task counts as deployed");
      await assert.rejects(fx.deployments.rollback({ environment: "dev" }, "alice"), code("NOTHING_TO_ROLL_BACK"));

      const d3 = await fx.succeed(await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "alice"));
      assert.equal(d3.state, "succeeded");
    });

    it("keeps no lock for other kinds, and answers LOCK_NOT_FOUND and TASK_NOT_FOUND", async (t) => {
      const fx = await fixture(b, t);
      await fx.catalog.createTarget({ environment: "dev", name: "solo", kind: "docker", agentId: "agt_1", config: { container: "solo", component: "shop-web" } }, "alice");
      await release(fx, "1", "1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["solo"] }, "alice");
      const task = dep.tasks[0]!;
      assert.equal(task.lockSha256, null);
      await assert.rejects(fx.deployments.taskLock(dep.id, task.id), code("LOCK_NOT_FOUND"));
      await assert.rejects(fx.deployments.taskLock(dep.id, "tsk_nope"), code("TASK_NOT_FOUND"));
      const done = await fx.succeed(dep, () => ({}));
      assert.equal(done.tasks[0]!.state, "succeeded", "a task without a lock is not checked");
    });
  });
}
