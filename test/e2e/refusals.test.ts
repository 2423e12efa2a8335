// Everything the fleet foundation must refuse, each against a real control-plane process over real (m)TLS on
// loopback: the caller gets a stable code and a clear message, and the refusal leaves an audit record or log line.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createPrivateKey, createPublicKey, createSign, generateKeyPairSync } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FleetCa, createCsr, encodeJoinString, generateSecret } from "@ferry/pki";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import {
  agentClient,
  callEnrol,
  enrolClient,
  heartbeat,
  hello,
  newCsr,
  openStream,
  rawUnary,
  type Identity,
} from "../helpers/raw-client.js";
import { waitFor } from "../helpers/wait.js";

interface AuditRecord {
  action: string;
  object: string;
  outcome: string;
  code: string | null;
  details: Record<string, unknown>;
}

describe("refusals", () => {
  let cp: TestControlPlane;
  let caPem: string;
  let ca: FleetCa;
  const scratch = mkdtempSync(join(tmpdir(), "ferry-refusals-"));

  before(async () => {
    cp = await TestControlPlane.start({ extraArgs: ["--enrol-rate", "1000", "--enrol-burst", "1000", "--enrol-peer-rate", "1000", "--enrol-peer-burst", "1000"] });
    caPem = readFileSync(join(cp.dataDir, "ca", "ca.crt"), "utf8");
    ca = await FleetCa.loadOrCreate(join(cp.dataDir, "ca"));
    await cp.ensureEnvironment("dev");
  });
  after(async () => {
    await cp.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const token = async (extra: Record<string, unknown> = {}) => {
    const r = await cp.api<{ joinString: string }>("POST", "/api/v1/join-tokens", { environment: "dev", ...extra });
    assert.equal(r.status, 201);
    const payload = JSON.parse(Buffer.from(r.body.joinString.split(".")[1] as string, "base64url").toString()) as { t: string };
    return payload.t;
  };

  const enrolled = async (): Promise<Identity & { agentId: string }> => {
    const { keyPem, csrPem } = await newCsr();
    const r = await callEnrol(enrolClient(cp.enrolEndpoint, caPem), { joinToken: await token(), csrPem });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.err));
    return { keyPem, certPem: r.res.certificatePem, agentId: r.res.agentId };
  };

  const audit = async (): Promise<AuditRecord[]> =>
    (await cp.api<{ records: AuditRecord[] }>("GET", "/api/v1/audit?limit=1000")).body.records;

  const refusalLogged = (code: string) =>
    waitFor(`a log line for ${code}`, () => cp.proc.logs().some((l) => l["code"] === code && /refused/.test(String(l["msg"]))));

  const auditedRefusal = (code: string) =>
    waitFor(`an audit record for ${code}`, async () => (await audit()).find((r) => r.outcome === "refused" && r.code === code));

  describe("agent listener (mTLS)", () => {
    it("refuses a connection without a client certificate: CERT_REQUIRED", async () => {
      const s = openStream(agentClient(cp.agentEndpoint, caPem));
      const err = await s.ended;
      assert.equal(err?.code, "CERT_REQUIRED");
      assert.match(err?.message ?? "", /no client certificate/);
      await refusalLogged("CERT_REQUIRED");
      await auditedRefusal("CERT_REQUIRED");
    });

    it("refuses a certificate from another CA: CERT_UNTRUSTED", async () => {
      const other = await FleetCa.loadOrCreate(join(scratch, "other-ca"));
      const { keyPem, csrPem } = await newCsr();
      const cert = await other.issueAgentCertificate(csrPem, { agentId: "agt_impostor", lifetimeMs: 3_600_000 });
      const s = openStream(agentClient(cp.agentEndpoint, caPem, { keyPem, certPem: cert.certPem }));
      const err = await s.ended;
      assert.equal(err?.code, "CERT_UNTRUSTED");
      assert.match(err?.message ?? "", /not issued by this fleet's CA/);
      await auditedRefusal("CERT_UNTRUSTED");
    });

    it("refuses an expired certificate: CERT_EXPIRED", async () => {
      const { keyPem, csrPem } = await newCsr();
      const cert = await ca.issueAgentCertificate(csrPem, {
        agentId: "agt_expired",
        lifetimeMs: 3_600_000,
        now: new Date(Date.now() - 3 * 3_600_000),
      });
      const s = openStream(agentClient(cp.agentEndpoint, caPem, { keyPem, certPem: cert.certPem }));
      const err = await s.ended;
      assert.equal(err?.code, "CERT_EXPIRED");
      assert.match(err?.message ?? "", /expired at .*re-enrol/);
      await auditedRefusal("CERT_EXPIRED");
    });

    it("refuses agent A's certificate claiming to be agent B: IDENTITY_MISMATCH (Hello and heartbeat)", async () => {
      const a = await enrolled();
      const b = await enrolled();
      const s1 = openStream(agentClient(cp.agentEndpoint, caPem, a));
      s1.send(hello(b.agentId));
      const e1 = await s1.ended;
      assert.equal(e1?.code, "IDENTITY_MISMATCH");

      const s2 = openStream(agentClient(cp.agentEndpoint, caPem, a));
      s2.send(hello(a.agentId));
      await waitFor("Welcome", () => s2.received.some((m) => m.body.case === "welcome"));
      s2.send(heartbeat(b.agentId, 1));
      const e2 = await s2.ended;
      assert.equal(e2?.code, "IDENTITY_MISMATCH");
      assert.match(e2?.message ?? "", new RegExp(`claims agent ${b.agentId}`));
      const rec = await auditedRefusal("IDENTITY_MISMATCH");
      assert.equal(rec.details["agentId"], a.agentId);
      // B's record was never touched by A's heartbeat.
      const bView = await cp.api<{ lastHeartbeatAt: string | null }>("GET", `/api/v1/agents/${b.agentId}`);
      assert.equal(bView.body.lastHeartbeatAt, null);
    });

    it("refuses a stream that does not start with Hello: PROTOCOL_VIOLATION", async () => {
      const a = await enrolled();
      const s = openStream(agentClient(cp.agentEndpoint, caPem, a));
      s.send(heartbeat(a.agentId, 1));
      assert.equal((await s.ended)?.code, "PROTOCOL_VIOLATION");
    });

    it("refuses a revoked agent's certificate, and closes its open stream within 1 s", async () => {
      const a = await enrolled();
      const s = openStream(agentClient(cp.agentEndpoint, caPem, a));
      s.send(hello(a.agentId));
      await waitFor("Welcome", () => s.received.some((m) => m.body.case === "welcome"));
      const t0 = Date.now();
      const r = await cp.api("POST", `/api/v1/agents/${a.agentId}/revoke`, { reason: "test" });
      assert.equal(r.status, 200);
      const err = await s.ended;
      assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`);
      assert.equal(err?.code, "AGENT_REVOKED");
      assert.ok(s.received.some((m) => m.body.case === "disconnect" && m.body.value.code === "AGENT_REVOKED"));
      const again = openStream(agentClient(cp.agentEndpoint, caPem, a));
      assert.equal((await again.ended)?.code, "AGENT_REVOKED");
      await auditedRefusal("AGENT_REVOKED");
      const second = await cp.api<{ error: { code: string } }>("POST", `/api/v1/agents/${a.agentId}/revoke`, {});
      assert.equal(second.status, 409);
      assert.equal(second.body.error.code, "AGENT_ALREADY_REVOKED");
    });

    it("refuses a revoked certificate serial: CERT_REVOKED", async () => {
      const a = await enrolled();
      const serial = (await cp.api<{ certificate: { serial: string } }>("GET", `/api/v1/agents/${a.agentId}`)).body.certificate.serial;
      const s = openStream(agentClient(cp.agentEndpoint, caPem, a));
      s.send(hello(a.agentId));
      await waitFor("Welcome", () => s.received.some((m) => m.body.case === "welcome"));
      // Keep the stream alive like an agent would while the CLI starts up.
      let seq = 0;
      const pump = setInterval(() => s.send(heartbeat(a.agentId, ++seq)), 100);
      try {
        const r = await cp.cli(["cert", "revoke", serial, "--reason", "key leaked"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await s.ended)?.code, "CERT_REVOKED");
      } finally {
        clearInterval(pump);
      }
      assert.equal((await openStream(agentClient(cp.agentEndpoint, caPem, a)).ended)?.code, "CERT_REVOKED");
    });

    it("refuses malformed and oversize protobuf messages with MALFORMED_MESSAGE / MESSAGE_TOO_LARGE", async () => {
      const a = await enrolled();
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
      const e1 = await rawUnary(cp.agentEndpoint, caPem, "/ferry.agent.v1.AgentService/RenewCertificate", garbage, a);
      assert.equal(e1?.code, "MALFORMED_MESSAGE");
      const big = Buffer.alloc(1024 * 1024 + 10, 0);
      big[0] = 0x0a; // field 1, length-delimited, with a length that fits the buffer
      const e2 = await rawUnary(cp.agentEndpoint, caPem, "/ferry.agent.v1.AgentService/RenewCertificate", big, a);
      assert.equal(e2?.code, "MESSAGE_TOO_LARGE");
      const e3 = await rawUnary(cp.enrolEndpoint, caPem, "/ferry.agent.v1.EnrolmentService/Enrol", garbage);
      assert.equal(e3?.code, "MALFORMED_MESSAGE");
      await refusalLogged("MALFORMED_MESSAGE");
      await refusalLogged("MESSAGE_TOO_LARGE");
    });
  });

  describe("enrolment", () => {
    it("refuses a reused single-use token: JOIN_TOKEN_USED", async () => {
      const t = await token();
      const c = enrolClient(cp.enrolEndpoint, caPem);
      assert.ok((await callEnrol(c, { joinToken: t, csrPem: (await newCsr()).csrPem })).ok);
      const again = await callEnrol(c, { joinToken: t, csrPem: (await newCsr()).csrPem });
      assert.ok(!again.ok && again.err.code === "JOIN_TOKEN_USED", JSON.stringify(again));
      await auditedRefusal("JOIN_TOKEN_USED");
    });

    it("lets exactly one of many agents racing with one single-use token win", async () => {
      const t = await token();
      const c = enrolClient(cp.enrolEndpoint, caPem);
      const csrs = await Promise.all(Array.from({ length: 8 }, () => newCsr()));
      const results = await Promise.all(csrs.map((x) => callEnrol(c, { joinToken: t, csrPem: x.csrPem })));
      assert.equal(results.filter((r) => r.ok).length, 1);
      for (const r of results) if (!r.ok) assert.equal(r.err.code, "JOIN_TOKEN_USED");
    });

    it("honours --uses N", async () => {
      const t = await token({ uses: 3 });
      const c = enrolClient(cp.enrolEndpoint, caPem);
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await callEnrol(c, { joinToken: t, csrPem: (await newCsr()).csrPem }));
      assert.deepEqual(results.map((r) => r.ok), [true, true, true, false]);
    });

    it("refuses an expired token: JOIN_TOKEN_EXPIRED", async () => {
      const t = await token({ ttl: "1s" });
      await new Promise((r) => setTimeout(r, 1200)); // the token's own 1 s lifetime has to pass
      const r = await callEnrol(enrolClient(cp.enrolEndpoint, caPem), { joinToken: t, csrPem: (await newCsr()).csrPem });
      assert.ok(!r.ok && r.err.code === "JOIN_TOKEN_EXPIRED", JSON.stringify(r));
      assert.match(!r.ok ? r.err.message : "", /expired at/);
    });

    it("refuses unknown and malformed tokens", async () => {
      const c = enrolClient(cp.enrolEndpoint, caPem);
      const unknown = await callEnrol(c, { joinToken: generateSecret(), csrPem: (await newCsr()).csrPem });
      assert.ok(!unknown.ok && unknown.err.code === "JOIN_TOKEN_INVALID");
      const malformed = await callEnrol(c, { joinToken: "not-a-token", csrPem: (await newCsr()).csrPem });
      assert.ok(!malformed.ok && malformed.err.code === "JOIN_TOKEN_MALFORMED");
      await auditedRefusal("JOIN_TOKEN_INVALID");
      await auditedRefusal("JOIN_TOKEN_MALFORMED");
    });

    it("refuses CSRs with a key that is not P-256, and does not spend the token", async () => {
      const t = await token();
      const c = enrolClient(cp.enrolEndpoint, caPem);
      for (const keyOpts of [
        { type: "rsa" as const, opts: { modulusLength: 2048 } },
        { type: "ec" as const, opts: { namedCurve: "P-384" } },
      ]) {
        const { privateKey } = generateKeyPairSync(keyOpts.type as "rsa", keyOpts.opts as { modulusLength: number });
        const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
        let csrPem: string;
        try {
          csrPem = await createCsr(pem, { commonName: "wrong-key" });
        } catch {
          csrPem = handMadeCsr(pem);
        }
        const r = await callEnrol(c, { joinToken: t, csrPem });
        assert.ok(!r.ok && r.err.code === "CSR_KEY_NOT_ALLOWED", JSON.stringify(r));
      }
      const garbage = await callEnrol(c, { joinToken: t, csrPem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n" });
      assert.ok(!garbage.ok && garbage.err.code === "CSR_INVALID");
      // Nothing half-written: the refused attempts did not use the token up.
      assert.ok((await callEnrol(c, { joinToken: t, csrPem: (await newCsr()).csrPem })).ok);
      await auditedRefusal("CSR_KEY_NOT_ALLOWED");
    });

    it("refuses a join string whose CA fingerprint does not match the server, before sending the token", async () => {
      const t = await token();
      const forged = encodeJoinString({ enrolEndpoint: cp.enrolEndpoint, caFingerprint: `sha256:${"ab".repeat(32)}`, token: t });
      const agent = new TestAgent("pinned");
      try {
        const r = await agent.enrol(forged);
        assert.equal(r.code, 3, r.stdout + r.stderr);
        assert.match(r.stdout + r.stderr, /CA_PIN_MISMATCH/);
      } finally {
        await agent.dispose();
      }
      // The token was never presented, so it still works.
      assert.ok((await callEnrol(enrolClient(cp.enrolEndpoint, caPem), { joinToken: t, csrPem: (await newCsr()).csrPem })).ok);
    });
  });

  describe("API", () => {
    it("refuses calls without a token or with a wrong one: UNAUTHENTICATED", async () => {
      const none = await cp.api<{ error: { code: string; message: string } }>("GET", "/api/v1/agents", undefined, null);
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, "UNAUTHENTICATED");
      const wrong = await cp.api<{ error: { code: string } }>("GET", "/api/v1/agents", undefined, `ferry_${generateSecret()}`);
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, "UNAUTHENTICATED");
      const garbage = await cp.api<{ error: { code: string } }>("GET", "/api/v1/agents", undefined, "hunter2");
      assert.equal(garbage.status, 401);
      const cli = await cp.cli(["agents"], { FERRY_TOKEN: "hunter2" });
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /UNAUTHENTICATED/);
    });

    it("refuses bad bodies with VALIDATION_FAILED naming the field, and unknown fields", async () => {
      const bad = await cp.api<{ error: { code: string; message: string } }>("POST", "/api/v1/join-tokens", { environment: "Prod!" });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, "VALIDATION_FAILED");
      assert.match(bad.body.error.message, /environment/);
      const typo = await cp.api<{ error: { code: string; message: string } }>("POST", "/api/v1/join-tokens", { environment: "dev", usees: 2 });
      assert.equal(typo.status, 400);
      assert.match(typo.body.error.message, /unknown field "usees"/);
      const ttl = await cp.api<{ error: { code: string; message: string } }>("POST", "/api/v1/join-tokens", { environment: "dev", ttl: "soon" });
      assert.equal(ttl.body.error.code, "VALIDATION_FAILED");
      assert.match(ttl.body.error.message, /^ttl:/);
      const missing = await cp.api<{ error: { code: string } }>("GET", "/api/v1/agents/agt_nope");
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, "AGENT_NOT_FOUND");
    });
  });
});

/**
 * A PKCS#10 request built by hand for key types the agent library will not produce. Minimal DER: version 0, subject
 * CN, the key's SPKI, empty attributes, signed with the key itself.
 */
function handMadeCsr(privateKeyPem: string): string {
  const key = createPrivateKey(privateKeyPem);
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  const len = (n: number): Buffer => (n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]));
  const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), len(body.length), body]);
  const cn = tlv(0x30, tlv(0x31, tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from([0x55, 0x04, 0x03])), tlv(0x0c, Buffer.from("wrong-key"))]))));
  const info = tlv(0x30, Buffer.concat([tlv(0x02, Buffer.from([0])), cn, spki, tlv(0xa0, Buffer.alloc(0))]));
  const isRsa = key.asymmetricKeyType === "rsa";
  const algOid = isRsa
    ? tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from("2a864886f70d01010b", "hex")), Buffer.from([0x05, 0x00])]))
    : tlv(0x30, tlv(0x06, Buffer.from("2a8648ce3d040303", "hex")));
  const signer = createSign(isRsa ? "sha256" : "sha384");
  signer.update(info);
  const sig = signer.sign(key);
  const der = tlv(0x30, Buffer.concat([info, algOid, tlv(0x03, Buffer.concat([Buffer.from([0]), sig]))]));
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE REQUEST-----\n`;
}
