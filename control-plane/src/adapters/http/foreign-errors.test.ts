// Failures from below the domain reach API clients in Ferry's error shape with a stable code: a PostgreSQL server
// that went away answers 503 STORE_UNAVAILABLE (not 500 INTERNAL), a broken task-signing keyring names itself, and
// a rotation that cannot get the keyring's lock says so.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { PostgresStore } from "../store/pg.js";
import { testBackends, testDatabaseUrl } from "../store/test-backends.js";
import { startTestHttpServer } from "./test-server.js";

interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
  requestId: string;
}

/** A TCP relay on loopback to the PostgreSQL server, which the test can cut like a network failure. */
async function relay(target: URL): Promise<{ port: number; cut: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

for (const b of testBackends()) {
  describe(`errors from the store and pki in the API's shape (${b.name})`, () => {
    it("a broken task-signing keyring answers TASK_KEYRING_INVALID, naming no file to the client", async (t) => {
      const store = await b.open(t);
      const { app, adminToken, keyDir } = await startTestHttpServer(t, store);
      rmSync(join(keyDir, "task-signing", "index.json"));
      const res = await app.inject({ method: "GET", url: "/api/v1/task-signing-keys", headers: { authorization: `Bearer ${adminToken}` } });
      assert.equal(res.statusCode, 500);
      const body = res.json<ErrorBody>();
      assert.equal(body.error.code, "TASK_KEYRING_INVALID");
      assert.doesNotMatch(body.error.message, /index\.json/);
    });

    it("a rotation that cannot get the keyring's lock answers TASK_KEYRING_BUSY", async (t) => {
      const store = await b.open(t);
      const { app, adminToken, keyDir } = await startTestHttpServer(t, store);
      writeFileSync(join(keyDir, "task-signing", "rotate.lock"), "1\n");
      const res = await app.inject({ method: "POST", url: "/api/v1/task-signing-keys/rotate", headers: { authorization: `Bearer ${adminToken}` }, payload: {} });
      assert.equal(res.statusCode, 409);
      assert.equal(res.json<ErrorBody>().error.code, "TASK_KEYRING_BUSY");
    });
  });
}

describe("a PostgreSQL server that went away", { skip: testDatabaseUrl() ? false : "needs FERRY_TEST_DATABASE_URL" }, () => {
  it("answers 503 STORE_UNAVAILABLE on every route that reads the database", async (t) => {
    const url = new URL(testDatabaseUrl() as string);
    const owner = (await testBackends().find((x) => x.kind === "postgres")?.open(t)) as PostgresStore;
    const cable = await relay(url);
    const through = new URL(url);
    through.hostname = "127.0.0.1";
    through.port = String(cable.port);
    const store = await PostgresStore.connect({ connectionString: through.toString(), schema: owner.schema, poolMax: 2 });
    t.after(() => store.close());
    const { app, adminToken } = await startTestHttpServer(t, store);
    const get = (path: string) => app.inject({ method: "GET", url: path, headers: { authorization: `Bearer ${adminToken}` } });
    assert.equal((await get("/api/v1/environments")).statusCode, 200);

    await cable.cut();
    for (const path of ["/api/v1/environments", "/api/v1/agents", "/api/v1/deployments", "/api/v1/audit"]) {
      // The first request after the cut may still hold a pooled connection that breaks under it; both ways must
      // come out as STORE_UNAVAILABLE.
      const res = await get(path);
      const body = res.json<ErrorBody>();
      assert.equal(res.statusCode, 503, `${path}: ${res.body}`);
      assert.equal(body.error.code, "STORE_UNAVAILABLE");
      assert.equal(typeof body.requestId, "string");
    }
  });
});
