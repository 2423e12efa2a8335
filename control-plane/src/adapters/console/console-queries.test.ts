// The console's metrics on both store backends, from rows whose answer is known.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { testBackends } from "../store/test-backends.js";
import { consoleMetrics, deploymentsOfRelease, promotionsOfRelease } from "./console-queries.js";

for (const b of testBackends()) {
  describe(`console metrics (${b.name})`, () => {
    it("counts deployments, success rate, rollbacks, lead time to the last environment and waiting promotions", async (t) => {
      const store = await b.open(t);
      await store.query("INSERT INTO environments (name, position, created_by) VALUES ('dev', 1, 't'), ('prod', 2, 't')");
      // r1 cut 10 h ago, first in prod 4 h ago (6 h); r2 cut 5 h ago, in prod 3 h ago (2 h), again 1 h ago (not first).
      await store.query(`INSERT INTO releases (id, name, version, created_by, created_at) VALUES
        ('r1', 'shop', '1', 't', now() - interval '10 hours'), ('r2', 'shop', '2', 't', now() - interval '5 hours'), ('r3', 'shop', '3', 't', now() - interval '1 hour')`);
      const dep = (id: string, env: string, rel: string | null, action: string, state: string, hoursAgo: number) =>
        store.query(
          `INSERT INTO deployments (id, environment, release_id, action, state, requested_by, created_at, finished_at)
           VALUES ($1, $2, $3, $4, $5, 't', now() - make_interval(hours => $6), CASE WHEN $5 IN ('succeeded', 'failed') THEN now() - make_interval(hours => $6) END)`,
          [id, env, rel, action, state, hoursAgo],
        );
      await dep("d1", "dev", "r1", "deploy", "succeeded", 9);
      await dep("d2", "prod", "r1", "deploy", "succeeded", 4);
      await dep("d3", "prod", "r2", "deploy", "succeeded", 3);
      await dep("d4", "prod", "r2", "deploy", "succeeded", 1);
      await dep("d5", "dev", "r3", "deploy", "failed", 1);
      await dep("d6", "dev", null, "rollback", "succeeded", 1);
      await dep("d7", "dev", "r3", "deploy", "running", 0);
      await store.query(`INSERT INTO promotions (id, release_id, environment, state, digest_set_hash, requested_by, requested_at, expires_at, updated_at)
        VALUES ('p1', 'r3', 'prod', 'awaiting_gates', 'h', 'rita', now() - interval '90 minutes', now() + interval '1 day', now()),
               ('p2', 'r2', 'prod', 'succeeded', 'h', 'rita', now() - interval '4 hours', now() + interval '1 day', now())`);
      const m = await consoleMetrics(store);
      assert.deepEqual(m.deployments, { total: 7, succeeded: 5, failed: 1, cancelled: 0, running: 1, successRate: 5 / 6 });
      assert.equal(m.rollbacks, 1);
      assert.equal(m.leadTimeToLast.environment, "prod");
      assert.equal(m.leadTimeToLast.samples, 2);
      // median of 6 h and 2 h
      assert.ok(Math.abs(m.leadTimeToLast.medianSeconds! - 4 * 3600) < 5, String(m.leadTimeToLast.medianSeconds));
      assert.deepEqual(m.waiting.map((w) => [w.id, w.environment, w.release]), [["p1", "prod", "shop@3"]]);
      assert.ok(Math.abs(m.waiting[0]!.waitingSeconds - 5400) < 5);
      assert.equal(m.daily.reduce((n, d) => n + d.succeeded, 0), 5);
      assert.deepEqual((await deploymentsOfRelease(store, "r2")).map((d) => d.id), ["d4", "d3"]);
      assert.deepEqual((await promotionsOfRelease(store, "r2")).map((p) => p.id), ["p2"]);
    });

    it("answers an empty store with zeros and nulls, not errors", async (t) => {
      const store = await b.open(t);
      const m = await consoleMetrics(store);
      assert.equal(m.deployments.total, 0);
      assert.equal(m.deployments.successRate, null);
      assert.deepEqual(m.leadTimeToLast, { environment: null, medianSeconds: null, samples: 0 });
      assert.deepEqual(m.waiting, []);
    });
  });
}
