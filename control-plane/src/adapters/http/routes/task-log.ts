// How a task's log is served, for deployment tasks and target check tasks alike: text/plain from a byte offset, with
// X-Ferry-Log-Next (where to continue) and X-Ferry-Log-Complete (true once nothing more can come).
import type { FastifyReply } from "fastify";
import type { TaskLogPage } from "../../../domain/deploy/deployment-service.js";

/** What a log read answers when no ?limit= is given, and the most one may ask for. */
export const DEFAULT_LOG_BYTES = 1 << 20;
export const MAX_LOG_BYTES = 8_388_608;

/** ?offset= and ?limit= of a log read. */
export const logRange = {
  offset: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  limit: { type: "integer", minimum: 1, maximum: MAX_LOG_BYTES },
} as const;

export function sendTaskLog(reply: FastifyReply, log: TaskLogPage): FastifyReply {
  return reply
    .header("content-type", "text/plain; charset=utf-8")
    .header("x-ferry-log-next", String(log.next))
    .header("x-ferry-log-complete", String(log.complete))
    .send(log.data);
}
