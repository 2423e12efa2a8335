// Promotions and what their gates read: scan reports, security exceptions, approver groups; plus evidence packets.
// Requesting a promotion needs deployer (it ends in a deployment); approving needs approver; break-glass needs the
// environment's break-glass role (admin by default); scans need release-manager; exceptions and groups need admin.
import type { FastifyPluginAsync } from "fastify";
import type { EvidenceStore } from "../../../domain/promotion/evidence-store.js";
import type { PromotionService } from "../../../domain/promotion/promotion-service.js";
import type { SecurityRecords } from "../../../domain/promotion/security-records.js";
import { actor, principalOf as principal } from "../request-principal.js";

const NAME = { type: "string", minLength: 1, maxLength: 63 } as const;
const ID = { type: "string", minLength: 1, maxLength: 64 } as const;
const idParam = { type: "object", properties: { id: ID }, required: ["id"] } as const;
const DIGEST = { type: "string", pattern: "^sha256:[a-f0-9]{64}$" } as const;

export function promotionRoutes(d: { promotions: PromotionService; records: SecurityRecords; evidence: EvidenceStore }): FastifyPluginAsync {
  const s = d.promotions;
  return async (app) => {
    app.post<{ Body: { release: string; environment: string; strategy?: unknown } }>(
      "/promotions",
      {
        config: { role: "deployer", idempotent: true },
        schema: {
          summary: "Request a promotion of a release into an environment; it waits for the environment's gates, then deploys (with `strategy`, or the environment's, through the rollout engine)",
          body: {
            type: "object",
            additionalProperties: false,
            required: ["release", "environment"],
            properties: {
              release: { type: "string", minLength: 1, maxLength: 200 },
              environment: NAME,
              // As on POST /deployments: checked by the strategy parser (domain/rollout/strategy.ts), which names the field.
              strategy: { type: ["string", "object"], maxLength: 32, maxProperties: 16 },
            },
          },
        },
      },
      async (req, reply) => reply.status(201).send(await s.request(req.body, principal(req))),
    );
    app.get<{ Querystring: { environment?: string; state?: string; limit?: number } }>(
      "/promotions",
      {
        config: { role: "viewer" },
        schema: {
          summary: "List promotions, newest first",
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              environment: NAME,
              state: { type: "string", enum: ["requested", "awaiting_gates", "approved", "deploying", "succeeded", "failed", "rolled_back", "rejected", "cancelled", "expired"] },
              limit: { type: "integer", minimum: 1, maximum: 200 },
            },
          },
        },
      },
      async (req) => ({ promotions: await s.list(req.query) }),
    );
    app.get<{ Params: { id: string } }>("/promotions/:id", { config: { role: "viewer" }, schema: { summary: "A promotion with its gates, approvals, transitions and evidence", params: idParam } }, async (req) =>
      s.get(req.params.id, { history: true }),
    );
    app.get<{ Params: { id: string } }>(
      "/promotions/:id/why-blocked",
      { config: { role: "viewer" }, schema: { summary: "Every gate evaluated now: passed / pending / failed, the reason and the remedy", params: idParam } },
      async (req) => s.whyBlocked(req.params.id),
    );
    app.post<{ Params: { id: string }; Body: { comment?: string } }>(
      "/promotions/:id/approve",
      {
        config: { role: "approver" },
        schema: { summary: "Approve a promotion (not your own; once per subject)", params: idParam, body: { type: "object", additionalProperties: false, properties: { comment: { type: "string", maxLength: 2000 } } } },
      },
      async (req) => s.approve(req.params.id, principal(req), req.body?.comment ?? ""),
    );
    app.post<{ Params: { id: string }; Body: { reason: string } }>(
      "/promotions/:id/reject",
      {
        config: { role: "approver" },
        schema: { summary: "Reject a promotion; it ends", params: idParam, body: { type: "object", additionalProperties: false, required: ["reason"], properties: { reason: { type: "string", maxLength: 2000 } } } },
      },
      async (req) => s.reject(req.params.id, principal(req), req.body.reason),
    );
    app.post<{ Params: { id: string }; Body: { reason: string } }>(
      "/promotions/:id/break-glass",
      {
        config: { role: "viewer" },
        schema: { summary: "Override freeze windows for this promotion (needs the environment's break-glass role and a reason)", params: idParam, body: { type: "object", additionalProperties: false, required: ["reason"], properties: { reason: { type: "string", maxLength: 2000 } } } },
      },
      async (req) => s.breakGlass(req.params.id, principal(req), req.body.reason),
    );
    app.post<{ Params: { id: string }; Body: { reason?: string } }>(
      "/promotions/:id/cancel",
      { config: { role: "deployer" }, schema: { summary: "Cancel a promotion still waiting for its gates", params: idParam, body: { type: "object", additionalProperties: false, properties: { reason: { type: "string", maxLength: 2000 } } } } },
      async (req) => s.cancel(req.params.id, principal(req), req.body?.reason ?? ""),
    );

    app.get<{ Params: { id: string } }>(
      "/promotions/:id/release-metadata.json",
      { config: { role: "viewer" }, schema: { summary: "release-metadata.json of a successful promotion", params: idParam } },
      async (req) => s.releaseMetadata(req.params.id),
    );
    app.get<{ Params: { id: string } }>(
      "/promotions/:id/release-notes.md",
      { config: { role: "viewer" }, schema: { summary: "release-notes.md of a successful promotion (Markdown)", params: idParam } },
      async (req, reply) => reply.header("content-type", "text/markdown; charset=utf-8").send(await s.releaseNotes(req.params.id)),
    );

    // scan reports and exceptions
    app.post<{ Body: { digest: string; report: unknown } }>(
      "/scans",
      {
        config: { role: "release-manager" },
        schema: { summary: "Upload a scan report (Trivy JSON or SARIF) for an image digest", body: { type: "object", additionalProperties: false, required: ["digest", "report"], properties: { digest: DIGEST, report: {} } } },
      },
      async (req, reply) => {
        const scan = await d.records.uploadScan(req.body, actor(req));
        s.invalidate();
        return reply.status(201).send(scan);
      },
    );
    app.get<{ Querystring: { digest: string } }>(
      "/scans",
      { config: { role: "viewer" }, schema: { summary: "Scan reports of a digest, newest first", querystring: { type: "object", additionalProperties: false, required: ["digest"], properties: { digest: DIGEST } } } },
      async (req) => ({ scans: await d.records.listScans(req.query.digest) }),
    );
    app.post<{ Body: { digest: string; maxSeverity: string; reason: string; approver?: string; expires: string } }>(
      "/exceptions",
      {
        config: { role: "admin" },
        schema: {
          summary: "Accept findings up to a severity for a digest, with a reason, an approver and an expiry",
          body: {
            type: "object",
            additionalProperties: false,
            required: ["digest", "maxSeverity", "reason", "expires"],
            properties: { digest: DIGEST, maxSeverity: { type: "string", maxLength: 32 }, reason: { type: "string", maxLength: 2000 }, approver: { type: "string", maxLength: 200 }, expires: { type: "string", maxLength: 64 } },
          },
        },
      },
      async (req, reply) => {
        const exception = await d.records.createException(req.body, actor(req));
        s.invalidate();
        return reply.status(201).send(exception);
      },
    );
    app.get<{ Querystring: { digest?: string } }>(
      "/exceptions",
      { config: { role: "viewer" }, schema: { summary: "Security exceptions (expired ones are marked and never count)", querystring: { type: "object", additionalProperties: false, properties: { digest: DIGEST } } } },
      async (req) => ({ exceptions: await d.records.listExceptions(req.query.digest) }),
    );

    // approver groups
    app.get("/groups", { config: { role: "viewer" }, schema: { summary: "Groups and their subjects" } }, async () => ({ groups: await d.records.groups() }));
    app.post<{ Params: { group: string }; Body: { subject: string } }>(
      "/groups/:group/members",
      {
        config: { role: "admin" },
        schema: { summary: "Add a subject to a group", params: { type: "object", properties: { group: NAME }, required: ["group"] }, body: { type: "object", additionalProperties: false, required: ["subject"], properties: { subject: { type: "string", minLength: 1, maxLength: 200 } } } },
      },
      async (req, reply) => {
        await d.records.addToGroup(req.params.group, req.body.subject, actor(req));
        s.invalidate();
        return reply.status(204).send();
      },
    );
    app.delete<{ Params: { group: string; subject: string } }>(
      "/groups/:group/members/:subject",
      { config: { role: "admin" }, schema: { summary: "Remove a subject from a group", params: { type: "object", properties: { group: NAME, subject: { type: "string", minLength: 1, maxLength: 200 } }, required: ["group", "subject"] } } },
      async (req, reply) => {
        await d.records.removeFromGroup(req.params.group, req.params.subject, actor(req));
        s.invalidate();
        return reply.status(204).send();
      },
    );

    // evidence
    app.get<{ Querystring: { subject?: string; limit?: number } }>(
      "/evidence",
      {
        config: { role: "viewer" },
        schema: {
          summary: "Evidence packets in chain order, newest last (optionally about one promotion or deployment)",
          querystring: { type: "object", additionalProperties: false, properties: { subject: { type: "string", maxLength: 64 }, limit: { type: "integer", minimum: 1, maximum: 1000 } } },
        },
      },
      async (req) => ({ evidence: await d.evidence.list(req.query) }),
    );
    app.get<{ Params: { id: string } }>("/evidence/:id", { config: { role: "viewer" }, schema: { summary: "A signed evidence packet (DSSE envelope)", params: idParam } }, async (req) =>
      d.evidence.get(req.params.id),
    );
    app.get("/evidence-keys", { config: { role: "viewer" }, schema: { summary: "The evidence public key(s), to verify packets offline" } }, async () => ({ keys: d.evidence.publicKeys() }));
  };
}
