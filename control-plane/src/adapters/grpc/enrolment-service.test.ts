// The enrolment handler under a flood of bad join tokens from one address, with the real FleetService on both store
// backends: refusals are audited at most the recorder's cap, and the flood spends its own address's admission
// bucket, so an enrolment from another address still gets in.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { sendUnaryData, ServerUnaryCall, ServiceError } from "@grpc/grpc-js";
import { pino } from "pino";
import { Counter, Registry } from "prom-client";
import { EnrolRequestSchema, type EnrolResponse } from "@ferry/proto";
import { FleetCa, createCsr, generateKeyPair, generateSecret } from "@ferry/pki";
import { testBackends } from "../store/test-backends.js";
import { listAudit } from "../../domain/audit/audit-log.js";
import { FleetService } from "../../domain/fleet/fleet-service.js";
import { AdmissionGate, PeerAdmission, peerKey } from "./admission.js";
import { enrolmentServiceImpl } from "./enrolment-service.js";
import { RefusalRecorder } from "./refusals.js";

let ca: FleetCa;
const dir = mkdtempSync(join(tmpdir(), "ferry-enrol-"));
before(async () => {
  ca = await FleetCa.loadOrCreate(join(dir, "ca"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

type Outcome = { err: ServiceError | null; res?: EnrolResponse };

describe("peer keys", () => {
  it("keys IPv4 peers by address and IPv6 peers by /64", () => {
    assert.equal(peerKey("ipv4:10.1.2.3:5123"), "10.1.2.3");
    assert.equal(peerKey("ipv6:[2001:db8:0:1::5]:443"), "2001:db8:0:1::/64");
    assert.equal(peerKey("ipv6:[2001:db8:0:1:ffff::9]:1"), "2001:db8:0:1::/64");
    assert.equal(peerKey("ipv6:[::1]:1"), "0:0:0:0::/64");
  });
});

for (const b of testBackends()) {
  describe(`enrolment under a flood on ${b.name}`, () => {
    it("caps the audit of refusals and keeps the shared bucket for everyone else", async (t) => {
      const store = await b.open(t);
      let now = 0;
      const clock = { now: () => now };
      const fleet = new FleetService({ store, ca, clock: { now: () => Date.now() }, liveness: { heartbeatIntervalMs: 15_000, graceMs: 15_000 }, certLifetimeMs: 3_600_000, readyAt: () => 0 });
      const metric = new Counter({ name: `refusals_${b.name}`, help: "x", labelNames: ["code", "listener"], registers: [new Registry()] });
      const impl = enrolmentServiceImpl({
        fleet,
        admission: new AdmissionGate(20, 100, clock),
        peerAdmission: new PeerAdmission(2, 20, clock),
        refusals: new RefusalRecorder(fleet, pino({ level: "silent" }), metric, 10),
        caBundle: () => [ca.certPem],
        agentEndpoint: () => "127.0.0.1:7071",
        heartbeatIntervalMs: 15_000,
        signingKeys: () => [],
        log: pino({ level: "silent" }),
      });
      const enrol = (peer: string, joinToken: string, csrPem = "x") =>
        new Promise<Outcome>((resolve) => {
          const call = { getPeer: () => peer, request: create(EnrolRequestSchema, { joinToken, csrPem, name: "n" }) } as unknown as ServerUnaryCall<never, EnrolResponse>;
          const cb: sendUnaryData<EnrolResponse> = (err, res) => resolve({ err: err as ServiceError | null, ...(res ? { res } : {}) });
          (impl["enrol"] as (c: typeof call, cb: sendUnaryData<EnrolResponse>) => void)(call, cb);
        });

      // 108 bad tokens from one address in one go (the reported flood).
      const flood = await Promise.all(Array.from({ length: 108 }, () => enrol("ipv4:203.0.113.9:4000", generateSecret())));
      const codes = flood.map((o) => String(o.err?.details).split(":")[0]);
      assert.equal(codes.filter((c) => c === "JOIN_TOKEN_INVALID").length, 20, "the address's own burst, then refused");
      assert.equal(codes.filter((c) => c === "RATE_LIMITED").length, 88);
      // The recorder audits in the background: wait for the cap's worth, then make sure no more come.
      const refusedRows = async () => (await listAudit(store, { limit: 1000 })).filter((r) => r.outcome === "refused").length;
      for (let i = 0; i < 200 && (await refusedRows()) < 10; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await refusedRows(), 10, "20 token refusals reached the recorder; it audited its cap of 10 (the rest are logged and counted)");

      // Someone else enrols with a real token at once: the shared bucket was not drained.
      // Join tokens are issued only for environments that exist.
      await store.query("INSERT INTO environments (name, position, created_by) VALUES ('dev', 1, 'test')");
      const { secret } = await fleet.createJoinToken({ environment: "dev", ttlMs: 60_000, uses: 1, labels: {}, createdBy: "alice" });
      const kp = await generateKeyPair();
      const ok = await enrol("ipv4:198.51.100.7:4000", secret, await createCsr(kp.privateKeyPem, { commonName: "a" }));
      assert.equal(ok.err, null, String(ok.err?.details));
      assert.ok(ok.res?.agentId);
      // The flooding address gets in again once its own bucket refills.
      now += 1000;
      const again = await enrol("ipv4:203.0.113.9:4001", generateSecret());
      assert.match(String(again.err?.details), /^JOIN_TOKEN_INVALID/);
    });
  });
}
