import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { parseSarifReport, parseScanReport, parseTrivyReport, severityFromScore } from "./scan-reports.js";

const DIGEST = `sha256:${"a".repeat(64)}`;

// Shaped like `trivy image --format json registry.example.com/shop/api@sha256:…` output, cut down.
const trivy = {
  SchemaVersion: 2,
  CreatedAt: "2024-06-01T10:00:00.123456789Z",
  ArtifactName: `registry.example.com/shop/api@${DIGEST}`,
  ArtifactType: "container_image",
  Metadata: {
    OS: { Family: "debian", Name: "12.5" },
    ImageID: `sha256:${"c".repeat(64)}`,
    RepoDigests: [`registry.example.com/shop/api@${DIGEST}`],
  },
  Trivy: { Version: "0.52.0" },
  Results: [
    {
      Target: "registry.example.com/shop/api (debian 12.5)",
      Class: "os-pkgs",
      Type: "debian",
      Vulnerabilities: [
        { VulnerabilityID: "CVE-2023-45853", PkgName: "zlib1g", InstalledVersion: "1:1.2.13.dfsg-1", Severity: "CRITICAL", Title: "zlib: integer overflow in zipOpenNewFileInZip4_6" },
        { VulnerabilityID: "CVE-2024-2961", PkgName: "libc6", InstalledVersion: "2.36-9+deb12u4", FixedVersion: "2.36-9+deb12u7", Severity: "HIGH" },
        { VulnerabilityID: "CVE-2011-3374", PkgName: "apt", InstalledVersion: "2.6.1", Severity: "LOW" },
        { VulnerabilityID: "TEMP-0841856-B18BAF", PkgName: "bash", InstalledVersion: "5.2.15-2+b2", Severity: "UNKNOWN" },
      ],
    },
    {
      Target: "app/package-lock.json",
      Class: "lang-pkgs",
      Type: "npm",
      Vulnerabilities: [
        { VulnerabilityID: "CVE-2024-4068", PkgName: "braces", InstalledVersion: "3.0.2", FixedVersion: "3.0.3", Severity: "HIGH" },
      ],
    },
    {
      // The same package version found again in another lock file counts once.
      Target: "tools/package-lock.json",
      Class: "lang-pkgs",
      Type: "npm",
      Vulnerabilities: [
        { VulnerabilityID: "CVE-2024-4068", PkgName: "braces", InstalledVersion: "3.0.2", FixedVersion: "3.0.3", Severity: "HIGH" },
      ],
    },
    { Target: "Python", Class: "lang-pkgs", Type: "python-pkg" },
  ],
};

// Shaped like GitHub code-scanning SARIF from a container scanner plus a code analyser in a second run.
const sarif = {
  version: "2.1.0",
  $schema: "https://json.schemastore.org/sarif-2.1.0.json",
  runs: [
    {
      tool: {
        driver: {
          name: "Trivy",
          version: "0.52.0",
          informationUri: "https://github.com/aquasecurity/trivy",
          rules: [
            { id: "CVE-2023-45853", shortDescription: { text: "zlib integer overflow" }, defaultConfiguration: { level: "error" }, properties: { "security-severity": "9.8", tags: ["vulnerability", "security", "CRITICAL"] } },
            { id: "CVE-2024-2961", defaultConfiguration: { level: "error" }, properties: { "security-severity": "7.3" } },
            { id: "CVE-2011-3374", defaultConfiguration: { level: "note" }, properties: { "security-severity": "3.7" } },
            { id: "custom-check", defaultConfiguration: { level: "warning" } },
          ],
        },
      },
      results: [
        { ruleId: "CVE-2023-45853", ruleIndex: 0, level: "error", message: { text: "Package: zlib1g" }, locations: [{ physicalLocation: { artifactLocation: { uri: "library/debian" } } }] },
        { ruleId: "CVE-2024-2961", ruleIndex: 1, level: "error", message: { text: "Package: libc6" } },
        { ruleId: "CVE-2011-3374", level: "note", message: { text: "Package: apt" } },
        { ruleId: "custom-check", message: { text: "level comes from the rule: warning" } },
        { ruleId: "custom-check", kind: "pass", level: "none", message: { text: "checked and fine" } },
        { ruleId: "CVE-2024-2961", baselineState: "absent", level: "error", message: { text: "fixed since the baseline" } },
        { ruleId: "GHSA-xxxx-yyyy-zzzz", properties: { "security-severity": 4.0 }, message: { text: "score on the result itself" } },
      ],
    },
    {
      tool: { driver: { name: "CodeQL", semanticVersion: "2.17.0" } },
      results: [{ ruleId: "js/sql-injection", level: "error", message: { text: "user input reaches a query" } }],
    },
  ],
};

const refused = (fn: () => unknown, field: string, re: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FerryError, String(e));
    assert.equal(e.code, "VALIDATION_FAILED");
    assert.equal(e.details.reason, "SCAN_REPORT_INVALID");
    assert.equal(e.details.field, field);
    assert.match(e.message, re);
    return true;
  });
};

describe("Trivy reports", () => {
  it("summarises scanner, counts and findings", () => {
    const r = parseTrivyReport(JSON.stringify(trivy));
    assert.equal(r.format, "trivy");
    assert.equal(r.scanner, "trivy 0.52.0");
    assert.deepEqual(r.counts, { critical: 1, high: 2, medium: 0, low: 1, unknown: 1 });
    assert.deepEqual(r.findings[0], { id: "CVE-2023-45853", severity: "critical", package: "zlib1g" });
    assert.deepEqual(r.artifact.digests, [`registry.example.com/shop/api@${DIGEST}`]);
  });

  it("reads a clean report (no Results, or Results without Vulnerabilities) as zero findings", () => {
    const r = parseTrivyReport({ SchemaVersion: 2, ArtifactName: "x", Results: [{ Target: "x (alpine 3.20)", Class: "os-pkgs" }] });
    assert.deepEqual(r.counts, { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 });
    assert.equal(r.scanner, "trivy");
    assert.equal(parseTrivyReport(Buffer.from('{"SchemaVersion":2}')).findings.length, 0);
  });

  it("refuses what is not a Trivy report, saying where", () => {
    refused(() => parseTrivyReport("{not json"), "report", /^Trivy report: not valid JSON/);
    refused(() => parseTrivyReport([]), "report", /must be a JSON object/);
    refused(() => parseTrivyReport({ Results: [] }), "SchemaVersion", /is missing; expected Trivy's JSON schema version 2/);
    refused(() => parseTrivyReport({ SchemaVersion: 1 }), "SchemaVersion", /only schema version 2/);
    refused(() => parseTrivyReport({ SchemaVersion: 2, Results: {} }), "Results", /must be a list/);
    refused(() => parseTrivyReport({ SchemaVersion: 2, Results: [{ Vulnerabilities: [{ Severity: "HIGH" }] }] }), "Results[0].Vulnerabilities[0].VulnerabilityID", /must be a non-empty string/);
    refused(() => parseTrivyReport({ SchemaVersion: 2, Results: [{ Vulnerabilities: [{ VulnerabilityID: "CVE-1", Severity: "SEVERE" }] }] }),
      "Results[0].Vulnerabilities[0].Severity", /"SEVERE" is not one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN/);
  });
});

describe("SARIF reports", () => {
  it("maps security-severity scores, then levels, and skips non-findings", () => {
    const r = parseSarifReport(sarif);
    assert.equal(r.format, "sarif");
    assert.equal(r.scanner, "Trivy 0.52.0, CodeQL 2.17.0");
    assert.deepEqual(r.counts, { critical: 1, high: 2, medium: 2, low: 1, unknown: 0 });
    assert.deepEqual(r.findings.map((f) => `${f.id}:${f.severity}`), [
      "CVE-2023-45853:critical", "CVE-2024-2961:high", "CVE-2011-3374:low", "custom-check:medium",
      "GHSA-xxxx-yyyy-zzzz:medium", "js/sql-injection:high",
    ]);
  });

  it("maps CVSS scores to severities", () => {
    assert.deepEqual([10, 9, 8.9, 7, 6.9, 4, 3.9, 0.1, 0].map(severityFromScore),
      ["critical", "critical", "high", "high", "medium", "medium", "low", "low", "unknown"]);
  });

  it("finds the rule by index or id, and defaults the level to warning", () => {
    const r = parseSarifReport({
      version: "2.1.0",
      runs: [{ tool: { driver: { name: "grype", rules: [{ id: "A", properties: { "security-severity": "9.1" } }] } }, results: [{ rule: { index: 0 }, message: { text: "" } }, { ruleId: "B", message: { text: "" } }] }],
    });
    assert.deepEqual(r.findings, [{ id: "A", severity: "critical" }, { id: "B", severity: "medium" }]);
    assert.equal(parseScanReport("sarif", { version: "2.1.0", runs: [] }).counts.high, 0);
  });

  it("refuses what is not SARIF 2.1.0, saying where", () => {
    refused(() => parseSarifReport("<xml/>"), "report", /^SARIF report: not valid JSON/);
    refused(() => parseSarifReport({ runs: [] }), "version", /is missing; expected "2.1.0"/);
    refused(() => parseSarifReport({ version: "2.0.0", runs: [] }), "version", /only SARIF 2.1.0/);
    refused(() => parseSarifReport({ version: "2.1.0" }), "runs", /must be a list/);
    refused(() => parseSarifReport({ version: "2.1.0", runs: [{ tool: {} }] }), "runs[0].tool.driver", /must be an object/);
    refused(() => parseSarifReport({ version: "2.1.0", runs: [{ tool: { driver: { name: "x" } }, results: [{ message: { text: "" } }] }] }), "runs[0].results[0]", /names no rule/);
    refused(() => parseSarifReport({ version: "2.1.0", runs: [{ tool: { driver: { name: "x" } }, results: [{ ruleId: "r", ruleIndex: 3 }] }] }), "runs[0].results[0].ruleIndex", /does not point at one of the run's 0 rules/);
    refused(() => parseSarifReport({ version: "2.1.0", runs: [{ tool: { driver: { name: "x" } }, results: [{ ruleId: "r", level: "fatal" }] }] }), "runs[0].results[0].level", /"fatal" is not one of error, warning, note, none/);
    refused(() => parseSarifReport({ version: "2.1.0", runs: [{ tool: { driver: { name: "x", rules: [{ id: "r", properties: { "security-severity": "high" } }] } }, results: [{ ruleId: "r" }] }] }),
      "runs[0].tool.driver.rules[0].properties.security-severity", /"high" is not a CVSS score between 0.0 and 10.0/);
  });
});
