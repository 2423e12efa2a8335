// The append-only, hash-chained audit log.
//
// Each record's hash is sha256(prev_hash || canonical JSON of the record's fields). Changing, inserting or deleting
// a row breaks the chain at that row, which verifyChain names. Appends from every replica are serialised with a
// transaction-scoped advisory lock, so seq is gapless and the chain is linear. There is deliberately no update or
// delete path in this module, and the database refuses both (migration 0007). A chain cut short or rewritten from
// some record on is caught by its anchors: signed checkpoints, the head in each evidence packet, and the verifier's
// own last-seen head (audit-anchor.ts).
import { createHash } from "node:crypto";
import type { Queryable, Store } from "../../ports/store.js";
import { canonicalJson, type EvidencePublicKey } from "@ferry/pki";
import { verifyAnchors, type AuditHead } from "./audit-anchor.js";

export const GENESIS_HASH = "0".repeat(64);
const AUDIT_LOCK_KEY = 0x4645_5231; // "FER1"

export type AuditOutcome = "ok" | "refused" | "failed";

export interface AuditEntry {
  actor: string;
  action: string;
  object: string;
  outcome: AuditOutcome;
  code?: string | null;
  details?: Record<string, unknown>;
}

export interface AuditRecord extends Required<AuditEntry> {
  seq: number;
  at: string; // ISO-8601, millisecond precision
  prevHash: string;
  hash: string;
}

export function recordHash(prevHash: string, r: Omit<AuditRecord, "prevHash" | "hash">): string {
  const body = canonicalJson({
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action,
    object: r.object,
    outcome: r.outcome,
    code: r.code,
    details: r.details,
  });
  return createHash("sha256").update(prevHash).update(body).digest("hex");
}

interface Row {
  seq: string | number;
  at: Date;
  actor: string;
  action: string;
  object: string;
  outcome: AuditOutcome;
  code: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

function fromRow(r: Row): AuditRecord {
  return {
    seq: Number(r.seq),
    at: r.at.toISOString(),
    actor: r.actor,
    action: r.action,
    object: r.object,
    outcome: r.outcome,
    code: r.code,
    details: r.details,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** Appends within the caller's transaction, so the record commits or rolls back with the change it describes. */
export async function appendAudit(tx: Queryable, entry: AuditEntry, now: Date = new Date()): Promise<AuditRecord> {
  await tx.query("SELECT pg_advisory_xact_lock($1)", [AUDIT_LOCK_KEY]);
  const last = await tx.query<{ seq: string | number; hash: string }>(
    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
  );
  const prev = last.rows[0];
  const base = {
    seq: prev ? Number(prev.seq) + 1 : 1,
    at: new Date(Math.floor(now.getTime())).toISOString(),
    actor: entry.actor,
    action: entry.action,
    object: entry.object,
    outcome: entry.outcome,
    code: entry.code ?? null,
    details: entry.details ?? {},
  };
  const prevHash = prev ? prev.hash : GENESIS_HASH;
  const hash = recordHash(prevHash, base);
  await tx.query(
    `INSERT INTO audit_log (seq, at, actor, action, object, outcome, code, details, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [base.seq, base.at, base.actor, base.action, base.object, base.outcome, base.code, base.details, prevHash, hash],
  );
  return { ...base, prevHash, hash };
}

/** Appends in a transaction of its own. */
export function audit(store: Store, entry: AuditEntry): Promise<AuditRecord> {
  return store.transaction((tx) => appendAudit(tx, entry));
}

export async function listAudit(store: Queryable, opts: { afterSeq?: number; limit?: number } = {}): Promise<AuditRecord[]> {
  const res = await store.query<Row>(
    "SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq ASC LIMIT $2",
    [opts.afterSeq ?? 0, Math.min(opts.limit ?? 1000, 10_000)],
  );
  return res.rows.map(fromRow);
}

export type ChainVerdict =
  | { ok: true; records: number; head: string; anchors?: { checkpoints: number; evidence: number; latest: AuditHead | null } }
  | { ok: false; records: number; brokenAt: number; reason: string };

/**
 * Walks the whole chain in pages and names the first record whose link or content does not check; then, given the
 * evidence keys, checks the chain against its anchors (signed checkpoints, evidence packets, and `witness`: a head
 * the caller saw before), which is what catches a truncated or rewritten tail.
 */
export async function verifyChain(store: Queryable, opts: { keys?: readonly EvidencePublicKey[]; witness?: AuditHead | null } = {}): Promise<ChainVerdict> {
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let count = 0;
  for (;;) {
    const page = await listAudit(store, { afterSeq: expectedSeq - 1, limit: 5000 });
    if (page.length === 0) break;
    for (const r of page) {
      count++;
      if (r.seq !== expectedSeq) {
        return { ok: false, records: count, brokenAt: expectedSeq, reason: `record ${expectedSeq} is missing (next is ${r.seq})` };
      }
      if (r.prevHash !== prevHash) {
        return { ok: false, records: count, brokenAt: r.seq, reason: `record ${r.seq} does not link to record ${r.seq - 1}` };
      }
      if (recordHash(prevHash, r) !== r.hash) {
        return { ok: false, records: count, brokenAt: r.seq, reason: `record ${r.seq} was altered (content does not match its hash)` };
      }
      prevHash = r.hash;
      expectedSeq++;
    }
  }
  if (!opts.keys) return { ok: true, records: count, head: prevHash };
  const anchors = await verifyAnchors(store, opts.keys, count, opts.witness ?? null);
  if (!anchors.ok) return { ok: false, records: count, brokenAt: anchors.brokenAt, reason: anchors.reason };
  return { ok: true, records: count, head: prevHash, anchors: { checkpoints: anchors.checkpoints, evidence: anchors.evidence, latest: anchors.latest } };
}
