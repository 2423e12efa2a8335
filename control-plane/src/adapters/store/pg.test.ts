// PostgreSQL-only behaviour: several replicas (Store instances, each with its own pool) on one server, row locks
// across connections, and the LISTEN connection surviving the loss of its session.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { Client } from "pg";
import { openStore } from "./open.js";
import { PostgresStore } from "./pg.js";
import { testBackends, testDatabaseUrl, TEST_DATABASE_URL_ENV } from "./test-backends.js";
import { deferred, Inbox, uniqueChannel, within } from "./test-inbox.js";

const T = { timeout: 60_000 };
const url = testDatabaseUrl();
const pgBackend = testBackends().find((b) => b.kind === "postgres");

describe("postgres replicas", { skip: pgBackend ? false : `${TEST_DATABASE_URL_ENV} is not set` }, () => {
  const b = pgBackend!;

  it("delivers a notification sent by another replica", T, async (t) => {
    const a = await b.open(t, { migrate: false });
    const other = await b.open(t, { migrate: false, shareWith: a });
    const channel = uniqueChannel("replica");
    const inbox = new Inbox();
    await a.listen(channel, inbox.handler);
    await other.notify(channel, "from the other replica");
    await inbox.waitFor("from the other replica");
  });

  it("keeps a row locked FOR UPDATE by one worker out of another's SKIP LOCKED claim", T, async (t) => {
    const a = await b.open(t, { migrate: false });
    const other = await b.open(t, { migrate: false, shareWith: a });
    await a.query("CREATE TABLE jobs (id int PRIMARY KEY, claimed_by text)");
    await a.query("INSERT INTO jobs (id) VALUES (1), (2), (3)");
    const claim = "SELECT id FROM jobs WHERE claimed_by IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
    // Both workers hold their claim open until both have claimed, so the second one must have skipped the first's
    // locked row rather than run after it committed.
    const claimed = [deferred<number>(), deferred<number>()];
    const both = Promise.all(claimed.map((c) => c.promise));
    const work = [a, other].map((store, i) =>
      store.transaction(async (tx) => {
        const id = (await tx.query<{ id: number }>(claim)).rows[0]?.id ?? -1;
        claimed[i]?.resolve(id);
        await both;
        await tx.query("UPDATE jobs SET claimed_by = $2 WHERE id = $1", [id, `w${i}`]);
        return id;
      }),
    );
    const ids = await Promise.all(work);
    assert.notEqual(ids[0], ids[1]);
    assert.deepEqual([...ids].sort(), [1, 2]);
  });

  it("re-LISTENs after the listener's session is terminated, and says so", T, async (t) => {
    const warnings: string[] = [];
    const reconnected = deferred();
    const store = await b.open(t, {
      migrate: false,
      log: { warn: (_obj, msg) => warnings.push(msg) },
      postgres: { onListenerReconnect: () => reconnected.resolve() },
    });
    assert.ok(store instanceof PostgresStore);
    const channel = uniqueChannel("survivor");
    const inbox = new Inbox();
    await store.listen(channel, inbox.handler);
    await store.notify(channel, "before");
    await inbox.waitFor("before");

    const pid = store.listenerPid();
    assert.ok(pid);
    await store.query("SELECT pg_terminate_backend($1)", [pid]);
    await within(reconnected.promise, 15_000, "the listener to reconnect");
    assert.notEqual(store.listenerPid(), pid);

    await store.notify(channel, "after");
    await inbox.waitFor("after");
    assert.ok(warnings.some((w) => /listener connection lost/.test(w)), JSON.stringify(warnings));
    assert.ok(warnings.some((w) => /reconnected and LISTENs again/.test(w)), JSON.stringify(warnings));
  });

  it("keeps each schema's tables apart", T, async (t) => {
    const a = await b.open(t, { migrate: false });
    const c = await b.open(t, { migrate: false });
    await a.query("CREATE TABLE only_in_a (i int)");
    await assert.rejects(c.query("SELECT * FROM only_in_a"), { code: "42P01" });
  });

  it("reports pool occupancy, and destroy() frees a transaction that never ends", T, async (t) => {
    const store = await b.open(t, { migrate: false });
    assert.ok(store instanceof PostgresStore);
    const inside = deferred();
    const never = new Promise<void>(() => {});
    const stuck = store.transaction(async (tx) => {
      await tx.query("SELECT 1");
      inside.resolve();
      await never;
    });
    await inside.promise;
    const stats = store.poolStats();
    assert.equal(stats.total - stats.idle, 1);
    await store.destroy();
    assert.equal(store.poolStats().total, 0);
    // The abandoned callback never settles, so the transaction promise stays pending; nothing else is left open.
    void stuck.catch(() => {});
  });
});

describe("openStore against PostgreSQL", { skip: url ? false : `${TEST_DATABASE_URL_ENV} is not set` }, () => {
  it("creates the schema, migrates, and returns a postgres store", T, async (t) => {
    const schema = `ferry_t_${randomBytes(6).toString("hex")}`;
    t.after(async () => {
      const admin = new Client({ connectionString: url });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    });
    const store = await openStore({ databaseUrl: url!, schema });
    try {
      assert.equal(store.kind, "postgres");
      const r = await store.query<{ schema: string; n: number }>(
        "SELECT current_schema() AS schema, (SELECT count(*)::int FROM ferry_migrations) AS n",
      );
      assert.equal(r.rows[0]?.schema, schema);
      assert.ok((r.rows[0]?.n ?? 0) >= 1);
      // Two replicas starting against the same schema: the second finds everything in place.
      const second = await openStore({ databaseUrl: url!, schema });
      await second.close();
    } finally {
      await store.close();
    }
  });
});
