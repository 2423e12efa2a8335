// The hash-chained audit log on both backends: appends chain, concurrent appends stay linear, tampering is named;
// the database refuses UPDATE/DELETE/TRUNCATE; a truncated or rewritten tail is caught by the signed anchors.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { EvidenceKey, signEvidence } from "@ferry/pki";
import { testBackends } from "../../adapters/store/test-backends.js";
import type { Store } from "../../ports/store.js";
import { EvidenceStore } from "../promotion/evidence-store.js";
import { AuditCheckpointer } from "./audit-anchor.js";
import { GENESIS_HASH, audit, listAudit, recordHash, verifyChain } from "./audit-log.js";

let key: EvidenceKey;
const dir = mkdtempSync(join(tmpdir(), "ferry-audit-"));
before(async () => {
  key = await EvidenceKey.loadOrCreate(join(dir, "evidence"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** What only the tables' owner can do: switch the append-only triggers off, as an intruder with those rights would. */
const asOwner = async (store: Store, sql: string, params: unknown[] = []) => {
  await store.transaction(async (tx) => {
    await tx.query("ALTER TABLE audit_log DISABLE TRIGGER USER");
    await tx.query(sql, params);
    await tx.query("ALTER TABLE audit_log ENABLE TRIGGER USER");
  });
};
const clock = { now: () => Date.UTC(2030, 0, 1) };

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
      await asOwner(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");
      let v = await verifyChain(store);
      assert.ok(!v.ok && v.brokenAt === 3 && /altered/.test(v.reason), JSON.stringify(v));
      await asOwner(store, "UPDATE audit_log SET actor = 'a' WHERE seq = 3");
      assert.equal((await verifyChain(store)).ok, true);
      await asOwner(store, "DELETE FROM audit_log WHERE seq = 2");
      v = await verifyChain(store);
      assert.ok(!v.ok && v.brokenAt === 2 && /missing/.test(v.reason), JSON.stringify(v));
    });

    it("refuses UPDATE, DELETE and TRUNCATE of the audit log, its checkpoints and the evidence in the database", async (t) => {
      const store = await b.open(t);
      await audit(store, { actor: "a", action: "x", object: "o", outcome: "ok" });
      await new AuditCheckpointer({ store, key, clock }).checkpoint();
      await store.transaction((tx) => new EvidenceStore({ store, key, clock }).record(tx, "deployment", "dep_1", { outcome: "succeeded" }));
      for (const sql of [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE audit_checkpoints SET head_seq = 0",
        "DELETE FROM audit_checkpoints",
        "UPDATE evidence SET kind = 'x'",
        "DELETE FROM evidence",
        "TRUNCATE evidence",
      ]) {
        await assert.rejects(store.query(sql), /append-only/, sql);
      }
      assert.equal((await listAudit(store)).length, 1);
    });

    it("detects the newest records deleted (a truncated chain) through the signed checkpoint", async (t) => {
      const store = await b.open(t);
      for (let i = 0; i < 20; i++) await audit(store, { actor: "a", action: "x", object: String(i), outcome: "ok" });
      const cp = new AuditCheckpointer({ store, key, clock });
      assert.deepEqual((await cp.checkpoint())?.seq, 20);
      assert.equal(await cp.checkpoint(), null, "no new checkpoint while the head did not move");
      const clean = await verifyChain(store, { keys: [key.publicKey] });
      assert.ok(clean.ok && clean.anchors?.checkpoints === 1 && clean.anchors.latest?.seq === 20, JSON.stringify(clean));
      await asOwner(store, "DELETE FROM audit_log WHERE seq > 10");
      // The chain that is left is consistent in itself: only the anchor shows what is missing.
      assert.equal((await verifyChain(store)).ok, true);
      const v = await verifyChain(store, { keys: [key.publicKey] });
      assert.ok(!v.ok && v.brokenAt === 11 && /truncated/.test(v.reason), JSON.stringify(v));
    });

    it("detects a tail rewritten with recomputed hashes, and a forged checkpoint", async (t) => {
      const store = await b.open(t);
      for (let i = 0; i < 6; i++) await audit(store, { actor: "a", action: "x", object: String(i), outcome: "ok" });
      await new AuditCheckpointer({ store, key, clock }).checkpoint();
      // Rewrite record 4 and re-chain 4..6 so the chain itself verifies.
      const recs = await listAudit(store);
      let prev = recs[2]!.hash;
      for (const r of recs.slice(3)) {
        const changed = { ...r, actor: r.seq === 4 ? "mallory" : r.actor };
        const hash = recordHash(prev, changed);
        await asOwner(store, "UPDATE audit_log SET actor = $2, prev_hash = $3, hash = $4 WHERE seq = $1", [r.seq, changed.actor, prev, hash]);
        prev = hash;
      }
      assert.equal((await verifyChain(store)).ok, true);
      const v = await verifyChain(store, { keys: [key.publicKey] });
      assert.ok(!v.ok && v.brokenAt === 6 && /rewritten/.test(v.reason), JSON.stringify(v));
      // A checkpoint written without the evidence key does not verify.
      const store2 = await b.open(t);
      await audit(store2, { actor: "a", action: "x", object: "1", outcome: "ok" });
      const other = await EvidenceKey.loadOrCreate(join(dir, `other-${b.name}`));
      const forged = signEvidence({ v: 1, kind: "audit.checkpoint", head: { seq: 1, hash: GENESIS_HASH }, createdAt: "2030-01-01T00:00:00.000Z" }, other);
      await store2.query("INSERT INTO audit_checkpoints (head_seq, head_hash, key_id, envelope, created_at) VALUES (1, $1, $2, $3, now())", [GENESIS_HASH, other.keyId, forged]);
      const f = await verifyChain(store2, { keys: [key.publicKey] });
      assert.ok(!f.ok && /does not verify/.test(f.reason), JSON.stringify(f));
    });

    it("anchors the head in every evidence packet, and checks a head the verifier saw before", async (t) => {
      const store = await b.open(t);
      for (let i = 0; i < 5; i++) await audit(store, { actor: "a", action: "x", object: String(i), outcome: "ok" });
      const evidence = new EvidenceStore({ store, key, clock });
      await store.transaction((tx) => evidence.record(tx, "deployment", "dep_1", { outcome: "succeeded" }));
      const head = (await listAudit(store))[4]!;
      const packet = await store.query<{ envelope: { payload: string } }>("SELECT envelope FROM evidence");
      const doc = JSON.parse(Buffer.from(packet.rows[0]!.envelope.payload, "base64").toString("utf8")) as { auditHead: { seq: number; hash: string } };
      assert.deepEqual(doc.auditHead, { seq: 5, hash: head.hash });
      for (let i = 0; i < 3; i++) await audit(store, { actor: "a", action: "y", object: String(i), outcome: "ok" });
      const witness = { seq: 8, hash: (await listAudit(store))[7]!.hash };
      assert.equal((await verifyChain(store, { keys: [key.publicKey], witness })).ok, true);
      // No checkpoint was signed: the evidence packet and the verifier's own memory are the anchors here.
      await asOwner(store, "DELETE FROM audit_log WHERE seq > 6");
      const byWitness = await verifyChain(store, { keys: [key.publicKey], witness });
      assert.ok(!byWitness.ok && /truncated/.test(byWitness.reason) && /--anchor/.test(byWitness.reason), JSON.stringify(byWitness));
      await asOwner(store, "DELETE FROM audit_log WHERE seq > 3");
      const byPacket = await verifyChain(store, { keys: [key.publicKey] });
      assert.ok(!byPacket.ok && /evidence packet/.test(byPacket.reason), JSON.stringify(byPacket));
    });
  });
}
