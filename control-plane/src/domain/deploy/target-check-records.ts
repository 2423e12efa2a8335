// What the task queue and the catalog do to target checks (target-checks.ts) inside their own transactions: record
// the end of a check task, and forget a target's checks when the target is deleted. No imports beyond the ports, so
// both can call it without depending on the deployment service.
import { isResultCode } from "@ferry/contract";
import type { Queryable } from "../../ports/store.js";

const MAX_MESSAGE = 4096;

/**
 * The verdict of a finished check task, from its outcome and details (the agent's inspection). `outcome` is the
 * task's final state; an expired, undelivered task is not a verdict (the check goes back to pending).
 */
export function checkVerdict(outcome: string, code: string | null, message: string, details: Record<string, unknown> | null): { state: "ok" | "failed"; code: string | null; message: string } {
  if (outcome !== "succeeded") return { state: "failed", code: code || "AGENT_ERROR", message: message || `the check task ${outcome}` };
  const inner = details && typeof details.details === "object" && details.details !== null ? (details.details as Record<string, unknown>) : {};
  if (details?.state === "missing") {
    const why = typeof inner.error === "string" ? inner.error : "the agent found nothing of the target";
    return { state: "failed", code: "TARGET_NOT_FOUND", message: why };
  }
  const check = inner.check as { code?: unknown; message?: unknown } | undefined;
  if (check && typeof check.code === "string" && check.code !== "") {
    const known = isResultCode(check.code) ? check.code : "TARGET_UNSUPPORTED";
    return { state: "failed", code: known, message: typeof check.message === "string" ? check.message : check.code };
  }
  return { state: "ok", code: null, message };
}

/**
 * Records the end of a check task (called by the task queue in the transaction that ends the task). Only the task
 * the target's check is waiting for counts.
 */
export async function settleCheckTask(tx: Queryable, taskId: string, end: { outcome: string; code: string | null; message: string; details: Record<string, unknown> | null; at: Date }): Promise<void> {
  if (end.outcome === "expired") {
    // Not delivered in time, or the agent vanished while inspecting: no verdict; asked again at the agent's next Hello.
    await tx.query(
      `UPDATE target_checks SET task_id = NULL, message = $2 WHERE task_id = $1 AND state = 'pending'`,
      [taskId, `the check task expired (${end.code ?? "expired"}); it is queued again when the agent connects`],
    );
    return;
  }
  const v = checkVerdict(end.outcome, end.code, end.message, end.details);
  await tx.query(
    `UPDATE target_checks SET state = $2, code = $3, message = $4, details = $5, checked_at = $6 WHERE task_id = $1 AND state = 'pending'`,
    [taskId, v.state, v.code, v.message.slice(0, MAX_MESSAGE), end.details, end.at],
  );
}

/** Removes a target's check tasks (and their events and logs) before the target itself is deleted. */
export async function forgetTargetChecks(tx: Queryable, targetId: string): Promise<void> {
  const ids = (await tx.query<{ id: string }>("SELECT id FROM tasks WHERE target_id = $1 AND deployment_id IS NULL AND action = 'inspect'", [targetId])).rows.map((r) => r.id);
  if (ids.length === 0) return;
  await tx.query("DELETE FROM target_checks WHERE target_id = $1", [targetId]);
  await tx.query("DELETE FROM task_events WHERE task_id = ANY($1)", [ids]);
  await tx.query("DELETE FROM task_logs WHERE task_id = ANY($1)", [ids]);
  await tx.query("DELETE FROM tasks WHERE id = ANY($1)", [ids]);
}

