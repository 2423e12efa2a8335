// Promotions end to end: a real `ferry server` on PostgreSQL, real agents on the real Docker Engine, a real registry.
// A release goes dev → staging → prod through approvals, a security gate (blocked by a critical finding, unblocked by
// an exception), a freeze window (forced with break-glass); every refusal has its code and an audit record; evidence
// verifies with the CLI and with openssl alone; webhooks arrive signed; a control-plane kill -9 while a promotion
// waits for approval and while it deploys is survived; tampering with the audit log in PostgreSQL is detected.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker, type TestImage } from "../helpers/docker.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";
import { verifyWebhookSignature } from "../../control-plane/src/domain/notify/webhooks.js";
import { freePort } from "../helpers/net.js";

const dbUrl = testDatabaseUrl();
const skip = (await dockerSkipReason("promotion end-to-end suite")) || registrySkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON);
if (skip) console.warn(`\n*** promotion suite skipped: ${skip} ***\n`);

interface Gate { gate: string; name: string; state: string; reason: string; remedy: string | null }
interface Promotion {
  id: string;
  state: string;
  gates: Gate[];
  deploymentId: string | null;
  reason: string | null;
  evidence?: { id: string; kind: string; hash: string }[];
  transitions?: { from: string | null; to: string; actor: string }[];
}

const criticalTrivy = (digest: string) => ({
  SchemaVersion: 2,
  ArtifactName: "shop/web",
  Metadata: { RepoDigests: [digest] },
  Results: [{ Target: "busybox", Vulnerabilities: [{ VulnerabilityID: "CVE-2026-0001", PkgName: "busybox", InstalledVersion: "1.35", Severity: "CRITICAL" }, { VulnerabilityID: "CVE-2026-0002", PkgName: "busybox", InstalledVersion: "1.35", Severity: "LOW" }] }],
});

describe("promotions through gates, with evidence, audit and webhooks", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let db: { url: string; drop: () => Promise<void> };
  let sql: pg.Client;
  let socket: string;
  let image: TestImage;
  let receiver: Server;
  let receiverPort = 0;
  const received: { type: string; ok: boolean; body: { type: string; data: Record<string, unknown> } }[] = [];
  const secret = randomBytes(24).toString("hex");
  const agents: Record<string, TestAgent> = { dev: new TestAgent("p-dev"), staging: new TestAgent("p-stg"), prod: new TestAgent("p-prod") };
  const ports: Record<string, number> = {};
  const tokens: Record<string, string> = {};
  const suffix = randomBytes(3).toString("hex");
  const scratch = mkdtempSync(join(tmpdir(), "ferry-promo-e2e-"));

  const as = (who: string) => ({ FERRY_TOKEN: tokens[who]! });
  const api = <T>(who: string, method: string, path: string, body?: unknown) => cp.api<T>(method, path, body, tokens[who]);
  const waitPromotion = (id: string, pred: (p: Promotion) => boolean, what: string, timeoutMs = 90_000) =>
    waitFor(what, async () => {
      const r = await cp.api<Promotion>("GET", `/api/v1/promotions/${id}`);
      return pred(r.body) ? r.body : undefined;
    }, { timeoutMs });
  const lastAudit = async () => (await sql.query<{ action: string; outcome: string; details: Record<string, unknown> }>("SELECT action, outcome, details FROM audit_log WHERE actor <> 'ferry' ORDER BY seq DESC LIMIT 1")).rows[0]!;

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    db = await createDatabase(dbUrl!);
    sql = new pg.Client({ connectionString: db.url });
    reg = await startRegistry();
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const check = verifyWebhookSignature(secret, String(req.headers["ferry-signature"] ?? ""), body);
        received.push({ type: String(req.headers["ferry-event"]), ok: check.ok, body: JSON.parse(body) as { type: string; data: Record<string, unknown> } });
        res.writeHead(check.ok ? 204 : 401).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    receiverPort = (receiver.address() as { port: number }).port;
    cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--liveness-grace", "2s"] });
    await sql.connect();
    for (const env of ["dev", "staging", "prod"]) ports[env] = await freePort();
    image = await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "1", version: "web 1", port: 1 });
    const admin = cp.adminToken;
    tokens["admin"] = admin;
    for (const [subject, roles] of [["rita", ["release-manager"]], ["dana", ["deployer"]], ["alice", ["approver", "deployer"]], ["bob", ["approver"]], ["carol", ["approver"]], ["vic", ["viewer"]]] as const) {
      const r = await cp.api<{ secret: string }>("POST", "/api/v1/api-tokens", { subject, roles });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      tokens[subject] = r.body.secret;
    }
    for (const [g, s] of [["staging-approvers", "carol"], ["prod-approvers", "alice"], ["prod-approvers", "bob"]] as const) {
      assert.equal((await cp.cli(["group", "add", g, s])).code, 0);
    }
    const wh = await cp.cli(["webhook", "create", `http://127.0.0.1:${receiverPort}/hooks`, "--secret", secret, "--json"]);
    assert.equal(wh.code, 0, wh.stderr);
    const gates = {
      dev: [],
      staging: [
        { kind: "prior-environment", name: "ran in dev", config: {} },
        { kind: "approvals", name: "staging approvers", config: { group: "staging-approvers", count: 1 } },
        { kind: "security", name: "no criticals", config: { blockAt: "critical" } },
      ],
      prod: [
        { kind: "prior-environment", name: "ran in staging", config: {} },
        { kind: "approvals", name: "prod approvers", config: { group: "prod-approvers", count: 2 } },
        { kind: "freeze", name: "change freeze", config: { windows: [{ name: "always", timeZone: "Europe/Berlin", cron: "0 0 * * *", durationMinutes: 1440 }] } },
      ],
    } as const;
    for (const env of ["dev", "staging", "prod"] as const) {
      const r = await cp.api("POST", "/api/v1/environments", { name: env, settings: { gates: gates[env] } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${reg.host}/shop/web`])).code, 0);
    for (const env of ["dev", "staging", "prod"] as const) {
      const a = agents[env]!;
      assert.equal((await a.enrol(await cp.createJoinString(env))).code, 0);
      a.start(["--docker-socket", socket]);
    }
    const list = await waitFor("three agents online with the docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; environment: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      const online = r.body.agents.filter((x) => x.status === "online" && x.facts.drivers?.includes("docker"));
      return online.length === 3 ? online : undefined;
    });
    for (const env of ["dev", "staging", "prod"] as const) {
      const agentId = list.find((a) => a.environment === env)!.id;
      const port = ports[env]!;
      const r = await cp.api("POST", `/api/v1/environments/${env}/targets`, {
        name: "web",
        kind: "docker",
        agentId,
        config: {
          container: `ferry-promo-${env}-${suffix}`,
          command: ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/www"],
          healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 20, intervalSeconds: 1 },
        },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const rel = await api<{ id: string }>("rita", "POST", "/api/v1/releases", { name: "shop", version: "1", components: { web: ":1" } });
    assert.equal(rel.status, 201, JSON.stringify(rel.body));
  });

  after(async () => {
    for (const a of Object.values(agents)) await a.dispose();
    await cp?.stop();
    await reg?.stop();
    receiver?.close();
    if (socket) {
      const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith("ferry-promo-") && n.endsWith(suffix));
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
    await sql?.end().catch(() => undefined);
    await db?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("refuses a gate configuration with a typo, naming the field", async () => {
    const r = await cp.api<{ error: { code: string; message: string } }>("PATCH", "/api/v1/environments/prod", { settings: { gates: [{ kind: "freeze", config: { windows: [{ name: "x", timeZone: "Mars/Olympus", cron: "0 0 * * *", durationMinutes: 5 }] } }] } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, "VALIDATION_FAILED");
    assert.match(r.body.error.message, /gates\[0\]\.config\.windows\[0\]\.timeZone/);
    const cli = await cp.cli(["env", "update", "prod", "--settings", '{"gates": [{"kind": "sbom"}]}']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /VALIDATION_FAILED: gates\[0\]\.kind: "sbom" is not a gate kind/);
  });

  it("manages freeze windows with ferry freeze (validated by the server)", async () => {
    const list = await cp.cli(["freeze", "list", "--env", "prod", "--json"]);
    assert.deepEqual((JSON.parse(list.stdout) as { windows: { name: string }[] }).windows.map((w) => w.name), ["always"]);
    const bad = await cp.cli(["freeze", "add", "--env", "dev", "--name", "x", "--tz", "Mars/Olympus", "--days", "sat", "--start", "00:00", "--end", "24:00"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /VALIDATION_FAILED: gates\[0\]\.config\.windows\[0\]\.timeZone/);
    const add = await cp.cli(["freeze", "add", "--env", "dev", "--name", "weekend", "--tz", "Europe/Berlin", "--days", "sat,sun", "--start", "00:00", "--end", "24:00"]);
    assert.equal(add.code, 0, add.stderr);
    assert.match((await cp.cli(["freeze", "list", "--env", "dev"])).stdout, /weekend\s+Europe\/Berlin\s+sat,sun 00:00–24:00/);
    assert.equal((await cp.cli(["freeze", "remove", "--env", "dev", "--name", "weekend"])).code, 0);
    assert.deepEqual((await cp.api<{ settings: { gates: unknown[] } }>("GET", "/api/v1/environments/dev")).body.settings.gates, []);
  });

  it("refuses a promotion into staging before the release ran in dev, with an audit record", async () => {
    const r = await cp.cli(["promote", "shop@1", "--to", "staging"], as("dana"));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /PRIOR_ENVIRONMENT_NOT_DEPLOYED/);
    const a = await lastAudit();
    assert.deepEqual([a.action, a.outcome, a.details["code"]], ["promotion.request", "refused", "PRIOR_ENVIRONMENT_NOT_DEPLOYED"]);
  });

  it("promotes into dev (no gates) and deploys", async () => {
    const r = await cp.cli(["promote", "shop@1", "--to", "dev", "--wait", "--timeout", "120", "--json"], as("dana"));
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout) as Promotion;
    assert.equal(p.state, "succeeded");
    const res = await fetch(`http://127.0.0.1:${ports["dev"]}/version`);
    assert.equal((await res.text()).trim(), "web 1");
  });

  let stagingId = "";
  it("blocks staging on approvals and a critical finding, says why, and enforces separation of duties", async () => {
    const up = await cp.cli(["scan", "upload", image.digest, writeJson("trivy.json", criticalTrivy(image.digest))], as("rita"));
    assert.equal(up.code, 0, up.stderr);
    const bad = await cp.cli(["scan", "upload", image.digest, writeJson("bad.json", { hello: "world" })], as("rita"));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /SCAN_REPORT_INVALID/);
    assert.equal((await lastAudit()).outcome, "refused");

    const r = await cp.cli(["promote", "shop@1", "--to", "staging", "--json"], as("alice"));
    assert.equal(r.code, 0, r.stderr);
    stagingId = (JSON.parse(r.stdout) as Promotion).id;
    const why = await cp.cli(["why-blocked", stagingId]);
    assert.equal(why.code, 0, why.stderr);
    assert.match(why.stdout, /\[PASSED\] ran in dev/);
    assert.match(why.stdout, /\[PENDING\] staging approvers/);
    assert.match(why.stdout, /needs 1 more approval from group staging-approvers; alice cannot approve their own request/);
    assert.match(why.stdout, /\[FAILED\] no criticals/);

    const again = await cp.cli(["promote", "shop@1", "--to", "staging"], as("dana"));
    assert.match(again.stderr, /PROMOTION_IN_PROGRESS/);

    const self = await cp.cli(["approve", stagingId], as("alice"));
    assert.match(self.stderr, /SELF_APPROVAL/);
    assert.deepEqual([(await lastAudit()).action, (await lastAudit()).outcome], ["promotion.approve", "refused"]);
    const outsider = await cp.cli(["approve", stagingId], as("bob"));
    assert.match(outsider.stderr, /NOT_IN_APPROVER_GROUP/);
    const noRole = await cp.cli(["approve", stagingId], as("dana"));
    assert.match(noRole.stderr, /FORBIDDEN/);
    const forbidden = await lastAudit();
    assert.deepEqual([forbidden.action, forbidden.outcome, forbidden.details["code"]], ["post /api/v1/promotions/:id/approve", "refused", "FORBIDDEN"]);
    const ok = await cp.cli(["approve", stagingId, "--comment", "looks good"], as("carol"));
    assert.equal(ok.code, 0, ok.stderr);
    const twice = await cp.cli(["approve", stagingId], as("carol"));
    assert.match(twice.stderr, /ALREADY_DECIDED_BY_SUBJECT/);
    const w = await api<{ gates: Gate[] }>("vic", "GET", `/api/v1/promotions/${stagingId}/why-blocked`);
    assert.equal(w.body.gates.find((g) => g.name === "staging approvers")?.state, "passed");
    assert.equal(w.body.gates.find((g) => g.name === "no criticals")?.state, "failed");
  });

  it("survives kill -9 of the control plane while the promotion waits, then an exception unblocks it and it deploys", async () => {
    await cp.proc.kill("SIGKILL");
    await cp.boot({ api: Number(new URL(cp.runtime.api).port), agent: cp.runtime.agentPort, enrol: cp.runtime.enrolPort });
    assert.equal((await api<Promotion>("vic", "GET", `/api/v1/promotions/${stagingId}`)).body.state, "awaiting_gates");
    const expired = await cp.cli(["exception", "create", image.digest, "--max-severity", "critical", "--reason", "not reachable", "--expires", "2020-01-01T00:00:00Z"]);
    assert.equal(expired.code, 1, expired.stderr);
    assert.match(expired.stderr, /VALIDATION_FAILED: expires: must be in the future/);
    const e = await cp.cli(["exception", "create", image.digest, "--max-severity", "critical", "--reason", "busybox httpd not exposed", "--expires", "1d"]);
    assert.equal(e.code, 0, e.stderr);
    const p = await waitPromotion(stagingId, (x) => x.state === "succeeded" || x.state === "failed", "the staging promotion to finish");
    assert.equal(p.state, "succeeded", JSON.stringify(p));
    const res = await fetch(`http://127.0.0.1:${ports["staging"]}/version`);
    assert.equal((await res.text()).trim(), "web 1");
  });

  let prodId = "";
  it("blocks prod on a freeze window; break-glass needs a reason and a role; kill -9 mid-deploy is survived", async () => {
    const r = await cp.cli(["promote", "shop@1", "--to", "prod", "--json"], as("dana"));
    assert.equal(r.code, 0, r.stderr);
    prodId = (JSON.parse(r.stdout) as Promotion).id;
    for (const who of ["alice", "bob"]) assert.equal((await cp.cli(["approve", prodId], as(who))).code, 0);
    const why = await api<{ gates: Gate[] }>("vic", "GET", `/api/v1/promotions/${prodId}/why-blocked`);
    const freeze = why.body.gates.find((g) => g.name === "change freeze")!;
    assert.equal(freeze.state, "failed");
    const blocked = await sql.query<{ details: { gates: { name: string }[] } }>("SELECT details FROM audit_log WHERE action = 'promotion.blocked' AND object = $1 AND outcome = 'refused'", [prodId]);
    assert.ok(blocked.rows.some((r) => r.details.gates.some((g) => g.name === "change freeze")), "the freeze block is in the audit log");
    assert.match(freeze.remedy ?? "", /break.glass/i);
    const noReason = await api<{ error: { code: string } }>("admin", "POST", `/api/v1/promotions/${prodId}/break-glass`, { reason: "  " });
    assert.equal(noReason.body.error.code, "BREAK_GLASS_REASON_REQUIRED");
    const notAdmin = await api<{ error: { code: string } }>("alice", "POST", `/api/v1/promotions/${prodId}/break-glass`, { reason: "hotfix" });
    assert.equal(notAdmin.body.error.code, "FORBIDDEN");
    const bg = await cp.cli(["break-glass", prodId, "--reason", "customer outage hotfix"]);
    assert.equal(bg.code, 0, bg.stderr);
    await waitPromotion(prodId, (x) => x.state === "deploying", "prod to start deploying");
    await cp.proc.kill("SIGKILL");
    await cp.boot({ api: Number(new URL(cp.runtime.api).port), agent: cp.runtime.agentPort, enrol: cp.runtime.enrolPort });
    const p = await waitPromotion(prodId, (x) => x.state === "succeeded" || x.state === "failed", "prod to finish after the restart");
    assert.equal(p.state, "succeeded", JSON.stringify(p));
    assert.deepEqual(p.transitions?.map((t) => t.to), ["requested", "awaiting_gates", "approved", "deploying", "succeeded"]);
  });

  let devPromotion2 = "";
  let rejectedId = "";
  it("rejection ends a promotion", async () => {
    await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "2", version: "web 2", port: 1 });
    const rel = await api<{ id: string }>("rita", "POST", "/api/v1/releases", { name: "shop", version: "2", components: { web: ":2" } });
    assert.equal(rel.status, 201);
    const dev = await cp.cli(["promote", "shop@2", "--to", "dev", "--wait", "--timeout", "120", "--json"], as("dana"));
    assert.equal(dev.code, 0, dev.stderr);
    devPromotion2 = (JSON.parse(dev.stdout) as Promotion).id;
    const r = await cp.cli(["promote", "shop@2", "--to", "staging", "--json"], as("dana"));
    const id = (JSON.parse(r.stdout) as Promotion).id;
    rejectedId = id;
    const rej = await cp.cli(["reject", id, "--reason", "not this week"], as("carol"));
    assert.equal(rej.code, 0, rej.stderr);
    const p = await waitPromotion(id, (x) => x.state === "rejected", "the rejection to end the promotion");
    assert.match(p.reason ?? "", /carol/);
    const late = await cp.cli(["approve", id], as("carol"));
    assert.match(late.stderr, /PROMOTION_ALREADY_DECIDED/);
  });

  it("signs evidence that verifies with the CLI and with openssl alone, and detects tampering", async () => {
    const p = (await cp.api<Promotion>("GET", `/api/v1/promotions/${prodId}`)).body;
    assert.deepEqual(p.evidence?.map((e) => e.kind), ["promotion.decision", "promotion.deployment"]);
    const envFile = join(scratch, "evidence.json");
    const got = await cp.cli(["evidence", "get", p.evidence[1]!.id]);
    assert.equal(got.code, 0, got.stderr);
    writeFileSync(envFile, got.stdout);
    const keyFile = join(scratch, "evidence.pub.pem");
    writeFileSync(keyFile, (await cp.cli(["evidence", "key"])).stdout);
    const ok = await cp.cli(["evidence", "verify", envFile, "--key", keyFile]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^OK/);
    const env = JSON.parse(got.stdout) as { payloadType: string; payload: string; signatures: { sig: string }[] };
    const doc = JSON.parse(Buffer.from(env.payload, "base64").toString("utf8")) as Record<string, unknown>;
    assert.equal(doc["outcome"], "succeeded");
    assert.equal(doc["previousEvidenceHash"], p.evidence[0]!.hash);
    // openssl alone: PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body; ECDSA P-256 / SHA-256, DER signature.
    const body = Buffer.from(env.payload, "base64");
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(env.payloadType)} ${env.payloadType} ${body.length} `), body]);
    writeFileSync(join(scratch, "pae.bin"), pae);
    writeFileSync(join(scratch, "sig.der"), Buffer.from(env.signatures[0]!.sig, "base64"));
    const out = execFileSync("openssl", ["dgst", "-sha256", "-verify", keyFile, "-signature", join(scratch, "sig.der"), join(scratch, "pae.bin")], { encoding: "utf8" });
    assert.match(out, /Verified OK/);
    // One changed byte in the document.
    const forged = { ...env, payload: Buffer.from(JSON.stringify({ ...doc, outcome: "failed" })).toString("base64") };
    writeFileSync(join(scratch, "forged.json"), JSON.stringify(forged));
    const bad = await cp.cli(["evidence", "verify", join(scratch, "forged.json"), "--key", keyFile]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /FAILED: EVIDENCE_/);
  });

  it("renders release-metadata.json and release-notes.md for a successful promotion", async () => {
    const m = await cp.cli(["promotion", "metadata", prodId]);
    assert.equal(m.code, 0, m.stderr);
    const meta = JSON.parse(m.stdout) as { environment: string; images: { digest: string }[]; approvals: { subject: string }[]; evidence: { id: string }[] };
    assert.equal(meta.environment, "prod");
    assert.equal(meta.images[0]?.digest, image.digest);
    assert.deepEqual(meta.approvals.map((a) => a.subject).sort(), ["alice", "bob"]);
    assert.equal(meta.evidence.length, 2);
    const n = await cp.cli(["promotion", "notes", prodId]);
    assert.match(n.stdout, /^# shop 1 in prod/);
    assert.match(n.stdout, /\*\*Break-glass\*\* by admin: customer outage hotfix/);
    const refused = await cp.cli(["promotion", "metadata", rejectedId]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /PROMOTION_NOT_SUCCEEDED/);
  });

  it("marks a promotion rolled back when its environment is rolled back", async () => {
    const rb = await cp.cli(["rollback", "--env", "dev", "--wait"]);
    assert.equal(rb.code, 0, rb.stderr);
    const res = await fetch(`http://127.0.0.1:${ports["dev"]}/version`);
    assert.equal((await res.text()).trim(), "web 1");
    const p = await waitPromotion(devPromotion2, (x) => x.state === "rolled_back", "the dev promotion of shop@2 to be rolled back");
    assert.equal(p.transitions?.at(-1)?.to, "rolled_back");
  });

  it("delivered signed webhooks for the promotion events", async () => {
    const types = await waitFor("webhooks for requested, approved, blocked, deployed and rejected", () => {
      const t = new Set(received.map((r) => r.type));
      return ["promotion.requested", "promotion.approved", "promotion.blocked", "promotion.deployed", "promotion.rejected", "promotion.rolled_back"].every((x) => t.has(x)) ? t : undefined;
    });
    assert.ok(types.size >= 6);
    assert.ok(received.every((r) => r.ok), "every delivery carried a valid HMAC signature");
    const d = await cp.cli(["webhook", "deliveries", "--status", "delivered", "--json"]);
    assert.ok((JSON.parse(d.stdout) as { deliveries: unknown[] }).deliveries.length >= 5);
  });

  it("detects an audit record edited directly in PostgreSQL, naming it", async () => {
    const clean = await cp.cli(["audit", "verify"]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    const row = (await sql.query<{ seq: string }>("SELECT seq FROM audit_log WHERE action = 'promotion.break-glass'")).rows[0]!;
    // The database refuses the edit; only the table's owner, switching the append-only trigger off, gets it in.
    await assert.rejects(sql.query("UPDATE audit_log SET details = '{}' WHERE seq = $1", [row.seq]), /append-only/);
    await sql.query("ALTER TABLE audit_log DISABLE TRIGGER USER");
    await sql.query("UPDATE audit_log SET details = '{\"reason\": \"routine\"}' WHERE seq = $1", [row.seq]);
    await sql.query("ALTER TABLE audit_log ENABLE TRIGGER USER");
    const broken = await cp.cli(["audit", "verify"]);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, new RegExp(`BROKEN at record ${row.seq}\\b`));
  });

  it("refuses a direct deploy or rollback into gated prod from the CLI; a gate-override holder gets in with a reason, recorded and signed", async () => {
    const deploy = await cp.cli(["deploy", "shop@1", "--to", "prod", "--json"], as("dana"));
    assert.equal(deploy.code, 1);
    assert.match(deploy.stderr, /ENVIRONMENT_GATED: prod has gates .* only through a promotion/);
    const rollback = await cp.cli(["rollback", "--env", "prod"], as("dana"));
    assert.match(rollback.stderr, /ENVIRONMENT_GATED/);
    const noRole = await cp.cli(["deploy", "shop@1", "--to", "prod", "--override", "please"], as("dana"));
    assert.match(noRole.stderr, /FORBIDDEN: an override into prod needs the gate-override role/);
    const refused = await sql.query<{ action: string }>("SELECT action FROM audit_log WHERE outcome = 'refused' AND object = 'prod' AND code = 'ENVIRONMENT_GATED' ORDER BY seq");
    assert.deepEqual(refused.rows.map((r) => r.action), ["deployment.create", "deployment.rollback"]);
    const t = await cp.api<{ secret: string }>("POST", "/api/v1/api-tokens", { subject: "olga", roles: ["deployer", "gate-override"] });
    const over = await cp.cli(["deploy", "shop@1", "--to", "prod", "--override", "hotfix INC-1", "--wait", "--timeout", "120", "--json"], { FERRY_TOKEN: t.body.secret });
    assert.equal(over.code, 0, over.stderr);
    const d = JSON.parse(over.stdout) as { id: string; state: string; override: { by: string; reason: string; evidence: string } };
    assert.equal(d.state, "succeeded");
    assert.deepEqual([d.override.by, d.override.reason], ["olga", "hotfix INC-1"]);
    const ev = await cp.cli(["evidence", "list", "--subject", d.id, "--json"]);
    const kinds = (JSON.parse(ev.stdout) as { evidence: { id: string; kind: string }[] }).evidence.map((e) => e.kind);
    assert.ok(kinds.includes("deployment.override"), kinds.join(","));
  });

  function writeJson(name: string, v: unknown): string {
    const f = join(scratch, name);
    writeFileSync(f, JSON.stringify(v));
    return f;
  }
});
