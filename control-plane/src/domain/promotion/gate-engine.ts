// The GateEngine port over the gate registry, and scan-report intake with format detection.
import { FerryError } from "../errors.js";
import { approverGroups, breakGlassRole, evaluateAll, parseGates } from "./gates/registry.js";
import { parseScanReport as parseAs } from "./gates/scan-reports.js";
import type { GateEngine, PromotionGateContext } from "./promotion-service.js";
import type { ParsedReport } from "./security-records.js";

export function createGateEngine(): GateEngine {
  const gatesOf = (settings: Record<string, unknown>) => parseGates(settings["gates"]);
  return {
    check: (settings) => void gatesOf(settings),
    evaluate: (settings, ctx: PromotionGateContext, now) => {
      const { results, verdict } = evaluateAll(gatesOf(settings), ctx, now);
      return { state: verdict.state, results };
    },
    kinds: (settings) => gatesOf(settings).map((g) => g.kind),
    approverGroups: (settings) => approverGroups(gatesOf(settings)),
    breakGlassRole: (settings) => breakGlassRole(gatesOf(settings)),
  };
}

/** Trivy JSON or SARIF, told apart by their own markers; anything else is refused with SCAN_REPORT_INVALID. */
export function parseScanReport(raw: unknown): ParsedReport {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FerryError("SCAN_REPORT_INVALID", "report: must be a JSON object (Trivy JSON or SARIF 2.1.0)", { field: "report" });
  }
  const o = raw as Record<string, unknown>;
  const sarif = Array.isArray(o["runs"]) || (typeof o["$schema"] === "string" && /sarif/i.test(o["$schema"])) || typeof o["version"] === "string";
  const trivy = "SchemaVersion" in o || "Results" in o || "ArtifactName" in o;
  if (!sarif && !trivy) {
    throw new FerryError("SCAN_REPORT_INVALID", "report: neither Trivy JSON (SchemaVersion, Results) nor SARIF (version, runs)", { field: "report" });
  }
  try {
    const p = parseAs(trivy ? "trivy" : "sarif", raw);
    return { format: p.format, scanner: p.scanner, counts: { ...p.counts }, findings: p.findings.map((f) => ({ id: f.id, severity: f.severity, ...(f.package ? { package: f.package } : {}) })) };
  } catch (err) {
    if (err instanceof FerryError) throw new FerryError("SCAN_REPORT_INVALID", err.message, err.details, { cause: err });
    throw err;
  }
}
