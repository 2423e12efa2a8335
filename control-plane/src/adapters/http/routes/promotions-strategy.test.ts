// POST /api/v1/promotions with a strategy: parsed like a deploy's (errors name `strategy…`), refused at request time
// when the environment's targets cannot run it, recorded on the promotion and shown in its view; with a strategy
// other than all-at-once the promotion deploys through a rollout. And the release flag rollbackSafe through the API.
// The services behind are tested in domain/promotion and runtime/rollout-engine*.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { testBackends } from "../../store/test-backends.js";
import { startTestHttpServer } from "../test-server.js";

interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

for (const b of testBackends()) {
  describe(`promotions with a strategy, releases not safe to roll back: API (${b.name})`, () => {
    it("takes a strategy on POST /promotions, refuses bad ones before anything is written, and deploys through a rollout", async (t) => {
      const store = await b.open(t);
      const { app, adminToken } = await startTestHttpServer(t, store);
      const call = async (method: "GET" | "POST", url: string, payload?: unknown) => {
        const res = await app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
        return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
      };
      const err = (r: { body: Record<string, unknown> }) => (r.body as unknown as ErrorBody).error;
      assert.equal((await call("POST", "/environments", { name: "dev" })).status, 201);
      assert.equal((await call("POST", "/components", { name: "web", repository: "127.0.0.1:5000/team/web" })).status, 201);
      for (const n of [1, 2]) {
        await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, 'dev', 'online', $2)", [`agt_${n}`, JSON.stringify({ drivers: ["docker"] })]);
        assert.equal((await call("POST", "/environments/dev/targets", { name: `web-${n}`, kind: "docker", agentId: `agt_${n}`, config: { container: `web-${n}` } })).status, 201);
      }

      // The release flag: a boolean, a note only with false, both in the view.
      const flagged = await call("POST", "/releases", { name: "shop", version: "1", components: { web: ":1" }, rollbackSafe: false, rollbackNote: "drops a column" });
      assert.equal(flagged.status, 201);
      assert.deepEqual([flagged.body["rollbackSafe"], flagged.body["rollbackNote"]], [false, "drops a column"]);
      const shown = await call("GET", "/releases/shop@1");
      assert.deepEqual([shown.body["rollbackSafe"], shown.body["rollbackNote"]], [false, "drops a column"]);
      const wrongFlag = await call("POST", "/releases", { name: "shop", version: "2", components: { web: ":2" }, rollbackSafe: "no" });
      assert.equal(wrongFlag.status, 400);
      assert.equal(err(wrongFlag).code, "VALIDATION_FAILED");
      const lonelyNote = await call("POST", "/releases", { name: "shop", version: "2", components: { web: ":2" }, rollbackNote: "why" });
      assert.equal(lonelyNote.status, 400);
      assert.equal(err(lonelyNote).details?.["field"], "rollbackNote");
      const plain = await call("POST", "/releases", { name: "shop", version: "2", components: { web: ":2" } });
      assert.deepEqual([plain.body["rollbackSafe"], plain.body["rollbackNote"]], [true, null]);

      // Strategies refused before anything is written, with the codes a deploy gets.
      const unknownField = await call("POST", "/promotions", { release: "shop@2", environment: "dev", strategy: { kind: "rolling", batch: 1, surge: 2 } });
      assert.equal(unknownField.status, 400);
      assert.equal(err(unknownField).code, "VALIDATION_FAILED");
      assert.equal(err(unknownField).details?.["field"], "strategy.surge");
      const tooLong = await call("POST", "/promotions", { release: "shop@2", environment: "dev", strategy: "x".repeat(33) });
      assert.equal(tooLong.status, 400);
      const noRouter = await call("POST", "/promotions", { release: "shop@2", environment: "dev", strategy: "blue-green" });
      assert.equal(noRouter.status, 422);
      assert.equal(err(noRouter).code, "TARGET_DRIVER_UNAVAILABLE");
      assert.equal(Number((await store.query<{ n: string }>("SELECT count(*) AS n FROM promotions")).rows[0]!.n), 0);

      const p = await call("POST", "/promotions", { release: "shop@2", environment: "dev", strategy: { kind: "rolling", batch: "50%" } });
      assert.equal(p.status, 201);
      assert.equal(p.body["state"], "deploying");
      assert.equal(p.body["strategySource"], "request");
      assert.deepEqual(p.body["strategy"], { kind: "rolling", batch: { percent: 50 }, soakSeconds: 0, rollback: "auto", failureThreshold: 0, approvalBetweenSteps: false });
      const rolloutId = p.body["rolloutId"] as string;
      assert.match(rolloutId, /^rol_/);
      const rollout = await call("GET", `/rollouts/${rolloutId}`);
      assert.equal(rollout.body["requestedBy"], `promotion:${String(p.body["id"])}`);
      assert.deepEqual((rollout.body["steps"] as { kind: string }[]).map((s) => s.kind), ["wave", "wave"]);
      const view = await call("GET", `/promotions/${String(p.body["id"])}`);
      assert.equal(view.body["rolloutId"], rolloutId);
      assert.equal((view.body["strategy"] as { kind: string }).kind, "rolling");
    });
  });
}
