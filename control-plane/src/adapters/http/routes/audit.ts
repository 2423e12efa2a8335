// Audit log: read and verify. There is deliberately no write, update or delete endpoint.
import type { FastifyPluginAsync } from "fastify";
import type { Store } from "../../../ports/store.js";
import { listAudit, verifyChain } from "../../../domain/audit/audit-log.js";

export function auditRoutes(d: { store: Store }): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: { after?: number; limit?: number } }>(
      "/audit",
      {
        config: { role: "admin" },
        schema: {
          summary: "Read the audit log in order",
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { after: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER }, limit: { type: "integer", minimum: 1, maximum: 1000 } },
          },
        },
      },
      async (req) => {
        const opts: { afterSeq?: number; limit?: number } = {};
        if (req.query.after !== undefined) opts.afterSeq = Number(req.query.after);
        opts.limit = req.query.limit !== undefined ? Number(req.query.limit) : 100;
        const records = await listAudit(d.store, opts);
        return { records, count: records.length };
      },
    );
    app.get("/audit/verify", { config: { role: "admin" }, schema: { summary: "Walk the hash chain and name the first broken record" } }, async () => verifyChain(d.store));
  };
}
