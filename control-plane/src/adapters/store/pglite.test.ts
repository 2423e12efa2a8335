// PGlite on disk: persistence and the data-directory lock (PGlite-only concerns; the shared contract is in
// store.test.ts).
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, it, type TestContext } from "node:test";
import { promisify } from "node:util";
import { loadMigrations, migrate } from "./migrate.js";
import { openStore } from "./open.js";
import { PgliteStore } from "./pglite.js";
import { lockPathFor } from "./pglite-lock.js";
import { StoreError } from "./store-error.js";
import { pgliteTemplate } from "./test-backends.js";

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const PGLITE_MODULE = pathToFileURL(fileURLToPath(new URL("./pglite.ts", import.meta.url))).href;
const T = { timeout: 120_000 };

/** A temporary directory and a way to close stores before it is removed (t.after hooks run first-in, first-out). */
function tempDir(t: TestContext): { dir: string; closeLater: (s: { close(): Promise<void> }) => void } {
  const dir = mkdtempSync(join(tmpdir(), "ferry-pglite-"));
  const stores: Array<{ close(): Promise<void> }> = [];
  t.after(async () => {
    for (const s of stores.reverse()) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, closeLater: (s) => stores.push(s) };
}

/** Runs a separate node process that tries to open `dataDir` and reports what happened as JSON. */
async function openInChildProcess(dataDir: string): Promise<{ ok?: boolean; code?: string; message?: string; pid?: number }> {
  const script = `
    const { PgliteStore } = await import(${JSON.stringify(PGLITE_MODULE)});
    try {
      const store = await PgliteStore.open({ dataDir: ${JSON.stringify(dataDir)} });
      await store.close();
      console.log(JSON.stringify({ ok: true }));
    } catch (err) {
      console.log(JSON.stringify({ code: err.code, message: err.message, pid: err.details?.pid }));
    }`;
  const { stdout } = await run(process.execPath, ["--conditions=ferry-source", "--import", "tsx", "--input-type=module", "-e", script], {
    cwd: REPO_ROOT,
    timeout: 90_000,
  });
  const last = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last) as { ok?: boolean; code?: string; message?: string; pid?: number };
}

/** The pid of a process that has exited: a lock holding it is stale. */
async function deadPid(): Promise<number> {
  const { stdout } = await run(process.execPath, ["-e", "console.log(process.pid)"]);
  return Number(stdout.trim());
}

describe("PGlite on disk", () => {
  it("keeps data across close and reopen, and migrates only once", T, async (t) => {
    const { dir: dataDir, closeLater } = tempDir(t);
    const first = await openStore({ dataDir });
    closeLater(first);
    assert.equal(first.kind, "pglite");
    await first.query("INSERT INTO control_plane_settings (key, value) VALUES ($1, $2)", ["greeting", JSON.stringify({ hello: "world" })]);
    assert.ok(existsSync(join(dataDir, "pglite", "PG_VERSION")), "data lives in <dataDir>/pglite");
    assert.equal(readFileSync(join(dataDir, "pglite.lock"), "utf8").trim(), String(process.pid));
    await first.close();
    assert.equal(existsSync(join(dataDir, "pglite.lock")), false, "close releases the lock");

    const second = await openStore({ dataDir });
    closeLater(second);
    const r = await second.query<{ value: unknown }>("SELECT value FROM control_plane_settings WHERE key = 'greeting'");
    assert.deepEqual(r.rows, [{ value: { hello: "world" } }]);
    const m = await second.query<{ n: number }>("SELECT count(*)::int AS n FROM ferry_migrations");
    assert.equal(m.rows[0]?.n, loadMigrations().length);
    assert.deepEqual(await migrate(second), [], "nothing left to apply after reopening");
  });

  it("refuses a second open of the same directory in this process (STORE_LOCKED)", T, async (t) => {
    const { dir, closeLater } = tempDir(t);
    const dataDir = join(dir, "db");
    const store = await PgliteStore.open({ dataDir, loadDataDir: await pgliteTemplate() });
    closeLater(store);
    await assert.rejects(PgliteStore.open({ dataDir }), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, "STORE_LOCKED");
      assert.match(err.message, /already open in this process/);
      return true;
    });
    // The refused open must not have disturbed the holder.
    assert.deepEqual((await store.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
  });

  it("refuses a second process with STORE_LOCKED naming the holder's pid", T, async (t) => {
    const { dir, closeLater } = tempDir(t);
    const dataDir = join(dir, "db");
    const store = await PgliteStore.open({ dataDir, loadDataDir: await pgliteTemplate() });
    closeLater(store);
    const child = await openInChildProcess(dataDir);
    assert.equal(child.code, "STORE_LOCKED", JSON.stringify(child));
    assert.equal(child.pid, process.pid);
    assert.match(child.message ?? "", new RegExp(`in use by process ${process.pid}`));
    assert.match(child.message ?? "", /lock file .*db\.lock/);
  });

  it("lets another process open the directory once the holder has closed it", T, async (t) => {
    const dataDir = join(tempDir(t).dir, "db");
    const store = await PgliteStore.open({ dataDir, loadDataDir: await pgliteTemplate() });
    await store.close();
    assert.deepEqual(await openInChildProcess(dataDir), { ok: true });
  });

  it("takes over a stale lock left by a process that no longer runs", T, async (t) => {
    const { dir, closeLater } = tempDir(t);
    const dataDir = join(dir, "db");
    const stale = await deadPid();
    writeFileSync(lockPathFor(dataDir), `${stale}\n`);
    const store = await PgliteStore.open({ dataDir, loadDataDir: await pgliteTemplate() });
    closeLater(store);
    assert.equal(readFileSync(lockPathFor(dataDir), "utf8").trim(), String(process.pid));
  });

  it("takes over a lock holding this process' pid that this process did not take (a restarted container's pid 1)", T, async (t) => {
    const { dir, closeLater } = tempDir(t);
    const dataDir = join(dir, "db");
    writeFileSync(lockPathFor(dataDir), `${process.pid}\n`);
    const store = await PgliteStore.open({ dataDir, loadDataDir: await pgliteTemplate() });
    closeLater(store);
    await assert.rejects(PgliteStore.open({ dataDir }), { code: "STORE_LOCKED", message: /already open in this process/ });
  });

  it("takes over a lock file with unreadable content", T, async (t) => {
    const { dir, closeLater } = tempDir(t);
    const dataDir = join(dir, "db");
    writeFileSync(lockPathFor(dataDir), "");
    const store = await PgliteStore.open({ dataDir, loadDataDir: await pgliteTemplate() });
    closeLater(store);
    assert.equal(readFileSync(lockPathFor(dataDir), "utf8").trim(), String(process.pid));
  });
});
