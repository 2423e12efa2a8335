// The hash-chained audit log on both backends: appends chain, concurrent appends stay linear, tampering is named.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { testBackends } from "../../adapters/store/test-backends.js";
import { audit, listAudit, verifyChain } from "./audit-log.js";

for (const b of testBackends()) {
  describe(`audit log on ${b.name}`, () => {
    it("chains records and verifies", async (t) => {
      const store = await b.open(t);
      for (let i = 0; i < 5; i++) await audit(store, { actor: "alice", action: "x.do", object: `o${i}`, outcome: "ok", details: { i } });
      const v = await verifyChain(store);
      assert.deepEqual({ ok: v.ok, records: v.records }, { ok: true, records: 5 });
      const recs = await listAudit(store);
      assert.deepEqual(recs.map((r) => r.seq), [1, 2, 3, 4, 5]);
      for (let i = 1; i < recs.length; i++) assert.equal(recs[i]?.prevHash, recs[i - 1]?.hash);
    });

    it("stays one linear chain under concurrent appends", async (t) => {
      const store = await b.open(t);
      await Promise.all(Array.from({ length: 20 }, (_, i) => audit(store, { actor: "a", action: "x", object: String(i), outcome: "ok" })));
      const v = await verifyChain(store);
      assert.equal(v.ok, true);
      assert.equal(v.records, 20);
    });

    it("names the record that was altered, deleted or inserted", async (t) => {
      const store = await b.open(t);
      for (let i = 0; i < 4; i++) await audit(store, { actor: "a", action: "x", object: String(i), outcome: "ok" });
      await store.query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");
      let v = await verifyChain(store);
      assert.ok(!v.ok && v.brokenAt === 3 && /altered/.test(v.reason), JSON.stringify(v));
      await store.query("UPDATE audit_log SET actor = 'a' WHERE seq = 3");
      assert.equal((await verifyChain(store)).ok, true);
      await store.query("DELETE FROM audit_log WHERE seq = 2");
      v = await verifyChain(store);
      assert.ok(!v.ok && v.brokenAt === 2 && /missing/.test(v.reason), JSON.stringify(v));
    });
  });
}
