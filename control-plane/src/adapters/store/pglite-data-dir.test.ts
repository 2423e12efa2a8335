import { strict as assert } from "node:assert";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { PgliteStore } from "./pglite.js";
import { isStoreError } from "./store-error.js";

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-pgdir-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function modes(dir: string): { loose: string[]; count: number } {
  const loose: string[] = [];
  let count = 0;
  const walk = (d: string) => {
    count++;
    if ((statSync(d).mode & 0o077) !== 0) loose.push(d);
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        count++;
        if ((statSync(p).mode & 0o077) !== 0) loose.push(p);
      }
    }
  };
  walk(dir);
  return { loose, count };
}

async function seeded(dir: string): Promise<void> {
  const s = await PgliteStore.open({ dataDir: dir });
  await s.query("CREATE TABLE t (v text)");
  await s.query("INSERT INTO t VALUES ('kept')");
  await s.close();
}

describe("PGlite data directory", () => {
  it("is private after every open: no file or directory readable or writable by group or others", async (t) => {
    const dir = join(tempDir(t), "pglite");
    const s = await PgliteStore.open({ dataDir: dir });
    await s.close();
    const first = modes(dir);
    assert.ok(first.count > 50, "the tree was walked");
    assert.deepEqual(first.loose, []);
    // An existing directory left world-writable (as PGlite used to leave it) is made private at the next open.
    chmodSync(dir, 0o755);
    chmodSync(join(dir, "PG_VERSION"), 0o666);
    chmodSync(join(dir, "base"), 0o777);
    const again = await PgliteStore.open({ dataDir: dir });
    await again.close();
    assert.deepEqual(modes(dir).loose, []);
  });

  it("never initialises over a non-empty directory whose PG_VERSION is gone: the data stays, the start is refused", async (t) => {
    const dir = join(tempDir(t), "pglite");
    await seeded(dir);
    unlinkSync(join(dir, "PG_VERSION"));
    await assert.rejects(PgliteStore.open({ dataDir: dir }), (err: unknown) => {
      assert.ok(isStoreError(err, "STORE_CORRUPT"), String(err));
      assert.match(err.message, /PG_VERSION is missing.*never initialises over a non-empty database directory/);
      return true;
    });
    // Put back, the same data opens again: nothing was overwritten.
    writeFileSync(join(dir, "PG_VERSION"), "18\n");
    const s = await PgliteStore.open({ dataDir: dir });
    t.after(() => s.close());
    assert.deepEqual((await s.query<{ v: string }>("SELECT v FROM t")).rows, [{ v: "kept" }]);
  });

  it("turns PGlite's abort on a damaged control file into STORE_CORRUPT with the directory named", async (t) => {
    const dir = join(tempDir(t), "pglite");
    await seeded(dir);
    truncateSync(join(dir, "global", "pg_control"), 0);
    await assert.rejects(PgliteStore.open({ dataDir: dir }), (err: unknown) => {
      assert.ok(isStoreError(err, "STORE_CORRUPT"), String(err));
      assert.match(err.message, new RegExp(`the embedded database in ${dir.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is damaged: PostgreSQL could not start on it`));
      return true;
    });
  });

  it("initialises an empty directory as a new database", async (t) => {
    const dir = join(tempDir(t), "pglite");
    mkdirSync(dir);
    const s = await PgliteStore.open({ dataDir: dir });
    t.after(() => s.close());
    assert.deepEqual((await s.query<{ n: number }>("SELECT 1 AS n")).rows, [{ n: 1 }]);
  });
});
