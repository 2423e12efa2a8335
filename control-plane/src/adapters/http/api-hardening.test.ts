// The JSON API's governance and input hardening, end to end over real HTTP against a whole control plane started in
// this process (loopback, kernel-chosen ports): PGlite always, a PostgreSQL server database too when
// FERRY_TEST_DATABASE_URL is set.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { pino } from "pino";
import { resolveConfig } from "../../config/config.js";
import { startControlPlane, type RunningControlPlane } from "../../main.js";
import { testDatabaseUrl } from "../store/test-backends.js";

interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

async function tempDatabase(base: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `ferry_api_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(base);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

const backends: { name: string; databaseUrl: () => Promise<{ url: string | null; drop: () => Promise<void> }> }[] = [
  { name: "pglite", databaseUrl: async () => ({ url: null, drop: async () => {} }) },
];
const pgBase = testDatabaseUrl();
if (pgBase) backends.push({ name: "postgres", databaseUrl: () => tempDatabase(pgBase) });

for (const backend of backends) {
  describe(`API hardening on ${backend.name}`, () => {
    let cp: RunningControlPlane;
    let dataDir: string;
    let dropDb: () => Promise<void> = async () => {};
    let admin: string;
    const tokens: Record<string, { id: string; secret: string }> = {};

    const call = async <T = Record<string, unknown>>(token: string | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer<T>> => {
      const h: Record<string, string> = { ...headers };
      if (token) h["authorization"] = `Bearer ${token}`;
      if (body !== undefined) h["content-type"] = "application/json";
      const res = await fetch(`${cp.api}${path}`, { method, headers: h, body: body === undefined ? null : JSON.stringify(body) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // not JSON: kept as text
      }
      return { status: res.status, headers: res.headers, body: parsed as T };
    };
    const code = (a: Answer) => (a.body as { error?: { code?: string } }).error?.code;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "ferry-api-"));
      const db = await backend.databaseUrl();
      dropDb = db.drop;
      const cfg = resolveConfig({
        dataDir,
        apiListen: "127.0.0.1:0",
        agentListen: "127.0.0.1:0",
        enrolListen: "127.0.0.1:0",
        logLevel: "silent",
        logFormat: "json",
        ...(db.url ? { databaseUrl: db.url } : {}),
      });
      cp = await startControlPlane(cfg, pino({ level: "silent" }));
      admin = cp.newAdminSecret!;
      for (const [subject, roles] of [["dana", ["deployer"]], ["dana", ["deployer"]], ["olga", ["deployer", "gate-override"]], ["vic", ["viewer"]]] as const) {
        const r = await call<{ id: string; secret: string }>(admin, "POST", "/api/v1/api-tokens", { subject, roles });
        assert.equal(r.status, 201);
        tokens[tokens[subject] ? `${subject}2` : subject] = { id: r.body.id, secret: r.body.secret };
      }
      assert.equal((await call(admin, "POST", "/api/v1/environments", { name: "prod", settings: { gates: [{ kind: "approvals", name: "prod approvers", config: { group: "sre", count: 1 } }] } })).status, 201);
      assert.equal((await call(admin, "POST", "/api/v1/environments", { name: "dev" })).status, 201);
    });

    after(async () => {
      await cp?.stop();
      await dropDb();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("refuses direct deploys, rollbacks and retries into a gated environment for a deployer (ENVIRONMENT_GATED)", async () => {
      const d = tokens["dana"]!.secret;
      const deploy = await call(d, "POST", "/api/v1/deployments", { release: "shop@1", environment: "prod" });
      assert.equal(deploy.status, 409);
      assert.equal(code(deploy), "ENVIRONMENT_GATED");
      assert.match((deploy.body as { error: { message: string } }).error.message, /only through a promotion/);
      const rb = await call(d, "POST", "/api/v1/rollbacks", { environment: "prod" });
      assert.equal(code(rb), "ENVIRONMENT_GATED");
      // An override from someone without gate-override is FORBIDDEN; from a holder it reaches the next check.
      const forbidden = await call(d, "POST", "/api/v1/rollbacks", { environment: "prod", override: { reason: "x" } });
      assert.equal(code(forbidden), "FORBIDDEN");
      const allowed = await call(tokens["olga"]!.secret, "POST", "/api/v1/rollbacks", { environment: "prod", override: { reason: "incident 7" } });
      assert.equal(code(allowed), "NO_TARGETS", "past the governance check");
      const noReason = await call(tokens["olga"]!.secret, "POST", "/api/v1/rollbacks", { environment: "prod", override: {} });
      assert.equal(code(noReason), "VALIDATION_FAILED");
      // Retry takes an optional body; without one it is still a valid request.
      const retry = await call(d, "POST", "/api/v1/deployments/dep_none/retry");
      assert.equal(code(retry), "DEPLOYMENT_NOT_FOUND");
      const devDeploy = await call(d, "POST", "/api/v1/deployments", { release: "shop@1", environment: "dev" });
      assert.equal(code(devDeploy), "RELEASE_NOT_FOUND", "environments without gates keep direct deploys");
    });

    it("never stores a secret-bearing response, and refuses to replay it", async () => {
      const key = `k-${randomBytes(4).toString("hex")}`;
      const first = await call<{ id: string; secret: string }>(admin, "POST", "/api/v1/api-tokens", { subject: "ci", roles: ["viewer"] }, { "idempotency-key": key });
      assert.equal(first.status, 201);
      const again = await call<{ error: { code: string; details: { id: string } } }>(admin, "POST", "/api/v1/api-tokens", { subject: "ci", roles: ["viewer"] }, { "idempotency-key": key });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, "IDEMPOTENCY_KEY_SECRET_SHOWN");
      assert.equal(again.body.error.details.id, first.body.id);
      assert.ok(!JSON.stringify(again.body).includes(first.body.secret));
      const jkey = `j-${randomBytes(4).toString("hex")}`;
      const join1 = await call<{ id: string; joinString: string }>(admin, "POST", "/api/v1/join-tokens", { environment: "dev" }, { "idempotency-key": jkey });
      assert.equal(join1.status, 201);
      const rows = await cp.store.query<{ response: unknown }>("SELECT response FROM idempotency_keys");
      const stored = JSON.stringify(rows.rows);
      assert.ok(!stored.includes(first.body.secret), "no API token secret in idempotency_keys");
      assert.ok(!stored.includes(join1.body.joinString), "no join string in idempotency_keys");
      assert.equal(code(await call(admin, "POST", "/api/v1/join-tokens", { environment: "dev" }, { "idempotency-key": jkey })), "IDEMPOTENCY_KEY_SECRET_SHOWN");
    });

    it("scopes idempotency keys to the calling token, not its subject", async () => {
      const key = `s-${randomBytes(4).toString("hex")}`;
      const a = await call(tokens["dana"]!.secret, "POST", "/api/v1/deployments", { release: "nope@1", environment: "dev" }, { "idempotency-key": key });
      assert.equal(code(a), "RELEASE_NOT_FOUND");
      const replay = await call(tokens["dana"]!.secret, "POST", "/api/v1/deployments", { release: "nope@1", environment: "dev" }, { "idempotency-key": key });
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
      const other = await call(tokens["dana2"]!.secret, "POST", "/api/v1/deployments", { release: "nope@1", environment: "dev" }, { "idempotency-key": key });
      assert.equal(code(other), "RELEASE_NOT_FOUND");
      assert.equal(other.headers.get("idempotent-replayed"), null, "another token of the same subject gets no replay");
    });

    it("answers a key still in progress with Retry-After, and frees a key whose request died once its lease ran out", async () => {
      const scope = `token:${tokens["dana"]!.id}`;
      const body = { release: "nope@2", environment: "dev" };
      const hashOf = async (k: string) => {
        // Let one real request make the row, then turn it back into an unfinished one (a crash mid-request).
        await call(tokens["dana"]!.secret, "POST", "/api/v1/deployments", body, { "idempotency-key": k });
        await cp.store.query("UPDATE idempotency_keys SET status = NULL, response = NULL WHERE principal = $1 AND key = $2", [scope, k]);
      };
      await hashOf("running");
      await cp.store.query("UPDATE idempotency_keys SET lease_until = now() + interval '20 seconds' WHERE principal = $1 AND key = 'running'", [scope]);
      const busy = await call(tokens["dana"]!.secret, "POST", "/api/v1/deployments", body, { "idempotency-key": "running" });
      assert.equal(code(busy), "IDEMPOTENCY_KEY_IN_PROGRESS");
      const after = Number(busy.headers.get("retry-after"));
      assert.ok(after >= 1 && after <= 30, `Retry-After ${busy.headers.get("retry-after")}`);
      await hashOf("crashed");
      await cp.store.query("UPDATE idempotency_keys SET lease_until = now() - interval '1 second', created_at = now() WHERE principal = $1 AND key = 'crashed'", [scope]);
      const taken = await call(tokens["dana"]!.secret, "POST", "/api/v1/deployments", body, { "idempotency-key": "crashed" });
      assert.equal(code(taken), "RELEASE_NOT_FOUND", "the key was taken over and the request ran");
    });

    it("shows a webhook receiver's answer to admins only", async () => {
      await cp.store.query("INSERT INTO webhook_subscriptions (id, url, events, secret, created_by, created_at) VALUES ('whk_t', 'https://hooks.example.com/x', '{promotion.approved}', 's', 'admin', now())");
      await cp.store.query(
        "INSERT INTO webhook_deliveries (id, subscription_id, event_type, event_id, status, attempts, last_status, last_error, last_response, created_at, updated_at) VALUES ('whd_t', 'whk_t', 'promotion.approved', 'evt_t', 'failed', 1, 500, 'HTTP 500', 'root:x:0:0', now(), now())",
      );
      const asViewer = await call<{ deliveries: Record<string, unknown>[] }>(tokens["vic"]!.secret, "GET", "/api/v1/webhooks/deliveries?subscription=whk_t");
      assert.equal(asViewer.status, 200);
      assert.equal(asViewer.body.deliveries[0]!["lastError"], "HTTP 500");
      assert.ok(!JSON.stringify(asViewer.body).includes("root:x"), "no response body for a viewer");
      const asAdmin = await call<{ deliveries: Record<string, unknown>[] }>(admin, "GET", "/api/v1/webhooks/deliveries?subscription=whk_t");
      assert.equal(asAdmin.body.deliveries[0]!["lastResponse"], "root:x:0:0");
      const loop = await call(admin, "POST", "/api/v1/webhooks", { url: "http://127.0.0.1:1/x" });
      assert.equal(code(loop), "WEBHOOK_TARGET_FORBIDDEN");
    });

    it("refuses hand-made cursors", async () => {
      const handMade = Buffer.from(JSON.stringify({ t: "2030-01-01T00:00:00.000000Z", id: "dep_x" })).toString("base64url");
      const r = await call(admin, "GET", `/api/v1/deployments?cursor=${handMade}`);
      assert.equal(r.status, 400);
      assert.equal(code(r), "VALIDATION_FAILED");
    });

    it("serves the console with framing refused", async () => {
      const r = await call(null, "GET", "/");
      assert.equal(r.status, 200);
      assert.match(r.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
      assert.equal(r.headers.get("x-frame-options"), "DENY");
    });

    it("verifies the audit chain against a signed checkpoint through the API", async () => {
      const cpRes = await call<{ checkpoint: { seq: number } | null }>(admin, "POST", "/api/v1/audit/checkpoints");
      assert.ok(cpRes.body.checkpoint && cpRes.body.checkpoint.seq > 0);
      const v = await call<{ ok: boolean; anchors: { checkpoints: number } }>(admin, "GET", "/api/v1/audit/verify");
      assert.equal(v.body.ok, true);
      assert.ok(v.body.anchors.checkpoints >= 1);
      const bad = await call(admin, "GET", `/api/v1/audit/verify?anchorSeq=999999&anchorHash=${"a".repeat(64)}`);
      assert.equal((bad.body as { ok: boolean; reason: string }).ok, false);
      assert.match((bad.body as { reason: string }).reason, /truncated/);
    });
  });
}
