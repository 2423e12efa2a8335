import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import type { Store } from "../../ports/store.js";
import { checksum, loadMigrations, migrate } from "./migrate.js";
import { StoreError } from "./store-error.js";
import { testBackends } from "./test-backends.js";

const T = { timeout: 120_000 }; // a bound for hangs, generous because PGlite start-up is slow on a busy machine

/** A throwaway migrations folder, removed after the test. */
function migrationsDir(t: TestContext, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-migrations-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
  return dir;
}

async function recorded(store: Store): Promise<Array<{ id: number; n: number }>> {
  const r = await store.query<{ id: number; n: number }>("SELECT id, count(*)::int AS n FROM ferry_migrations GROUP BY id ORDER BY id");
  return r.rows;
}

describe("migration files", () => {
  it("are numbered NNNN_name.sql, in order, with unique numbers", () => {
    const migrations = loadMigrations();
    assert.ok(migrations.length >= 1);
    assert.equal(migrations[0]?.name, "0001_fleet");
    const ids = migrations.map((m) => m.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(new Set(ids).size, ids.length);
  });

  it("checksums ignore CRLF line endings", () => {
    assert.equal(checksum("CREATE TABLE a (i int);\r\nSELECT 1;\r\n"), checksum("CREATE TABLE a (i int);\nSELECT 1;\n"));
    assert.notEqual(checksum("SELECT 1;"), checksum("SELECT 2;"));
  });

  it("refuses a misnamed or duplicate-numbered file", (t) => {
    assert.throws(() => loadMigrations(migrationsDir(t, { "001_short.sql": "SELECT 1" })), /NNNN_name\.sql/);
    assert.throws(() => loadMigrations(migrationsDir(t, { "0001_a.sql": "SELECT 1", "0001_b.sql": "SELECT 1" })), /same number/);
  });
});

for (const b of testBackends()) {
  describe(`migrate on ${b.name}`, () => {
    it("applies every migration once; a second run is a no-op", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const all = loadMigrations().map((m) => m.id);
      const infos: string[] = [];
      const log = { warn: () => {}, info: (obj: Record<string, unknown>) => infos.push(String(obj["migration"])) };
      assert.deepEqual(await migrate(store, { log }), all);
      assert.deepEqual(infos, loadMigrations().map((m) => m.name));
      assert.deepEqual(await migrate(store), []);
      assert.deepEqual(await recorded(store), all.map((id) => ({ id, n: 1 })));
      const row = await store.query<{ name: string; checksum: string; applied_at: Date }>("SELECT name, checksum, applied_at FROM ferry_migrations WHERE id = 1");
      assert.equal(row.rows[0]?.name, "0001_fleet");
      assert.equal(row.rows[0]?.checksum, loadMigrations()[0]?.checksum);
      assert.ok(row.rows[0]?.applied_at instanceof Date);
    });

    it("applies only what is new when the build gains migrations", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const first = { "0001_a.sql": "CREATE TABLE a (i int);" };
      assert.deepEqual(await migrate(store, { dir: migrationsDir(t, first) }), [1]);
      const later = { ...first, "0002_b.sql": "CREATE TABLE b (i int);\nINSERT INTO b VALUES (1);", "0010_c.sql": "ALTER TABLE a ADD COLUMN j int;" };
      assert.deepEqual(await migrate(store, { dir: migrationsDir(t, later) }), [2, 10]);
      assert.equal((await store.query("SELECT j FROM a")).rowCount, 0);
    });

    it("refuses to start when an applied migration's file changed (MIGRATION_CHANGED)", T, async (t) => {
      const store = await b.open(t);
      await store.query("UPDATE ferry_migrations SET checksum = $1 WHERE id = 1", ["0".repeat(64)]);
      await assert.rejects(migrate(store), (err: unknown) => {
        assert.ok(err instanceof StoreError);
        assert.equal(err.code, "MIGRATION_CHANGED");
        assert.match(err.message, /0001_fleet\.sql was applied with checksum 000000000000/);
        return true;
      });
    });

    it("refuses a build that lacks a migration the database has applied (MIGRATION_CHANGED)", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const both = { "0001_a.sql": "CREATE TABLE a (i int);", "0002_b.sql": "CREATE TABLE b (i int);" };
      await migrate(store, { dir: migrationsDir(t, both) });
      const gap = { "0001_a.sql": both["0001_a.sql"], "0003_c.sql": "CREATE TABLE c (i int);" };
      await assert.rejects(migrate(store, { dir: migrationsDir(t, gap) }), { code: "MIGRATION_CHANGED", message: /0002_b is recorded as applied but is missing/ });
    });

    it("refuses a database migrated by a newer Ferry (DATABASE_NEWER)", T, async (t) => {
      const store = await b.open(t);
      await store.query("INSERT INTO ferry_migrations (id, name, checksum) VALUES (9999, '9999_future', 'x')");
      await assert.rejects(migrate(store), (err: unknown) => {
        assert.ok(err instanceof StoreError);
        assert.equal(err.code, "DATABASE_NEWER");
        assert.match(err.message, /9999_future/);
        assert.match(err.message, /refusing to start/);
        return true;
      });
    });

    it("leaves nothing behind when a migration fails, and names it", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const dir = migrationsDir(t, {
        "0001_ok.sql": "CREATE TABLE ok (i int);",
        "0002_bad.sql": "CREATE TABLE half (i int);\nINSERT INTO half VALUES (1);\nSELEC broken;",
      });
      await assert.rejects(migrate(store, { dir }), /migration 0002_bad\.sql failed: .*SQLSTATE 42601/);
      assert.deepEqual(await recorded(store), [{ id: 1, n: 1 }]);
      const half = await store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'half' AND table_schema = current_schema()");
      assert.equal(half.rowCount, 0, "the failed migration's table was rolled back");
    });

    if (b.kind === "postgres") {
      it("lets replicas that start together race: each migration is applied exactly once", T, async (t) => {
        const first = await b.open(t, { migrate: false });
        const others = [await b.open(t, { migrate: false, shareWith: first }), await b.open(t, { migrate: false, shareWith: first })];
        const results = await Promise.all([first, ...others].map((s) => migrate(s)));
        const all = loadMigrations().map((m) => m.id);
        assert.deepEqual(results.flat().sort((x, y) => x - y), all, `each id applied by exactly one replica: ${JSON.stringify(results)}`);
        assert.deepEqual(await recorded(first), all.map((id) => ({ id, n: 1 })));
      });

      it("interleaves racing replicas migration by migration without double-applying", T, async (t) => {
        const files: Record<string, string> = {};
        for (let i = 1; i <= 12; i++) {
          const id = String(i).padStart(4, "0");
          // Not idempotent on purpose: applying any of these twice fails.
          files[`${id}_step.sql`] = `CREATE TABLE step_${i} (i int); INSERT INTO step_${i} VALUES (${i});`;
        }
        const dir = migrationsDir(t, files);
        const first = await b.open(t, { migrate: false });
        const stores = [first, ...(await Promise.all([1, 2, 3].map(() => b.open(t, { migrate: false, shareWith: first }))))];
        const results = await Promise.all(stores.map((s) => migrate(s, { dir })));
        assert.deepEqual(results.flat().sort((x, y) => x - y), Array.from({ length: 12 }, (_, i) => i + 1));
        assert.deepEqual(await recorded(first), Array.from({ length: 12 }, (_, i) => ({ id: i + 1, n: 1 })));
      });
    }
  });
}
