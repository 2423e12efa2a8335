// Security gate: every image of the release carries a scan verdict. Findings at or above `blockAt` block unless a
// live exception (with a reason, an approver and an expiry) accepts them.
//
// Decisions worth knowing (docs/gates.md repeats them for operators):
//   - per image digest, the newest report of each scanner is the current one: a rescan supersedes the scan before
//     it, and reports from different scanners all count;
//   - `maxReportAge` only decides whether a digest *has* a report: a stale report never lets a release through on
//     its own, but its findings still block until a newer report of the same scanner replaces it;
//   - `unknown` severity never blocks (nobody rated it), but it is counted and shown;
//   - an exception counts only while now < expiresAt and when it names a reason and an approver; an exception by
//     maxSeverity accepts everything up to that severity, one by vulnerability ids accepts just those findings
//     (which needs reports that kept their findings).
import { checkObject } from "../../catalog/config-schema.js";
import { formatDuration, parseDuration } from "../../fleet/durations.js";
import { SEVERITY_RANK } from "./scan-reports.js";
import {
  isoSeconds,
  type GateContext, type GateEvaluator, type GateResult, type ScanReportSummary, type SecurityException, type Severity,
} from "./types.js";

export { parseTrivyReport, parseSarifReport, parseScanReport, severityFromScore, type ParsedScanReport } from "./scan-reports.js";

export type BlockAt = "critical" | "high" | "medium" | "low";
const BLOCK_AT: readonly BlockAt[] = ["critical", "high", "medium", "low"];

export interface SecurityConfig {
  blockAt: BlockAt;
  /** A digest without a (fresh enough) report leaves the gate pending. Default true. */
  requireReport: boolean;
  /** Milliseconds; reports older than this do not satisfy requireReport. null: any age. */
  maxReportAgeMs: number | null;
}

export type SecurityInput = Pick<GateContext, "release" | "scans" | "exceptions">;

const KIND = "security";
const short = (digest: string): string => digest.slice(0, 19); // "sha256:" + 12 hex
const isBlockAt = (s: unknown): s is BlockAt => typeof s === "string" && (BLOCK_AT as readonly string[]).includes(s);

type ImageState = "clean" | "blocked" | "no-report" | "stale-report";

interface ImageVerdict {
  digest: string;
  components: string[];
  state: ImageState;
  reports: { scanner: string; format: string; uploadedAt: string; counts: Record<Severity, number> }[];
  /** Blocking findings no exception accepts, by severity. */
  blocking: Partial<Record<Severity, number>>;
  blockingIds: string[];
  exceptionsApplied: { by: string; approver: string; reason: string; expiresAt: string }[];
  exceptionsExpired: { by: string; approver: string; expiredAt: string }[];
  exceptionsIgnored: { by: string; why: string }[];
  newestReportAt: string | null;
}

const exceptionLabel = (e: SecurityException): string =>
  e.maxSeverity ? `up to ${e.maxSeverity}` : (e.vulnerabilities ?? []).join(", ");

function countsOf(r: ScanReportSummary): Record<Severity, number> {
  const c = r.counts;
  return { critical: c.critical ?? 0, high: c.high ?? 0, medium: c.medium ?? 0, low: c.low ?? 0, unknown: c.unknown ?? 0 };
}

function judgeImage(
  digest: string, components: string[], reports: readonly ScanReportSummary[], exceptions: readonly SecurityException[],
  config: SecurityConfig, now: Date,
): ImageVerdict {
  const nowMs = now.getTime();
  const current = new Map<string, ScanReportSummary>();
  for (const r of reports) {
    const seen = current.get(r.scanner);
    if (!seen || r.uploadedAt.getTime() > seen.uploadedAt.getTime()) current.set(r.scanner, r);
  }
  const newest = reports.reduce<Date | null>((m, r) => (m === null || r.uploadedAt > m ? r.uploadedAt : m), null);
  const fresh = config.maxReportAgeMs === null
    ? reports.length > 0
    : reports.some((r) => nowMs - r.uploadedAt.getTime() <= (config.maxReportAgeMs as number));

  const live: SecurityException[] = [];
  const v: ImageVerdict = {
    digest, components, state: "clean", reports: [], blocking: {}, blockingIds: [],
    exceptionsApplied: [], exceptionsExpired: [], exceptionsIgnored: [], newestReportAt: newest?.toISOString() ?? null,
  };
  for (const e of exceptions) {
    if (e.digest !== digest) continue;
    const label = exceptionLabel(e);
    if (e.expiresAt.getTime() <= nowMs) v.exceptionsExpired.push({ by: label, approver: e.approver, expiredAt: e.expiresAt.toISOString() });
    else if (!e.reason?.trim()) v.exceptionsIgnored.push({ by: label, why: "has no reason" });
    else if (!e.approver?.trim()) v.exceptionsIgnored.push({ by: label, why: "has no approver" });
    else if (e.maxSeverity !== undefined && e.maxSeverity !== null && !isBlockAt(e.maxSeverity)) {
      v.exceptionsIgnored.push({ by: label, why: `maxSeverity "${e.maxSeverity}" is not one of ${BLOCK_AT.join(", ")}` });
    } else if (!e.maxSeverity && !(e.vulnerabilities?.length)) v.exceptionsIgnored.push({ by: label || "(nothing)", why: "names neither a maxSeverity nor vulnerabilities" });
    else live.push(e);
  }

  const threshold = SEVERITY_RANK[config.blockAt];
  const used = new Set<SecurityException>();
  for (const r of current.values()) {
    const counts = countsOf(r);
    v.reports.push({ scanner: r.scanner, format: r.format, uploadedAt: r.uploadedAt.toISOString(), counts });
    for (const sev of BLOCK_AT) {
      if (SEVERITY_RANK[sev] < threshold || counts[sev] === 0) continue;
      const bySeverity = live.find((e) => e.maxSeverity !== undefined && SEVERITY_RANK[e.maxSeverity as BlockAt] >= SEVERITY_RANK[sev]);
      if (bySeverity) { used.add(bySeverity); continue; }
      let accepted = 0;
      for (const f of r.findings ?? []) {
        if (f.severity !== sev) continue;
        const byId = live.find((e) => e.vulnerabilities?.includes(f.id));
        if (byId) { used.add(byId); accepted += 1; }
        else if (!v.blockingIds.includes(f.id)) v.blockingIds.push(f.id);
      }
      // Counts are the record; findings may be absent or cut short, and anything they do not account for blocks.
      const left = Math.max(counts[sev] - accepted, 0);
      if (left > 0) v.blocking[sev] = (v.blocking[sev] ?? 0) + left;
    }
  }
  for (const e of used) v.exceptionsApplied.push({ by: exceptionLabel(e), approver: e.approver, reason: e.reason, expiresAt: e.expiresAt.toISOString() });

  if (Object.keys(v.blocking).length > 0) v.state = "blocked";
  else if (config.requireReport && !fresh) v.state = reports.length === 0 ? "no-report" : "stale-report";
  return v;
}

function describeBlocking(v: ImageVerdict): string {
  const parts = BLOCK_AT.filter((s) => v.blocking[s]).map((s) => `${v.blocking[s]} ${s}`);
  const ids = v.blockingIds.length > 0
    ? ` (${v.blockingIds.slice(0, 5).join(", ")}${v.blockingIds.length > 5 ? `, +${v.blockingIds.length - 5} more` : ""})`
    : "";
  const scanners = v.reports.map((r) => `${r.scanner} at ${isoSeconds(new Date(r.uploadedAt))}`).join(", ");
  return `${v.components.join(", ")} (${short(v.digest)}): ${parts.join(", ")}${ids} per ${scanners}`;
}

export const securityGate: GateEvaluator<SecurityConfig, SecurityInput> = {
  kind: KIND,

  parseConfig(raw: unknown): SecurityConfig {
    const c = checkObject(raw, {
      blockAt: { type: "string", required: true, enum: BLOCK_AT },
      requireReport: { type: "boolean" },
      maxReportAge: { type: "string", maxLength: 32 },
    }, "config");
    const maxAge = c.maxReportAge === undefined || c.maxReportAge === null ? null : parseDuration(c.maxReportAge as string, "config.maxReportAge");
    return { blockAt: c.blockAt as BlockAt, requireReport: (c.requireReport as boolean | undefined) ?? true, maxReportAgeMs: maxAge };
  },

  evaluate(config: SecurityConfig, input: SecurityInput, now: Date): GateResult {
    const componentsByDigest = new Map<string, string[]>();
    for (const p of input.release.pins) {
      const list = componentsByDigest.get(p.digest);
      if (list) list.push(p.component);
      else componentsByDigest.set(p.digest, [p.component]);
    }
    const images = [...componentsByDigest].map(([digest, components]) => judgeImage(
      digest, components, Object.hasOwn(input.scans, digest) ? input.scans[digest] ?? [] : [], input.exceptions, config, now,
    ));

    const blocked = images.filter((i) => i.state === "blocked");
    const missing = images.filter((i) => i.state === "no-report" || i.state === "stale-report");
    const details: Record<string, unknown> = {
      blockAt: config.blockAt, requireReport: config.requireReport,
      maxReportAge: config.maxReportAgeMs === null ? null : formatDuration(config.maxReportAgeMs),
      images,
    };
    const describeMissing = (i: ImageVerdict): string => i.state === "no-report"
      ? `no scan report for ${i.components.join(", ")} (${short(i.digest)})`
      : `no scan report newer than ${formatDuration(config.maxReportAgeMs ?? 0)} for ${i.components.join(", ")} (${short(i.digest)}); the newest is from ${isoSeconds(new Date(i.newestReportAt ?? 0))}`;
    const uploadRemedy = (list: ImageVerdict[]): string =>
      `upload a scan report (Trivy JSON or SARIF) for ${list.map((i) => i.digest).join(", ")}`;
    const expiredNotes = images.flatMap((i) => i.exceptionsExpired.map((e) =>
      `the exception for ${short(i.digest)} (${e.by}, approved by ${e.approver}) expired at ${isoSeconds(new Date(e.expiredAt))}`));
    const ignoredNotes = images.flatMap((i) => i.exceptionsIgnored.map((e) => `an exception for ${short(i.digest)} (${e.by}) does not count: it ${e.why}`));

    if (blocked.length > 0) {
      const remedy = [
        `fix the findings and cut a new release, or record an exception for ${blocked.map((i) => i.digest).join(", ")} with a reason, an approver and an expiry`,
        ...expiredNotes, ...ignoredNotes,
        ...(missing.length > 0 ? [uploadRemedy(missing)] : []),
      ].join("; ");
      return {
        gate: KIND, name: KIND, state: "failed",
        reason: `findings at or above ${config.blockAt}: ${blocked.map(describeBlocking).join("; ")}`,
        remedy, details,
      };
    }
    if (missing.length > 0) {
      return {
        gate: KIND, name: KIND, state: "pending",
        reason: missing.map(describeMissing).join("; "),
        remedy: uploadRemedy(missing), details,
      };
    }
    const accepted = images.filter((i) => i.exceptionsApplied.length > 0)
      .map((i) => `${short(i.digest)} by exception (${i.exceptionsApplied.map((e) => `${e.by}, approved by ${e.approver} until ${isoSeconds(new Date(e.expiresAt))}`).join("; ")})`);
    const scanned = images.filter((i) => i.reports.length > 0).length;
    return {
      gate: KIND, name: KIND, state: "passed",
      reason: `${scanned} of ${images.length} image${images.length === 1 ? "" : "s"} scanned, nothing at or above ${config.blockAt}` +
        (accepted.length > 0 ? ` that an exception does not accept: ${accepted.join("; ")}` : ""),
      remedy: null, details,
    };
  },
};
