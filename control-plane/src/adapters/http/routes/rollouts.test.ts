// The rollout API: POST /deployments with a strategy (or an environment's default one) starts a rollout; the
// rollout is read and steered under /api/v1/rollouts. Bad strategies are refused naming the field, before anything
// is written. The engine itself is tested in runtime/rollout-engine.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { testBackends } from "../../store/test-backends.js";
import { startTestHttpServer } from "../test-server.js";

interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

for (const b of testBackends()) {
  describe(`rollout API (${b.name})`, () => {
    it("starts a rolling deploy from POST /deployments, lists, shows, pauses, resumes and aborts it", async (t) => {
      const store = await b.open(t);
      const { app, adminToken } = await startTestHttpServer(t, store);
      const call = async (method: "GET" | "POST" | "PATCH", url: string, payload?: unknown) => {
        const res = await app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
        return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
      };
      assert.equal((await call("POST", "/environments", { name: "dev", settings: { strategy: { kind: "rolling", batch: 1 } } })).status, 201);
      const bad = await call("POST", "/environments", { name: "qa", settings: { strategy: { kind: "rolling", batch: 0 } } });
      assert.equal(bad.status, 400);
      assert.equal((bad.body as unknown as ErrorBody).error.details?.["field"], "settings.strategy.batch");
      assert.equal((await call("POST", "/components", { name: "web", repository: "127.0.0.1:5000/team/web" })).status, 201);
      for (const n of [1, 2]) {
        await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, 'dev', 'online', $2)", [`agt_${n}`, JSON.stringify({ drivers: ["docker"] })]);
        assert.equal((await call("POST", "/environments/dev/targets", { name: `web-${n}`, kind: "docker", agentId: `agt_${n}`, config: { container: `web-${n}` } })).status, 201);
      }
      assert.equal((await call("POST", "/releases", { name: "shop", version: "1", components: { web: ":1" } })).status, 201);

      // A strategy in the request is checked by the parser; nothing is written when it is refused.
      const wrong = await call("POST", "/deployments", { release: "shop@1", environment: "dev", strategy: { kind: "rolling", batch: 1, surge: 2 } });
      assert.equal(wrong.status, 400);
      assert.equal((wrong.body as unknown as ErrorBody).error.code, "VALIDATION_FAILED");
      assert.equal((wrong.body as unknown as ErrorBody).error.details?.["field"], "strategy.surge");
      const unsupported = await call("POST", "/deployments", { release: "shop@1", environment: "dev", strategy: "canary" });
      assert.equal((unsupported.body as unknown as ErrorBody).error.code, "VALIDATION_FAILED", "a canary without steps is refused by the parser first");
      const bg = await call("POST", "/deployments", { release: "shop@1", environment: "dev", strategy: "blue-green" });
      assert.equal(bg.status, 422);
      assert.equal((bg.body as unknown as ErrorBody).error.code, "TARGET_DRIVER_UNAVAILABLE", "these agents offer no router");
      // Maintenance: checked body, and refused on targets that are not routed, naming them.
      assert.equal((await call("POST", "/environments/dev/maintenance", { on: "yes" })).status, 400);
      assert.equal((await call("POST", "/environments/dev/maintenance", { on: true, message: "x".repeat(257) })).status, 400);
      assert.equal((await call("POST", "/environments/dev/maintenance", { on: true, colour: "red" })).status, 400);
      const plain = await call("POST", "/environments/dev/maintenance", { on: true, message: "back soon" });
      assert.equal(plain.status, 422);
      assert.equal((plain.body as unknown as ErrorBody).error.code, "TARGET_NOT_ROUTED");
      assert.deepEqual((plain.body as unknown as ErrorBody).error.details?.["targets"], ["web-1", "web-2"]);
      assert.equal(Number((await store.query<{ n: string }>("SELECT count(*) AS n FROM deployments")).rows[0]!.n), 0);

      // The environment's default strategy (rolling, batch 1) makes this deploy a rollout.
      const dep = await call("POST", "/deployments", { release: "shop@1", environment: "dev" });
      assert.equal(dep.status, 201);
      const rollout = dep.body["rollout"] as { id: string; state: string; steps: { kind: string; state: string }[] };
      assert.equal(rollout.state, "running");
      assert.deepEqual(rollout.steps.map((s) => `${s.kind}:${s.state}`), ["wave:running", "wave:pending"]);
      assert.equal((dep.body["tasks"] as unknown[]).length, 1);
      // The request's own strategy wins over the environment's: all-at-once is the old path, no rollout.
      const busy = await call("POST", "/deployments", { release: "shop@1", environment: "dev", strategy: "all-at-once", targets: ["web-2"] });
      assert.equal((busy.body as unknown as ErrorBody).error.code, "DEPLOYMENT_IN_PROGRESS", "web-2 belongs to the running rollout");

      const list = await call("GET", "/rollouts?environment=dev");
      assert.deepEqual((list.body["rollouts"] as { id: string }[]).map((r) => r.id), [rollout.id]);
      assert.equal((await call("GET", `/rollouts/${rollout.id}`)).body["id"], rollout.id);
      assert.equal((await call("GET", "/rollouts/rol_nope")).status, 404);
      assert.equal((await call("POST", `/rollouts/${rollout.id}/pause`)).body["paused"], true);
      const again = await call("POST", `/rollouts/${rollout.id}/pause`);
      assert.equal(again.status, 409);
      assert.equal((again.body as unknown as ErrorBody).error.code, "ROLLOUT_STATE_CONFLICT");
      assert.equal((await call("POST", `/rollouts/${rollout.id}/resume`)).body["paused"], false);
      assert.equal((await call("POST", `/rollouts/${rollout.id}/promote`)).status, 409, "a wave cannot be promoted");
      const aborted = await call("POST", `/rollouts/${rollout.id}/abort`, { reason: "testing" });
      assert.equal(aborted.status, 200);
      assert.equal(aborted.body["abortRequested"], true);
      assert.deepEqual(aborted.body["reason"], { code: "ROLLOUT_ABORTED", message: "testing", by: "admin" });
      assert.equal((await call("POST", `/rollouts/${rollout.id}/abort`, { reason: "x".repeat(2000) })).status, 400);
    });
  });
}
