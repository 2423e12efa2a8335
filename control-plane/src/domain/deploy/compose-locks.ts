// Lock files stored with the deployment (docs/drivers/compose.md#the-lock-file-and-why-it-is-derived-rather-than-carried).
//
// A compose task's lock is a pure function of what the control plane signs: the task's image pins and the target's
// config.services (composeLock in the contract, the same function the agent's driver runs). So the control plane
// derives it when it queues the task and stores it (text + SHA-256, table task_locks), and when the agent's result
// comes back it checks the agent wrote exactly that lock (details.lockSha256). A rollback re-signs the earlier pins for
// the same config, so its lock equals the earlier deployment's byte for byte.
//
// Three hooks, each called from one place: recordTaskLock (enqueue, inside the queuing transaction), lockVerdict
// (the task queue's result, inside its transaction) and taskLock (the API's read of one task's lock).
import { createHash } from "node:crypto";
import { COMPOSE_LOCK_FILE, composeKind, composeLock } from "@ferry/contract";
import type { TaskImage } from "../../ports/signer.js";
import type { Queryable } from "../../ports/store.js";
import { FerryError } from "../errors.js";

export interface TaskLockView {
  deploymentId: string;
  taskId: string;
  target: { id: string; name: string };
  fileName: string;
  sha256: string;
  /** The file's exact content, as the agent writes it on the host. */
  text: string;
  createdAt: string;
}

/** "sha256:<hex>", the form the agent reports (details.lockSha256) and digests are written in. */
const sha256 = (text: string): string => `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;
/** A reported value shown back, bounded: an agent's details are untrusted. */
const shown = (v: string): string => v.slice(0, 80);

/** The lock a task to this target carries, or undefined for a kind that writes none. */
export function lockFor(target: { kind: string; config: Record<string, unknown> }, images: readonly TaskImage[]): { fileName: string; text: string; sha256: string } | undefined {
  if (target.kind !== composeKind.kind) return undefined;
  const config = composeKind.typed(target.config);
  let text: string;
  try {
    text = composeLock(config, images).text;
  } catch (err) {
    // imagesFor refused a missing component before the plan was made; this is the same refusal, kept stable.
    throw new FerryError("RELEASE_COMPONENT_MISSING", (err as Error).message, { field: "config.services" });
  }
  return { fileName: COMPOSE_LOCK_FILE, text, sha256: sha256(text) };
}

/** Stores the lock of a task being queued (same transaction as the task row). Returns its SHA-256, if any. */
export async function recordTaskLock(tx: Queryable, taskId: string, target: { kind: string; config: Record<string, unknown> }, images: readonly TaskImage[]): Promise<string | undefined> {
  const lock = lockFor(target, images);
  if (!lock) return undefined;
  await tx.query("INSERT INTO task_locks (task_id, file_name, text, sha256) VALUES ($1, $2, $3, $4)", [taskId, lock.fileName, lock.text, lock.sha256]);
  return lock.sha256;
}

/**
 * Whether a succeeded result may stand: for a task with a stored lock, the agent must report the same SHA-256 in
 * details.lockSha256. Returns the refusal to record instead of the success, or undefined.
 */
export async function lockVerdict(tx: Queryable, taskId: string, details: Record<string, unknown>): Promise<{ code: "COMPOSE_LOCK_MISMATCH"; message: string; details: Record<string, unknown> } | undefined> {
  const r = await tx.query<{ sha256: string; file_name: string }>("SELECT sha256, file_name FROM task_locks WHERE task_id = $1", [taskId]);
  const stored = r.rows[0];
  if (!stored) return undefined;
  const reported = typeof details["lockSha256"] === "string" ? details["lockSha256"] : null;
  if (reported === stored.sha256) return undefined;
  return {
    code: "COMPOSE_LOCK_MISMATCH",
    message:
      reported === null
        ? `the agent reported success without the SHA-256 of the ${stored.file_name} it wrote; the control plane stored ${stored.sha256}`
        : `the agent wrote a ${stored.file_name} with SHA-256 ${shown(reported)}, the control plane stored ${stored.sha256} for this task`,
    details: { expectedLockSha256: stored.sha256, reportedLockSha256: reported === null ? null : shown(reported) },
  };
}

/** One task's stored lock. TASK_NOT_FOUND for a task not of this deployment; LOCK_NOT_FOUND for a task with no lock. */
export async function taskLock(db: Queryable, deploymentId: string, taskId: string): Promise<TaskLockView> {
  const r = await db.query<{ task_id: string; deployment_id: string; target_id: string; target_name: string; file_name: string | null; text: string | null; sha256: string | null; created_at: Date | null }>(
    `SELECT t.id AS task_id, t.deployment_id, t.target_id, tg.name AS target_name, l.file_name, l.text, l.sha256, l.created_at
       FROM tasks t JOIN targets tg ON tg.id = t.target_id LEFT JOIN task_locks l ON l.task_id = t.id
      WHERE t.id = $1 AND t.deployment_id = $2`,
    [taskId, deploymentId],
  );
  const row = r.rows[0];
  if (!row) throw new FerryError("TASK_NOT_FOUND", `deployment ${deploymentId} has no task ${taskId}`);
  if (row.text === null || row.sha256 === null || row.file_name === null) {
    throw new FerryError("LOCK_NOT_FOUND", `task ${taskId} (target ${row.target_name}) has no lock file: only compose targets have one`, { task: taskId });
  }
  return {
    deploymentId: row.deployment_id,
    taskId: row.task_id,
    target: { id: row.target_id, name: row.target_name },
    fileName: row.file_name,
    sha256: row.sha256,
    text: row.text,
    createdAt: new Date(row.created_at ?? 0).toISOString(),
  };
}
