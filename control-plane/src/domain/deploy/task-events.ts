// A task's progress events as the API shows them: the newest few inside the deployment view, and every event
// through a paginated list.
//
// A task keeps at most MAX_TASK_EVENTS events (agent-input-limits.ts), and a deployment may have hundreds of tasks,
// so the deployment view carries only the newest EVENTS_IN_VIEW of each task, oldest first, with `eventsTotal`;
// `GET /deployments/{id}/tasks/{task}/events?after=<seq>&limit=<n>` pages through all of them by sequence number.
import type { Queryable } from "../../ports/store.js";
import { FerryError } from "../errors.js";

export const EVENTS_IN_VIEW = 100;
export const EVENTS_PAGE_MAX = 500;

interface EventRow {
  task_id: string;
  seq: number;
  at: Date;
  step: string;
  detail: string;
}

/** One progress event of a task, as the API shows it. */
export interface TaskEventView {
  seq: number;
  at: string;
  step: string;
  detail: string;
}

const view = (e: EventRow): TaskEventView => ({ seq: e.seq, at: new Date(e.at).toISOString(), step: e.step, detail: e.detail });

/** The newest EVENTS_IN_VIEW events of each task (oldest first), and how many each task has in all. */
export async function newestTaskEvents(q: Queryable, taskIds: string[]): Promise<Map<string, { events: TaskEventView[]; total: number }>> {
  const out = new Map<string, { events: TaskEventView[]; total: number }>();
  if (taskIds.length === 0) return out;
  const rows = await q.query<EventRow>(
    `SELECT t.id AS task_id, e.seq, e.at, e.step, e.detail
       FROM unnest($1::text[]) AS t(id)
       CROSS JOIN LATERAL (SELECT seq, at, step, detail FROM task_events WHERE task_id = t.id ORDER BY seq DESC LIMIT $2) e
      ORDER BY t.id, e.seq`,
    [taskIds, EVENTS_IN_VIEW],
  );
  const totals = await q.query<{ task_id: string; n: string | number }>("SELECT task_id, count(*) AS n FROM task_events WHERE task_id = ANY($1) GROUP BY task_id", [taskIds]);
  for (const id of taskIds) out.set(id, { events: [], total: 0 });
  for (const r of rows.rows) out.get(r.task_id)?.events.push(view(r));
  for (const r of totals.rows) {
    const entry = out.get(r.task_id);
    if (entry) entry.total = Number(r.n);
  }
  return out;
}

/** One page of a task's events with seq > after, oldest first; nextAfter is null on the last page. */
export async function taskEventsPage(
  q: Queryable,
  deploymentId: string,
  taskId: string,
  after = 0,
  limit = EVENTS_PAGE_MAX,
): Promise<{ events: TaskEventView[]; nextAfter: number | null }> {
  if (!Number.isInteger(after) || after < 0) throw new FerryError("VALIDATION_FAILED", "after must be a whole number ≥ 0", { field: "after" });
  if (!Number.isInteger(limit) || limit < 1 || limit > EVENTS_PAGE_MAX) {
    throw new FerryError("VALIDATION_FAILED", `limit must be a whole number from 1 to ${EVENTS_PAGE_MAX}`, { field: "limit" });
  }
  const t = await q.query("SELECT 1 FROM tasks WHERE id = $1 AND deployment_id = $2", [taskId, deploymentId]);
  if (t.rowCount === 0) throw new FerryError("TASK_NOT_FOUND", `deployment ${deploymentId} has no task ${taskId}`);
  const r = await q.query<EventRow>("SELECT task_id, seq, at, step, detail FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", [taskId, after, limit + 1]);
  const events = r.rows.slice(0, limit).map(view);
  const last = events[events.length - 1];
  return { events, nextAfter: r.rows.length > limit && last ? last.seq : null };
}
