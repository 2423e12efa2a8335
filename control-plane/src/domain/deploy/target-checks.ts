// Target checks (docs/api.md#target-checks): when a target is created, or its config or agent changes, the
// control plane asks the target's agent to look at it — a signed `inspect` task — and keeps the answer on the target.
//
// Rules:
//   - a check is queued only to an agent that is online, not revoked, serves the target's kind and reads a payload
//     version this control plane writes; otherwise it stays pending without a task, and is queued when the agent
//     connects (queuePendingFor, called on every Hello);
//   - a check task belongs to no deployment and no release; it never blocks a deploy, and a deploy never waits for it;
//   - only the answer to the newest check of a target counts: asking again cancels a check task not yet delivered and
//     ignores a late answer to an older one;
//   - a check task that expires (undelivered, or its agent vanished) leaves the check pending, queued again at the
//     agent's next Hello;
//   - the verdict: the task failed (a driver error, a refusal) → failed with the task's code; the inspection found
//     the target missing → failed with TARGET_NOT_FOUND; the inspection reported a problem with the target's config
//     (`details.check: {code, message}`) → failed with that code; otherwise ok.
// A failed check does not refuse deploys: it is shown on the target (API, CLI, console), and a deploy's own prepare
// phase checks the same things again before anything changes.
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { negotiatePayloadVersion } from "@ferry/contract";
import type { Clock } from "../../ports/clock.js";
import type { TaskPayload, TaskSigner } from "../../ports/signer.js";
import type { Queryable, Store } from "../../ports/store.js";
import { FerryError } from "../errors.js";
import { driverProblem, readTaskLog, TASK_NOTIFY_CHANNEL, type TaskLogPage, type TaskLogRow } from "./deployment-service.js";

export type TargetCheckState = "pending" | "ok" | "failed";

export interface TargetCheckView {
  state: TargetCheckState;
  code: string | null;
  message: string;
  /** What the agent found (its inspection), or why the check is still pending. */
  details: Record<string, unknown> | null;
  taskId: string | null;
  /** The target's updatedAt when the check was asked for: which config the verdict is about. */
  configAt: string;
  requestedAt: string;
  checkedAt: string | null;
}

/** The longest a request may wait for a check's answer (`?wait=` on the API, `--wait` in the CLI). */
export const MAX_CHECK_WAIT_SECONDS = 120;
const WAIT_POLL_MS = 250;

interface CheckRow {
  target_id: string;
  state: TargetCheckState;
  code: string | null;
  message: string;
  details: Record<string, unknown> | null;
  task_id: string | null;
  config_at: Date;
  requested_at: Date;
  checked_at: Date | null;
}

interface TargetRow {
  id: string;
  name: string;
  kind: string;
  config: Record<string, unknown>;
  agent_id: string | null;
  updated_at: Date;
}

interface AgentFacts {
  drivers?: unknown;
  driverFacts?: unknown;
  taskPayloadVersions?: unknown;
}

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

function view(r: CheckRow): TargetCheckView {
  return { state: r.state, code: r.code, message: r.message, details: r.details, taskId: r.task_id, configAt: iso(r.config_at)!, requestedAt: iso(r.requested_at)!, checkedAt: iso(r.checked_at) };
}

/** Why `agent` cannot run a check of a `kind` target now, or the payload version to sign the check as. */
export function checkAgentProblem(agent: { id: string; status: string; facts: AgentFacts } | undefined, kind: string): { problem: string } | { version: 1 } {
  if (!agent) return { problem: "the target has no agent; bind one with ferry target update --agent" };
  if (agent.status === "revoked") return { problem: `agent ${agent.id} is revoked` };
  if (agent.status !== "online") return { problem: `agent ${agent.id} is not connected; the check runs when it connects` };
  const problem = driverProblem({ id: agent.id, drivers: agent.facts.drivers, driver_facts: agent.facts.driverFacts }, kind, []);
  if (problem) return { problem: `${problem}; the check runs when it serves ${kind} targets` };
  const versions = Array.isArray(agent.facts.taskPayloadVersions) ? (agent.facts.taskPayloadVersions as unknown[]).filter((v): v is number => typeof v === "number") : [];
  // A check is signed as v1, which every agent reads and which means the same inspect v2 would (v2 adds phases,
  // state and routes, none of which an inspect has).
  if (negotiatePayloadVersion(versions) === undefined || (versions.length > 0 && !versions.includes(1))) {
    return { problem: `agent ${agent.id} does not read v1 task payloads, which checks are sent as` };
  }
  return { version: 1 };
}

export interface TargetCheckDeps {
  store: Store;
  signer: TaskSigner;
  clock: Clock;
  /** How long a signed check task stays valid after it is queued. */
  taskTtlMs: number;
}

export class TargetChecks {
  constructor(private readonly d: TargetCheckDeps) {}

  /** Asks for a new check of a target: queued to its agent now if it can run it, otherwise pending. */
  async request(targetId: string): Promise<TargetCheckView> {
    return this.d.store.transaction(async (tx) => {
      const t = await tx.query<TargetRow>("SELECT id, name, kind, config, agent_id, updated_at FROM targets WHERE id = $1 FOR UPDATE", [targetId]);
      const target = t.rows[0];
      if (!target) throw new FerryError("TARGET_NOT_FOUND", `no target ${targetId}`);
      const now = new Date(this.d.clock.now());
      // An older check's task that no agent has picked up is not wanted any more.
      await tx.query(
        `UPDATE tasks SET state = 'cancelled', code = 'CANCELLED', message = 'a newer check of the target was asked for', finished_at = $2, lease_expires_at = NULL, updated_at = $2
          WHERE target_id = $1 AND deployment_id IS NULL AND action = 'inspect' AND state IN ('queued', 'leased')`,
        [target.id, now],
      );
      await tx.query(
        `INSERT INTO target_checks (target_id, state, code, message, details, task_id, config_at, requested_at, checked_at)
         VALUES ($1, 'pending', NULL, '', NULL, NULL, $2, $3, NULL)
         ON CONFLICT (target_id) DO UPDATE SET state = 'pending', code = NULL, message = '', details = NULL, task_id = NULL,
                config_at = EXCLUDED.config_at, requested_at = EXCLUDED.requested_at, checked_at = NULL`,
        [target.id, target.updated_at, now],
      );
      const agent = target.agent_id
        ? (await tx.query<{ id: string; status: string; facts: AgentFacts }>("SELECT id, status, facts FROM agents WHERE id = $1", [target.agent_id])).rows[0]
        : undefined;
      const can = checkAgentProblem(agent, target.kind);
      if ("problem" in can) await tx.query("UPDATE target_checks SET message = $2 WHERE target_id = $1", [target.id, can.problem]);
      else await this.queue(tx, target, can.version, now);
      return this.read(tx, target.id) as Promise<TargetCheckView>;
    });
  }

  /**
   * Queues the pending checks of an agent's targets that have no task yet; called when the agent connects, with the
   * facts of its Hello (the stored facts may not be written yet). Returns how many were queued.
   */
  async queuePendingFor(agentId: string, facts: AgentFacts): Promise<number> {
    return this.d.store.transaction(async (tx) => {
      const pending = await tx.query<TargetRow>(
        `SELECT t.id, t.name, t.kind, t.config, t.agent_id, t.updated_at FROM target_checks c JOIN targets t ON t.id = c.target_id
          WHERE t.agent_id = $1 AND c.state = 'pending' AND c.task_id IS NULL ORDER BY t.id LIMIT 1000 FOR UPDATE OF c SKIP LOCKED`,
        [agentId],
      );
      const now = new Date(this.d.clock.now());
      let queued = 0;
      for (const target of pending.rows) {
        const can = checkAgentProblem({ id: agentId, status: "online", facts }, target.kind);
        if ("problem" in can) {
          await tx.query("UPDATE target_checks SET message = $2 WHERE target_id = $1", [target.id, can.problem]);
          continue;
        }
        await this.queue(tx, target, can.version, now);
        queued++;
      }
      return queued;
    });
  }

  /** A target's latest check, or null when it was never checked. */
  async get(targetId: string): Promise<TargetCheckView | null> {
    return this.read(this.d.store, targetId);
  }

  /** The latest checks of many targets, by target id. */
  async forTargets(targetIds: readonly string[]): Promise<Map<string, TargetCheckView>> {
    if (targetIds.length === 0) return new Map();
    const r = await this.d.store.query<CheckRow>("SELECT * FROM target_checks WHERE target_id = ANY($1)", [[...targetIds]]);
    return new Map(r.rows.map((row) => [row.target_id, view(row)]));
  }

  /** Waits up to `seconds` (at most MAX_CHECK_WAIT_SECONDS) for a target's check to leave pending. */
  async wait(targetId: string, seconds: number): Promise<TargetCheckView | null> {
    if (!Number.isFinite(seconds) || seconds < 0 || seconds > MAX_CHECK_WAIT_SECONDS) {
      throw new FerryError("VALIDATION_FAILED", `wait must be from 0 to ${MAX_CHECK_WAIT_SECONDS} seconds`, { field: "wait" });
    }
    const until = Date.now() + seconds * 1000;
    for (;;) {
      const c = await this.get(targetId);
      if (!c || c.state !== "pending" || Date.now() >= until) return c;
      await sleep(Math.min(WAIT_POLL_MS, Math.max(1, until - Date.now())));
    }
  }

  /**
   * The log of a target's check task from a byte offset (at most maxBytes), read as a deployment task's log is. The
   * task is the latest check's, or `taskId` when given (any check task of this target: a reader that follows a log
   * names the task it started on, so a newer check does not splice another task's bytes into it). TASK_NOT_FOUND when
   * the target has no such check task (never checked, or the check is pending with no agent to run it).
   */
  async log(targetId: string, offset: number, maxBytes: number, taskId?: string): Promise<TaskLogPage & { taskId: string }> {
    let id = taskId;
    if (id === undefined) {
      const c = await this.read(this.d.store, targetId);
      if (!c?.taskId) throw new FerryError("TASK_NOT_FOUND", c ? `the check of target ${targetId} has no task yet: ${c.message}` : `target ${targetId} was never checked`);
      id = c.taskId;
    }
    const r = await this.d.store.query<TaskLogRow>(
      "SELECT id, log_total, state FROM tasks WHERE id = $1 AND target_id = $2 AND deployment_id IS NULL AND action = 'inspect'",
      [id, targetId],
    );
    const row = r.rows[0];
    if (!row) throw new FerryError("TASK_NOT_FOUND", `target ${targetId} has no check task ${id}`);
    return { taskId: row.id, ...(await readTaskLog(this.d.store, row, offset, maxBytes)) };
  }

  private async read(db: Queryable, targetId: string): Promise<TargetCheckView | null> {
    const r = await db.query<CheckRow>("SELECT * FROM target_checks WHERE target_id = $1", [targetId]);
    return r.rows[0] ? view(r.rows[0]) : null;
  }

  /** Signs and queues the inspect task of a target's pending check, and wakes its agent. */
  private async queue(tx: Queryable, target: TargetRow, version: 1, now: Date): Promise<void> {
    const taskId = `tsk_${randomBytes(10).toString("hex")}`;
    const notAfter = now.getTime() + this.d.taskTtlMs;
    const payload: TaskPayload = {
      v: version,
      taskId,
      // A check belongs to no deployment; the payload's deployment id names the check instead.
      deploymentId: `chk_${randomBytes(8).toString("hex")}`,
      agentId: target.agent_id!,
      issuedAt: now.getTime(),
      notAfter,
      nonce: randomBytes(16).toString("base64url"),
      action: "inspect",
      target: { id: target.id, name: target.name, kind: target.kind, config: target.config },
      release: null,
      images: [],
    };
    const env = this.d.signer.sign(payload);
    await tx.query(
      `INSERT INTO tasks (id, deployment_id, agent_id, target_id, release_id, action, state, payload, payload_type, key_id,
                          signature, images, not_after, queued_at, updated_at)
       VALUES ($1, NULL, $2, $3, NULL, 'inspect', 'queued', $4, $5, $6, $7, '[]'::jsonb, $8, $9, $9)`,
      [taskId, target.agent_id, target.id, env.payload, env.payloadType, env.keyId, env.signature, new Date(notAfter), now],
    );
    await tx.query("UPDATE target_checks SET task_id = $2, message = $3 WHERE target_id = $1", [target.id, taskId, `queued to agent ${target.agent_id}`]);
    await tx.query("SELECT pg_notify($1, $2)", [TASK_NOTIFY_CHANNEL, target.agent_id]);
  }
}
