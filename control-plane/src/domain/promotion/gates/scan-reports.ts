// Reading vulnerability scan reports: Trivy's JSON (schema version 2, `trivy image --format json`) and SARIF 2.1.0
// (from any scanner: Trivy, Grype, Snyk, CodeQL…). Both become the same summary: who scanned, counts by severity,
// and the findings with their ids, so exceptions can name vulnerabilities.
//
// A report that does not parse is refused with the JSON path of the first problem; nothing is guessed. A report
// that parses but has no findings is a clean report, which is a different thing from no report at all.
import { FerryError } from "../../errors.js";
import type { Finding, Severity, SeverityCounts } from "./types.js";

export const SEVERITIES: readonly Severity[] = ["critical", "high", "medium", "low", "unknown"];

/** Higher is worse. `unknown` ranks below `low`: a finding whose severity nobody rated never blocks on its own. */
export const SEVERITY_RANK: Record<Severity, number> = { critical: 4, high: 3, medium: 2, low: 1, unknown: 0 };

export interface ParsedScanReport {
  format: "trivy" | "sarif";
  /** "trivy 0.50.1", "Grype", "trivy, CodeQL 2.16.0" (a SARIF log with several runs). */
  scanner: string;
  counts: SeverityCounts;
  findings: Finding[];
  /** What the report says it scanned, when it says so (Trivy: ArtifactName and Metadata.RepoDigests). */
  artifact: { name: string | null; digests: string[] };
}

export function emptyCounts(): SeverityCounts {
  return { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 };
}

function countFindings(findings: readonly Finding[]): SeverityCounts {
  const counts = emptyCounts();
  for (const f of findings) counts[f.severity] += 1;
  return counts;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

class ReportReader {
  constructor(private readonly label: string, private readonly format: "trivy" | "sarif") {}

  fail(path: string, msg: string): never {
    // SCAN_REPORT_INVALID is the intended code; until the catalogue has it the error is a validation failure whose
    // details say which report check refused it.
    throw new FerryError("VALIDATION_FAILED", `${this.label}: ${path ? `${path}: ` : ""}${msg}`, {
      field: path || "report", format: this.format, reason: "SCAN_REPORT_INVALID",
    });
  }

  root(input: unknown): Json {
    let doc = input;
    if (typeof input === "string" || input instanceof Uint8Array) {
      const text = typeof input === "string" ? input : Buffer.from(input).toString("utf8");
      try {
        doc = JSON.parse(text);
      } catch (err) {
        this.fail("", `not valid JSON (${(err as Error).message})`);
      }
    }
    if (!isObject(doc)) this.fail("", "must be a JSON object");
    return doc;
  }

  object(v: unknown, path: string): Json {
    if (!isObject(v)) this.fail(path, "must be an object");
    return v;
  }

  /** An optional list: absent or null reads as empty, which is how both formats write "nothing found". */
  list(v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, "must be a list");
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== "string" || v.trim() === "") this.fail(path, "must be a non-empty string");
    return v;
  }

  optionalString(v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") this.fail(path, "must be a string");
    return v;
  }
}

// ---- Trivy -----------------------------------------------------------------------------------------------------

const TRIVY_SEVERITY: Record<string, Severity> = {
  CRITICAL: "critical", HIGH: "high", MEDIUM: "medium", LOW: "low", UNKNOWN: "unknown",
};

/**
 * Reads `trivy image --format json` output (a string, bytes or the parsed object). Only vulnerabilities count;
 * misconfigurations and secrets are other checks. A vulnerability counts once per package even when several
 * targets of the image (two jars, say) contain the same package version.
 */
export function parseTrivyReport(json: unknown): ParsedScanReport {
  const r: ReportReader = new ReportReader("Trivy report", "trivy");
  const doc = r.root(json);
  if (doc.SchemaVersion !== 2) {
    r.fail("SchemaVersion", doc.SchemaVersion === undefined
      ? "is missing; expected Trivy's JSON schema version 2 (trivy 0.20 or later, --format json)"
      : `is ${JSON.stringify(doc.SchemaVersion)}; only schema version 2 is understood`);
  }
  const artifactName = r.optionalString(doc.ArtifactName, "ArtifactName") ?? null;
  const digests: string[] = [];
  if (doc.Metadata !== undefined && doc.Metadata !== null) {
    const meta = r.object(doc.Metadata, "Metadata");
    r.list(meta.RepoDigests, "Metadata.RepoDigests").forEach((d, i) => digests.push(r.string(d, `Metadata.RepoDigests[${i}]`)));
  }
  let version: string | undefined;
  if (doc.Trivy !== undefined && doc.Trivy !== null) version = r.optionalString(r.object(doc.Trivy, "Trivy").Version, "Trivy.Version");

  const findings: Finding[] = [];
  const seen = new Set<string>();
  r.list(doc.Results, "Results").forEach((res, i) => {
    const result = r.object(res, `Results[${i}]`);
    r.list(result.Vulnerabilities, `Results[${i}].Vulnerabilities`).forEach((v, j) => {
      const path = `Results[${i}].Vulnerabilities[${j}]`;
      const vuln = r.object(v, path);
      const id = r.string(vuln.VulnerabilityID, `${path}.VulnerabilityID`);
      const sevText = r.string(vuln.Severity, `${path}.Severity`);
      const severity = TRIVY_SEVERITY[sevText.toUpperCase()];
      if (severity === undefined) r.fail(`${path}.Severity`, `"${sevText}" is not one of ${Object.keys(TRIVY_SEVERITY).join(", ")}`);
      const pkg = r.optionalString(vuln.PkgName, `${path}.PkgName`);
      const installed = r.optionalString(vuln.InstalledVersion, `${path}.InstalledVersion`) ?? "";
      const key = `${id}\u0000${pkg ?? ""}\u0000${installed}`;
      if (seen.has(key)) return;
      seen.add(key);
      findings.push(pkg === undefined ? { id, severity } : { id, severity, package: pkg });
    });
  });
  return {
    format: "trivy", scanner: version ? `trivy ${version}` : "trivy",
    counts: countFindings(findings), findings, artifact: { name: artifactName, digests },
  };
}

// ---- SARIF -----------------------------------------------------------------------------------------------------

/** CVSS v3 qualitative ratings, which is what `security-severity` carries (GitHub code scanning's convention). */
export function severityFromScore(score: number): Severity {
  if (score >= 9) return "critical";
  if (score >= 7) return "high";
  if (score >= 4) return "medium";
  if (score > 0) return "low";
  return "unknown"; // CVSS "none"
}

const SARIF_LEVEL: Record<string, Severity> = { error: "high", warning: "medium", note: "low", none: "unknown" };

/** Result kinds that are not problems (SARIF 2.1.0 §3.27.9); a missing kind means "fail". */
const NOT_A_FINDING = new Set(["pass", "notApplicable", "informational"]);

/**
 * Reads a SARIF 2.1.0 log. A result's severity comes from `properties["security-severity"]` (on the result, else on
 * its rule) as a CVSS score; without one, from its level (on the result, else the rule's default configuration,
 * else SARIF's default "warning"): error → high, warning → medium, note → low, none → unknown. Results of kind
 * pass, notApplicable or informational, and results whose baselineState is "absent" (fixed since the baseline),
 * are not findings.
 */
export function parseSarifReport(json: unknown): ParsedScanReport {
  const r: ReportReader = new ReportReader("SARIF report", "sarif");
  const doc = r.root(json);
  if (doc.version !== "2.1.0") {
    r.fail("version", doc.version === undefined ? "is missing; expected \"2.1.0\"" : `is ${JSON.stringify(doc.version)}; only SARIF 2.1.0 is understood`);
  }
  if (!Array.isArray(doc.runs)) r.fail("runs", "must be a list");
  const scanners: string[] = [];
  const findings: Finding[] = [];

  (doc.runs as unknown[]).forEach((rawRun, i) => {
    const runPath = `runs[${i}]`;
    const run = r.object(rawRun, runPath);
    const driver = r.object(r.object(run.tool, `${runPath}.tool`).driver, `${runPath}.tool.driver`);
    const name = r.string(driver.name, `${runPath}.tool.driver.name`);
    const version = r.optionalString(driver.semanticVersion, `${runPath}.tool.driver.semanticVersion`) ??
      r.optionalString(driver.version, `${runPath}.tool.driver.version`);
    const scanner = version ? `${name} ${version}` : name;
    if (!scanners.includes(scanner)) scanners.push(scanner);

    const rules = r.list(driver.rules, `${runPath}.tool.driver.rules`).map((x, k) => r.object(x, `${runPath}.tool.driver.rules[${k}]`));
    const ruleIndexById = new Map<string, number>();
    rules.forEach((rule, k) => {
      const id = r.optionalString(rule.id, `${runPath}.tool.driver.rules[${k}].id`);
      if (id !== undefined && !ruleIndexById.has(id)) ruleIndexById.set(id, k);
    });

    r.list(run.results, `${runPath}.results`).forEach((rawResult, j) => {
      const path = `${runPath}.results[${j}]`;
      const result = r.object(rawResult, path);
      const kind = r.optionalString(result.kind, `${path}.kind`) ?? "fail";
      if (NOT_A_FINDING.has(kind)) return;
      if (r.optionalString(result.baselineState, `${path}.baselineState`) === "absent") return;

      // The rule: by index (ruleIndex or rule.index), else by id.
      const ruleRef = result.rule === undefined || result.rule === null ? undefined : r.object(result.rule, `${path}.rule`);
      let ruleIndex: number | undefined;
      const indexValue = result.ruleIndex ?? ruleRef?.index;
      if (indexValue !== undefined && indexValue !== null) {
        if (typeof indexValue !== "number" || !Number.isInteger(indexValue) || indexValue < 0 || indexValue >= rules.length) {
          r.fail(`${path}.ruleIndex`, `${JSON.stringify(indexValue)} does not point at one of the run's ${rules.length} rules`);
        }
        ruleIndex = indexValue;
      }
      const ruleId = r.optionalString(result.ruleId, `${path}.ruleId`) ?? r.optionalString(ruleRef?.id, `${path}.rule.id`);
      if (ruleIndex === undefined && ruleId !== undefined) ruleIndex = ruleIndexById.get(ruleId);
      const rule = ruleIndex === undefined ? undefined : rules[ruleIndex];
      const rulePath = `${runPath}.tool.driver.rules[${ruleIndex}]`;
      const id = ruleId ?? (rule ? r.optionalString(rule.id, `${rulePath}.id`) : undefined);
      if (id === undefined || id === "") r.fail(path, "names no rule (ruleId, rule.id or ruleIndex)");

      let severity: Severity | undefined;
      const scoreFrom = (props: unknown, propsPath: string): Severity | undefined => {
        if (props === undefined || props === null) return undefined;
        const raw = r.object(props, propsPath)["security-severity"];
        if (raw === undefined || raw === null) return undefined;
        const score = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
        if (!Number.isFinite(score) || score < 0 || score > 10) {
          r.fail(`${propsPath}.security-severity`, `${JSON.stringify(raw)} is not a CVSS score between 0.0 and 10.0`);
        }
        return severityFromScore(score);
      };
      severity = scoreFrom(result.properties, `${path}.properties`) ??
        (rule ? scoreFrom(rule.properties, `${rulePath}.properties`) : undefined);
      if (severity === undefined) {
        let level = r.optionalString(result.level, `${path}.level`);
        let levelPath = `${path}.level`;
        if (level === undefined && rule && rule.defaultConfiguration !== undefined && rule.defaultConfiguration !== null) {
          levelPath = `${rulePath}.defaultConfiguration.level`;
          level = r.optionalString(r.object(rule.defaultConfiguration, `${rulePath}.defaultConfiguration`).level, levelPath);
        }
        severity = SARIF_LEVEL[level ?? "warning"];
        if (severity === undefined) r.fail(levelPath, `"${level}" is not one of ${Object.keys(SARIF_LEVEL).join(", ")}`);
      }
      findings.push({ id, severity });
    });
  });

  return {
    format: "sarif", scanner: scanners.length > 0 ? scanners.join(", ") : "sarif",
    counts: countFindings(findings), findings, artifact: { name: null, digests: [] },
  };
}

/** Dispatches on the format name an upload declares. */
export function parseScanReport(format: "trivy" | "sarif", json: unknown): ParsedScanReport {
  return format === "trivy" ? parseTrivyReport(json) : parseSarifReport(json);
}
