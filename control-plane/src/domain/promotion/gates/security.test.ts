import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { securityGate, type SecurityInput } from "./security.js";
import type { ScanReportSummary, SecurityException } from "./types.js";

const API = `sha256:${"a".repeat(64)}`;
const WEB = `sha256:${"b".repeat(64)}`;
const now = new Date("2024-06-10T12:00:00Z");
const daysAgo = (d: number): Date => new Date(now.getTime() - d * 86_400_000);
const report = (over: Partial<ScanReportSummary> = {}): ScanReportSummary => ({
  scanner: "trivy 0.52.0", format: "trivy", uploadedAt: daysAgo(1),
  counts: { critical: 0, high: 0, medium: 3, low: 5, unknown: 1 }, ...over,
});
const exception = (over: Partial<SecurityException> = {}): SecurityException => ({
  digest: API, maxSeverity: "high", reason: "not reachable: libc iconv is unused", approver: "sec-team-carol", expiresAt: daysAgo(-7), ...over,
});
const input = (scans: SecurityInput["scans"], exceptions: SecurityException[] = []): SecurityInput => ({
  release: {
    id: "rel_1", name: "shop", version: "1.4.0", createdAt: daysAgo(2), provenance: {},
    pins: [
      { component: "api", repository: "registry.example.com/shop/api", digest: API },
      { component: "web", repository: "registry.example.com/shop/web", digest: WEB },
    ],
  },
  scans, exceptions,
});
const high = securityGate.parseConfig({ blockAt: "high" });

describe("security gate", () => {
  it("validates its config", () => {
    assert.deepEqual(securityGate.parseConfig({ blockAt: "critical", requireReport: false, maxReportAge: "7d" }),
      { blockAt: "critical", requireReport: false, maxReportAgeMs: 7 * 86_400_000 });
    assert.equal(high.requireReport, true);
    for (const [raw, field] of [[{}, "config.blockAt"], [{ blockAt: "severe" }, "config.blockAt"], [{ blockAt: "high", requireReport: "yes" }, "config.requireReport"], [{ blockAt: "high", maxReportAge: "a week" }, "config.maxReportAge"]] as const) {
      assert.throws(() => securityGate.parseConfig(raw), (e: unknown) => e instanceof FerryError && e.details.field === field, field);
    }
  });

  it("passes when every image has a report with nothing at or above the threshold", () => {
    const r = securityGate.evaluate(high, input({ [API]: [report()], [WEB]: [report({ format: "sarif", scanner: "Grype" })] }), now);
    assert.equal(r.state, "passed");
    assert.equal(r.reason, "2 of 2 images scanned, nothing at or above high");
  });

  it("is pending while an image has no report, naming it", () => {
    const r = securityGate.evaluate(high, input({ [API]: [report()] }), now);
    assert.equal(r.state, "pending");
    assert.equal(r.reason, `no scan report for web (${WEB.slice(0, 19)})`);
    assert.equal(r.remedy, `upload a scan report (Trivy JSON or SARIF) for ${WEB}`);
  });

  it("does not need reports when requireReport is false", () => {
    const lax = securityGate.parseConfig({ blockAt: "high", requireReport: false });
    const r = securityGate.evaluate(lax, input({ [API]: [report()] }), now);
    assert.equal(r.state, "passed");
    assert.equal(r.reason, "1 of 2 images scanned, nothing at or above high");
  });

  it("counts a report older than maxReportAge as no report", () => {
    const fresh = securityGate.parseConfig({ blockAt: "high", maxReportAge: "7d" });
    const r = securityGate.evaluate(fresh, input({ [API]: [report({ uploadedAt: daysAgo(9) })], [WEB]: [report()] }), now);
    assert.equal(r.state, "pending");
    assert.match(r.reason, /no scan report newer than 7d for api \(sha256:aaaaaaaaaaaa\); the newest is from 2024-06-01T12:00:00Z/);
  });

  it("fails on findings at or above the threshold, naming image, counts, ids and scanner", () => {
    const r = securityGate.evaluate(high, input({
      [API]: [report({
        counts: { critical: 1, high: 1, medium: 0, low: 0, unknown: 0 },
        findings: [{ id: "CVE-2023-45853", severity: "critical", package: "zlib1g" }, { id: "CVE-2024-2961", severity: "high", package: "libc6" }],
      })],
      [WEB]: [report()],
    }), now);
    assert.equal(r.state, "failed");
    assert.equal(r.reason, "findings at or above high: api (sha256:aaaaaaaaaaaa): 1 critical, 1 high (CVE-2023-45853, CVE-2024-2961) per trivy 0.52.0 at 2024-06-09T12:00:00Z");
    assert.equal(r.remedy, `fix the findings and cut a new release, or record an exception for ${API} with a reason, an approver and an expiry`);
  });

  it("does not block below the threshold, and never on unknown", () => {
    const crit = securityGate.parseConfig({ blockAt: "critical" });
    const r = securityGate.evaluate(crit, input({ [API]: [report({ counts: { high: 4, unknown: 9 } })], [WEB]: [report()] }), now);
    assert.equal(r.state, "passed");
  });

  it("uses the newest report of each scanner, and every scanner's", () => {
    const r = securityGate.evaluate(high, input({
      [API]: [
        report({ uploadedAt: daysAgo(3), counts: { critical: 2 } }), // superseded by the rescan below
        report({ uploadedAt: daysAgo(1), counts: { low: 1 } }),
        report({ scanner: "Grype", format: "sarif", uploadedAt: daysAgo(5), counts: { high: 1 } }),
      ],
      [WEB]: [report()],
    }), now);
    assert.equal(r.state, "failed");
    assert.match(r.reason, /api \(sha256:aaaaaaaaaaaa\): 1 high per trivy 0.52.0 at 2024-06-09T12:00:00Z, Grype at 2024-06-05T12:00:00Z/);
  });

  it("passes with a live exception by severity, and says so", () => {
    const scans = { [API]: [report({ counts: { high: 2 } })], [WEB]: [report()] };
    const r = securityGate.evaluate(high, input(scans, [exception()]), now);
    assert.equal(r.state, "passed");
    assert.match(r.reason, /that an exception does not accept: sha256:aaaaaaaaaaaa by exception \(up to high, approved by sec-team-carol until 2024-06-17T12:00:00Z\)/);
    // An exception up to high does not cover a critical.
    const worse = securityGate.evaluate(high, input({ ...scans, [API]: [report({ counts: { critical: 1, high: 2 } })] }, [exception()]), now);
    assert.equal(worse.state, "failed");
    assert.match(worse.reason, /: 1 critical per/);
  });

  it("accepts findings by vulnerability id, and blocks what is left", () => {
    const findings = [{ id: "CVE-2024-2961", severity: "high" as const }, { id: "CVE-2024-4068", severity: "high" as const }];
    const scans = { [API]: [report({ counts: { high: 2 }, findings })], [WEB]: [report()] };
    const one = exception({ maxSeverity: undefined, vulnerabilities: ["CVE-2024-2961"] });
    const r = securityGate.evaluate(high, input(scans, [one]), now);
    assert.equal(r.state, "failed");
    assert.match(r.reason, /1 high \(CVE-2024-4068\)/);
    const both = exception({ maxSeverity: undefined, vulnerabilities: ["CVE-2024-2961", "CVE-2024-4068"] });
    assert.equal(securityGate.evaluate(high, input(scans, [both]), now).state, "passed");
    // Without stored findings an id exception cannot account for the counts.
    const countsOnly = { [API]: [report({ counts: { high: 2 } })], [WEB]: [report()] };
    assert.equal(securityGate.evaluate(high, input(countsOnly, [both]), now).state, "failed");
  });

  it("does not count an expired exception, and says it expired", () => {
    const scans = { [API]: [report({ counts: { high: 1 } })], [WEB]: [report()] };
    const r = securityGate.evaluate(high, input(scans, [exception({ expiresAt: daysAgo(1) })]), now);
    assert.equal(r.state, "failed");
    assert.match(r.remedy ?? "", /the exception for sha256:aaaaaaaaaaaa \(up to high, approved by sec-team-carol\) expired at 2024-06-09T12:00:00Z/);
  });

  it("does not count an exception without a reason or an approver, or for another digest", () => {
    const scans = { [API]: [report({ counts: { high: 1 } })], [WEB]: [report()] };
    for (const e of [exception({ reason: " " }), exception({ approver: "" }), exception({ digest: WEB }), exception({ maxSeverity: "severe" })]) {
      assert.equal(securityGate.evaluate(high, input(scans, [e]), now).state, "failed");
    }
    const r = securityGate.evaluate(high, input(scans, [exception({ reason: "" })]), now);
    assert.match(r.remedy ?? "", /an exception for sha256:aaaaaaaaaaaa \(up to high\) does not count: it has no reason/);
  });

  it("reports a failure and a missing report together", () => {
    const r = securityGate.evaluate(high, input({ [API]: [report({ counts: { critical: 1 } })] }), now);
    assert.equal(r.state, "failed");
    assert.match(r.remedy ?? "", new RegExp(`; upload a scan report \\(Trivy JSON or SARIF\\) for ${WEB}$`));
  });
});
