// DeploymentService on both store backends: signed tasks per target, refusals that write nothing, the one-deployment-
// per-target rule under concurrency, rollback, retry, cancel, deployment state, drift and status. Releases come from
// a fake registry (digest = sha256 of the reference), so these tests never reach a network. The agent side of the
// queue is driven through TaskQueue, as the gRPC service does.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { TaskRefusal, TaskSigningKeyring, verifySignedTask } from "@ferry/pki";
import { testBackends, type TestBackend } from "../../adapters/store/test-backends.js";
import type { TaskImage } from "../../ports/signer.js";
import type { Store } from "../../ports/store.js";
import { listAudit } from "../audit/audit-log.js";
import type { ReleaseView } from "../catalog/catalog-service.js";
import { FerryError } from "../errors.js";
import { code, deployFixture, fileKeyring, T0, type DeployFx } from "./deploy.fixture.js";
import { driftOf, imagesForTarget, refreshDeploymentState, type DeploymentView } from "./deployment-service.js";
import { resignUndeliveredTasks } from "./task-resign.js";

const TTL = 3_600_000;
const keys = fileKeyring("ferry-deploy-");

interface Fixture extends DeployFx {
  agent(id: string, environment: string, drivers?: string[]): Promise<void>;
  target(environment: string, name: string, agentId: string | null, component?: string): Promise<string>;
  release(version: string, components?: Record<string, string>): Promise<ReleaseView>;
  /** Claims, accepts and finishes every task of the deployment with the outcome given per target name (default succeeded). */
  finish(dep: DeploymentView, outcomes?: Record<string, string>, sticker?: boolean): Promise<DeploymentView>;
}

async function fixture(b: TestBackend, t: TestContext, store?: Store, signer: TaskSigningKeyring = keys.keyring): Promise<Fixture> {
  const base = await deployFixture(b, t, { signer, taskTtlMs: TTL, ...(store ? { store } : {}) });
  const { catalog, deployments, queue, clock } = base;
  const fx: Fixture = {
    ...base,
    async agent(id, environment, drivers = ["docker"]) {
      await base.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, $2, 'online', $3)", [id, environment, JSON.stringify({ drivers })]);
    },
    async target(environment, name, agentId, component) {
      const tg = await catalog.createTarget({ environment, name, kind: "docker", agentId, config: { container: name, ...(component ? { component } : {}) } }, "alice");
      return tg.id;
    },
    release(version, components = { web: `:${version}`, api: `:${version}` }) {
      return catalog.createRelease({ name: "shop", version, components }, "alice");
    },
    async finish(dep, outcomes = {}, sticker = false) {
      for (const agentId of new Set(dep.tasks.map((x) => x.agentId))) await queue.claim(agentId);
      for (const task of dep.tasks) {
        await queue.ack(task.agentId, { taskId: task.id, accepted: true, code: "", message: "" });
        const outcome = outcomes[task.target.name] ?? "succeeded";
        await queue.result(task.agentId, {
          taskId: task.id,
          outcome,
          code: outcome === "succeeded" ? "" : "DEPLOY_FAILED",
          message: outcome,
          details: {},
          sticker: sticker
            ? { targetId: task.target.id, deploymentId: dep.id, taskId: task.id, observedState: "running", images: task.images.map((i) => ({ component: i.component, repository: i.repository, digest: i.digest, runningDigest: i.digest })) }
            : null,
          startedAt: clock.t,
          finishedAt: clock.t,
          logBytes: 0,
          attempt: 1,
        });
      }
      return deployments.get(dep.id);
    },
  };
  return fx;
}

/** Environment dev with components web and api, agents a1 and a2 (docker), targets web-1 (a1), web-2 (a2), api-1 (a1). */
async function estate(fx: Fixture): Promise<void> {
  await fx.catalog.createEnvironment({ name: "dev" }, "alice");
  await fx.catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "alice");
  await fx.catalog.createComponent({ name: "api", repository: "127.0.0.1:5000/team/api" }, "alice");
  await fx.agent("agt_a1", "dev");
  await fx.agent("agt_a2", "dev");
  await fx.target("dev", "web-1", "agt_a1", "web");
  await fx.target("dev", "web-2", "agt_a2", "web");
  await fx.target("dev", "api-1", "agt_a1", "api");
}

const count = async (store: Store, table: string) => Number((await store.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
const imageRefs = (images: TaskImage[]) => images.map((i) => i.ref);

describe("imagesForTarget", () => {
  const release = {
    name: "shop",
    version: "1",
    pins: [
      { component: "api", repository: "r/api", digest: "sha256:aa", image: "r/api@sha256:aa", sourceTag: "1", mediaType: "", platforms: [] },
      { component: "web", repository: "r/web", digest: "sha256:bb", image: "r/web@sha256:bb", sourceTag: "1", mediaType: "", platforms: [] },
    ],
  };
  it("picks the component the target names, or the only one the release pins", () => {
    assert.deepEqual(imagesForTarget({ name: "w", kind: "docker", config: { component: "web" } }, release), [{ component: "web", repository: "r/web", digest: "sha256:bb", ref: "r/web@sha256:bb" }]);
    assert.deepEqual(imageRefs(imagesForTarget({ name: "w", kind: "docker", config: {} }, { ...release, pins: release.pins.slice(0, 1) })), ["r/api@sha256:aa"]);
  });
  it("refuses a component the release lacks and a target that does not say which of several it runs", () => {
    assert.throws(() => imagesForTarget({ name: "w", kind: "docker", config: { component: "db" } }, release), code("RELEASE_COMPONENT_MISSING"));
    assert.throws(() => imagesForTarget({ name: "w", kind: "docker", config: {} }, release), code("RELEASE_COMPONENT_AMBIGUOUS"));
  });
});

describe("driftOf", () => {
  const deployed = { deploymentId: "dep_1", images: [{ component: "web", repository: "r/web", digest: "sha256:aa", ref: "r/web@sha256:aa" }] };
  const sticker = (over: Record<string, unknown> = {}, image: Record<string, unknown> = {}) => ({
    deploymentId: "dep_1",
    observedState: "running",
    images: [{ component: "web", repository: "r/web", digest: "sha256:aa", runningDigest: "sha256:aa", ...image }],
    ...over,
  });

  it("is in sync when sticker and running workload both carry what Ferry deployed", () => {
    assert.deepEqual(driftOf(deployed, sticker()), { sync: "in-sync", drift: [] });
  });
  it("flags a sticker naming other digests or another deployment", () => {
    const r = driftOf(deployed, sticker({ deploymentId: "dep_0" }, { digest: "sha256:bb" }));
    assert.equal(r.sync, "drift");
    assert.deepEqual(r.drift, ["sticker names deployment dep_0, Ferry last deployed dep_1", "web: sticker says sha256:bb, Ferry deployed sha256:aa"]);
  });
  it("flags a running digest that differs, and a workload that is not running", () => {
    assert.deepEqual(driftOf(deployed, sticker({}, { runningDigest: "sha256:cc" })).drift, ["web: running sha256:cc, Ferry deployed sha256:aa"]);
    assert.deepEqual(driftOf(deployed, sticker({ observedState: "exited" }, { runningDigest: "" })).drift, ["web: not running", "target observed exited"]);
    assert.deepEqual(driftOf(deployed, sticker({}, { component: "api" })).drift, ["sticker has no web"]);
  });
  it("does not judge the running workload when the agent could not observe it", () => {
    assert.deepEqual(driftOf(deployed, sticker({ observedState: "unknown" }, { runningDigest: "" })), { sync: "in-sync", drift: [] });
    assert.deepEqual(driftOf(deployed, sticker({ observedState: "" }, { runningDigest: "sha256:cc" })), { sync: "in-sync", drift: [] });
    // The sticker itself is still compared.
    assert.equal(driftOf(deployed, sticker({ observedState: "unknown" }, { digest: "sha256:bb" })).sync, "drift");
  });
  it("says not-reported and never-deployed when one side is missing", () => {
    assert.deepEqual(driftOf(deployed, null), { sync: "not-reported", drift: [] });
    assert.deepEqual(driftOf(null, null), { sync: "never-deployed", drift: [] });
    assert.deepEqual(driftOf(null, { images: [] }), { sync: "never-deployed", drift: [] });
    assert.equal(driftOf(null, sticker()).sync, "drift");
  });
});

for (const b of testBackends()) {
  describe(`DeploymentService on ${b.name}`, () => {
    it("deploys one signed task per target, bound to its agent, target, images and not-after", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      const rel = await fx.release("1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "bob");
      assert.equal(dep.state, "queued");
      assert.equal(dep.action, "deploy");
      assert.equal(dep.requestedBy, "bob");
      assert.deepEqual(dep.release, { id: rel.id, name: "shop", version: "1" });
      assert.deepEqual(dep.tasks.map((x) => [x.target.name, x.agentId, x.state, x.attempt]), [
        ["api-1", "agt_a1", "queued", 0],
        ["web-1", "agt_a1", "queued", 0],
        ["web-2", "agt_a2", "queued", 0],
      ]);
      const pin = (c: string) => rel.pins.find((p) => p.component === c)!;
      const rows = await fx.store.query<{ id: string; payload: Uint8Array; payload_type: string; key_id: string; signature: Uint8Array }>(
        "SELECT id, payload, payload_type, key_id, signature FROM tasks",
      );
      const nonces = new Set<string>();
      for (const task of dep.tasks) {
        const row = rows.rows.find((r) => r.id === task.id)!;
        const env = { payload: new Uint8Array(row.payload), payloadType: row.payload_type, keyId: row.key_id, signature: new Uint8Array(row.signature) };
        assert.equal(env.keyId, keys.keyring.active.keyId);
        const p = verifySignedTask(env, { trustedKeys: keys.keyring.publicKeys(T0), agentId: task.agentId, now: T0 });
        assert.equal(p.taskId, task.id);
        assert.equal(p.deploymentId, dep.id);
        assert.equal(p.agentId, task.agentId);
        assert.equal(p.action, "deploy");
        assert.equal(p.issuedAt, T0);
        assert.equal(p.notAfter, T0 + TTL);
        assert.equal(task.notAfter, new Date(T0 + TTL).toISOString());
        assert.deepEqual(p.target, { id: task.target.id, name: task.target.name, kind: "docker", config: { container: task.target.name, component: task.target.name.split("-")[0] } });
        assert.deepEqual(p.release, { id: rel.id, name: "shop", version: "1" });
        const want = pin(task.target.name.split("-")[0]!);
        assert.deepEqual(p.images, [{ component: want.component, repository: want.repository, digest: want.digest, ref: `${want.repository}@${want.digest}` }]);
        assert.deepEqual(task.images, p.images);
        nonces.add(p.nonce);
        // Addressed to one agent only, and only until its not-after.
        const other = task.agentId === "agt_a1" ? "agt_a2" : "agt_a1";
        assert.throws(() => verifySignedTask(env, { trustedKeys: keys.keyring.publicKeys(T0), agentId: other, now: T0 }), (e: unknown) => e instanceof TaskRefusal && e.code === "TASK_WRONG_AUDIENCE");
        assert.throws(() => verifySignedTask(env, { trustedKeys: keys.keyring.publicKeys(T0), agentId: task.agentId, now: T0 + TTL + 60_000 }), (e: unknown) => e instanceof TaskRefusal && e.code === "TASK_EXPIRED");
      }
      assert.equal(nonces.size, 3);
      const audit = (await listAudit(fx.store)).filter((r) => r.action.startsWith("deployment."));
      assert.deepEqual(audit.map((r) => [r.action, r.object, r.actor]), [["deployment.create", dep.id, "bob"]]);

      // Named targets only; by release id as well as name@version.
      await fx.finish(dep);
      const some = await fx.deployments.deploy({ release: rel.id, environment: "dev", targets: ["web-2", "web-2"] }, "bob");
      assert.deepEqual(some.tasks.map((x) => x.target.name), ["web-2"]);
    });

    it("signs each task in the highest payload version its agent reads: v2 with the all-at-once phases, or v1", async (t) => {
      const fx = await fixture(b, t);
      await fx.catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/shop/web" }, "alice");
      await fx.catalog.createEnvironment({ name: "mixed" }, "alice");
      await fx.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_new', 'new', 'mixed', 'online', $1)", [
        JSON.stringify({ drivers: ["docker"], driverFacts: [{ kind: "docker", capabilities: [], detail: "" }], taskPayloadVersions: [1, 2] }),
      ]);
      await fx.agent("agt_old", "mixed");
      await fx.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_future', 'future', 'mixed', 'online', $1)", [JSON.stringify({ drivers: ["docker"], taskPayloadVersions: [7] })]);
      await fx.target("mixed", "on-new", "agt_new", "web");
      await fx.target("mixed", "on-old", "agt_old", "web");
      await fx.target("mixed", "on-future", "agt_future", "web");
      await fx.release("1", { web: ":1" });
      // An agent that reads no version this control plane writes is named, like a missing driver.
      await assert.rejects(fx.deployments.deploy({ release: "shop@1", environment: "mixed" }, "bob"), (e: unknown) => {
        code("TARGET_DRIVER_UNAVAILABLE")(e);
        assert.match((e as FerryError).message, /target on-future \(docker\): agent agt_future reads task payload versions 7/);
        return true;
      });
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "mixed", targets: ["on-new", "on-old"] }, "bob");
      const rows = await fx.store.query<{ id: string; payload: Uint8Array; payload_type: string; key_id: string; signature: Uint8Array; agent_id: string }>("SELECT id, payload, payload_type, key_id, signature, agent_id FROM tasks");
      const byAgent = Object.fromEntries(
        rows.rows.map((r) => [r.agent_id, verifySignedTask({ payload: new Uint8Array(r.payload), payloadType: r.payload_type, keyId: r.key_id, signature: new Uint8Array(r.signature) }, { trustedKeys: keys.keyring.publicKeys(T0), agentId: r.agent_id, now: T0 })]),
      );
      assert.equal(dep.tasks.length, 2);
      assert.equal(byAgent["agt_new"]!.v, 2);
      assert.deepEqual(byAgent["agt_new"]!.phases, ["prepare", "start", "health", "switch", "retire"]);
      assert.equal(byAgent["agt_old"]!.v, 1);
      assert.equal(byAgent["agt_old"]!.phases, undefined);
      assert.deepEqual(rows.rows.map((r) => r.payload_type).sort(), ["application/vnd.ferry.task.v1+json", "application/vnd.ferry.task.v2+json"]);
    });

    it("emergency key retirement: undelivered tasks are re-signed with the new key (same bytes), running ones left alone", async (t) => {
      const ring = await TaskSigningKeyring.loadOrCreate(join(keys.dir, `emergency-${b.name}`), { now: T0 - 1000 });
      const fx = await fixture(b, t, undefined, ring);
      await estate(fx);
      await fx.release("1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "bob");
      // agt_a1's two tasks are offered (leased); it accepts one (running). agt_a2's task is still queued.
      const claimed = await fx.queue.claim("agt_a1");
      assert.equal(claimed.length, 2);
      await fx.queue.ack("agt_a1", { taskId: claimed[0]!.id, accepted: true, code: "", message: "" });
      const read = async () => (await fx.store.query<{ id: string; state: string; payload: Uint8Array; payload_type: string; key_id: string; signature: Uint8Array }>(
        "SELECT id, state, payload, payload_type, key_id, signature FROM tasks ORDER BY id",
      )).rows;
      const beforeRows = await read();
      const old = ring.active.keyId;
      await ring.rotate({ overlapMs: 0, now: T0 });
      const outcome = await fx.store.transaction((tx) => resignUndeliveredTasks(tx, ring, old));
      assert.deepEqual(outcome, { resigned: 2, running: 1 });
      const later = T0 + 31_000; // past the old key's retirement plus the clock-skew leeway
      for (const row of await read()) {
        const was = beforeRows.find((r) => r.id === row.id)!;
        assert.deepEqual(Buffer.from(row.payload), Buffer.from(was.payload), "the signed bytes are unchanged");
        const env = { payload: new Uint8Array(row.payload), payloadType: row.payload_type, keyId: row.key_id, signature: new Uint8Array(row.signature) };
        const task = dep.tasks.find((x) => x.id === row.id)!;
        if (row.state === "running") {
          assert.equal(row.key_id, old);
          assert.throws(() => verifySignedTask(env, { trustedKeys: ring.publicKeys(later), agentId: task.agentId, now: later }), (e: unknown) => e instanceof TaskRefusal && e.code === "TASK_UNKNOWN_KEY");
        } else {
          assert.equal(row.key_id, ring.active.keyId);
          assert.equal(verifySignedTask(env, { trustedKeys: ring.publicKeys(later), agentId: task.agentId, now: later }).taskId, row.id);
        }
      }
    });

    it("refuses unknown names, unserved targets and unresolvable components, writing nothing", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.release("solo", { web: ":solo" });
      await fx.catalog.createEnvironment({ name: "empty" }, "alice");
      await fx.catalog.createEnvironment({ name: "qa" }, "alice");
      await fx.agent("agt_q1", "qa", ["compose"]);
      await fx.agent("agt_q2", "qa", ["docker"]);
      await fx.agent("agt_q3", "qa", ["docker"]);
      await fx.target("qa", "no-agent", null, "web");
      await fx.target("qa", "no-driver", "agt_q1", "web");
      await fx.target("qa", "unnamed", "agt_q2");
      await fx.target("qa", "wants-db", "agt_q2", "db");
      await fx.target("qa", "fine", "agt_q2", "web");
      await fx.target("qa", "revoked", "agt_q3", "web");
      await fx.store.query("UPDATE agents SET revoked_at = now(), status = 'revoked' WHERE id = 'agt_q3'");
      const d = fx.deployments;
      const to = (targets: string[], release = "shop@1") => d.deploy({ release, environment: "qa", targets }, "bob");

      await assert.rejects(d.deploy({ release: "shop@9", environment: "dev" }, "bob"), code("RELEASE_NOT_FOUND"));
      await assert.rejects(d.deploy({ release: "shop@1", environment: "nowhere" }, "bob"), code("ENVIRONMENT_NOT_FOUND"));
      await assert.rejects(d.deploy({ release: "shop@1", environment: "empty" }, "bob"), code("NO_TARGETS"));
      await assert.rejects(to(["fine", "nope"]), code("TARGET_NOT_FOUND"));
      await assert.rejects(to(["fine", "no-agent"]), code("TARGET_HAS_NO_AGENT"));
      await assert.rejects(to(["fine", "revoked"]), code("TARGET_AGENT_MISMATCH"));
      await assert.rejects(to(["fine", "no-driver"]), (e: unknown) => {
        code("TARGET_DRIVER_UNAVAILABLE")(e);
        assert.deepEqual((e as FerryError).details, { targets: [{ target: "no-driver", kind: "docker", agent: "agt_q1", problem: "agent agt_q1 has no docker driver (it has: compose)" }] });
        assert.match((e as FerryError).message, /target no-driver \(docker\): agent agt_q1 has no docker driver \(it has: compose\); the other 1 target\(s\) can be deployed with --target/);
        return true;
      });
      await assert.rejects(to(["fine", "unnamed"]), code("RELEASE_COMPONENT_AMBIGUOUS"));
      await assert.rejects(to(["fine", "wants-db"]), code("RELEASE_COMPONENT_MISSING"));
      await assert.rejects(to(["wants-db"], "shop@solo"), code("RELEASE_COMPONENT_MISSING"));
      // The whole environment fails on its first bad target; none of the good ones was queued either.
      await assert.rejects(d.deploy({ release: "shop@1", environment: "qa" }, "bob"), (e: unknown) => e instanceof FerryError);

      assert.equal(await count(fx.store, "deployments"), 0);
      assert.equal(await count(fx.store, "tasks"), 0);
      assert.deepEqual((await listAudit(fx.store)).filter((r) => r.action.startsWith("deployment.")), []);

      // With the release pinning one component, a target that names none runs that one.
      const ok = await to(["unnamed", "fine"], "shop@solo");
      assert.deepEqual(ok.tasks.map((x) => x.target.name), ["fine", "unnamed"]);
    });

    it("refuses a deployment to a target with an unfinished task, whatever its state, until it finishes", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      await fx.release("2");
      const first = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1"] }, "bob");
      const busy = async () => {
        await assert.rejects(fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-2", "web-1"] }, "bob"), (e: unknown) => {
          code("DEPLOYMENT_IN_PROGRESS")(e);
          assert.deepEqual((e as FerryError).details, { targets: ["web-1"] });
          assert.match((e as FerryError).message, new RegExp(first.id));
          return true;
        });
      };
      await busy(); // queued
      await fx.queue.claim("agt_a1");
      await busy(); // leased
      await fx.queue.ack("agt_a1", { taskId: first.tasks[0]!.id, accepted: true, code: "", message: "" });
      await busy(); // running
      assert.equal(await count(fx.store, "deployments"), 1);
      // Other targets are free meanwhile.
      const other = await fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-2"] }, "bob");
      assert.equal(other.tasks.length, 1);
      await fx.queue.result("agt_a1", { taskId: first.tasks[0]!.id, outcome: "failed", code: "X", message: "", details: {}, sticker: null, startedAt: 0, finishedAt: 0, logBytes: 0, attempt: 1 });
      const again = await fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-1"] }, "bob");
      assert.equal(again.tasks[0]!.target.name, "web-1");
    });

    it("lets exactly one of several concurrent deployments to the same target through", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      // On PostgreSQL the second half come through another pool, as from another replica.
      const replica = b.kind === "postgres" ? await fixture(b, t, await b.open(t, { shareWith: fx.store })) : fx;
      const attempts = Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? replica : fx).deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1"] }, `user-${i}`),
      );
      const settled = await Promise.allSettled(attempts);
      const won = settled.filter((s) => s.status === "fulfilled");
      assert.equal(won.length, 1);
      for (const s of settled) if (s.status === "rejected") code("DEPLOYMENT_IN_PROGRESS")(s.reason);
      assert.equal(await count(fx.store, "deployments"), 1);
      assert.equal(await count(fx.store, "tasks"), 1);

      // Overlapping target sets lock in one order, so they serialise instead of deadlocking.
      await fx.finish((won[0] as PromiseFulfilledResult<DeploymentView>).value);
      const overlapping = await Promise.allSettled([
        fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1", "web-2"] }, "x"),
        replica.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-2", "api-1"] }, "y"),
        fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["api-1", "web-1"] }, "z"),
      ]);
      assert.equal(overlapping.filter((s) => s.status === "fulfilled").length, 1);
      for (const s of overlapping) if (s.status === "rejected") code("DEPLOYMENT_IN_PROGRESS")(s.reason);
      const active = await fx.store.query<{ target_id: string }>("SELECT target_id FROM tasks WHERE state = 'queued'");
      assert.equal(active.rowCount, 2);
      assert.equal(new Set(active.rows.map((r) => r.target_id)).size, 2);
    });

    it("rolls each target back to the images of its previous successful deployment, and toggles on repeat", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      const v1 = await fx.release("1");
      const v2 = await fx.release("2");
      const webOf = (r: ReleaseView) => [`127.0.0.1:5000/team/web@${r.pins.find((p) => p.component === "web")!.digest}`];
      await assert.rejects(fx.deployments.rollback({ environment: "dev" }, "bob"), code("NOTHING_TO_ROLL_BACK"));

      await fx.finish(await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1", "web-2"] }, "bob"));
      await assert.rejects(fx.deployments.rollback({ environment: "dev" }, "bob"), code("NOTHING_TO_ROLL_BACK"));
      await fx.finish(await fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-1", "web-2"] }, "bob"));
      // A failed deployment is not what runs there: rollback looks only at successes.
      fx.clock.t++;
      const failed = await fx.finish(await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-2"] }, "bob"), { "web-2": "failed" });
      assert.equal(failed.state, "failed");

      // api-1 never had a deployment: left out of an environment-wide rollback, refused when named.
      await assert.rejects(fx.deployments.rollback({ environment: "dev", targets: ["web-1", "api-1"] }, "bob"), (e: unknown) => {
        code("NOTHING_TO_ROLL_BACK")(e);
        assert.deepEqual((e as FerryError).details, { targets: ["api-1"] });
        return true;
      });
      const back = await fx.deployments.rollback({ environment: "dev" }, "carol");
      assert.equal(back.action, "rollback");
      assert.equal(back.releaseId, v1.id);
      assert.deepEqual(back.tasks.map((x) => [x.target.name, x.action, x.releaseId, imageRefs(x.images)]), [
        ["web-1", "rollback", v1.id, webOf(v1)],
        ["web-2", "rollback", v1.id, webOf(v1)],
      ]);
      await assert.rejects(fx.deployments.rollback({ environment: "dev" }, "carol"), code("DEPLOYMENT_IN_PROGRESS"));
      await fx.finish(back);
      const forth = await fx.deployments.rollback({ environment: "dev", targets: ["web-1"] }, "carol");
      assert.deepEqual(forth.tasks.map((x) => [x.target.name, x.releaseId, imageRefs(x.images)]), [["web-1", v2.id, webOf(v2)]]);
      await fx.finish(forth);

      // Targets now on different releases: one rollback deployment, each task naming its own release.
      const mixed = await fx.deployments.rollback({ environment: "dev" }, "carol");
      assert.equal(mixed.releaseId, null);
      assert.equal(mixed.release, null);
      assert.deepEqual(mixed.tasks.map((x) => [x.target.name, x.releaseId]), [["web-1", v1.id], ["web-2", v2.id]]);
      const audit = (await listAudit(fx.store)).filter((r) => r.action === "deployment.rollback");
      assert.equal(audit.length, 3);
    });

    it("rolls back past a redeployment of the same images to the release before", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      const v1 = await fx.release("1");
      const v2 = await fx.release("2");
      await fx.finish(await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1"] }, "bob"));
      await fx.finish(await fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-1"] }, "bob"));
      // Deployed again, e.g. to repair drift: the target still runs v2, and what came before it is v1.
      await fx.finish(await fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-1"] }, "bob"));
      const back = await fx.deployments.rollback({ environment: "dev" }, "bob");
      assert.deepEqual(back.tasks.map((x) => x.releaseId), [v1.id]);
      await fx.finish(back);
      const forth = await fx.deployments.rollback({ environment: "dev" }, "bob");
      assert.deepEqual(forth.tasks.map((x) => x.releaseId), [v2.id]);
      await fx.finish(forth);
      // Only ever one release on a target: nothing to roll back to.
      await fx.finish(await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-2"] }, "bob"));
      await fx.finish(await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-2"] }, "bob"));
      await assert.rejects(fx.deployments.rollback({ environment: "dev", targets: ["web-2"] }, "bob"), code("NOTHING_TO_ROLL_BACK"));
    });

    it("retries a finished deployment on the targets that did not succeed, as a new deployment", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "bob");
      await assert.rejects(fx.deployments.retry(dep.id, "bob"), code("DEPLOYMENT_IN_PROGRESS"));
      const done = await fx.finish(dep, { "api-1": "failed", "web-2": "errored" });
      assert.equal(done.state, "failed");
      const retry = await fx.deployments.retry(dep.id, "carol");
      assert.notEqual(retry.id, dep.id);
      assert.equal(retry.retryOf, dep.id);
      assert.equal(retry.releaseId, dep.releaseId);
      assert.equal(retry.requestedBy, "carol");
      assert.deepEqual(retry.tasks.map((x) => x.target.name), ["api-1", "web-2"]);
      for (const task of retry.tasks) {
        const before = dep.tasks.find((x) => x.target.id === task.target.id)!;
        assert.notEqual(task.id, before.id);
        assert.deepEqual(task.images, before.images);
      }
      // The original is left as it was.
      assert.equal((await fx.deployments.get(dep.id)).state, "failed");
      await fx.finish(retry);
      await assert.rejects(fx.deployments.retry(retry.id, "carol"), code("NOTHING_TO_RETRY"));
      await assert.rejects(fx.deployments.retry("dep_missing", "carol"), code("DEPLOYMENT_NOT_FOUND"));
    });

    it("cancels only the tasks no agent has picked up", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1", "web-2"] }, "bob");
      await fx.queue.claim("agt_a2"); // web-2 is offered to its agent
      const after = await fx.deployments.cancel(dep.id, "carol");
      assert.deepEqual(after.tasks.map((x) => [x.target.name, x.state, x.code, x.message]), [
        ["web-1", "cancelled", "CANCELLED", "cancelled by carol"],
        ["web-2", "leased", null, null],
      ]);
      assert.equal(after.state, "running");
      assert.equal(after.finishedAt, null);
      await assert.rejects(fx.deployments.cancel(dep.id, "carol"), code("DEPLOYMENT_NOT_CANCELLABLE"));
      await assert.rejects(fx.deployments.cancel("dep_missing", "carol"), code("DEPLOYMENT_NOT_FOUND"));
      assert.deepEqual((await listAudit(fx.store)).filter((r) => r.action === "deployment.cancel").map((r) => [r.actor, r.object]), [["carol", dep.id]]);
      // A cancelled target is free again.
      await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1"] }, "bob");

      const all = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["api-1"] }, "bob");
      const gone = await fx.deployments.cancel(all.id, "carol");
      assert.equal(gone.state, "cancelled");
      assert.ok(gone.finishedAt);
    });

    it("derives the deployment's state from its tasks", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev" }, "bob");
      const set = async (states: string[]) => {
        for (const [i, task] of dep.tasks.entries()) await fx.store.query("UPDATE tasks SET state = $2 WHERE id = $1", [task.id, states[i]]);
        const state = await refreshDeploymentState(fx.store, dep.id);
        const row = (await fx.deployments.get(dep.id));
        assert.equal(row.state, state);
        return [state, row.finishedAt !== null];
      };
      assert.deepEqual(await set(["queued", "queued", "queued"]), ["queued", false]);
      assert.deepEqual(await set(["queued", "leased", "queued"]), ["running", false]);
      assert.deepEqual(await set(["succeeded", "running", "queued"]), ["running", false]);
      assert.deepEqual(await set(["succeeded", "succeeded", "succeeded"]), ["succeeded", true]);
      assert.deepEqual(await set(["succeeded", "failed", "succeeded"]), ["failed", true]);
      assert.deepEqual(await set(["succeeded", "expired", "errored"]), ["failed", true]);
      assert.deepEqual(await set(["cancelled", "cancelled", "cancelled"]), ["cancelled", true]);
      assert.deepEqual(await set(["cancelled", "succeeded", "cancelled"]), ["failed", true]);
      // Active again (a late ack after expiry): no longer finished.
      assert.deepEqual(await set(["cancelled", "running", "cancelled"]), ["running", false]);
    });

    it("lists deployments newest first, filtered and paged", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const ids: string[] = [];
      for (const target of ["web-1", "web-2", "api-1"]) {
        fx.clock.t += 1000;
        const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: [target] }, "bob");
        // created_at comes from the injected clock.
        ids.push(dep.id);
        if (target !== "api-1") await fx.finish(dep);
      }
      const p1 = await fx.deployments.list({ limit: 2 });
      assert.deepEqual(p1.items.map((d) => d.id), [ids[2], ids[1]]);
      assert.ok(p1.nextCursor);
      const p2 = await fx.deployments.list({ limit: 2, cursor: p1.nextCursor });
      assert.deepEqual(p2.items.map((d) => d.id), [ids[0]]);
      assert.equal(p2.nextCursor, null);
      assert.deepEqual((await fx.deployments.list({ state: "queued" })).items.map((d) => [d.id, d.tasks.length]), [[ids[2], 1]]);
      assert.equal((await fx.deployments.list({ environment: "prod" })).items.length, 0);
    });

    it("shows task progress events on request", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1"] }, "bob");
      const task = dep.tasks[0]!;
      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", { taskId: task.id, accepted: true, code: "", message: "" });
      await fx.queue.progress("agt_a1", { taskId: task.id, step: "pull", detail: "pulling", at: T0 + 1 });
      await fx.queue.progress("agt_a1", { taskId: task.id, step: "start", detail: "", at: 0 });
      const shown = await fx.deployments.get(dep.id, { events: true });
      assert.deepEqual(shown.tasks[0]!.events!.map((e) => [e.seq, e.step, e.detail, e.at]), [
        [1, "pull", "pulling", new Date(T0 + 1).toISOString()],
        [2, "start", "", new Date(T0).toISOString()],
      ]);
      assert.equal((await fx.deployments.get(dep.id)).tasks[0]!.events, undefined);
      await assert.rejects(fx.deployments.get("dep_missing"), code("DEPLOYMENT_NOT_FOUND"));
    });

    it("shows each task's newest 100 events with the total, and pages through all of them", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.release("1");
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1"] }, "bob");
      const task = dep.tasks[0]!;
      await fx.store.query("INSERT INTO task_events (task_id, seq, at, step, detail) SELECT $1, g, now(), 'step-' || g, '' FROM generate_series(1, 250) g", [task.id]);
      const shown = (await fx.deployments.get(dep.id, { events: true })).tasks[0]!;
      assert.equal(shown.eventsTotal, 250);
      assert.deepEqual(shown.events!.map((e) => e.seq), Array.from({ length: 100 }, (_, i) => 151 + i));
      const seen: number[] = [];
      let after: number | null = 0;
      while (after !== null) {
        const page = await fx.deployments.taskEvents(dep.id, task.id, after, 60);
        assert.ok(page.events.length <= 60);
        seen.push(...page.events.map((e) => e.seq));
        after = page.nextAfter;
      }
      assert.deepEqual(seen, Array.from({ length: 250 }, (_, i) => i + 1));
      await assert.rejects(fx.deployments.taskEvents(dep.id, "tsk_missing"), code("TASK_NOT_FOUND"));
      await assert.rejects(fx.deployments.taskEvents(dep.id, task.id, 0, 501), code("VALIDATION_FAILED"));
    });

    it("reports per target what Ferry deployed, what the agent reported, drift and the active task", async (t) => {
      const fx = await fixture(b, t);
      await estate(fx);
      await fx.catalog.createEnvironment({ name: "prod" }, "alice");
      await fx.agent("agt_p1", "prod");
      await fx.target("prod", "web", "agt_p1", "web");
      const v1 = await fx.release("1");
      await fx.release("2");
      const dep = await fx.finish(await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web-1", "web-2"] }, "bob"), {}, true);
      // web-2's sticker goes missing from the record: the agent has not reported it.
      await fx.store.query("DELETE FROM target_stickers WHERE target_id = $1", [dep.tasks.find((x) => x.target.name === "web-2")!.target.id]);
      const next = await fx.deployments.deploy({ release: "shop@2", environment: "dev", targets: ["web-1"] }, "bob");

      const all = await fx.deployments.status();
      assert.deepEqual(all.map((s) => [s.environment, s.target]), [["dev", "api-1"], ["dev", "web-1"], ["dev", "web-2"], ["prod", "web"]]);
      const dev = await fx.deployments.status("dev");
      const by = (n: string) => dev.find((s) => s.target === n)!;
      assert.equal(by("api-1").sync, "never-deployed");
      assert.equal(by("api-1").deployed, null);
      assert.equal(by("web-2").sync, "not-reported");
      const web1 = by("web-1");
      assert.equal(web1.sync, "in-sync");
      assert.equal(web1.agentId, "agt_a1");
      assert.equal(web1.deployed?.deploymentId, dep.id);
      assert.equal(web1.deployed?.release, "shop@1");
      assert.equal(web1.deployed?.releaseId, v1.id);
      assert.equal(web1.stickerReportedAt, new Date(T0).toISOString());
      assert.deepEqual(web1.activeTask, { id: next.tasks[0]!.id, deploymentId: next.id, state: "queued" });

      // Someone replaced the container by hand: the agent's next report shows it.
      const webDigest = v1.pins.find((p) => p.component === "web")!.digest;
      await fx.queue.recordStickers("agt_a1", [
        { targetId: web1.targetId, deploymentId: dep.id, observedState: "running", images: [{ component: "web", digest: webDigest, runningDigest: "sha256:other" }] },
      ]);
      const drifted = (await fx.deployments.status("dev")).find((s) => s.target === "web-1")!;
      assert.equal(drifted.sync, "drift");
      assert.deepEqual(drifted.drift, [`web: running sha256:other, Ferry deployed ${webDigest}`]);
      await assert.rejects(fx.deployments.status("nowhere"), code("ENVIRONMENT_NOT_FOUND"));
    });
  });
}
