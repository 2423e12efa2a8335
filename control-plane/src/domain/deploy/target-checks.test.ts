// Target checks on both store backends: an inspect task queued to the target's agent when it can run it (pending
// otherwise, queued when the agent connects), the verdict kept from the task's end through the real task queue, and
// what a check never does: block a deploy, count as a target's active task, or keep a target from being deleted.
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { parseTaskPayload } from "@ferry/contract";
import { testBackends, type TestBackend } from "../../adapters/store/test-backends.js";
import { FerryError } from "../errors.js";
import { deployFixture, fileKeyring, T0, type DeployFx } from "./deploy.fixture.js";
import { checkVerdict } from "./target-check-records.js";
import { MAX_CHECK_WAIT_SECONDS, TargetChecks } from "./target-checks.js";
import type { TaskResultInput } from "./task-queue.js";

const TTL = 600_000;
const keys = fileKeyring("ferry-checks-");

interface Fixture extends DeployFx {
  checks: TargetChecks;
  /** Creates an ecs target served by `agent` and asks for its check, as POST …/targets does. */
  target(name: string, agent?: string): Promise<string>;
}

const ECS_FACTS = { drivers: ["ecs"], driverFacts: [{ kind: "ecs", capabilities: ["native-rollout"] }], taskPayloadVersions: [1, 2] };

async function setup(b: TestBackend, t: TestContext): Promise<Fixture> {
  const fx = await deployFixture(b, t, { signer: keys.keyring, taskTtlMs: TTL });
  const { store, catalog, now } = fx;
  const checks = new TargetChecks({ store, signer: keys.keyring, clock: { now }, taskTtlMs: TTL });
  await catalog.createEnvironment({ name: "dev" }, "alice");
  await catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "alice");
  await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_gw', 'gw', 'dev', 'online', $1)", [JSON.stringify(ECS_FACTS)]);
  await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_away', 'away', 'dev', 'offline', $1)", [JSON.stringify(ECS_FACTS)]);
  await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_docker', 'docker', 'dev', 'online', $1)", [JSON.stringify({ drivers: ["docker"], taskPayloadVersions: [1, 2] })]);
  await catalog.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "alice");
  return {
    ...fx,
    checks,
    async target(name, agent = "agt_gw") {
      const t = await catalog.createTarget({ environment: "dev", name, kind: "ecs", agentId: agent, config: { region: "eu-west-1", cluster: "prod", service: name } }, "alice");
      await checks.request(t.id);
      return t.id;
    },
  };
}

const result = (taskId: string, over: Partial<TaskResultInput> = {}): TaskResultInput => ({
  taskId,
  outcome: "succeeded",
  code: "",
  message: "web is running",
  details: { state: "running", running: [], labels: {}, details: { deploymentController: "ECS" } },
  sticker: null,
  startedAt: T0,
  finishedAt: T0 + 1000,
  logBytes: 0,
  attempt: 1,
  ...over,
});

/** Claims, accepts and answers the agent's one queued check task; returns its id. */
async function answer(fx: Fixture, agent: string, over: Partial<TaskResultInput> = {}): Promise<string> {
  const [task] = await fx.queue.claim(agent);
  assert.ok(task, "a check task is queued");
  await fx.queue.ack(agent, { taskId: task.id, accepted: true, code: "", message: "" });
  await fx.queue.result(agent, result(task.id, over));
  return task.id;
}

for (const b of testBackends()) {
  describe(`TargetChecks on ${b.name}`, () => {
    it("queues a signed inspect task to the target's agent, with no deployment and no release", async (t) => {
      const fx = await setup(b, t);
      const id = await fx.target("web");
      const check = await fx.checks.get(id);
      assert.equal(check?.state, "pending");
      assert.equal(check?.message, "queued to agent agt_gw");
      const [task] = await fx.queue.claim("agt_gw");
      assert.equal(task?.id, check?.taskId);
      const payload = parseTaskPayload(JSON.parse(Buffer.from(task.payload).toString("utf8")), task.payloadType);
      assert.equal(payload.action, "inspect");
      assert.equal(payload.release, null);
      assert.deepEqual(payload.images, []);
      assert.equal(payload.v, 1);
      assert.match(payload.deploymentId, /^chk_/);
      assert.deepEqual(payload.target, { id, name: "web", kind: "ecs", config: { region: "eu-west-1", cluster: "prod", service: "web" } });
      assert.equal(payload.notAfter, T0 + TTL);
      const row = await fx.store.query<{ deployment_id: string | null; release_id: string | null }>("SELECT deployment_id, release_id FROM tasks WHERE id = $1", [task.id]);
      assert.deepEqual(row.rows[0], { deployment_id: null, release_id: null });
    });

    it("keeps the verdict: ok, a missing target as TARGET_NOT_FOUND, a reported problem, a failed task", async (t) => {
      const fx = await setup(b, t);
      const ok = await fx.target("ok");
      await answer(fx, "agt_gw");
      const okCheck = await fx.checks.get(ok);
      assert.equal(okCheck?.state, "ok");
      assert.equal(okCheck?.code, null);
      assert.equal(okCheck?.checkedAt, new Date(T0).toISOString());

      const missing = await fx.target("missing");
      await answer(fx, "agt_gw", { message: "missing is missing", details: { state: "missing", running: [], labels: {}, details: { error: "ECS service missing in cluster prod (eu-west-1) does not exist (MISSING)" } } });
      const m = await fx.checks.get(missing);
      assert.deepEqual([m?.state, m?.code, m?.message], ["failed", "TARGET_NOT_FOUND", "ECS service missing in cluster prod (eu-west-1) does not exist (MISSING)"]);

      const codedeploy = await fx.target("codedeploy");
      await answer(fx, "agt_gw", { details: { state: "running", running: [], labels: {}, details: { check: { code: "TARGET_UNSUPPORTED", message: "the CODE_DEPLOY controller" } } } });
      const c = await fx.checks.get(codedeploy);
      assert.deepEqual([c?.state, c?.code, c?.message], ["failed", "TARGET_UNSUPPORTED", "the CODE_DEPLOY controller"]);

      const denied = await fx.target("denied");
      await answer(fx, "agt_gw", { outcome: "failed", code: "PLATFORM_ACCESS_DENIED", message: "ECS DescribeServices was refused", details: {} });
      const d = await fx.checks.get(denied);
      assert.deepEqual([d?.state, d?.code], ["failed", "PLATFORM_ACCESS_DENIED"]);

      const all = await fx.checks.forTargets([ok, missing, codedeploy, denied]);
      assert.deepEqual([...all.values()].map((x) => x.state).sort(), ["failed", "failed", "failed", "ok"]);
    });

    it("a refused check task fails the check with the agent's refusal code", async (t) => {
      const fx = await setup(b, t);
      const id = await fx.target("web");
      const [task] = await fx.queue.claim("agt_gw");
      await fx.queue.ack("agt_gw", { taskId: task!.id, accepted: false, code: "INVALID_TARGET_CONFIG", message: "config.service: too long" });
      const c = await fx.checks.get(id);
      assert.deepEqual([c?.state, c?.code, c?.message], ["failed", "INVALID_TARGET_CONFIG", "config.service: too long"]);
    });

    it("stays pending without a task while the agent is away or lacks the driver, and is queued when it connects with it", async (t) => {
      const fx = await setup(b, t);
      const away = await fx.target("web", "agt_away");
      let c = await fx.checks.get(away);
      assert.deepEqual([c?.state, c?.taskId], ["pending", null]);
      assert.match(c!.message, /agent agt_away is not connected/);
      assert.deepEqual(await fx.queue.claim("agt_away"), []);
      // It connects without the ecs driver: still pending, and says why.
      assert.equal(await fx.checks.queuePendingFor("agt_away", { drivers: ["docker"], taskPayloadVersions: [2] }), 0);
      c = await fx.checks.get(away);
      assert.match(c!.message, /has no ecs driver/);
      assert.equal(c?.taskId, null);
      // And with it.
      assert.equal(await fx.checks.queuePendingFor("agt_away", ECS_FACTS), 1);
      c = await fx.checks.get(away);
      assert.ok(c?.taskId);
      assert.equal(await fx.checks.queuePendingFor("agt_away", ECS_FACTS), 0, "a check with a task is not queued twice");
      await answer(fx, "agt_away");
      assert.equal((await fx.checks.get(away))?.state, "ok");

      const unserved = await fx.target("other", "agt_docker");
      c = await fx.checks.get(unserved);
      assert.match(c!.message, /agent agt_docker has no ecs driver/);
      const none = await fx.catalog.createTarget({ environment: "dev", name: "loose", kind: "ecs", config: { region: "eu-west-1", cluster: "prod", service: "x" } }, "alice");
      c = await fx.checks.request(none.id);
      assert.match(c.message, /no agent/);
    });

    it("only the newest check counts: asking again cancels an undelivered task and ignores an older answer", async (t) => {
      const fx = await setup(b, t);
      const id = await fx.target("web");
      const first = (await fx.checks.get(id))!.taskId!;
      // A second request while the first is queued: the first is cancelled.
      const second = (await fx.checks.request(id)).taskId!;
      assert.notEqual(first, second);
      const s = await fx.store.query<{ state: string }>("SELECT state FROM tasks WHERE id = $1", [first]);
      assert.equal(s.rows[0]?.state, "cancelled");
      // The second is running; a third request leaves it be, and its late answer is not the verdict.
      const [task] = await fx.queue.claim("agt_gw");
      assert.equal(task?.id, second);
      await fx.queue.ack("agt_gw", { taskId: second, accepted: true, code: "", message: "" });
      const third = (await fx.checks.request(id)).taskId!;
      await fx.queue.result("agt_gw", result(second, { details: { state: "missing", running: [], labels: {}, details: {} } }));
      let c = await fx.checks.get(id);
      assert.deepEqual([c?.state, c?.taskId], ["pending", third]);
      await answer(fx, "agt_gw");
      c = await fx.checks.get(id);
      assert.deepEqual([c?.state, c?.taskId], ["ok", third]);
    });

    it("an expired check task leaves the check pending, queued again at the next Hello", async (t) => {
      const fx = await setup(b, t);
      const id = await fx.target("web");
      fx.clock.t += TTL + 1;
      await fx.queue.sweep({ expireRunning: true });
      let c = await fx.checks.get(id);
      assert.deepEqual([c?.state, c?.taskId], ["pending", null]);
      assert.match(c!.message, /TASK_NOT_DELIVERED/);
      assert.equal(await fx.checks.queuePendingFor("agt_gw", ECS_FACTS), 1);
      c = await fx.checks.get(id);
      assert.ok(c?.taskId);
    });

    it("never blocks a deploy, is no target's active task, and does not keep a target from being deleted", async (t) => {
      const fx = await setup(b, t);
      const id = await fx.target("web");
      await fx.catalog.updateTarget("dev", "web", { config: { region: "eu-west-1", cluster: "prod", service: "web", containerName: "web" } }, "alice");
      const status = await fx.deployments.status("dev");
      assert.equal(status.find((s) => s.targetId === id)?.activeTask, null);
      const dep = await fx.deployments.deploy({ release: "shop@1", environment: "dev", targets: ["web"] }, "bob");
      assert.equal(dep.tasks.length, 1);
      assert.equal(dep.tasks[0]?.action, "deploy");
      // The deploy task and the check task are both the agent's; the check's end does not touch the deployment.
      const claimed = await fx.queue.claim("agt_gw");
      assert.equal(claimed.length, 2);
      const check = claimed.find((c) => c.id !== dep.tasks[0]!.id)!;
      await fx.queue.ack("agt_gw", { taskId: check.id, accepted: true, code: "", message: "" });
      await fx.queue.result("agt_gw", result(check.id));
      assert.equal((await fx.deployments.get(dep.id)).state, "queued");
      const recorded = await fx.store.query("SELECT 1 FROM target_deployments WHERE task_id = $1", [check.id]);
      assert.equal(recorded.rowCount, 0);
      // A target whose only tasks are checks can be deleted; its checks go with it.
      const other = await fx.target("other");
      await fx.queue.progress("agt_gw", { taskId: (await fx.checks.get(other))!.taskId!, step: "start", detail: "", at: T0 });
      await fx.catalog.deleteTarget("dev", "other", "alice");
      assert.equal(await fx.checks.get(other), null);
      const left = await fx.store.query("SELECT 1 FROM tasks WHERE target_id = $1", [other]);
      assert.equal(left.rowCount, 0);
    });

    it("waits for a verdict within bounds", async (t) => {
      const fx = await setup(b, t);
      const id = await fx.target("web");
      const pending = await fx.checks.wait(id, 0);
      assert.equal(pending?.state, "pending");
      const waiting = fx.checks.wait(id, 5);
      await answer(fx, "agt_gw");
      assert.equal((await waiting)?.state, "ok");
      await assert.rejects(fx.checks.wait(id, MAX_CHECK_WAIT_SECONDS + 1), (err: unknown) => err instanceof FerryError && err.code === "VALIDATION_FAILED");
      await assert.rejects(fx.checks.wait(id, -1), (err: unknown) => err instanceof FerryError && err.code === "VALIDATION_FAILED");
    });
  });
}

describe("checkVerdict", () => {
  it("keeps only codes of the catalogue from a driver's report", () => {
    assert.deepEqual(checkVerdict("succeeded", null, "", { state: "running", details: { check: { code: "NOT_A_CODE", message: "odd" } } }), { state: "failed", code: "TARGET_UNSUPPORTED", message: "odd" });
    assert.deepEqual(checkVerdict("errored", "", "", null), { state: "failed", code: "AGENT_ERROR", message: "the check task errored" });
    assert.deepEqual(checkVerdict("succeeded", null, "fine", { state: "stopped", details: {} }), { state: "ok", code: null, message: "fine" });
  });
});
