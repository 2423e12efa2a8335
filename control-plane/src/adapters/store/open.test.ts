import { strict as assert } from "node:assert";
import { createServer, type Server, type Socket } from "node:net";
import { describe, it, type TestContext } from "node:test";
import { openStore } from "./open.js";
import { describeTarget, PostgresStore } from "./pg.js";
import { StoreError } from "./store-error.js";

const T = { timeout: 120_000 }; // a bound for hangs, generous because PGlite start-up is slow on a busy machine

/** A TCP port that accepts connections and never answers: a server that hangs. */
async function silentServer(t: TestContext): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const addr = server.address();
  assert.ok(addr && typeof addr === "object");
  return addr.port;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(addr && typeof addr === "object");
  return addr.port;
}

describe("openStore", () => {
  it("opens a migrated in-memory PGlite store when given neither databaseUrl nor dataDir", T, async () => {
    const store = await openStore({});
    try {
      assert.equal(store.kind, "pglite");
      const r = await store.query<{ n: number }>("SELECT count(*)::int AS n FROM agents");
      assert.equal(r.rows[0]?.n, 0);
    } finally {
      await store.close();
    }
  });

  it("puts an in-memory PGlite store's tables in the requested schema", T, async () => {
    const store = await openStore({ schema: "ferry_custom" });
    try {
      const r = await store.query<{ schema: string; n: number }>(
        "SELECT current_schema() AS schema, (SELECT count(*)::int FROM information_schema.tables WHERE table_schema = 'ferry_custom' AND table_name = 'agents') AS n",
      );
      assert.deepEqual(r.rows, [{ schema: "ferry_custom", n: 1 }]);
    } finally {
      await store.close();
    }
  });

  it("fails with STORE_UNAVAILABLE naming host:port, not the password, when the server refuses", T, async () => {
    const port = await closedPort();
    await assert.rejects(openStore({ databaseUrl: `postgresql://ferry:s3cr3t-pw@127.0.0.1:${port}/ferry` }), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, "STORE_UNAVAILABLE");
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(err.message, /s3cr3t/);
      assert.doesNotMatch(JSON.stringify(err.details), /s3cr3t/);
      assert.ok(err.cause, "the driver's error is kept as cause");
      return true;
    });
  });

  it("fails with STORE_UNAVAILABLE when the server does not answer in time", T, async (t) => {
    const port = await silentServer(t);
    // PostgresStore.connect() is what openStore calls; it takes a connection timeout, shortened here.
    await assert.rejects(PostgresStore.connect({ connectionString: `postgresql://u:s3cr3t-pw@127.0.0.1:${port}/db`, connectionTimeoutMs: 300 }), {
      name: "StoreError",
      code: "STORE_UNAVAILABLE",
      message: new RegExp(`^PostgreSQL at 127\\.0\\.0\\.1:${port} is unavailable: .*timeout`, "i"),
    });
  });
});

describe("describeTarget", () => {
  it("names host and port and never the credentials", () => {
    assert.equal(describeTarget("postgresql://user:pw@db.example:6543/ferry"), "db.example:6543");
    assert.equal(describeTarget("postgres://db.example/ferry"), "db.example:5432");
    assert.equal(describeTarget("postgresql://u:pw@/ferry?host=/run/postgresql"), "/run/postgresql (socket, port 5432)");
    assert.equal(describeTarget("postgresql://u:p%40ss@[::1]:5433/ferry"), "[::1]:5433");
    assert.equal(describeTarget("postgresql://u:p@ss@db:5433/ferry"), "db:5433");
    assert.equal(describeTarget("host=db password=pw"), "the configured server");
  });
});
