// The Store contract, run on every backend testBackends() yields (PGlite always, PostgreSQL when configured).
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { preparedStatement, type Queryable, type Store } from "../../ports/store.js";
import { connectionLeak, testBackends } from "./test-backends.js";
import { deferred, Inbox, uniqueChannel } from "./test-inbox.js";

const T = { timeout: 120_000 }; // a bound for hangs, generous because PGlite start-up is slow on a busy machine

async function kvTable(store: Store): Promise<void> {
  await store.query("CREATE TABLE kv (k text PRIMARY KEY, v integer NOT NULL DEFAULT 0)");
}

async function count(store: Store, table = "kv"): Promise<number> {
  const r = await store.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r.rows[0]?.n ?? -1;
}

for (const b of testBackends()) {
  describe(`store on ${b.name}`, () => {
    // ---- queries and types -------------------------------------------------------------------------------------

    it("binds parameters and returns the same JS types on every backend", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await store.query(
        `CREATE TABLE parity (t text, i int4, b bigint, bo boolean, j jsonb, ts timestamptz, by bytea, ta text[],
                              n numeric, ba bigint[], f float8)`,
      );
      const when = new Date("2024-05-06T07:08:09.123Z");
      const bytes = Buffer.from([0, 1, 127, 128, 254, 255]);
      const ins = await store.query(
        "INSERT INTO parity VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        ["hello ünïcode", 42, "9007199254740993", true, { a: [1, "x"], n: null }, when, bytes, ["a", "b,c", 'd"e', "{f}"], "12.50", ["1", "-2"], 1.5],
      );
      assert.equal(ins.rowCount, 1);
      const { rows, rowCount } = await store.query("SELECT * FROM parity");
      assert.equal(rowCount, 1);
      const r = rows[0];
      assert.ok(r);
      assert.equal(r["t"], "hello ünïcode");
      assert.equal(r["i"], 42);
      assert.equal(r["b"], "9007199254740993", "int8 comes back as a string (beyond 2^53 here)");
      assert.equal(r["bo"], true);
      assert.deepEqual(r["j"], { a: [1, "x"], n: null });
      assert.ok(r["ts"] instanceof Date, "timestamptz is a Date");
      assert.equal(r["ts"].getTime(), when.getTime());
      assert.ok(Buffer.isBuffer(r["by"]), "bytea is a Buffer");
      assert.ok(bytes.equals(r["by"]));
      assert.deepEqual(r["ta"], ["a", "b,c", 'd"e', "{f}"]);
      assert.equal(r["n"], "12.50", "numeric stays a string");
      assert.deepEqual(r["ba"], ["1", "-2"], "int8[] elements are strings too");
      assert.equal(r["f"], 1.5);
    });

    it("passes nulls, JSON text for jsonb, and Buffers and Dates as parameters", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const r = await store.query<{ a: null; j: unknown; arr: unknown; by: Buffer; d: Date; ok: boolean }>(
        "SELECT $1::text AS a, $2::jsonb AS j, $3::jsonb AS arr, $4::bytea AS by, $5::timestamptz AS d, $6::boolean AS ok",
        [null, JSON.stringify({ x: 1 }), JSON.stringify([1, 2]), Buffer.from("hi"), new Date(0), false],
      );
      const row = r.rows[0];
      assert.ok(row);
      assert.equal(row.a, null);
      assert.deepEqual(row.j, { x: 1 });
      assert.deepEqual(row.arr, [1, 2]);
      assert.equal(row.by.toString(), "hi");
      assert.equal(row.d.getTime(), 0);
      assert.equal(row.ok, false);
    });

    // ---- prepared statements -----------------------------------------------------------------------------------

    const PARITY = preparedStatement(
      "store_test_parity",
      "SELECT $1::text AS t, $2::int4 AS i, $3::int8 AS b, $4::boolean AS bo, $5::timestamptz AS ts, $6::numeric AS n, $7::float8 AS f, $8::text AS z",
    );

    it("runs a prepared statement with the same results and JS types as the plain one, in and out of transactions", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const when = new Date("2024-05-06T07:08:09.123Z");
      // Quotes, backslashes, a would-be statement, unicode: parameters are data, whatever they hold.
      const nasty = `it's \\ a '); DROP TABLE x; -- \u00e9 ünïcode ''`;
      const params = [nasty, -42, 9007199254740993n, true, when, "12.50", 1.5, null];
      const plain = await store.query(PARITY.text, params);
      for (let i = 0; i < 3; i++) {
        const r = await store.query(PARITY, params);
        assert.deepEqual(r.rows, plain.rows, `use ${i + 1}`);
        assert.equal(r.rowCount, 1);
      }
      const row = plain.rows[0]!;
      assert.equal(row["t"], nasty);
      assert.equal(row["b"], "9007199254740993");
      assert.ok(row["ts"] instanceof Date && row["ts"].getTime() === when.getTime());
      assert.equal(row["z"], null);
      const inTx = await store.transaction(async (tx) => {
        const r = await tx.query(PARITY, params);
        // Prepared for real on the connection that ran it, not run as plain text.
        const kept = await tx.query<{ name: string }>("SELECT name FROM pg_prepared_statements WHERE name = $1", [PARITY.name]);
        assert.deepEqual(kept.rows, [{ name: PARITY.name }]);
        return r;
      });
      assert.deepEqual(inTx.rows, plain.rows);
      // Many first uses at once, on a store that has not prepared it yet: every one answers.
      const fresh = await b.open(t, { migrate: false });
      const all = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? fresh.transaction((tx) => tx.query(PARITY, params)) : fresh.query(PARITY, params))));
      for (const r of all) assert.deepEqual(r.rows, plain.rows);
    });

    it("keeps a statement prepared inside a transaction that rolled back, and through a column added to its table", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      const get = preparedStatement("store_test_kv_get", "SELECT k, v FROM kv WHERE k = $1");
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.query("INSERT INTO kv (k, v) VALUES ('a', 1)");
          assert.deepEqual((await tx.query(get, ["a"])).rows, [{ k: "a", v: 1 }]);
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      assert.deepEqual((await store.query(get, ["a"])).rows, []);
      await store.query("INSERT INTO kv (k, v) VALUES ('a', 2)");
      assert.deepEqual((await store.query(get, ["a"])).rows, [{ k: "a", v: 2 }]);
      await store.query("ALTER TABLE kv ADD COLUMN note text");
      assert.deepEqual((await store.query(get, ["a"])).rows, [{ k: "a", v: 2 }]);
      // A statement that fails reports PostgreSQL's error, and the next use tries again.
      const bad = preparedStatement("store_test_bad", "SELECT nope FROM kv WHERE k = $1");
      await assert.rejects(store.query(bad, ["a"]), { code: "42703" });
      await assert.rejects(store.query(bad, ["a"]), { code: "42703" });
      assert.deepEqual((await store.query(get, ["a"])).rows, [{ k: "a", v: 2 }]);
    });

    it("names each prepared statement once, and refuses a name for another text", () => {
      assert.deepEqual({ ...preparedStatement("store_test_parity", PARITY.text) }, { name: "store_test_parity", text: PARITY.text });
      assert.throws(() => preparedStatement("store_test_parity", "SELECT 1"), /already used/);
      for (const name of ["", "Upper", "1st", "with-dash", "a".repeat(64), "x; DROP TABLE kv"]) assert.throws(() => preparedStatement(name, "SELECT 1"), /invalid statement name/);
    });

    it("refuses a prepared statement's parameter it cannot pass as text, before running anything", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      const put = preparedStatement("store_test_kv_put", "INSERT INTO kv (k, v) VALUES ($1, 1)");
      for (const bad of [["a", "b"], { k: 1 }, Buffer.from("x"), Number.NaN, Number.POSITIVE_INFINITY, new Date(Number.NaN), "nul\0byte"]) {
        await assert.rejects(store.query(put, [bad]), TypeError, JSON.stringify(bad) ?? "undefined");
        await assert.rejects(store.transaction((tx) => tx.query(put, [bad])), TypeError);
      }
      assert.equal(await count(store), 0);
      await store.query(put, ["ok"]);
      assert.equal(await count(store), 1);
    });

    it("lets other work run between the statements of a long run of them", T, async (t) => {
      // PGlite answers inside the call: without a turn of the event loop per statement, a loop of awaited statements
      // (the promotion sweep) would keep every timer, request and agent message out until it ended.
      const store = await b.open(t, { migrate: false });
      let done = 0;
      let ranAfter = -1;
      const timer = new Promise<void>((resolve) => setTimeout(() => ((ranAfter = done), resolve()), 0));
      for (let i = 0; i < 100; i++) {
        await store.query("SELECT $1::int AS i", [i]);
        done++;
      }
      await store.transaction(async (tx) => {
        for (let i = 0; i < 20; i++) await tx.query("SELECT 1");
      });
      await timer;
      assert.ok(ranAfter >= 0 && ranAfter < 100, `a timer due at once ran after ${ranAfter} of 100 statements`);
    });

    it("runs several statements in a parameterless query and returns the last one's result", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const r = await store.query<{ n: number }>(
        "CREATE TABLE multi (i int); INSERT INTO multi VALUES (1), (2), (3); SELECT count(*)::int AS n FROM multi",
      );
      assert.deepEqual(r.rows, [{ n: 3 }]);
      assert.equal(r.rowCount, 1);
    });

    it("counts affected rows for INSERT, UPDATE and DELETE", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      assert.equal((await store.query("INSERT INTO kv (k) SELECT 'k' || g FROM generate_series(1, 5) g")).rowCount, 5);
      assert.equal((await store.query("UPDATE kv SET v = 1 WHERE k IN ($1, $2)", ["k1", "k2"])).rowCount, 2);
      assert.equal((await store.query("DELETE FROM kv WHERE v = $1", [0])).rowCount, 3);
      assert.equal((await store.query("UPDATE kv SET v = 2 WHERE k = 'nope'")).rowCount, 0);
    });

    it("reports PostgreSQL errors with their SQLSTATE and without the bound parameters", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      await store.query("INSERT INTO kv (k) VALUES ($1)", ["secret-key"]);
      await assert.rejects(store.query("INSERT INTO kv (k) VALUES ($1)", ["secret-key"]), (err: Error & { code?: string; params?: unknown }) => {
        assert.equal(err.code, "23505");
        assert.equal(err.params, undefined);
        return true;
      });
      await assert.rejects(store.query("SELEC 1"), { code: "42601" });
    });

    it("applies the first migration's schema", T, async (t) => {
      const store = await b.open(t);
      const tables = await store.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name",
      );
      const names = tables.rows.map((r) => r.table_name);
      for (const want of ["agents", "api_tokens", "audit_log", "ferry_migrations", "join_tokens", "revoked_certificates"]) {
        assert.ok(names.includes(want), `${want} exists (have ${names.join(", ")})`);
      }
    });

    // ---- transactions ------------------------------------------------------------------------------------------

    it("commits a transaction and returns the callback's value", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      const out = await store.transaction(async (tx) => {
        await tx.query("INSERT INTO kv (k, v) VALUES ('a', 1), ('b', 2)");
        const r = await tx.query<{ s: number }>("SELECT sum(v)::int AS s FROM kv");
        return r.rows[0]?.s;
      });
      assert.equal(out, 3);
      assert.equal(await count(store), 2);
    });

    it("rolls back everything when the callback throws", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.query("INSERT INTO kv (k) VALUES ('a')");
          await tx.query("UPDATE kv SET v = 5");
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      assert.equal(await count(store), 0);
    });

    it("rolls back on a failed statement even when the callback swallows the error", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.query("INSERT INTO kv (k) VALUES ('a')");
          await tx.query("INSERT INTO kv (k) VALUES ('a')").catch(() => undefined); // unique violation, ignored
          return "claims success";
        }),
        /rolled back/i,
      );
      assert.equal(await count(store), 0);
    });

    it("refuses the transaction's Queryable once the transaction is over", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      let leaked: Queryable | undefined;
      await store.transaction(async (tx) => {
        leaked = tx;
      });
      assert.ok(leaked);
      await assert.rejects(leaked.query("SELECT 1"), /transaction is over/);
    });

    it("refuses store calls made from inside its own transaction callback (instead of deadlocking on PGlite)", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await assert.rejects(store.transaction(() => store.query("SELECT 1")), /inside a store\.transaction\(\) callback/);
      await assert.rejects(store.transaction(() => store.transaction(async () => 1)), /inside a store\.transaction\(\) callback/);
      await assert.rejects(store.transaction(() => store.notify("ferry_x", "p")), /inside a store\.transaction\(\) callback/);
      // Once the callback has settled, work it scheduled may use the store normally.
      const later = deferred<number>();
      await store.transaction(async () => {
        setImmediate(() => {
          store.query<{ one: number }>("SELECT 1 AS one").then((r) => later.resolve(r.rows[0]?.one ?? 0), () => later.resolve(-1));
        });
      });
      assert.equal(await later.promise, 1);
    });

    it("keeps refusing inside one transaction callback after another one has ended", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const gate = deferred();
      const firstDone = deferred();
      // On PostgreSQL the two callbacks overlap (two connections): the second is still running when the first ends.
      // On PGlite (one connection) the second starts after the first has ended.
      const first = store.transaction(async (tx) => {
        await gate.promise;
        return tx.query("SELECT 1");
      });
      const secondStarted = deferred();
      const second = store.transaction(async () => {
        secondStarted.resolve();
        await firstDone.promise;
        return store.query("SELECT 1");
      });
      if (store.kind === "postgres") await secondStarted.promise;
      gate.resolve();
      await first;
      firstDone.resolve();
      await assert.rejects(second, /inside a store\.transaction\(\) callback/);
      // After every transaction has ended nothing is refused, and a new one is guarded again.
      await store.query("SELECT 1");
      await assert.rejects(store.transaction(() => store.query("SELECT 1")), /inside a store\.transaction\(\) callback/);
    });

    it("makes a query issued while a transaction is open elsewhere wait, never see its writes", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await kvTable(store);
      const inserted = deferred();
      const gate = deferred();
      const events: string[] = [];
      const tx = store.transaction(async (q) => {
        await q.query("INSERT INTO kv (k) VALUES ('uncommitted')");
        inserted.resolve();
        await gate.promise;
        events.push("transaction ends");
        throw new Error("roll it back");
      });
      await inserted.promise;
      const read = store.query<{ n: number }>("SELECT count(*)::int AS n FROM kv").then((r) => {
        events.push("read done");
        return r.rows[0]?.n;
      });
      gate.resolve();
      await assert.rejects(tx, /roll it back/);
      assert.equal(await read, 0, "the read never saw the uncommitted row");
      // PGlite has one connection: the read must have queued behind the transaction, not run inside it.
      if (b.kind === "pglite") assert.deepEqual(events, ["transaction ends", "read done"]);
    });

    it("never lets two workers claim the same row with FOR UPDATE SKIP LOCKED", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      await store.query("CREATE TABLE jobs (id int PRIMARY KEY, claimed_by text)");
      await store.query("INSERT INTO jobs (id) SELECT g FROM generate_series(1, 40) g");
      const claims: Array<{ id: number; worker: string }> = [];
      const worker = async (name: string): Promise<void> => {
        for (;;) {
          const id = await store.transaction(async (tx) => {
            const r = await tx.query<{ id: number }>(
              "SELECT id FROM jobs WHERE claimed_by IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            );
            const row = r.rows[0];
            if (!row) return undefined;
            await tx.query("UPDATE jobs SET claimed_by = $2 WHERE id = $1", [row.id, name]);
            return row.id;
          });
          if (id === undefined) return;
          claims.push({ id, worker: name });
        }
      };
      await Promise.all(["w1", "w2", "w3"].map(worker));
      const ids = claims.map((c) => c.id).sort((x, y) => x - y);
      assert.deepEqual(ids, Array.from({ length: 40 }, (_, i) => i + 1), "each job claimed exactly once");
      const db = await store.query<{ n: number }>("SELECT count(*)::int AS n FROM jobs WHERE claimed_by IS NULL");
      assert.equal(db.rows[0]?.n, 0);
    });

    it("lets a test's teardown see a transaction that has not finished", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const inside = deferred();
      const gate = deferred();
      const tx = store.transaction(async (q) => {
        await q.query("SELECT 1");
        inside.resolve();
        await gate.promise;
      });
      await inside.promise;
      try {
        assert.match(connectionLeak(store) ?? "", /checked out|still open/);
      } finally {
        gate.resolve(); // even when the assertion fails: a transaction left waiting would block teardown
      }
      await tx;
      assert.equal(connectionLeak(store), undefined);
    });

    // ---- LISTEN / NOTIFY ---------------------------------------------------------------------------------------

    it("delivers notifications to listeners, and stops after unsubscribe", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const [channel, markerChannel] = [uniqueChannel("a"), uniqueChannel("marker")];
      const inbox = new Inbox();
      const marker = new Inbox();
      const unsubscribe = await store.listen(channel, inbox.handler);
      await store.listen(markerChannel, marker.handler);

      await store.notify(channel, "one");
      await store.notify(channel, JSON.stringify({ agentId: "agt_1", note: "ünïcode ✓" }));
      await inbox.waitFor(JSON.stringify({ agentId: "agt_1", note: "ünïcode ✓" }));
      assert.deepEqual(inbox.received, ["one", JSON.stringify({ agentId: "agt_1", note: "ünïcode ✓" })]);

      await unsubscribe();
      await unsubscribe(); // idempotent
      await store.notify(channel, "after unsubscribe");
      await store.notify(markerChannel, "marker");
      // Notifications arrive in commit order: once the marker is here, the earlier one would have been too.
      await marker.waitFor("marker");
      assert.equal(inbox.received.includes("after unsubscribe"), false);
    });

    it("keeps other handlers of a channel when one unsubscribes, and isolates a throwing handler", T, async (t) => {
      const warnings: string[] = [];
      const store = await b.open(t, { migrate: false, log: { warn: (_obj, msg) => warnings.push(msg) } });
      const channel = uniqueChannel("shared");
      const first = new Inbox();
      const second = new Inbox();
      const unFirst = await store.listen(channel, first.handler);
      await store.listen(channel, second.handler);
      await store.listen(channel, () => {
        throw new Error("handler bug");
      });
      await store.notify(channel, "both");
      await Promise.all([first.waitFor("both"), second.waitFor("both")]);
      await unFirst();
      await store.notify(channel, "second only");
      await second.waitFor("second only");
      assert.deepEqual(first.received, ["both"]);
      assert.ok(warnings.some((w) => /handler threw/.test(w)), "the throwing handler was logged");
    });

    it("delivers a NOTIFY sent inside a transaction on commit only", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      const channel = uniqueChannel("tx");
      const inbox = new Inbox();
      await store.listen(channel, inbox.handler);
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.query("SELECT pg_notify($1, $2)", [channel, "rolled back"]);
          throw new Error("abort");
        }),
        /abort/,
      );
      await store.transaction(async (tx) => {
        await tx.query("SELECT pg_notify($1, $2)", [channel, "committed"]);
      });
      await inbox.waitFor("committed");
      assert.deepEqual(inbox.received, ["committed"]);
    });

    it("rejects channel names that are not plain lower-case identifiers", T, async (t) => {
      const store = await b.open(t, { migrate: false });
      for (const bad of ["", "Upper", "1abc", 'x"; DROP TABLE kv; --', "a-b", "x".repeat(64)]) {
        await assert.rejects(store.listen(bad, () => {}), TypeError, `listen(${JSON.stringify(bad)})`);
        await assert.rejects(store.notify(bad, "p"), TypeError, `notify(${JSON.stringify(bad)})`);
      }
    });
  });
}
