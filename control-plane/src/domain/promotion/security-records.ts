// What the gates read besides the promotion itself: scan reports per digest, security exceptions, and the groups
// approvers belong to. Every change is audited.
import { randomBytes } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import { appendAudit, audit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { parseDuration } from "../fleet/durations.js";

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const GROUP = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const SEVERITIES = ["critical", "high", "medium", "low"] as const;

export interface ParsedReport {
  format: "trivy" | "sarif";
  scanner: string;
  counts: Record<string, number>;
  findings: { id: string; severity: string; package?: string }[];
}

export interface ScanReportView {
  id: string;
  digest: string;
  scanner: string;
  format: string;
  counts: Record<string, number>;
  findings?: ParsedReport["findings"];
  uploadedBy: string;
  uploadedAt: string;
}

export interface ExceptionView {
  id: string;
  digest: string;
  maxSeverity: string;
  reason: string;
  approver: string;
  expiresAt: string;
  expired: boolean;
  createdBy: string;
  createdAt: string;
}

export class SecurityRecords {
  constructor(
    private readonly d: { store: Store; clock: Clock; parseReport: (raw: unknown) => ParsedReport },
  ) {}

  async uploadScan(input: { digest: string; report: unknown }, actor: string): Promise<ScanReportView> {
    if (!DIGEST.test(input.digest)) throw new FerryError("INVALID_DIGEST", `digest: "${input.digest}" is not sha256:<64 lowercase hex>`, { field: "digest" });
    let parsed: ParsedReport;
    try {
      parsed = this.d.parseReport(input.report);
    } catch (err) {
      const e = err instanceof FerryError ? new FerryError("SCAN_REPORT_INVALID", err.message, err.details) : new FerryError("SCAN_REPORT_INVALID", (err as Error).message);
      await audit(this.d.store, { actor, action: "scan.upload", object: input.digest, outcome: "refused", details: { code: e.code, message: e.message } });
      throw e;
    }
    const id = `scn_${randomBytes(8).toString("hex")}`;
    const now = new Date(this.d.clock.now());
    await this.d.store.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO scan_reports (id, digest, scanner, format, counts, findings, uploaded_by, uploaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [id, input.digest, parsed.scanner, parsed.format, parsed.counts, JSON.stringify(parsed.findings.slice(0, 5000)), actor, now],
      );
      await appendAudit(tx, { actor, action: "scan.upload", object: id, outcome: "ok", details: { digest: input.digest, scanner: parsed.scanner, format: parsed.format, counts: parsed.counts } });
    });
    return { id, digest: input.digest, scanner: parsed.scanner, format: parsed.format, counts: parsed.counts, uploadedBy: actor, uploadedAt: now.toISOString() };
  }

  async listScans(digest: string): Promise<ScanReportView[]> {
    const r = await this.d.store.query<{ id: string; digest: string; scanner: string; format: string; counts: Record<string, number>; uploaded_by: string; uploaded_at: Date }>(
      "SELECT id, digest, scanner, format, counts, uploaded_by, uploaded_at FROM scan_reports WHERE digest = $1 ORDER BY uploaded_at DESC LIMIT 100",
      [digest],
    );
    return r.rows.map((x) => ({ id: x.id, digest: x.digest, scanner: x.scanner, format: x.format, counts: x.counts, uploadedBy: x.uploaded_by, uploadedAt: new Date(x.uploaded_at).toISOString() }));
  }

  async createException(input: { digest: string; maxSeverity: string; reason: string; approver?: string; expires: string }, actor: string): Promise<ExceptionView> {
    const fail = async (e: FerryError): Promise<never> => {
      await audit(this.d.store, { actor, action: "exception.create", object: input.digest, outcome: "refused", details: { code: e.code, message: e.message } });
      throw e;
    };
    if (!DIGEST.test(input.digest)) return fail(new FerryError("INVALID_DIGEST", `digest: "${input.digest}" is not sha256:<64 lowercase hex>`, { field: "digest" }));
    if (!(SEVERITIES as readonly string[]).includes(input.maxSeverity)) return fail(new FerryError("VALIDATION_FAILED", `maxSeverity: one of ${SEVERITIES.join(", ")}`, { field: "maxSeverity" }));
    if (!input.reason.trim()) return fail(new FerryError("VALIDATION_FAILED", "reason: an exception needs a reason", { field: "reason" }));
    const now = this.d.clock.now();
    let expiresAt: number;
    const asDate = Date.parse(input.expires);
    if (/^\d{4}-\d{2}-\d{2}/.test(input.expires) && Number.isFinite(asDate)) expiresAt = asDate;
    else {
      try {
        expiresAt = now + parseDuration(input.expires, "expires");
      } catch (err) {
        return fail(err instanceof FerryError ? err : new FerryError("VALIDATION_FAILED", "expires: a duration (e.g. 7d) or an ISO time", { field: "expires" }));
      }
    }
    if (expiresAt <= now) return fail(new FerryError("VALIDATION_FAILED", "expires: must be in the future (an expired exception never counts)", { field: "expires" }));
    const approver = input.approver ?? actor;
    const id = `exc_${randomBytes(8).toString("hex")}`;
    await this.d.store.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO security_exceptions (id, digest, max_severity, reason, approver, expires_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [id, input.digest, input.maxSeverity, input.reason, approver, new Date(expiresAt), actor, new Date(now)],
      );
      await appendAudit(tx, { actor, action: "exception.create", object: id, outcome: "ok", details: { digest: input.digest, maxSeverity: input.maxSeverity, reason: input.reason, approver, expiresAt: new Date(expiresAt).toISOString() } });
    });
    return (await this.listExceptions(input.digest)).find((e) => e.id === id)!;
  }

  async listExceptions(digest?: string): Promise<ExceptionView[]> {
    const r = await this.d.store.query<{ id: string; digest: string; max_severity: string; reason: string; approver: string; expires_at: Date; created_by: string; created_at: Date }>(
      `SELECT * FROM security_exceptions ${digest ? "WHERE digest = $1" : ""} ORDER BY created_at DESC LIMIT 500`,
      digest ? [digest] : [],
    );
    const now = this.d.clock.now();
    return r.rows.map((x) => ({
      id: x.id,
      digest: x.digest,
      maxSeverity: x.max_severity,
      reason: x.reason,
      approver: x.approver,
      expiresAt: new Date(x.expires_at).toISOString(),
      expired: new Date(x.expires_at).getTime() <= now,
      createdBy: x.created_by,
      createdAt: new Date(x.created_at).toISOString(),
    }));
  }

  async addToGroup(group: string, subject: string, actor: string): Promise<void> {
    if (!GROUP.test(group)) throw new FerryError("VALIDATION_FAILED", `group: "${group}" must be lowercase letters, digits, . _ -`, { field: "group" });
    if (!subject.trim()) throw new FerryError("VALIDATION_FAILED", "subject: required", { field: "subject" });
    await this.d.store.transaction(async (tx) => {
      const r = await tx.query("INSERT INTO subject_groups (group_name, subject, added_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [group, subject, actor]);
      if (r.rowCount === 0) throw new FerryError("GROUP_MEMBER_EXISTS", `${subject} is already in ${group}`);
      await appendAudit(tx, { actor, action: "group.add", object: group, outcome: "ok", details: { subject } });
    });
  }

  async removeFromGroup(group: string, subject: string, actor: string): Promise<void> {
    await this.d.store.transaction(async (tx) => {
      const r = await tx.query("DELETE FROM subject_groups WHERE group_name = $1 AND subject = $2", [group, subject]);
      if (r.rowCount === 0) throw new FerryError("NOT_FOUND", `${subject} is not in ${group}`);
      await appendAudit(tx, { actor, action: "group.remove", object: group, outcome: "ok", details: { subject } });
    });
  }

  async groups(): Promise<{ group: string; subjects: string[] }[]> {
    const r = await this.d.store.query<{ group_name: string; subject: string }>("SELECT group_name, subject FROM subject_groups ORDER BY group_name, subject");
    const out = new Map<string, string[]>();
    for (const x of r.rows) out.set(x.group_name, [...(out.get(x.group_name) ?? []), x.subject]);
    return [...out].map(([group, subjects]) => ({ group, subjects }));
  }
}
