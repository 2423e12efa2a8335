// Re-signing undelivered tasks after an emergency key retirement.
//
// An emergency rotation (overlap 0) makes agents forget the old key at once, so every task signed with it that an
// agent has not yet verified would be refused as TASK_UNKNOWN_KEY. Tasks still queued, or offered but not yet
// accepted (leased), are signed again with the new key: the payload bytes stay exactly the same (canonical JSON of
// the stored payload), only key id and signature change, so an agent that already holds the task treats the new
// envelope as a redelivery (same task id, same nonce). Tasks already running were verified when the agent
// accepted them and carry on; tasks in any final state are history.
import type { Queryable } from "../../ports/store.js";
import type { TaskPayload, TaskSigner } from "../../ports/signer.js";

export interface ResignOutcome {
  /** Queued or leased tasks now signed by the new key. */
  resigned: number;
  /** Tasks running under the old key's signature (already verified by their agents; unaffected). */
  running: number;
}

export async function resignUndeliveredTasks(tx: Queryable, signer: TaskSigner, retiredKeyId: string): Promise<ResignOutcome> {
  const pending = await tx.query<{ id: string; payload: Uint8Array }>(
    "SELECT id, payload FROM tasks WHERE key_id = $1 AND state IN ('queued', 'leased') ORDER BY id FOR UPDATE",
    [retiredKeyId],
  );
  for (const t of pending.rows) {
    const payload = JSON.parse(Buffer.from(t.payload).toString("utf8")) as TaskPayload;
    const env = signer.sign(payload);
    await tx.query("UPDATE tasks SET key_id = $2, signature = $3, payload = $4 WHERE id = $1", [t.id, env.keyId, env.signature, env.payload]);
  }
  const running = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE key_id = $1 AND state = 'running'", [retiredKeyId]);
  return { resigned: pending.rows.length, running: running.rows[0]?.n ?? 0 };
}
