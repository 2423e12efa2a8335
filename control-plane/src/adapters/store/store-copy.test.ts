// copyStore: every row, byte for byte, from an embedded store into another store (PGlite always, PostgreSQL when
// FERRY_TEST_DATABASE_URL is set), in one transaction, into an empty database only.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import type { Store } from "../../ports/store.js";
import { audit, verifyChain } from "../../domain/audit/audit-log.js";
import { copyStore, StoreCopyError } from "./store-copy.js";
import { testBackends } from "./test-backends.js";

const pglite = testBackends()[0]!;
const T = { timeout: 120_000 };

/** Rows of every kind that is hard to carry: bytea, text[], jsonb, microsecond times, a self-reference, bigserial. */
async function seed(store: Store): Promise<void> {
  await store.query(
    `INSERT INTO api_tokens (id, subject, roles, token_hash, created_by, created_at) VALUES ('tok_1', 'ci', ARRAY['deployer','viewer'], '\\x00ff10'::bytea, 'test', '2026-01-02T03:04:05.123456Z')`,
  );
  await store.query(`INSERT INTO environments (name, position, settings, created_by) VALUES ('dev', 1, '{"gates": {"approvals": 2}, "note": "line\\nbreak ü"}', 'test'), ('prod', 2, '{}', 'test')`);
  await store.query(`INSERT INTO components (name, repository, created_by) VALUES ('web', 'registry.example/web', 'test')`);
  await store.query(`INSERT INTO agents (id, name, environment, labels, status) VALUES ('agt_1', 'a1', 'dev', '{"zone": "a"}', 'online')`);
  await store.query(`INSERT INTO targets (id, environment, name, kind, agent_id, config, created_by) VALUES ('tgt_1', 'dev', 'web', 'docker', 'agt_1', '{"container": "web"}', 'test')`);
  await store.query(`INSERT INTO releases (id, name, version, created_by) VALUES ('rel_1', 'web', '1', 'test')`);
  // A retry names the deployment it retries; inserted here child-last, as the application does.
  await store.query(`INSERT INTO deployments (id, environment, release_id, action, state, requested_by, created_at) VALUES ('dep_1', 'dev', 'rel_1', 'deploy', 'failed', 'ci', now() - interval '1 minute')`);
  await store.query(`INSERT INTO deployments (id, environment, release_id, action, state, retry_of, requested_by) VALUES ('dep_2', 'dev', 'rel_1', 'deploy', 'succeeded', 'dep_1', 'ci')`);
  for (let i = 0; i < 3; i++) {
    await store.query(`INSERT INTO evidence (id, kind, subject_id, hash, key_id, envelope, created_at) VALUES ($1, 'promotion.decision', 'prm_1', $2, 'key', $3, now())`, [`evd_${i}`, `h${i}`, JSON.stringify({ payload: `p${i}` })]);
  }
  // More than one batch (500 rows), hash-chained.
  for (let i = 0; i < 620; i++) await audit(store, { actor: "test", action: "test.event", object: `s${i}`, outcome: "ok", details: { i } });
}

async function dump(store: Store, table: string, order: string): Promise<string> {
  const r = await store.query<{ j: string }>(`SELECT coalesce(json_agg(row_to_json(t) ORDER BY ${order})::text, '[]') AS j FROM ${table} t`);
  return r.rows[0]?.j ?? "";
}

for (const b of testBackends()) {
  describe(`copyStore: PGlite -> ${b.name}`, () => {
    it("copies every row exactly, in one go, and the copy works on", T, async (t) => {
      const source = await pglite.open(t);
      await seed(source);
      const target = await b.open(t);
      const seen: string[] = [];
      const report = await copyStore(source, target, (table) => seen.push(table));
      const byTable = Object.fromEntries(report.tables.map((x) => [x.table, x.rows]));
      assert.equal(byTable.audit_log, 620);
      assert.equal(byTable.deployments, 2);
      assert.equal(byTable.evidence, 3);
      assert.ok(seen.indexOf("environments") < seen.indexOf("targets"), "parents before children");
      for (const [table, order] of [
        ["api_tokens", "id"],
        ["environments", "name"],
        ["agents", "id"],
        ["targets", "id"],
        ["deployments", "id"],
        ["evidence", "seq"],
        ["audit_log", "seq"],
      ] as const) {
        assert.equal(await dump(target, table, order), await dump(source, table, order), `${table} is identical`);
      }
      assert.deepEqual(await verifyChain(target), await verifyChain(source), "the audit chain verifies on the copy");
      // bigserial moved past the copied values: the next insert does not collide.
      await target.query(`INSERT INTO evidence (id, kind, subject_id, hash, key_id, envelope, created_at) VALUES ('evd_next', 'k', 's', 'hnext', 'key', '{}', now())`);
      const seq = await target.query<{ seq: string }>("SELECT seq::text AS seq FROM evidence WHERE id = 'evd_next'");
      assert.equal(seq.rows[0]?.seq, "4");
      await audit(target, { actor: "test", action: "after.copy", object: "x", outcome: "ok", details: {} });
      assert.equal((await verifyChain(target)).ok, true);
    });

    it("refuses a target that already holds data and writes nothing", T, async (t) => {
      const source = await pglite.open(t);
      await seed(source);
      const target = await b.open(t);
      await target.query(`INSERT INTO components (name, repository, created_by) VALUES ('other', 'r/other', 'test')`);
      await assert.rejects(copyStore(source, target), (err: unknown) => err instanceof StoreCopyError && /not empty \(table components has rows\)/.test(err.message));
      const n = await target.query<{ n: number }>("SELECT (SELECT count(*) FROM environments)::int + (SELECT count(*) FROM audit_log)::int AS n");
      assert.equal(n.rows[0]?.n, 0);
    });

    it("writes nothing when a row cannot be written (one transaction)", T, async (t) => {
      const source = await pglite.open(t);
      await seed(source);
      const target = await b.open(t);
      // A constraint the source does not have: the copy of that table fails after earlier tables were written.
      await target.query("ALTER TABLE deployments ADD CONSTRAINT no_retries CHECK (retry_of IS NULL)");
      await assert.rejects(copyStore(source, target), /no_retries/);
      const n = await target.query<{ n: number }>("SELECT (SELECT count(*) FROM environments)::int + (SELECT count(*) FROM releases)::int AS n");
      assert.equal(n.rows[0]?.n, 0, "earlier tables rolled back");
    });

    it("refuses stores at different schema versions", T, async (t) => {
      const source = await pglite.open(t);
      const target = await b.open(t, { migrate: false });
      await assert.rejects(copyStore(source, target), (err: unknown) => err instanceof StoreCopyError && /different schema versions \(source \d+, target none\)/.test(err.message));
    });
  });
}
