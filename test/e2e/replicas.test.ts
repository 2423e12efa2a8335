// Two control-plane replicas on one PostgreSQL server, started at the same moment: migrations are applied once,
// either replica serves any agent, and revoking through one replica cuts off a stream held by the other at once
// (LISTEN/NOTIFY), as the design requires — replicas coordinate only through the database.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { waitFor } from "../helpers/wait.js";

const baseUrl = testDatabaseUrl();
if (!baseUrl) console.warn(`\n*** ${POSTGRES_SKIP_REASON} ***\n`);

describe("replicas on a shared PostgreSQL server", { skip: baseUrl ? false : POSTGRES_SKIP_REASON }, () => {
  let db: { url: string; drop: () => Promise<void> };
  let a: TestControlPlane;
  let b: TestControlPlane;
  const shared = mkdtempSync(join(tmpdir(), "ferry-replicas-"));
  const agents: TestAgent[] = [];
  let adminToken: string;

  before(async () => {
    db = await createDatabase(baseUrl as string);
    const common = { databaseUrl: db.url, extraArgs: ["--ca-dir", join(shared, "ca"), "--task-signing-dir", join(shared, "task-signing"), "--liveness-grace", "2s"] };
    [a, b] = await Promise.all([TestControlPlane.start(common), TestControlPlane.start(common)]);
    // The admin token is created once, by whichever replica won the bootstrap lock; it works on both.
    adminToken = [a, b].map((r) => join(r.dataDir, "admin-token")).filter((f) => existsSync(f)).map((f) => readFileSync(f, "utf8").trim())[0] as string;
  });
  after(async () => {
    for (const ag of agents) await ag.dispose();
    await a?.stop();
    await b?.stop();
    await db?.drop();
    rmSync(shared, { recursive: true, force: true });
  });

  it("applied each migration exactly once and shares one CA", async () => {
    assert.ok(adminToken, "one replica created the admin token");
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const m = await c.query<{ id: number; n: string }>("SELECT id, count(*)::text AS n FROM ferry_migrations GROUP BY id");
      assert.ok(m.rows.length >= 1);
      for (const r of m.rows) assert.equal(r.n, "1");
      const tokens = await c.query("SELECT 1 FROM api_tokens WHERE 'admin' = ANY(roles)");
      assert.equal(tokens.rowCount, 1);
    } finally {
      await c.end();
    }
    assert.equal(a.runtime.caFingerprint, b.runtime.caFingerprint);
  });

  it("enrols through one replica, shows the agent on both, and revocation through the other closes its stream", async () => {
    const api = (r: TestControlPlane) => (m: string, p: string, body?: unknown) => r.api<Record<string, unknown>>(m, p, body, adminToken);
    await api(a)("POST", "/api/v1/environments", { name: "prod" });
    const joined = await api(a)("POST", "/api/v1/join-tokens", { environment: "prod" });
    assert.equal(joined.status, 201);
    const agent = new TestAgent("replicated");
    agents.push(agent);
    const e = await agent.enrol(joined.body["joinString"] as string);
    assert.equal(e.code, 0, e.stderr + e.stdout);
    const id = (JSON.parse(readFileSync(join(agent.stateDir, "identity.json"), "utf8")) as { agentId: string }).agentId;
    agent.start();
    for (const r of [a, b]) {
      await waitFor("the agent online on both replicas", async () => {
        const v = await api(r)("GET", `/api/v1/agents/${id}`);
        return v.body["status"] === "online" ? true : undefined;
      });
    }
    const revoked = await api(b)("POST", `/api/v1/agents/${id}/revoke`, { reason: "replica test" });
    assert.equal(revoked.status, 200);
    const closedAt = await waitFor("replica A to close the stream", () =>
      a.proc.logs().find((l) => l["msg"] === "closed the stream of a revoked agent" && l["agentId"] === id),
    );
    const revokedAt = Date.parse(String(((await api(b)("GET", `/api/v1/agents/${id}`)).body["revokedAt"])));
    assert.ok(Number(closedAt["time"]) - revokedAt < 1000, `closed ${Number(closedAt["time"]) - revokedAt} ms after the revocation`);
    const exit = await agent.proc?.exited;
    assert.equal(exit?.code, 4);
  });
});
