// The operator-facing surfaces of a real server: health, metrics, console shell, CLI behaviour on bad input, and
// secrets kept out of the log.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { FERRY_BIN, run } from "../helpers/processes.js";
import { waitFor } from "../helpers/wait.js";

describe("interfaces", () => {
  let cp: TestControlPlane;
  const agent = new TestAgent("iface");
  let joinString = "";

  before(async () => {
    cp = await TestControlPlane.start();
    for (const env of ["dev", "qa"]) await cp.ensureEnvironment(env);
    const r = await cp.cli(["token", "create", "--env", "dev", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    joinString = (JSON.parse(r.stdout) as { joinString: string }).joinString;
    assert.equal((await agent.enrol(joinString)).code, 0);
    agent.start();
  });
  after(async () => {
    await agent.dispose();
    await cp.stop();
  });

  it("writes the admin token to a 0600 file only: never to a server output that is not a terminal", () => {
    // The server's stderr is a pipe here, as under a service manager or a log collector.
    assert.doesNotMatch(cp.proc.stderr, new RegExp(cp.adminToken));
    assert.doesNotMatch(cp.proc.stdout, new RegExp(cp.adminToken));
    assert.match(cp.proc.stderr, /admin API token was created and written to .*admin-token \(mode 0600\) only/);
    assert.match(cp.proc.stderr, new RegExp(cp.runtime.caFingerprint));
    const mode = statSync(join(cp.dataDir, "admin-token")).mode & 0o777;
    assert.equal(mode, 0o600);
  });

  it("serves /healthz without a token", async () => {
    const r = await cp.api<{ status: string; store: string }>("GET", "/healthz", undefined, null);
    assert.equal(r.status, 200);
    assert.deepEqual([r.body.status, r.body.store], ["ok", "pglite"]);
  });

  it("exposes Prometheus metrics that move with the fleet", async () => {
    const metrics = () => fetch(`${cp.runtime.api}/metrics`).then((r) => r.text());
    const value = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
    const text = await waitFor("a heartbeat counted", async () => {
      const t = await metrics();
      return value(t, "ferry_heartbeats_total") > 0 && value(t, "ferry_agents_connected") === 1 ? t : undefined;
    });
    assert.match(text, /# TYPE ferry_agent_refusals_total counter/);
    assert.match(text, /ferry_enrolments_total\{outcome="ok"\} 1/);
    assert.match(text, /ferry_http_request_duration_seconds_bucket/);
  });

  it("serves the console with a strict content security policy, on every page path", async () => {
    const page = await fetch(`${cp.runtime.api}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'.*frame-ancestors 'none'/);
    const html = await page.text();
    const script = /<script type="module" src="\/(console-[0-9a-f]+\.js)">/.exec(html);
    assert.ok(script, html);
    const js = await fetch(`${cp.runtime.api}/${script[1]}`);
    assert.match(js.headers.get("content-type") ?? "", /javascript/);
    assert.match(js.headers.get("cache-control") ?? "", /immutable/);
    assert.match(await js.text(), /\/api\/v1\/console\/overview/);
    const deep = await fetch(`${cp.runtime.api}/promotions/prm_anything`);
    assert.equal(deep.status, 200);
    assert.equal(await deep.text(), html);
  });

  it("shows one agent in human form and lists and revokes join tokens", async () => {
    const id = (JSON.parse(readFileSync(join(agent.stateDir, "identity.json"), "utf8")) as { agentId: string }).agentId;
    await waitFor("online", async () => ((await cp.api<{ status: string }>("GET", `/api/v1/agents/${id}`)).body.status === "online" ? true : undefined));
    const show = await cp.cli(["agent", "show", id]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /status\s+online, connected/);
    assert.match(show.stdout, /certificate\s+serial [0-9a-f]+, expires/);
    const created = JSON.parse((await cp.cli(["token", "create", "--env", "qa", "--json"])).stdout) as { id: string };
    const revoked = await cp.cli(["token", "revoke", created.id]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const list = await cp.cli(["token", "list"]);
    assert.match(list.stdout, new RegExp(`${created.id}\\s+qa\\s+0/1\\s+\\S+\\s+revoked`));
    const who = await cp.api<{ tokenId: string; subject: string; roles: string[] }>("GET", "/api/v1/whoami");
    assert.deepEqual({ subject: who.body.subject, roles: who.body.roles }, { subject: "admin", roles: ["admin"] });
    assert.match(who.body.tokenId, /^tok_/);
  });

  it("answers CLI usage mistakes with exit code 2 and unreachable servers with exit code 3", async () => {
    const missing = await cp.cli(["token", "create"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--env/);
    const badStatus = await cp.cli(["agents", "--status", "sleeping"]);
    assert.equal(badStatus.code, 2);
    const badUses = await cp.cli(["token", "create", "--env", "dev", "--uses", "many"]);
    assert.equal(badUses.code, 2);
    assert.match(badUses.stderr, /--uses/);
    const badLabel = await cp.cli(["token", "create", "--env", "dev", "--label", "novalue"]);
    assert.equal(badLabel.code, 2);
    const notFound = await cp.cli(["agent", "show", "agt_nobody"]);
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /AGENT_NOT_FOUND/);
    const down = await run(FERRY_BIN, ["agents"], { FERRY_URL: "http://127.0.0.1:1", FERRY_TOKEN: cp.adminToken });
    assert.equal(down.code, 3);
    assert.match(down.stderr, /cannot reach the control plane at http:\/\/127.0.0.1:1/);
  });

  it("describes every API route in /api/v1/openapi.json, with its role and a summary", async () => {
    const doc = (await cp.api<{ openapi: string; paths: Record<string, Record<string, { summary: string; "x-ferry-role"?: string }>> }>("GET", "/api/v1/openapi.json")).body;
    assert.equal(doc.openapi, "3.1.0");
    const expected = [
      "get /api/v1/agents", "get /api/v1/agents/{id}", "post /api/v1/agents/{id}/revoke", "post /api/v1/certificates/{serial}/revoke",
      "post /api/v1/join-tokens", "get /api/v1/join-tokens", "post /api/v1/join-tokens/{id}/revoke", "post /api/v1/fleet/ping",
      "get /api/v1/fleet/summary", "get /api/v1/audit", "get /api/v1/audit/verify", "post /api/v1/audit/checkpoints", "get /api/v1/whoami",
      "get /api/v1/environments", "post /api/v1/environments", "get /api/v1/environments/{name}", "patch /api/v1/environments/{name}",
      "delete /api/v1/environments/{name}", "get /api/v1/targets", "post /api/v1/environments/{env}/targets",
      "get /api/v1/environments/{env}/targets/{name}", "patch /api/v1/environments/{env}/targets/{name}",
      "delete /api/v1/environments/{env}/targets/{name}", "post /api/v1/environments/{env}/targets/{name}/check",
      "get /api/v1/environments/{env}/targets/{name}/check/log", "get /api/v1/components", "post /api/v1/components",
      "get /api/v1/components/{name}", "patch /api/v1/components/{name}", "delete /api/v1/components/{name}",
      "post /api/v1/releases", "get /api/v1/releases", "get /api/v1/releases/{ref}",
      "post /api/v1/api-tokens", "get /api/v1/api-tokens", "post /api/v1/api-tokens/{id}/revoke",
      "post /api/v1/deployments", "get /api/v1/deployments", "get /api/v1/deployments/{id}", "post /api/v1/deployments/{id}/retry",
      "post /api/v1/deployments/{id}/cancel", "get /api/v1/deployments/{id}/tasks/{task}/log",
      "get /api/v1/deployments/{id}/tasks/{task}/events", "get /api/v1/deployments/{id}/tasks/{task}/lock", "post /api/v1/rollbacks",
      "post /api/v1/environments/{env}/maintenance",
      "get /api/v1/rollouts", "get /api/v1/rollouts/{id}", "post /api/v1/rollouts/{id}/pause", "post /api/v1/rollouts/{id}/resume",
      "post /api/v1/rollouts/{id}/promote", "post /api/v1/rollouts/{id}/abort",
      "get /api/v1/status", "get /api/v1/task-signing-keys", "post /api/v1/task-signing-keys/rotate",
      "post /api/v1/promotions", "get /api/v1/promotions", "get /api/v1/promotions/{id}", "get /api/v1/promotions/{id}/why-blocked",
      "get /api/v1/promotions/{id}/release-metadata.json", "get /api/v1/promotions/{id}/release-notes.md",
      "post /api/v1/promotions/{id}/approve", "post /api/v1/promotions/{id}/reject", "post /api/v1/promotions/{id}/break-glass",
      "post /api/v1/promotions/{id}/cancel", "post /api/v1/scans", "get /api/v1/scans", "post /api/v1/exceptions", "get /api/v1/exceptions",
      "get /api/v1/groups", "post /api/v1/groups/{group}/members", "delete /api/v1/groups/{group}/members/{subject}",
      "get /api/v1/evidence", "get /api/v1/evidence/{id}", "get /api/v1/evidence-keys",
      "post /api/v1/webhooks", "get /api/v1/webhooks", "post /api/v1/webhooks/{id}/disable", "post /api/v1/webhooks/{id}/enable",
      "get /api/v1/webhooks/deliveries",
      "get /api/v1/console/overview", "get /api/v1/console/events", "get /api/v1/console/agents/{id}/activity",
      "get /api/v1/console/releases/{ref}/activity", "get /api/v1/console/environments/{name}/activity",
    ];
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
    assert.deepEqual([...documented].sort(), [...expected].sort());
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(ops)) {
        assert.ok(op.summary.length > 5, `${m} ${p} has a summary`);
        assert.ok(op["x-ferry-role"], `${m} ${p} declares its role`);
      }
    }
  });

  it("never writes a secret to the server log", () => {
    const log = cp.proc.stdout;
    const token = (JSON.parse(Buffer.from(joinString.split(".")[1] as string, "base64url").toString()) as { t: string }).t;
    assert.ok(!log.includes(token), "join token secret in the log");
    assert.ok(!log.includes(joinString), "join string in the log");
    assert.ok(!log.includes(cp.adminToken), "admin token in the log");
    assert.ok(!/BEGIN (EC )?PRIVATE KEY/.test(log), "key material in the log");
  });
});
