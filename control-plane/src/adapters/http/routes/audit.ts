// Audit log: read and verify, and sign a checkpoint of its head now. There is deliberately no endpoint that writes,
// changes or deletes a record.
import type { FastifyPluginAsync } from "fastify";
import type { EvidencePublicKey } from "@ferry/pki";
import type { Store } from "../../../ports/store.js";
import type { AuditCheckpointer } from "../../../domain/audit/audit-anchor.js";
import { listAudit, verifyChain } from "../../../domain/audit/audit-log.js";

export function auditRoutes(d: { store: Store; keys: () => EvidencePublicKey[]; checkpointer?: AuditCheckpointer }): FastifyPluginAsync {
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
    app.get<{ Querystring: { anchorSeq?: number; anchorHash?: string } }>(
      "/audit/verify",
      {
        config: { role: "admin" },
        schema: {
          summary: "Walk the hash chain, check it against its signed anchors (and a head the caller saw before), and name the first broken record",
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { anchorSeq: { type: "integer", minimum: 1, maximum: 9007199254740991 }, anchorHash: { type: "string", pattern: "^[0-9a-f]{64}$" } },
            dependencies: { anchorSeq: ["anchorHash"], anchorHash: ["anchorSeq"] },
          },
        },
      },
      async (req) =>
        verifyChain(d.store, {
          keys: d.keys(),
          witness: req.query.anchorSeq !== undefined && req.query.anchorHash ? { seq: Number(req.query.anchorSeq), hash: req.query.anchorHash } : null,
        }),
    );
    app.post(
      "/audit/checkpoints",
      { config: { role: "admin" }, schema: { summary: "Sign a checkpoint of the audit head now (one is signed every interval anyway, when the head moved)" } },
      async () => ({ checkpoint: d.checkpointer ? await d.checkpointer.checkpoint() : null }),
    );
  };
}
