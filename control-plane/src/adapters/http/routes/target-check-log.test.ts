// GET /environments/{env}/targets/{name}/check/log on both store backends: a check task's log served as a deployment
// task's log is (text/plain from a byte offset, the same headers and bounds, viewer role), the latest check's task by
// default or a named one of the target's check tasks, and clear errors for what has no check log.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createApiToken } from "../../../domain/auth/api-tokens.js";
import { TaskQueue } from "../../../domain/deploy/task-queue.js";
import { systemClock } from "../../../ports/clock.js";
import { testBackends } from "../../store/test-backends.js";
import { startTestHttpServer } from "../test-server.js";

const DOCKER_FACTS = { drivers: ["docker"], taskPayloadVersions: [1, 2] };
const bytes = (s: string) => new TextEncoder().encode(s);

for (const b of testBackends()) {
  describe(`target check log API (${b.name})`, () => {
    it("serves the check task's log from an offset, with the deployment log's headers, bounds and role", async (t) => {
      const store = await b.open(t);
      const { app, adminToken } = await startTestHttpServer(t, store, { checks: true });
      const viewer = (await createApiToken(store, { subject: "vic", roles: ["viewer"], createdBy: "test", description: "" })).secret;
      const queue = new TaskQueue({ store, clock: systemClock, timings: { ackTimeoutMs: 30_000, runningLeaseMs: 60_000 } });
      const call = async (method: "GET" | "POST", url: string, payload?: unknown, token = adminToken) => {
        const res = await app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
        return { status: res.statusCode, text: res.body, headers: res.headers, json: () => res.json<{ error: { code: string; message: string }; check: { taskId: string | null; state: string } }>() };
      };
      assert.equal((await call("POST", "/environments", { name: "dev" })).status, 201);
      await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_1', 'one', 'dev', 'online', $1)", [JSON.stringify(DOCKER_FACTS)]);
      const created = await call("POST", "/environments/dev/targets", { name: "web", kind: "docker", agentId: "agt_1", config: { container: "web" } });
      assert.equal(created.status, 201);
      const taskId = created.json().check.taskId!;
      assert.ok(taskId);

      // Queued, nothing logged yet: an empty page, not complete.
      let r = await call("GET", "/environments/dev/targets/web/check/log", undefined, viewer);
      assert.equal(r.status, 200);
      assert.equal(r.text, "");
      assert.match(String(r.headers["content-type"]), /^text\/plain/);
      assert.deepEqual([r.headers["x-ferry-task-id"], r.headers["x-ferry-log-next"], r.headers["x-ferry-log-complete"]], [taskId, "0", "false"]);

      // The agent inspects and logs; the result declares the log's length.
      const [task] = await queue.claim("agt_1");
      assert.equal(task?.id, taskId);
      await queue.ack("agt_1", { taskId, accepted: true, code: "", message: "" });
      await queue.appendLog("agt_1", taskId, 0, bytes("inspecting web\n"));
      r = await call("GET", "/environments/dev/targets/web/check/log");
      assert.deepEqual([r.text, r.headers["x-ferry-log-next"], r.headers["x-ferry-log-complete"]], ["inspecting web\n", "15", "false"]);
      await queue.appendLog("agt_1", taskId, 15, bytes("container running\n"));
      const now = Date.now();
      await queue.result("agt_1", { taskId, outcome: "succeeded", code: "", message: "web is running", details: { state: "running", running: [], labels: {}, details: {} }, sticker: null, startedAt: now, finishedAt: now, logBytes: 33, attempt: 1 });

      // Paging by offset and limit, as a follower reads it.
      r = await call("GET", "/environments/dev/targets/web/check/log?offset=15&limit=9", undefined, viewer);
      assert.deepEqual([r.text, r.headers["x-ferry-log-next"], r.headers["x-ferry-log-complete"]], ["container", "24", "false"]);
      r = await call("GET", "/environments/dev/targets/web/check/log?offset=24", undefined, viewer);
      assert.deepEqual([r.text, r.headers["x-ferry-log-next"], r.headers["x-ferry-log-complete"]], [" running\n", "33", "true"]);

      // A newer check has its own task; the older one stays readable by name.
      const again = await call("POST", "/environments/dev/targets/web/check");
      assert.equal(again.status, 202);
      const newer = again.json().check.taskId!;
      assert.notEqual(newer, taskId);
      r = await call("GET", "/environments/dev/targets/web/check/log");
      assert.deepEqual([r.text, r.headers["x-ferry-task-id"]], ["", newer]);
      r = await call("GET", `/environments/dev/targets/web/check/log?task=${taskId}`);
      assert.deepEqual([r.text, r.headers["x-ferry-task-id"], r.headers["x-ferry-log-complete"]], ["inspecting web\ncontainer running\n", taskId, "true"]);

      // Bounds and input: the deployment log's limits; unknown parameters refused.
      for (const q of ["limit=0", "limit=8388609", "offset=-1", "offset=x", "tail=1", `task=${"t".repeat(65)}`]) {
        const bad = await call("GET", `/environments/dev/targets/web/check/log?${q}`);
        assert.equal(bad.status, 400, q);
        assert.equal(bad.json().error.code, "VALIDATION_FAILED", q);
      }
      // No token, no log.
      const anon = await app.inject({ method: "GET", url: "/api/v1/environments/dev/targets/web/check/log" });
      assert.equal(anon.statusCode, 401);
    });

    it("answers TASK_NOT_FOUND for a target with no check task, or a task that is not one of its checks", async (t) => {
      const store = await b.open(t);
      const { app, adminToken } = await startTestHttpServer(t, store, { checks: true });
      const call = async (method: "GET" | "POST", url: string, payload?: unknown) => {
        const res = await app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
        return { status: res.statusCode, body: res.json<{ error: { code: string; message: string }; check: { taskId: string | null } }>() };
      };
      assert.equal((await call("POST", "/environments", { name: "dev" })).status, 201);
      await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_away', 'away', 'dev', 'offline', $1)", [JSON.stringify(DOCKER_FACTS)]);
      await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ('agt_1', 'one', 'dev', 'online', $1)", [JSON.stringify(DOCKER_FACTS)]);
      // Pending without a task while its agent is away: the answer says why.
      assert.equal((await call("POST", "/environments/dev/targets", { name: "away", kind: "docker", agentId: "agt_away", config: { container: "away" } })).status, 201);
      let r = await call("GET", "/environments/dev/targets/away/check/log");
      assert.equal(r.status, 404);
      assert.equal(r.body.error.code, "TASK_NOT_FOUND");
      assert.match(r.body.error.message, /has no task yet: agent agt_away is not connected/);
      // Another target's check task is not this target's.
      const other = await call("POST", "/environments/dev/targets", { name: "web", kind: "docker", agentId: "agt_1", config: { container: "web" } });
      r = await call("GET", `/environments/dev/targets/away/check/log?task=${other.body.check.taskId!}`);
      assert.deepEqual([r.status, r.body.error.code], [404, "TASK_NOT_FOUND"]);
      r = await call("GET", "/environments/dev/targets/nope/check/log");
      assert.deepEqual([r.status, r.body.error.code], [404, "TARGET_NOT_FOUND"]);
    });

    it("answers TASK_NOT_FOUND on a server that does not check targets", async (t) => {
      const store = await b.open(t);
      const { app, adminToken } = await startTestHttpServer(t, store);
      const headers = { authorization: `Bearer ${adminToken}` };
      await app.inject({ method: "POST", url: "/api/v1/environments", headers, payload: { name: "dev" } });
      await app.inject({ method: "POST", url: "/api/v1/environments/dev/targets", headers, payload: { name: "web", kind: "docker", config: { container: "web" } } });
      const r = await app.inject({ method: "GET", url: "/api/v1/environments/dev/targets/web/check/log", headers });
      assert.deepEqual([r.statusCode, r.json<{ error: { code: string } }>().error.code], [404, "TASK_NOT_FOUND"]);
    });
  });
}
