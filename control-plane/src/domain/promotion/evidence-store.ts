// Evidence packets: for every promotion decision and every deployment outcome, a canonical JSON document wrapped in a
// DSSE envelope signed by the control plane's evidence key, stored append-only and chained — each document carries
// the hash of the packet before it, so removing or reordering packets is detectable offline too.
import { randomBytes } from "node:crypto";
import { EVIDENCE_GENESIS_HASH, evidenceHash, signEvidence, type EvidenceEnvelope, type EvidenceKey } from "@ferry/pki";
import type { Clock } from "../../ports/clock.js";
import type { Queryable, Store } from "../../ports/store.js";
import { auditHead as currentAuditHead } from "../audit/audit-anchor.js";
import { FerryError } from "../errors.js";
import type { EvidenceRecorder } from "./promotion-service.js";

/** pg_advisory_xact_lock key serialising the evidence chain ("FEVD"). */
const EVIDENCE_CHAIN_LOCK = 0x4645_5644;

export interface EvidenceRecordView {
  id: string;
  kind: string;
  subjectId: string;
  hash: string;
  previousHash: string | null;
  keyId: string;
  createdAt: string;
  envelope: EvidenceEnvelope;
}

export class EvidenceStore implements EvidenceRecorder {
  constructor(private readonly d: { store: Store; key: EvidenceKey; clock: Clock }) {}

  async record(tx: Queryable, kind: string, subjectId: string, doc: Record<string, unknown>): Promise<{ id: string; hash: string }> {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [EVIDENCE_CHAIN_LOCK]);
    const prev = await tx.query<{ hash: string }>("SELECT hash FROM evidence ORDER BY seq DESC LIMIT 1");
    const previousEvidenceHash = prev.rows[0]?.hash ?? EVIDENCE_GENESIS_HASH;
    const id = `evd_${randomBytes(8).toString("hex")}`;
    const createdAt = new Date(this.d.clock.now());
    // The audit chain's head, under this packet's signature: a packet kept by an auditor then proves how long the
    // audit log was when it was written (domain/audit/audit-anchor.ts).
    const auditHead = await currentAuditHead(tx);
    const full = { v: 1, ...doc, id, kind, subjectId, previousEvidenceHash, auditHead, createdAt: createdAt.toISOString() };
    const envelope = signEvidence(full, this.d.key);
    const hash = evidenceHash(envelope);
    await tx.query(
      `INSERT INTO evidence (id, kind, subject_id, hash, previous_hash, key_id, envelope, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [id, kind, subjectId, hash, previousEvidenceHash, this.d.key.keyId, envelope, createdAt],
    );
    return { id, hash };
  }

  async get(id: string): Promise<EvidenceRecordView> {
    const r = await this.d.store.query<{ id: string; kind: string; subject_id: string; hash: string; previous_hash: string | null; key_id: string; created_at: Date; envelope: EvidenceEnvelope }>(
      "SELECT id, kind, subject_id, hash, previous_hash, key_id, created_at, envelope FROM evidence WHERE id = $1",
      [id],
    );
    const x = r.rows[0];
    if (!x) throw new FerryError("EVIDENCE_NOT_FOUND", `no evidence packet ${id}`);
    return { id: x.id, kind: x.kind, subjectId: x.subject_id, hash: x.hash, previousHash: x.previous_hash, keyId: x.key_id, createdAt: new Date(x.created_at).toISOString(), envelope: x.envelope };
  }

  /** Packets in chain order (optionally about one subject): id, kind, subject, hash and the hash it chains to. */
  async list(q: { subject?: string; limit?: number } = {}): Promise<Omit<EvidenceRecordView, "envelope">[]> {
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
    const r = await this.d.store.query<{ id: string; kind: string; subject_id: string; hash: string; previous_hash: string | null; key_id: string; created_at: Date }>(
      `SELECT id, kind, subject_id, hash, previous_hash, key_id, created_at FROM evidence ${q.subject ? "WHERE subject_id = $1" : ""} ORDER BY seq DESC LIMIT ${limit}`,
      q.subject ? [q.subject] : [],
    );
    return r.rows.reverse().map((x) => ({ id: x.id, kind: x.kind, subjectId: x.subject_id, hash: x.hash, previousHash: x.previous_hash, keyId: x.key_id, createdAt: new Date(x.created_at).toISOString() }));
  }

  publicKeys(): { keyId: string; algorithm: string; publicKeyPem: string }[] {
    return [{ keyId: this.d.key.keyId, algorithm: "ecdsa-p256-sha256", publicKeyPem: this.d.key.publicKeyPem }];
  }
}
