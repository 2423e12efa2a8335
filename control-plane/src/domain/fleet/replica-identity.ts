// What makes replicas of one control plane the same control plane: the fleet CA that signs agent certificates and
// the task-signing keyring that signs tasks. Replicas that share a database but not these would each enrol agents
// the others then refuse (CERT_UNTRUSTED) and sign tasks the others' agents refuse (TASK_UNKNOWN_KEY).
//
// The first replica to start records its CA fingerprint and its keyring's key ids in the database
// (control_plane_settings "replica-identity"); every later start compares, and refuses with a message naming what
// to share. A rotation updates the record in the same transaction as its audit record. The keyring matches when it
// holds the database's active key (a replica whose keyring rotated further — a rotation that stopped between the
// keyring and the database — brings the record up to date).
import type { Queryable, Store } from "../../ports/store.js";

export const REPLICA_IDENTITY_KEY = "replica-identity";
const IDENTITY_LOCK = 0x4645_5233;

export interface ReplicaIdentity {
  caFingerprint: string;
  activeTaskSigningKeyId: string;
  taskSigningKeyIds: string[];
}

export class ReplicaMismatchError extends Error {
  readonly code = "REPLICA_MISMATCH";
}

export async function recordKeyring(db: Queryable, activeKeyId: string, keyIds: string[]): Promise<void> {
  await db.query(
    `UPDATE control_plane_settings
        SET value = jsonb_set(jsonb_set(value, '{activeTaskSigningKeyId}', to_jsonb($2::text)), '{taskSigningKeyIds}', $3::jsonb), updated_at = now()
      WHERE key = $1`,
    [REPLICA_IDENTITY_KEY, activeKeyId, JSON.stringify(keyIds)],
  );
}

/**
 * Records this replica's identity if the database has none, otherwise checks it; throws ReplicaMismatchError
 * saying what to share. `where` names this replica's CA and keyring directories for the message.
 */
export async function checkReplicaIdentity(store: Store, mine: ReplicaIdentity, where: { caDir: string; taskSigningDir: string }): Promise<"recorded" | "matched"> {
  return store.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [IDENTITY_LOCK]);
    const r = await tx.query<{ value: Partial<ReplicaIdentity> }>("SELECT value FROM control_plane_settings WHERE key = $1", [REPLICA_IDENTITY_KEY]);
    const recorded = r.rows[0]?.value;
    if (!recorded) {
      await tx.query("INSERT INTO control_plane_settings (key, value) VALUES ($1, $2)", [REPLICA_IDENTITY_KEY, JSON.stringify(mine)]);
      return "recorded";
    }
    if (recorded.caFingerprint !== mine.caFingerprint) {
      throw new ReplicaMismatchError(
        `this database belongs to a fleet whose CA fingerprint is ${recorded.caFingerprint}, but this replica's CA (${where.caDir}) ` +
          `has ${mine.caFingerprint}. Replicas that share a database must share the fleet CA: give this replica the same CA ` +
          `directory as the others (--ca-dir, the ca.key and ca.crt of the first replica), or its agents would be refused by them`,
      );
    }
    const active = recorded.activeTaskSigningKeyId;
    if (active && !mine.taskSigningKeyIds.includes(active)) {
      throw new ReplicaMismatchError(
        `this database's active task-signing key is ${active}, which this replica's keyring (${where.taskSigningDir}) does not hold ` +
          `(it holds ${mine.taskSigningKeyIds.join(", ")}). Replicas that share a database must share one task-signing keyring ` +
          `directory (--task-signing-dir on a shared file system), not copies of it, or their agents would refuse each other's tasks`,
      );
    }
    if (active !== mine.activeTaskSigningKeyId) await recordKeyring(tx, mine.activeTaskSigningKeyId, mine.taskSigningKeyIds);
    return "matched";
  });
}
