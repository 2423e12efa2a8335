// The embedded PostgreSQL's memory settings and its out-of-process first initialisation (pglite-settings.ts,
// pglite-initdb.ts). What the settings save is measured by `npm run bench:footprint`, not asserted here.
import { strict as assert } from "node:assert";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { holdsCluster, initialiseDataDir } from "./pglite-initdb.js";
import { PgliteStore } from "./pglite.js";
import { PGLITE_SERVER_SETTINGS, pgliteInitdbParams, pgliteStartParams } from "./pglite-settings.js";

const T = { timeout: 180_000 };

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-pglite-settings-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function settings(store: PgliteStore): Promise<Record<string, string>> {
  const names = ["shared_buffers", "maintenance_work_mem", "default_statistics_target", "log_startup_progress_interval", "full_page_writes"];
  const r = await store.query<{ name: string; value: string }>("SELECT name, current_setting(name) AS value FROM unnest($1::text[]) AS name", [names]);
  return Object.fromEntries(r.rows.map((x) => [x.name, x.value]));
}

describe("PGlite settings", () => {
  it("start parameters keep PGlite's own and add every Ferry setting as -c", () => {
    const p = pgliteStartParams();
    assert.equal(p[0], "--single", "single-user mode must stay the first argument");
    for (const [k, v] of Object.entries(PGLITE_SERVER_SETTINGS)) {
      const i = p.indexOf(`${k}=${v}`);
      assert.ok(i > 0 && p[i - 1] === "-c", `${k}=${v} passed with -c`);
    }
    assert.deepEqual(pgliteInitdbParams(), ["--set", `shared_buffers=${PGLITE_SERVER_SETTINGS.shared_buffers}`]);
  });

  it("an in-memory store runs with the settings (durability settings unchanged)", T, async (t) => {
    const store = await PgliteStore.open();
    t.after(() => store.close());
    const s = await settings(store);
    assert.equal(s.shared_buffers, "16MB");
    assert.equal(s.maintenance_work_mem, "16MB");
    assert.equal(s.default_statistics_target, "10", "ANALYZE samples 3,000 rows of a table, not 30,000");
    assert.equal(s.log_startup_progress_interval, "0");
    assert.equal(s.full_page_writes, "on");
  });

  it("a new data directory is initialised out of process, with the settings in its postgresql.conf", T, async (t) => {
    const dataDir = join(tempDir(t), "db");
    const store = await PgliteStore.open({ dataDir });
    t.after(() => store.close());
    assert.ok(holdsCluster(dataDir));
    assert.equal(statSync(dataDir).mode & 0o777, 0o700, "the cluster directory is private");
    assert.match(readFileSync(join(dataDir, "postgresql.conf"), "utf8"), /^shared_buffers = 16MB/m);
    assert.deepEqual(
      readdirSync(join(dataDir, "..")).filter((n) => n.includes(".init-")),
      [],
      "no scratch directory is left behind",
    );
    const s = await settings(store);
    assert.equal(s.shared_buffers, "16MB");
    await store.query("CREATE TABLE t (x int)");
    await store.close();
    const again = await PgliteStore.open({ dataDir });
    t.after(() => again.close());
    assert.deepEqual((await again.query("SELECT count(*)::int AS n FROM t")).rows, [{ n: 0 }], "reopened, not initialised again");
  });

  it("removes what an interrupted initialisation left and initialises an empty directory", T, async (t) => {
    const dir = tempDir(t);
    const dataDir = join(dir, "db");
    mkdirSync(dataDir); // PGlite leaves an empty directory behind when its own start fails
    mkdirSync(`${dataDir}.init-99999`);
    writeFileSync(join(`${dataDir}.init-99999`, "PG_VERSION"), "18\n");
    await initialiseDataDir(dataDir);
    assert.ok(holdsCluster(dataDir));
    assert.equal(existsSync(`${dataDir}.init-99999`), false);
  });

  it("refuses a directory that holds files but no cluster, and changes nothing in it", T, async (t) => {
    const dataDir = join(tempDir(t), "db");
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, "notes.txt"), "mine\n");
    await assert.rejects(initialiseDataDir(dataDir), /not empty but holds no cluster/);
    assert.deepEqual(readdirSync(dataDir), ["notes.txt"]);
  });
});
