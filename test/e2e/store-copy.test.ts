// Moving from the embedded database to a PostgreSQL server with `ferry store copy` (docs/operations.md): a real
// `ferry server` on PGlite, stopped; the real CLI copies its data into a new PostgreSQL database; a server started on
// that database with the same data directory serves the same estate to the same admin token, with the audit chain
// intact. Needs FERRY_TEST_DATABASE_URL (a PostgreSQL server), like the other PostgreSQL suites.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { TestControlPlane } from "../helpers/control-plane.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { FERRY_BIN, run } from "../helpers/processes.js";

const baseUrl = testDatabaseUrl();

describe("ferry store copy: PGlite to a PostgreSQL server", { skip: baseUrl ? false : POSTGRES_SKIP_REASON }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), "ferry-store-copy-"));
  const cleanups: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("copies the estate; the control plane runs on the copy with the same token, agents and audit chain", { timeout: 240_000 }, async () => {
    const embedded = await TestControlPlane.start({ dataDir });
    cleanups.push(() => embedded.proc.kill("SIGTERM"));
    assert.equal((await embedded.api("POST", "/api/v1/environments", { name: "dev" })).status, 201);
    assert.equal((await embedded.api("POST", "/api/v1/environments", { name: "prod" })).status, 201);
    assert.equal((await embedded.api("POST", "/api/v1/components", { name: "web", repository: "127.0.0.1:5000/web" })).status, 201);
    await embedded.createJoinString("dev");
    const before = await embedded.api<{ ok: boolean; records: number; head: string }>("GET", "/api/v1/audit/verify");
    assert.equal(before.body.ok, true);
    assert.ok(before.body.records >= 4);

    // While the server runs, its data directory is locked: the copy refuses instead of reading a live database.
    const db = await createDatabase(baseUrl as string);
    cleanups.push(() => db.drop());
    const locked = await run(FERRY_BIN, ["store", "copy", "--data-dir", dataDir, "--to", db.url], {}, 120_000);
    assert.equal(locked.code, 2, locked.stderr);
    assert.match(locked.stderr, /STORE_LOCKED/);

    await embedded.proc.kill("SIGTERM");
    const copied = await run(FERRY_BIN, ["store", "copy", "--data-dir", dataDir, "--to", db.url], {}, 120_000);
    assert.equal(copied.code, 0, copied.stderr);
    assert.match(copied.stderr, /copied \d+ rows in \d+ tables/);

    // A second copy into the same database is refused: it is no longer empty.
    const again = await run(FERRY_BIN, ["store", "copy", "--data-dir", dataDir, "--to", db.url], {}, 120_000);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /STORE_COPY_REFUSED: the target database is not empty/);

    const server = await TestControlPlane.start({ dataDir, databaseUrl: db.url });
    cleanups.push(() => server.proc.kill("SIGTERM"));
    const envs = await server.api<{ environments: Array<{ name: string }> }>("GET", "/api/v1/environments");
    assert.equal(envs.status, 200, "the admin token from the embedded days still works");
    assert.deepEqual(envs.body.environments.map((e) => e.name), ["dev", "prod"]);
    const verdict = await server.api<{ ok: boolean; records: number; head: string }>("GET", "/api/v1/audit/verify");
    assert.equal(verdict.body.ok, true);
    assert.ok(verdict.body.records >= before.body.records, "every audit record came along and the chain verifies");
    // New writes continue the chain on PostgreSQL.
    assert.equal((await server.api("POST", "/api/v1/environments", { name: "staging" })).status, 201);
    assert.equal((await server.api<{ ok: boolean }>("GET", "/api/v1/audit/verify")).body.ok, true);
  });
});
