// The agent-facing side of the durable task queue.
//
// Life of a task: queued → leased (offered to its agent, lease = ack timeout) → running (the agent verified and
// accepted it; lease renewed by the agent's heartbeats and progress) → succeeded | failed | errored. Around that:
//   - a leased task whose agent never answered goes back to queued (offered again; the agent recognises a task id it
//     has seen and never runs it twice);
//   - a running task whose lease ran out (the agent vanished) becomes expired; if the agent comes back later with
//     the result, the result is recorded anyway — what happened on the target is the truth;
//   - a queued task past its signed not-after expires (the agent would refuse it).
// Every operation names the agent from its certificate and touches only that agent's tasks.
import type { Clock } from "../../ports/clock.js";
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit } from "../audit/audit-log.js";
import { refreshDeploymentState, type TaskState } from "./deployment-service.js";
import type { TaskImage } from "../../ports/signer.js";
import { lockVerdict } from "./compose-locks.js";
import { MAX_TASK_EVENTS, PROGRESS_STATES, planLogAppend, type LogAppend } from "./agent-input-limits.js";
import { settleCheckTask } from "./target-check-records.js";

export interface ClaimedTask {
  id: string;
  payload: Uint8Array;
  payloadType: string;
  keyId: string;
  signature: Uint8Array;
  attempt: number;
  images: TaskImage[];
}

export interface TaskResultInput {
  taskId: string;
  outcome: string;
  code: string;
  message: string;
  details: Record<string, unknown>;
  sticker: Record<string, unknown> | null;
  startedAt: number;
  finishedAt: number;
  logBytes: number;
  attempt: number;
}

export interface QueueTimings {
  /** How long an offered task waits for the agent's ack before it is offered again. */
  ackTimeoutMs: number;
  /** Lease of a running task; renewed by heartbeats and progress. */
  runningLeaseMs: number;
}

const OUTCOME_STATE: Record<string, TaskState> = { succeeded: "succeeded", failed: "failed", errored: "errored", interrupted: "errored" };

export class TaskQueue {
  constructor(
    private readonly d: { store: Store; clock: Clock; timings: QueueTimings },
  ) {}

  /** Leases up to max queued tasks of the agent, oldest first. Concurrent claimers never get the same task. */
  async claim(agentId: string, max = 16): Promise<ClaimedTask[]> {
    const now = new Date(this.d.clock.now());
    // RETURNING comes back in no particular order; the outer SELECT puts the offers oldest first.
    const r = await this.d.store.query<{ id: string; payload: Uint8Array; payload_type: string; key_id: string; signature: Uint8Array; attempt: number; images: TaskImage[] }>(
      `WITH leased AS (
         UPDATE tasks SET state = 'leased', attempt = attempt + 1, leased_at = $2, lease_expires_at = $3, updated_at = $2
          WHERE id IN (SELECT id FROM tasks WHERE agent_id = $1 AND state = 'queued' AND not_after > $2
                        ORDER BY queued_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
          RETURNING id, payload, payload_type, key_id, signature, attempt, images, queued_at)
       SELECT id, payload, payload_type, key_id, signature, attempt, images FROM leased ORDER BY queued_at, id`,
      [agentId, now, new Date(now.getTime() + this.d.timings.ackTimeoutMs), max],
    );
    return r.rows.map((x) => ({ id: x.id, payload: x.payload, payloadType: x.payload_type, keyId: x.key_id, signature: x.signature, attempt: x.attempt, images: x.images }));
  }

  /** The agent accepted (verified and journaled) or refused an offered task. */
  async ack(agentId: string, a: { taskId: string; accepted: boolean; code: string; message: string }): Promise<boolean> {
    const now = new Date(this.d.clock.now());
    return this.d.store.transaction(async (tx) => {
      const t = await lockTask(tx, agentId, a.taskId);
      if (!t) return false;
      if (a.accepted) {
        // A repeated ack, or a late one for a task that expired meanwhile (its result is still recorded when it comes;
        // turning it back to running could put two active tasks on one target).
        if (t.state !== "leased" && t.state !== "queued") return true;
        await tx.query(
          `UPDATE tasks SET state = 'running', started_at = coalesce(started_at, $2), lease_expires_at = $3, updated_at = $2 WHERE id = $1`,
          [a.taskId, now, new Date(now.getTime() + this.d.timings.runningLeaseMs)],
        );
      } else {
        if (!["leased", "queued", "running"].includes(t.state)) return true;
        await tx.query(
          `UPDATE tasks SET state = 'errored', code = $2, message = $3, details = $4, finished_at = $5, lease_expires_at = NULL, updated_at = $5 WHERE id = $1`,
          [a.taskId, a.code || "TASK_REFUSED", a.message, { refused: true }, now],
        );
        await appendAudit(tx, { actor: `agent:${agentId}`, action: "task.refused", object: a.taskId, outcome: "refused", details: { code: a.code, message: a.message } });
        if (!t.deployment_id) await settleCheckTask(tx, a.taskId, { outcome: "errored", code: a.code || "TASK_REFUSED", message: a.message, details: { refused: true }, at: now });
      }
      if (t.deployment_id) await refreshDeploymentState(tx, t.deployment_id);
      return true;
    });
  }

  /**
   * Records a progress event; renews the lease of a running task. Only a leased or running task takes events, at
   * most MAX_TASK_EVENTS of them (agent-input-limits.ts). Returns whether the event was stored.
   */
  async progress(agentId: string, p: { taskId: string; step: string; detail: string; at: number }): Promise<boolean> {
    const now = new Date(this.d.clock.now());
    return this.d.store.transaction(async (tx) => {
      // progress_seq stops at MAX + 1: the event numbered MAX + 1 is the one marker; later ones only renew the lease.
      const r = await tx.query<{ progress_seq: number }>(
        `UPDATE tasks SET progress_seq = LEAST(progress_seq + 1, $5 + 1), updated_at = $3,
                lease_expires_at = CASE WHEN state = 'running' THEN $4 ELSE lease_expires_at END
          WHERE id = $1 AND agent_id = $2 AND state = ANY($6) RETURNING progress_seq`,
        [p.taskId, agentId, now, new Date(now.getTime() + this.d.timings.runningLeaseMs), MAX_TASK_EVENTS, PROGRESS_STATES],
      );
      const seq = r.rows[0]?.progress_seq;
      if (seq === undefined) return false;
      const over = seq > MAX_TASK_EVENTS;
      await tx.query("INSERT INTO task_events (task_id, seq, at, step, detail) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task_id, seq) DO NOTHING", [
        p.taskId,
        seq,
        over ? now : new Date(p.at > 0 ? p.at : now.getTime()),
        over ? "events-truncated" : p.step.slice(0, 64),
        over ? `the agent sent more than ${MAX_TASK_EVENTS} progress events for this task; later ones were not kept` : p.detail.slice(0, 4096),
      ]);
      return !over;
    });
  }

  /**
   * Stores a log chunk at its byte offset. The log is kept contiguous: a chunk starting past what is stored is not
   * kept (the agent resends from the acknowledged offset); a chunk overlapping what is stored adds only its new
   * tail. Bounded by agent-input-limits.ts: at most MAX_TASK_LOG_BYTES, and once the task is final nothing past the
   * length its result declared. Returns what to acknowledge; null for a task that is not this agent's.
   */
  async appendLog(agentId: string, taskId: string, offset: number, data: Uint8Array): Promise<LogAppend | null> {
    return this.d.store.transaction(async (tx) => {
      const r = await tx.query<{ log_bytes: string | number; log_total: string | number | null; state: TaskState }>(
        "SELECT log_bytes, log_total, state FROM tasks WHERE id = $1 AND agent_id = $2 FOR UPDATE",
        [taskId, agentId],
      );
      const row = r.rows[0];
      if (!row) return null;
      const have = Number(row.log_bytes);
      const plan = planLogAppend({ have, state: row.state, declaredTotal: row.log_total === null ? null : Number(row.log_total) }, offset, data.length);
      if (plan.keepEnd > have) {
        await tx.query(`INSERT INTO task_logs (task_id, "offset", data) VALUES ($1, $2, $3)`, [taskId, have, data.subarray(have - offset, plan.keepEnd - offset)]);
        await tx.query("UPDATE tasks SET log_bytes = $2 WHERE id = $1", [taskId, plan.keepEnd]);
      }
      return { ackOffset: plan.ackOffset, stored: plan.stored, ...(plan.dropped ? { dropped: plan.dropped } : {}) };
    });
  }

  /** Applies a task's result once; a repeated result is acknowledged without changing anything. */
  async result(agentId: string, res: TaskResultInput): Promise<boolean> {
    const now = new Date(this.d.clock.now());
    return this.d.store.transaction(async (tx) => {
      const t = await lockTask(tx, agentId, res.taskId);
      if (!t) return false;
      let state = OUTCOME_STATE[res.outcome] ?? "errored";
      const final = ["succeeded", "failed", "errored", "cancelled"].includes(t.state);
      if (final) return true;
      let code = res.code || (res.outcome === "interrupted" ? "TASK_INTERRUPTED" : "");
      let message = res.message;
      let details: Record<string, unknown> = { ...res.details, outcome: res.outcome, ...(t.state === "expired" ? { lateResult: true } : {}) };
      // A success that wrote another lock than the one stored with the task is not one Ferry can vouch for.
      const refusal = state === "succeeded" ? await lockVerdict(tx, res.taskId, res.details) : undefined;
      if (refusal) {
        state = "errored";
        code = refusal.code;
        message = refusal.message;
        details = { ...details, ...refusal.details };
      }
      await tx.query(
        `UPDATE tasks SET state = $2, code = $3, message = $4, details = $5, started_at = coalesce(started_at, $6), finished_at = $7,
                lease_expires_at = NULL, log_total = $8, updated_at = $9 WHERE id = $1`,
        [res.taskId, state, code || null, message, details, res.startedAt > 0 ? new Date(res.startedAt) : null, new Date(res.finishedAt > 0 ? res.finishedAt : now.getTime()), res.logBytes, now],
      );
      if (!t.deployment_id) await settleCheckTask(tx, res.taskId, { outcome: state, code: code || null, message, details, at: now });
      // Only a task that switched traffic changes what the target runs (a rollout's start-beside step does not).
      if (state === "succeeded" && t.deployment_id) {
        await tx.query(
          `INSERT INTO target_deployments (target_id, deployment_id, task_id, release_id, images, finished_at)
           SELECT target_id, deployment_id, id, release_id, images, $2 FROM tasks WHERE id = $1 AND switches ON CONFLICT (task_id) DO NOTHING`,
          [res.taskId, now],
        );
      }
      if (res.sticker) await upsertSticker(tx, agentId, res.sticker, now);
      if (t.deployment_id) await refreshDeploymentState(tx, t.deployment_id);
      await appendAudit(tx, {
        actor: `agent:${agentId}`,
        action: "task.result",
        object: res.taskId,
        outcome: state === "succeeded" ? "ok" : "failed",
        details: { outcome: res.outcome, code, deployment: t.deployment_id },
      });
      return true;
    });
  }

  /** Renews the leases of the tasks the agent says it is running. */
  async renew(agentId: string, taskIds: string[]): Promise<void> {
    if (taskIds.length === 0) return;
    const now = this.d.clock.now();
    await this.d.store.query(
      `UPDATE tasks SET lease_expires_at = $3 WHERE agent_id = $1 AND id = ANY($2) AND state = 'running'`,
      [agentId, taskIds.slice(0, 64), new Date(now + this.d.timings.runningLeaseMs)],
    );
  }

  async recordStickers(agentId: string, stickers: Record<string, unknown>[]): Promise<void> {
    if (stickers.length === 0) return;
    const now = new Date(this.d.clock.now());
    await this.d.store.transaction(async (tx) => {
      for (const s of stickers.slice(0, 256)) await upsertSticker(tx, agentId, s, now);
    });
  }

  /**
   * Lease housekeeping, run by every replica (the row locks make it safe): offered-but-unanswered tasks go back
   * to queued; running tasks whose lease ran out expire; queued tasks past their not-after expire. Returns the
   * agents that have tasks queued again, so they can be offered.
   */
  async sweep(opts: { expireRunning: boolean }): Promise<{ requeued: string[]; expired: number }> {
    const now = new Date(this.d.clock.now());
    return this.d.store.transaction(async (tx) => {
      const back = await tx.query<{ agent_id: string }>(
        `UPDATE tasks SET state = 'queued', lease_expires_at = NULL, updated_at = $1
          WHERE id IN (SELECT id FROM tasks WHERE state = 'leased' AND lease_expires_at < $1 FOR UPDATE SKIP LOCKED)
          RETURNING agent_id`,
        [now],
      );
      const expired = await tx.query<{ deployment_id: string | null; id: string; code: string }>(
        `UPDATE tasks SET state = 'expired', code = CASE WHEN state = 'queued' THEN 'TASK_NOT_DELIVERED' ELSE 'TASK_LEASE_EXPIRED' END,
                message = CASE WHEN state = 'queued' THEN 'the task was not delivered before its not-after'
                               ELSE 'the agent stopped renewing the task''s lease (it vanished while running the task)' END,
                finished_at = $1, lease_expires_at = NULL, updated_at = $1
          WHERE id IN (SELECT id FROM tasks WHERE ((state = 'queued' AND not_after <= $1) OR ($2 AND state = 'running' AND lease_expires_at < $1))
                        FOR UPDATE SKIP LOCKED)
          RETURNING deployment_id, id, code`,
        [now, opts.expireRunning],
      );
      for (const e of expired.rows) {
        if (!e.deployment_id) await settleCheckTask(tx, e.id, { outcome: "expired", code: e.code, message: "", details: null, at: now });
      }
      for (const dep of new Set(expired.rows.map((e) => e.deployment_id))) if (dep) await refreshDeploymentState(tx, dep);
      return { requeued: [...new Set(back.rows.map((b) => b.agent_id))], expired: expired.rowCount };
    });
  }

  /** Agents with queued tasks (the partial index keeps this cheap): the safety net of push delivery. */
  async agentsWithQueued(): Promise<string[]> {
    const r = await this.d.store.query<{ agent_id: string }>("SELECT DISTINCT agent_id FROM tasks WHERE state = 'queued' LIMIT 20000");
    return r.rows.map((x) => x.agent_id);
  }
}

/** A task of the agent, locked; deployment_id is null for a target check (target-checks.ts). */
async function lockTask(tx: Queryable, agentId: string, taskId: string): Promise<{ state: TaskState; deployment_id: string | null } | undefined> {
  const r = await tx.query<{ state: TaskState; deployment_id: string | null }>("SELECT state, deployment_id FROM tasks WHERE id = $1 AND agent_id = $2 FOR UPDATE", [taskId, agentId]);
  return r.rows[0];
}

async function upsertSticker(tx: Queryable, agentId: string, sticker: Record<string, unknown>, now: Date): Promise<void> {
  const targetId = typeof sticker.targetId === "string" ? sticker.targetId : "";
  if (!targetId) return;
  // Only targets this agent serves.
  await tx.query(
    `INSERT INTO target_stickers (target_id, agent_id, sticker, reported_at)
     SELECT id, $2, $3, $4 FROM targets WHERE id = $1 AND agent_id = $2
     ON CONFLICT (target_id) DO UPDATE SET agent_id = EXCLUDED.agent_id, sticker = EXCLUDED.sticker, reported_at = EXCLUDED.reported_at`,
    [targetId, agentId, sticker, now],
  );
}
