// The control plane as `ferry server` runs it (startControlPlane, in this process, real TLS on loopback), on PGlite
// in a data directory and — when FERRY_TEST_DATABASE_URL is set — on a PostgreSQL database of its own: what the
// composition root guarantees about its files, its admin token, its identity among replicas, its health, and its
// listeners before anyone has authenticated.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { describe, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import pino from "pino";
import { create } from "@bufbuild/protobuf";
import { controlPlaneIdentityCheck, createCsr, FleetCa, generateKeyPair } from "@ferry/pki";
import { AgentService, ConnectRequestSchema, HelloSchema, clientConstructor, parseWireError, type WireError } from "@ferry/proto";
import { resolveConfig, type RawConfig } from "./config/config.js";
import { startControlPlane, type RunningControlPlane } from "./main.js";

const BASE_URL = process.env["FERRY_TEST_DATABASE_URL"] || undefined;
const CLI = fileURLToPath(new URL("./cli/main.ts", import.meta.url));

interface Started {
  cp: RunningControlPlane;
  dataDir: string;
  lines: string[];
  api<T = Record<string, unknown>>(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
  token(): string;
}

interface Backend {
  name: string;
  /** Raw config pointing at a fresh database for one test (PGlite: the data dir; PostgreSQL: a database of its own). */
  database(t: TestContext): Promise<RawConfig>;
}

/** Control planes a test started, stopped before its database is dropped (whatever order the hooks run in). */
const running = new WeakMap<TestContext, Array<() => Promise<void>>>();
const stopAll = async (t: TestContext) => {
  for (const stop of running.get(t) ?? []) await stop();
};

const pglite: Backend = { name: "pglite", database: async () => ({}) };

const postgres = (baseUrl: string): Backend => ({
  name: "postgres",
  async database(t) {
    const name = `ferry_main_${randomBytes(6).toString("hex")}`;
    const admin = new pg.Client({ connectionString: baseUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    t.after(async () => {
      await stopAll(t);
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    });
    const u = new URL(baseUrl);
    u.pathname = `/${name}`;
    return { databaseUrl: u.toString() };
  },
});

const backends: Backend[] = BASE_URL ? [pglite, postgres(BASE_URL)] : [pglite];

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-main-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function start(t: TestContext, dataDir: string, extra: RawConfig = {}, tokenDir = dataDir): Promise<Started> {
  const cfg = resolveConfig(
    { dataDir, apiListen: "127.0.0.1:0", agentListen: "127.0.0.1:0", enrolListen: "127.0.0.1:0", ...extra },
    {},
    "/",
  );
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (l: string) => lines.push(l) });
  const cp = await startControlPlane(cfg, log);
  let stopped = false;
  const stop = cp.stop.bind(cp);
  cp.stop = async () => {
    if (stopped) return;
    stopped = true;
    await stop();
  };
  t.after(() => cp.stop());
  running.set(t, [...(running.get(t) ?? []), () => cp.stop()]);
  const token = () => readFileSync(join(tokenDir, "admin-token"), "utf8").trim();
  return {
    cp,
    dataDir,
    lines,
    token,
    async api(method, path, body, tok) {
      const headers: Record<string, string> = { authorization: `Bearer ${tok ?? token()}` };
      if (body !== undefined) headers["content-type"] = "application/json";
      const res = await fetch(`${cp.api}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : null) as never };
    },
  };
}

function loosePaths(dir: string): string[] {
  const loose: string[] = [];
  const walk = (d: string) => {
    if ((statSync(d).mode & 0o077) !== 0) loose.push(d);
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && (statSync(p).mode & 0o077) !== 0) loose.push(p);
    }
  };
  walk(dir);
  return loose;
}

for (const b of backends) {
  describe(`control plane start (${b.name})`, () => {
    it("keeps the admin token out of every log line, never re-mints it, and gets it back only through admin-token reset", async (t) => {
      const dataDir = join(tempDir(t), "data");
      const db = await b.database(t);
      const first = await start(t, dataDir, db);
      const secret = first.token();
      assert.equal(first.cp.newAdminSecret, secret);
      assert.equal(statSync(join(dataDir, "admin-token")).mode & 0o777, 0o600);
      assert.ok(!first.lines.some((l) => l.includes(secret)), "the secret is in no log line");
      const me = await first.api<{ tokenId: string }>("GET", "/api/v1/whoami");
      assert.equal(me.status, 200);
      // The only admin token is revoked: the next start must not write a new one.
      assert.equal((await first.api("POST", `/api/v1/api-tokens/${me.body.tokenId}/revoke`)).status, 200);
      await first.cp.stop();
      const second = await start(t, dataDir, db);
      assert.equal(second.cp.newAdminSecret, null);
      assert.equal(second.token(), secret, "the file is left as it was");
      assert.ok(second.lines.some((l) => l.includes("ferry admin-token reset")), "the operator is told how to get access back");
      await second.cp.stop();
      // The explicit, offline reset (the real CLI).
      const args = ["--conditions=ferry-source", "--import", "tsx", CLI, "admin-token", "reset", "--data-dir", dataDir, "--json"];
      if (db.databaseUrl) args.push("--database-url", db.databaseUrl);
      const out = await promisify(execFile)(process.execPath, args, { env: { ...process.env, FERRY_LOG_LEVEL: "warn" } });
      const fresh = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
      assert.notEqual(fresh, secret);
      assert.ok(!out.stdout.includes(fresh) && !out.stderr.includes(fresh), "the reset does not print the secret");
      assert.equal(statSync(join(dataDir, "admin-token")).mode & 0o777, 0o600);
      const third = await start(t, dataDir, db);
      assert.equal((await third.api("GET", "/api/v1/whoami")).status, 200);
      const audit = await third.api<{ records: Array<{ action: string }> }>("GET", "/api/v1/audit?limit=50");
      assert.ok(JSON.stringify(audit.body).includes("api-token.reset-admin"));
      // runtime.json belongs to the running process only.
      assert.ok(existsSync(join(dataDir, "runtime.json")));
      await third.cp.stop();
      assert.ok(!existsSync(join(dataDir, "runtime.json")), "runtime.json is removed on a clean stop");
    });

    it("refuses to start next to a database recorded with another CA or another task-signing keyring, saying what to share", async (t) => {
      const root = tempDir(t);
      const db = await b.database(t);
      const shared = { caDir: join(root, "ca"), taskSigningDir: join(root, "task-signing") };
      const first = await start(t, join(root, "a"), { ...db, ...shared });
      await first.cp.stop();
      // PGlite: the same data directory (one process at a time); PostgreSQL: another replica's directory.
      const replicaDir = db.databaseUrl ? join(root, "b") : join(root, "a");
      await assert.rejects(start(t, replicaDir, { ...db, taskSigningDir: shared.taskSigningDir, caDir: join(root, "other-ca") }), (err: unknown) => {
        assert.equal((err as { code?: string }).code, "REPLICA_MISMATCH");
        assert.match((err as Error).message, /whose CA fingerprint is .* must share the fleet CA/);
        return true;
      });
      await assert.rejects(start(t, replicaDir, { ...db, caDir: shared.caDir, taskSigningDir: join(root, "other-keys") }), (err: unknown) => {
        assert.equal((err as { code?: string }).code, "REPLICA_MISMATCH");
        assert.match((err as Error).message, /active task-signing key is tsk_[0-9a-f]{16}, which this replica's keyring .* does not hold.*share one task-signing keyring/);
        return true;
      });
      const same = await start(t, replicaDir, { ...db, ...shared }, join(root, "a"));
      // A rotation is recorded, so the replicas sharing the keyring still agree after it.
      assert.equal((await same.api("POST", "/api/v1/task-signing-keys/rotate", {})).status, 200);
      await same.cp.stop();
      const after = await start(t, replicaDir, { ...db, ...shared }, join(root, "a"));
      assert.equal((await after.api("GET", "/healthz")).status, 200);
    });

    it("answers /healthz with 503 when the store reads but cannot write", async (t) => {
      const dataDir = join(tempDir(t), "data");
      const s = await start(t, dataDir, await b.database(t));
      // Audited writes fail (as with a damaged audit table) while SELECT 1 still answers.
      await s.cp.store.query(`CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk says no'; END $$`);
      await s.cp.store.query("CREATE TRIGGER refuse_writes BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_writes()");
      const r = await fetch(`${s.cp.api}/healthz`);
      assert.equal(r.status, 503);
      const body = (await r.json()) as { status: string; reason: string };
      assert.equal(body.status, "unavailable");
      assert.match(body.reason, /the store cannot write: .*disk says no/);
      assert.equal((await s.cp.store.query("SELECT 1 FROM audit_log WHERE seq < 0")).rowCount, 0, "the probe keeps nothing");
    });
  });
}

describe("control plane start: files, keys and listeners", () => {
  it("makes the data directory and every database file private, and refuses an admin-token file others can read", async (t) => {
    const dataDir = join(tempDir(t), "data");
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const s = await start(t, dataDir);
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.deepEqual(loosePaths(join(dataDir, "pglite")), []);
    await s.cp.stop();
    chmodSync(join(dataDir, "admin-token"), 0o644);
    await assert.rejects(start(t, dataDir), (err: unknown) => {
      assert.equal((err as { code?: string }).code, "DATA_DIR_INSECURE");
      assert.match((err as Error).message, /admin-token has mode 0644.*ferry admin-token reset/);
      return true;
    });
  });

  it("bounds the rotation overlap, and retires a key at once only on an explicit emergency rotation", async (t) => {
    const s = await start(t, join(tempDir(t), "data"));
    const before = await s.api<{ activeKeyId: string }>("GET", "/api/v1/task-signing-keys");
    for (const overlap of ["99999999999999h", "31d"]) {
      const r = await s.api<{ error: { code: string; message: string } }>("POST", "/api/v1/task-signing-keys/rotate", { overlap });
      assert.equal(r.status, 400, overlap);
      assert.equal(r.body.error.code, "VALIDATION_FAILED");
      assert.match(r.body.error.message, /overlap: must be between 0s and 30d/);
    }
    const zero = await s.api<{ error: { message: string } }>("POST", "/api/v1/task-signing-keys/rotate", { overlap: "0s" });
    assert.equal(zero.status, 400);
    assert.match(zero.body.error.message, /emergency: true/);
    assert.equal((await s.api<{ activeKeyId: string }>("GET", "/api/v1/task-signing-keys")).body.activeKeyId, before.body.activeKeyId, "nothing rotated");
    const t0 = Date.now();
    const r = await s.api<{ activeKeyId: string; keys: Array<{ keyId: string; notAfterMs: number }>; emergency: { retiredKeyId: string; warning: string } }>(
      "POST", "/api/v1/task-signing-keys/rotate", { emergency: true },
    );
    assert.equal(r.status, 200);
    assert.equal(r.body.emergency.retiredKeyId, before.body.activeKeyId);
    assert.match(r.body.emergency.warning, /retired now.*re-signed.*running task\(s\).*refused/);
    // Retired at once: no longer in the set agents are told to trust.
    assert.deepEqual(r.body.keys.map((k) => k.keyId), [r.body.activeKeyId]);
    assert.ok(t0 > 0);
  });

  it("refuses every method to a peer without a certificate, and a fleet certificate for an agent it does not know", async (t) => {
    const s = await start(t, join(tempDir(t), "data"));
    const caPem = readFileSync(join(s.dataDir, "ca", "ca.crt"), "utf8");
    const endpoint = `127.0.0.1:${s.cp.agentPort}`;
    const options = { "grpc.ssl_target_name_override": "ferry-control-plane" };
    const creds = (id?: { keyPem: string; certPem: string }) =>
      grpc.credentials.createSsl(Buffer.from(caPem), id ? Buffer.from(id.keyPem) : null, id ? Buffer.from(id.certPem) : null, { checkServerIdentity: controlPlaneIdentityCheck() });
    const unary = (path: string, id?: { keyPem: string; certPem: string }) =>
      new Promise<{ status: number; err: WireError }>((resolve) => {
        const client = new grpc.Client(endpoint, creds(id), options);
        client.makeUnaryRequest(path, (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err) => {
          client.close();
          resolve({ status: err?.code ?? 0, err: parseWireError(err) });
        });
      });
    // No certificate: an unknown method is not "unimplemented" — the peer learns nothing about the service.
    for (const path of ["/ferry.agent.v1.AgentService/NoSuchMethod", "/grpc.health.v1.Health/Check", "/ferry.agent.v1.AgentService/PullTasks"]) {
      const r = await unary(path);
      assert.equal(r.status, grpc.status.UNAUTHENTICATED, path);
      assert.equal(r.err.code, "CERT_REQUIRED", path);
    }
    // A certificate from this fleet's own CA for an agent id never enrolled here.
    const ca = await FleetCa.loadOrCreate(join(s.dataDir, "ca"));
    const kp = await generateKeyPair();
    const cert = await ca.issueAgentCertificate(await createCsr(kp.privateKeyPem, { commonName: "ghost" }), { agentId: "agt_ghost", lifetimeMs: 3_600_000 });
    const id = { keyPem: kp.privateKeyPem, certPem: cert.certPem };
    const r = await unary("/ferry.agent.v1.AgentService/PullTasks", id);
    assert.equal(r.status, grpc.status.PERMISSION_DENIED);
    assert.equal(r.err.code, "AGENT_UNKNOWN");
    const Ctor = clientConstructor(AgentService);
    const client = new Ctor(endpoint, creds(id), options) as unknown as Record<string, () => grpc.ClientDuplexStream<unknown, unknown>>;
    const call = (client["connect"] as () => grpc.ClientDuplexStream<unknown, unknown>).call(client);
    const ended = new Promise<WireError>((resolve) => call.on("error", (err) => resolve(parseWireError(err))));
    call.on("data", () => {});
    call.write(create(ConnectRequestSchema, { body: { case: "hello", value: create(HelloSchema, { agentId: "agt_ghost" }) } }));
    assert.equal((await ended).code, "AGENT_UNKNOWN");
    (client as unknown as grpc.Client).close();
  });

  it("offers only AEAD cipher suites on both TLS listeners", async (t) => {
    const s = await start(t, join(tempDir(t), "data"));
    const handshake = (port: number, ciphers: string) =>
      new Promise<string>((resolve) => {
        const sock = tls.connect({ host: "127.0.0.1", port, ciphers, maxVersion: "TLSv1.2", rejectUnauthorized: false, ALPNProtocols: ["h2"] });
        sock.once("secureConnect", () => {
          const name = sock.getCipher().name;
          sock.destroy();
          resolve(name);
        });
        sock.once("error", (err: Error) => resolve(`refused: ${err.message}`));
      });
    for (const port of [s.cp.agentPort, s.cp.enrolPort]) {
      assert.match(await handshake(port, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"), /^refused/, `CBC-SHA1 on ${port}`);
      assert.match(await handshake(port, "ECDHE-ECDSA-AES128-SHA256"), /^refused/, `CBC-SHA256 on ${port}`);
      assert.equal(await handshake(port, "ECDHE-ECDSA-AES128-GCM-SHA256"), "ECDHE-ECDSA-AES128-GCM-SHA256");
    }
  });
});
