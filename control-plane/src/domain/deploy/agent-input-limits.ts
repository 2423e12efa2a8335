// How much an agent may make the control plane store for one task, and when it may no longer add to it.
//
// An agent is authenticated but not trusted with the control plane's resources (DESIGN.md, principle 4): a broken or
// hostile agent must not grow a task's log or event list without bound, nor rewrite a finished task's record.
//
// - Log: at most MAX_TASK_LOG_BYTES per task, the agent's own spool cap (agent/src/core/spool.ts, 8 MiB, truncation
//   marker included), so a well-behaved agent never meets it. Once a task is final, only the bytes its result
//   declared (TaskResult.log_bytes) are still accepted — the agent resends unacknowledged log after a reconnect,
//   possibly after the result landed, and that log must not be lost — and nothing beyond them.
// - Progress events: only while the task is leased or running, and at most MAX_TASK_EVENTS per task; the event after
//   the last one kept is a single marker saying that further events were dropped.
// Bytes and events past these limits are acknowledged (so a confused agent stops resending them) but not stored.
import type { TaskState } from "./deployment-service.js";

export const MAX_TASK_LOG_BYTES = 8 * 1024 * 1024;
export const MAX_TASK_EVENTS = 1000;

/** States in which a task takes progress events. */
export const PROGRESS_STATES: readonly TaskState[] = ["leased", "running"];
/**
 * States after which the log is closed at the length the result declared. `expired` is not one: an agent that comes
 * back after its lease ran out still reports its result and its log (task-queue.ts).
 */
export const LOG_CLOSED_STATES: readonly TaskState[] = ["succeeded", "failed", "errored", "cancelled"];

export type LogDropReason = "cap" | "final";

export interface LogAppend {
  /** What the agent is acknowledged up to: the stored length, or the chunk's end when the rest was dropped. */
  ackOffset: number;
  /** The stored length of the task's log after this chunk. */
  stored: number;
  /** Set when bytes of this chunk were not stored because of a limit. */
  dropped?: LogDropReason;
}

/**
 * Decides what of a chunk at [offset, offset + length) is kept, given `have` bytes stored and the task's state.
 * Returns the byte range to store ([have, keepEnd), empty when keepEnd <= have) and the answer for the agent.
 */
export function planLogAppend(
  t: { have: number; state: TaskState; declaredTotal: number | null },
  offset: number,
  length: number,
): LogAppend & { keepEnd: number } {
  const { have } = t;
  const end = offset + length;
  const closed = LOG_CLOSED_STATES.includes(t.state);
  const limit = closed ? Math.min(MAX_TASK_LOG_BYTES, t.declaredTotal ?? have) : MAX_TASK_LOG_BYTES;
  const reason: LogDropReason = closed && limit < MAX_TASK_LOG_BYTES ? "final" : "cap";
  if (end <= have) return { ackOffset: have, stored: have, keepEnd: have };
  if (have >= limit) return { ackOffset: end, stored: have, keepEnd: have, dropped: reason };
  // A gap: the agent resends from the acknowledged offset.
  if (offset > have) return { ackOffset: have, stored: have, keepEnd: have };
  const keepEnd = Math.min(end, limit);
  return end > limit ? { ackOffset: end, stored: keepEnd, keepEnd, dropped: reason } : { ackOffset: keepEnd, stored: keepEnd, keepEnd };
}
