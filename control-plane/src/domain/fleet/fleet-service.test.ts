// FleetService against both store backends: join-token rules, atomic consumption, revocation and the audit trail.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FleetCa, createCsr, generateKeyPair, generateSecret } from "@ferry/pki";
import { testBackends } from "../../adapters/store/test-backends.js";
import type { Store } from "../../ports/store.js";
import { verifyChain, listAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { FleetService } from "./fleet-service.js";
import { defaultRenewalLimit } from "./renewal-policy.js";

let ca: FleetCa;
const dir = mkdtempSync(join(tmpdir(), "ferry-fleet-"));
before(async () => {
  ca = await FleetCa.loadOrCreate(join(dir, "ca"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function service(store: Store, now = () => Date.now()): FleetService {
  return new FleetService({
    store,
    ca,
    clock: { now },
    liveness: { heartbeatIntervalMs: 15_000, graceMs: 15_000 },
    certLifetimeMs: 3_600_000,
    readyAt: () => 0,
  });
}

async function csr(): Promise<string> {
  const kp = await generateKeyPair();
  return createCsr(kp.privateKeyPem, { commonName: "test" });
}

/** Join tokens are only issued for environments that exist. */
async function withEnvironments(store: Store): Promise<Store> {
  await store.query("INSERT INTO environments (name, position, created_by) VALUES ('dev', 1, 'test'), ('prod', 2, 'test')");
  return store;
}

const code = (c: string) => (e: unknown) => e instanceof FerryError && e.code === c;

for (const b of testBackends()) {
  describe(`FleetService on ${b.name}`, () => {
    it("enrols with a join token: agent, certificate and audit record written together", async (t) => {
      const store = await withEnvironments(await b.open(t));
      const fleet = service(store);
      const { secret, token } = await fleet.createJoinToken({ environment: "prod", ttlMs: 60_000, uses: 1, labels: { zone: "a" }, createdBy: "alice" });
      const { agent, certificate } = await fleet.enrol({ tokenSecret: secret, csrPem: await csr(), name: "db-1", facts: { hostname: "db-1" }, peer: "127.0.0.1:1" });
      assert.equal(agent.environment, "prod");
      assert.deepEqual(agent.labels, { zone: "a" });
      assert.equal(agent.certificate.serial, certificate.serial);
      const tokens = await fleet.listJoinTokens();
      assert.equal(tokens.find((x) => x.id === token.id)?.usesCount, 1);
      const audit = await listAudit(store);
      assert.deepEqual(audit.map((r) => r.action), ["join-token.create", "agent.enrol"]);
      assert.equal((await verifyChain(store)).ok, true);
    });

    it("consumes a single-use token exactly once under concurrency", async (t) => {
      const store = await withEnvironments(await b.open(t));
      const fleet = service(store);
      const { secret } = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "alice" });
      const csrs = await Promise.all(Array.from({ length: 6 }, () => csr()));
      const results = await Promise.allSettled(csrs.map((c) => fleet.enrol({ tokenSecret: secret, csrPem: c, name: "", facts: {}, peer: "p" })));
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      for (const r of results) if (r.status === "rejected") assert.ok(code("JOIN_TOKEN_USED")(r.reason), String(r.reason));
      assert.equal((await fleet.listAgents()).length, 1);
    });

    it("tells expired, revoked, unknown and malformed tokens apart, and audits each refusal", async (t) => {
      const store = await withEnvironments(await b.open(t));
      let now = Date.now();
      const fleet = service(store, () => now);
      const expiring = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "a" });
      const revoked = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "a" });
      await fleet.revokeJoinToken(revoked.token.id, "a");
      now += 120_000;
      const c = await csr();
      await assert.rejects(fleet.enrol({ tokenSecret: expiring.secret, csrPem: c, name: "", facts: {}, peer: "p" }), code("JOIN_TOKEN_EXPIRED"));
      await assert.rejects(fleet.enrol({ tokenSecret: revoked.secret, csrPem: c, name: "", facts: {}, peer: "p" }), code("JOIN_TOKEN_INVALID"));
      await assert.rejects(fleet.enrol({ tokenSecret: generateSecret(), csrPem: c, name: "", facts: {}, peer: "p" }), code("JOIN_TOKEN_INVALID"));
      await assert.rejects(fleet.enrol({ tokenSecret: "short", csrPem: c, name: "", facts: {}, peer: "p" }), code("JOIN_TOKEN_MALFORMED"));
      const refused = (await listAudit(store)).filter((r) => r.outcome === "refused").map((r) => r.code);
      assert.deepEqual(refused, ["JOIN_TOKEN_EXPIRED", "JOIN_TOKEN_INVALID", "JOIN_TOKEN_INVALID", "JOIN_TOKEN_MALFORMED"]);
      assert.equal((await fleet.listAgents()).length, 0);
    });

    it("leaves the token unspent when the CSR is refused", async (t) => {
      const store = await withEnvironments(await b.open(t));
      const fleet = service(store);
      const { secret, token } = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "a" });
      await assert.rejects(fleet.enrol({ tokenSecret: secret, csrPem: "not a csr", name: "", facts: {}, peer: "p" }), code("CSR_INVALID"));
      assert.equal((await fleet.listJoinTokens()).find((x) => x.id === token.id)?.usesCount, 0);
      assert.equal((await fleet.listAgents()).length, 0);
    });

    it("validates join-token input", async (t) => {
      const store = await withEnvironments(await b.open(t));
      const fleet = service(store);
      const base = { environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "a" };
      await assert.rejects(fleet.createJoinToken({ ...base, environment: "Prod!" }), code("VALIDATION_FAILED"));
      // A well-formed name of an environment that does not exist: an agent enrolled with it would belong nowhere.
      await assert.rejects(fleet.createJoinToken({ ...base, environment: "ghost" }), code("ENVIRONMENT_NOT_FOUND"));
      assert.equal((await store.query("SELECT 1 FROM join_tokens WHERE environment = 'ghost'")).rowCount, 0);
      await assert.rejects(fleet.createJoinToken({ ...base, uses: 0 }), code("VALIDATION_FAILED"));
      await assert.rejects(fleet.createJoinToken({ ...base, ttlMs: 40 * 86_400_000 }), code("VALIDATION_FAILED"));
      await assert.rejects(fleet.createJoinToken({ ...base, labels: { "bad key!": "x" } }), code("VALIDATION_FAILED"));
      assert.equal((await listAudit(store)).length, 0);
    });

    it("revokes an agent with all its certificates, once, and renewals stop", async (t) => {
      const store = await withEnvironments(await b.open(t));
      const fleet = service(store);
      const { secret } = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "a" });
      const { agent } = await fleet.enrol({ tokenSecret: secret, csrPem: await csr(), name: "x", facts: {}, peer: "p" });
      const renewed = await fleet.renewCertificate(agent.id, await csr());
      const view = await fleet.revokeAgent(agent.id, "alice", "decommissioned");
      assert.equal(view.status, "revoked");
      const rev = await fleet.loadRevocations();
      assert.ok(rev.agents.has(agent.id));
      assert.ok(rev.serials.has(renewed.serial));
      assert.ok(rev.serials.has(agent.certificate.serial as string));
      await assert.rejects(fleet.revokeAgent(agent.id, "alice", "again"), code("AGENT_ALREADY_REVOKED"));
      await assert.rejects(fleet.renewCertificate(agent.id, await csr()), code("AGENT_REVOKED"));
      await assert.rejects(fleet.getAgent("agt_missing"), code("AGENT_NOT_FOUND"));
    });

    it("refuses a renewal with a key the agent already had certified, and rate-limits renewals per agent", async (t) => {
      const store = await withEnvironments(await b.open(t));
      // 1 h certificates: the default limit is 3 + one per half-life in 10 minutes = 4.
      assert.deepEqual(defaultRenewalLimit(3_600_000), { max: 4, windowMs: 600_000 });
      assert.deepEqual(defaultRenewalLimit(120_000), { max: 13, windowMs: 600_000 });
      const fleet = new FleetService({
        store,
        ca,
        clock: { now: () => Date.now() },
        liveness: { heartbeatIntervalMs: 15_000, graceMs: 15_000 },
        certLifetimeMs: 3_600_000,
        readyAt: () => 0,
        renewalLimit: { max: 3, windowMs: 600_000 },
      });
      const { secret } = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 2, labels: {}, createdBy: "a" });
      const enrolCsr = await csr();
      const { agent } = await fleet.enrol({ tokenSecret: secret, csrPem: enrolCsr, name: "x", facts: {}, peer: "p" });
      const { agent: other } = await fleet.enrol({ tokenSecret: secret, csrPem: await csr(), name: "y", facts: {}, peer: "p" });
      // The enrolment key again, then one CSR replayed many times: the first use of a new key passes, no repeat does.
      await assert.rejects(fleet.renewCertificate(agent.id, enrolCsr), code("CSR_KEY_REUSED"));
      const replayed = await csr();
      await fleet.renewCertificate(agent.id, replayed);
      const again = await Promise.allSettled(Array.from({ length: 20 }, () => fleet.renewCertificate(agent.id, replayed)));
      assert.ok(again.every((r) => r.status === "rejected" && code("CSR_KEY_REUSED")(r.reason)), JSON.stringify(again.map((r) => r.status)));
      // Fresh keys: up to the limit (3 per 10 minutes, the first renewal above included), then RATE_LIMITED with a retry hint.
      await fleet.renewCertificate(agent.id, await csr());
      await fleet.renewCertificate(agent.id, await csr());
      const limited = await fleet.renewCertificate(agent.id, await csr()).then(
        () => assert.fail("expected RATE_LIMITED"),
        (err: unknown) => err as FerryError,
      );
      assert.equal(limited.code, "RATE_LIMITED");
      assert.ok(typeof limited.details["retryAfterMs"] === "number" && limited.details["retryAfterMs"] > 0 && limited.details["retryAfterMs"] <= 600_000);
      // The limit is per agent.
      await fleet.renewCertificate(other.id, await csr());
      const certs = await store.query<{ n: string | number }>("SELECT count(*) AS n FROM agent_certificates WHERE agent_id = $1", [agent.id]);
      assert.equal(Number(certs.rows[0]?.n), 4, "the enrolment and three renewals; nothing for the refused calls");
    });

    it("answers with the freshest heartbeat this replica holds, ahead of the coalesced database value", async (t) => {
      const store = await withEnvironments(await b.open(t));
      const now = Date.now();
      const recent = new Map<string, { at: number; skewMs: number | null }>();
      const fleet = new FleetService({
        store,
        ca,
        clock: { now: () => now },
        liveness: { heartbeatIntervalMs: 1000, graceMs: 1000 },
        certLifetimeMs: 3_600_000,
        readyAt: () => 0,
        recentHeartbeat: (id) => recent.get(id),
      });
      const { secret } = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "a" });
      const { agent } = await fleet.enrol({ tokenSecret: secret, csrPem: await csr(), name: "x", facts: {}, peer: "p" });
      // The database says online but silent for a minute; this replica heard from the agent 100 ms ago.
      await store.query("UPDATE agents SET status = 'online', last_heartbeat_at = $2, clock_skew_ms = 5 WHERE id = $1", [agent.id, new Date(now - 60_000).toISOString()]);
      assert.equal((await fleet.getAgent(agent.id)).status, "offline");
      recent.set(agent.id, { at: now - 100, skewMs: -7 });
      const v = await fleet.getAgent(agent.id);
      assert.equal(v.status, "online");
      assert.equal(v.lastHeartbeatAt, new Date(now - 100).toISOString());
      assert.equal(v.clockSkewMs, -7);
    });

    it("delivers revocation notices to listeners", async (t) => {
      const store = await withEnvironments(await b.open(t));
      const fleet = service(store);
      const { secret } = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "a" });
      const { agent } = await fleet.enrol({ tokenSecret: secret, csrPem: await csr(), name: "x", facts: {}, peer: "p" });
      const got = new Promise<string>((resolve) => {
        void store.listen("ferry_revocations", (p) => resolve(p)).then((unlisten) => t.after(unlisten));
      });
      await new Promise((r) => setTimeout(r, 50));
      await fleet.revokeAgent(agent.id, "a", "");
      assert.deepEqual(JSON.parse(await got), { agentId: agent.id });
    });
  });
}
