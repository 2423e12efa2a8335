import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { needsOwnMaintenance, startMaintenance } from "./maintenance.js";
import { testBackends } from "./test-backends.js";

for (const b of testBackends()) {
  describe(`store maintenance on ${b.name}`, () => {
    it("maintains the database exactly when nothing else does, giving the planner statistics", async (t) => {
      const store = await b.open(t);
      const autovacuum = b.kind === "postgres" ? (await store.query<{ v: string }>("SELECT current_setting('autovacuum') AS v")).rows[0]?.v : "none";
      assert.equal(await needsOwnMaintenance(store), b.kind === "pglite" || autovacuum !== "on");
      await store.query(`INSERT INTO components (name, repository, created_by) VALUES ('web', 'r:5000/web', 'a')`);
      const warned: string[] = [];
      const stop = await startMaintenance(store, { info: () => {}, warn: (_o, m) => warned.push(m) }, { vacuumEveryMs: 20 });
      try {
        if (!(await needsOwnMaintenance(store))) return; // a server with autovacuum on: nothing more to check
        // The start-up ANALYZE has run: the planner knows how many components there are.
        const stats = await store.query<{ n: number }>(`SELECT reltuples::int AS n FROM pg_class WHERE oid = 'components'::regclass`);
        assert.equal(stats.rows[0]?.n, 1);
        // The vacuum timer runs without disturbing other work, and warns of nothing but autovacuum being off.
        await new Promise((r) => setTimeout(r, 100));
        await store.query("SELECT 1");
        assert.equal(warned.length, b.kind === "postgres" ? 1 : 0, warned.join("; "));
      } finally {
        await stop(); // waits for a VACUUM under way, so the store is idle when the test ends
      }
    });
  });
}
