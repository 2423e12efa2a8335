// Anchors for the audit chain: what lets `audit verify` see a tail that was cut off or rewritten.
//
// A hash chain alone proves only that the rows it has are consistent with each other: delete the newest rows (or
// rewrite the tail and recompute every hash after the change) and what is left still verifies. So the head is
// anchored in three places a rewrite cannot reach without the evidence key, each one checked by verifyChain:
//   - signed checkpoints: every interval, when the head moved, the control plane signs { seq, hash } of the head with
//     the evidence key (DSSE, the same as evidence packets) and appends it to audit_checkpoints; one more at shutdown;
//   - evidence packets: every packet carries the audit head at the time it was written (auditHead), under its
//     signature — and packets leave the system (auditors keep them);
//   - the verifier's own memory: `ferry audit verify --anchor FILE` keeps the head it last saw and checks, next time,
//     that the chain still holds that record with that hash (a witness outside the database).
// The tables themselves refuse UPDATE, DELETE and TRUNCATE (migration 0007), so getting around all this needs the
// table owner disabling triggers — and that leaves a chain that no longer matches its anchors.
import { signEvidence, verifyEvidence, type EvidenceKey, type EvidencePublicKey } from "@ferry/pki";
import type { Clock } from "../../ports/clock.js";
import type { Queryable, Store } from "../../ports/store.js";

/** pg_advisory_xact_lock key serialising checkpoints across replicas ("FACP"). */
const CHECKPOINT_LOCK = 0x4641_4350;
const PAGE = 1000;

export interface AuditHead {
  seq: number;
  hash: string;
}

export type CheckpointerState = "idle" | "running" | "stopped";

/** The newest record's seq and hash, or null for an empty log. Inside a transaction it sees that transaction's own appends. */
export async function auditHead(db: Queryable): Promise<AuditHead | null> {
  const r = await db.query<{ seq: string | number; hash: string }>("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1");
  const row = r.rows[0];
  return row ? { seq: Number(row.seq), hash: row.hash } : null;
}

/** Writes signed checkpoints of the audit head: on a timer (start/stop), and on demand. */
export class AuditCheckpointer {
  #timer: NodeJS.Timeout | null = null;
  #state: CheckpointerState = "idle";
  #busy: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: { store: Store; key: EvidenceKey; clock: Clock; intervalMs?: number; onError?: (err: unknown) => void }) {}

  get state(): CheckpointerState {
    return this.#state;
  }

  /** Signs the head when it moved since the newest checkpoint; returns it, or null when there was nothing new. */
  async checkpoint(): Promise<AuditHead | null> {
    return this.d.store.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [CHECKPOINT_LOCK]);
      const head = await auditHead(tx);
      if (!head) return null;
      const last = await tx.query<{ head_seq: string | number }>("SELECT head_seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1");
      if (last.rows[0] && Number(last.rows[0].head_seq) >= head.seq) return null;
      const at = new Date(this.d.clock.now());
      const envelope = signEvidence({ v: 1, kind: "audit.checkpoint", head, createdAt: at.toISOString() }, this.d.key);
      await tx.query("INSERT INTO audit_checkpoints (head_seq, head_hash, key_id, envelope, created_at) VALUES ($1, $2, $3, $4, $5)", [head.seq, head.hash, this.d.key.keyId, envelope, at]);
      return head;
    });
  }

  start(): void {
    if (this.#state === "running") return;
    this.#state = "running";
    this.#timer = setInterval(() => {
      this.#busy = this.checkpoint().catch((err: unknown) => this.d.onError?.(err));
    }, this.d.intervalMs ?? 10_000);
    this.#timer.unref();
  }

  /** Stops the timer and signs the head one last time, so a clean shutdown leaves no unanchored tail. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#state !== "running") return;
    this.#state = "stopped";
    await this.#busy;
    await this.checkpoint().catch((err: unknown) => this.d.onError?.(err));
  }
}

export type AnchorFailure = { brokenAt: number; reason: string };

interface Anchor {
  what: string;
  seq: number;
  hash: string;
}

/**
 * Checks every anchor against the chain (which the caller has walked and found consistent, `length` records long):
 * each must be validly signed, name a record the chain still has, with the same hash. Pages through anchors so
 * memory stays bounded. Returns the first failure, or the number of anchors checked.
 */
export async function verifyAnchors(
  db: Queryable,
  keys: readonly EvidencePublicKey[],
  length: number,
  witness: AuditHead | null,
): Promise<{ ok: true; checkpoints: number; evidence: number; latest: AuditHead | null } | ({ ok: false } & AnchorFailure)> {
  const check = async (anchors: Anchor[]): Promise<AnchorFailure | null> => {
    const beyond = anchors.find((a) => a.seq > length);
    if (beyond) {
      return { brokenAt: length + 1, reason: `the chain is truncated: ${beyond.what} names record ${beyond.seq}, but the chain ends at record ${length}` };
    }
    const seqs = [...new Set(anchors.map((a) => a.seq))];
    const r = await db.query<{ seq: string | number; hash: string }>("SELECT seq, hash FROM audit_log WHERE seq = ANY($1)", [seqs]);
    const hashes = new Map(r.rows.map((x) => [Number(x.seq), x.hash]));
    for (const a of anchors) {
      if (hashes.get(a.seq) !== a.hash) return { brokenAt: a.seq, reason: `record ${a.seq} was rewritten: it does not match ${a.what}` };
    }
    return null;
  };

  if (witness) {
    const f = await check([{ what: "the head this verifier saw before (--anchor)", ...witness }]);
    if (f) return { ok: false, ...f };
  }

  let checkpoints = 0;
  let latest: AuditHead | null = null;
  for (let after = 0; ; ) {
    const page = await db.query<{ seq: string | number; head_seq: string | number; head_hash: string; envelope: unknown; created_at: Date }>(
      "SELECT seq, head_seq, head_hash, envelope, created_at FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2",
      [after, PAGE],
    );
    if (page.rows.length === 0) break;
    const anchors: Anchor[] = [];
    for (const c of page.rows) {
      const what = `the signed checkpoint of ${new Date(c.created_at).toISOString()}`;
      const v = verifyEvidence(c.envelope, keys);
      if (!v.ok) return { ok: false, brokenAt: Number(c.head_seq), reason: `${what} does not verify: ${v.message}` };
      const head = (v.document as { head?: { seq?: unknown; hash?: unknown } }).head;
      if (head?.seq !== Number(c.head_seq) || head.hash !== c.head_hash) {
        return { ok: false, brokenAt: Number(c.head_seq), reason: `${what} was altered: its row does not match its signed content` };
      }
      anchors.push({ what, seq: Number(c.head_seq), hash: c.head_hash });
      if (!latest || Number(c.head_seq) >= latest.seq) latest = { seq: Number(c.head_seq), hash: c.head_hash };
    }
    const f = await check(anchors);
    if (f) return { ok: false, ...f };
    checkpoints += page.rows.length;
    after = Number(page.rows[page.rows.length - 1]!.seq);
  }

  let evidence = 0;
  for (let after = 0; ; ) {
    const page = await db.query<{ seq: string | number; id: string; envelope: unknown }>("SELECT seq, id, envelope FROM evidence WHERE seq > $1 ORDER BY seq LIMIT $2", [after, PAGE]);
    if (page.rows.length === 0) break;
    const anchors: Anchor[] = [];
    for (const e of page.rows) {
      const v = verifyEvidence(e.envelope, keys);
      // A packet that does not verify is `evidence verify`'s finding; here only signed audit heads count.
      if (!v.ok) continue;
      const head = (v.document as { auditHead?: { seq?: unknown; hash?: unknown } | null }).auditHead;
      if (head && typeof head.seq === "number" && typeof head.hash === "string") anchors.push({ what: `evidence packet ${e.id}`, seq: head.seq, hash: head.hash });
    }
    const f = await check(anchors);
    if (f) return { ok: false, ...f };
    evidence += anchors.length;
    after = Number(page.rows[page.rows.length - 1]!.seq);
  }
  return { ok: true, checkpoints, evidence, latest };
}
