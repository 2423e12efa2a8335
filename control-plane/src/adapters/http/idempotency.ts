// Idempotency-Key for POST routes marked `idempotent` in their config, so a CI job that retries after a timeout
// does not create twice.
//
// The first request with a key claims it (INSERT … ON CONFLICT DO NOTHING: exactly one concurrent request wins)
// and runs; its response is stored. A retry with the same key and the same request gets the stored response
// (header Idempotent-Replayed: true); the same key with a different request is refused (IDEMPOTENCY_KEY_REUSED).
// Server errors (5xx) release the key, so the retry runs for real. Keys are kept for 24 hours.
//
// Scope: a key belongs to the API token that used it, not to the token's subject — another token of the same subject
// (a colleague's CI job, a leaked old token) never gets a replay of someone else's response.
//
// A running request holds its key on a lease (LEASE_MS), renewed while it runs. A retry meanwhile gets
// IDEMPOTENCY_KEY_IN_PROGRESS with Retry-After saying when the lease ends; if the process died mid-request, the lease
// runs out within LEASE_MS and the next retry takes the key over — no more waiting out a fixed five minutes.
//
// Secrets are never stored: routes marked `secretResponse` (API token and join token creation) keep only the id of
// what they created. A retry of such a request is refused with IDEMPOTENCY_KEY_SECRET_SHOWN naming that id — it was
// created, and its secret, shown once, cannot be shown again; the caller revokes it and creates another.
import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Store } from "../../ports/store.js";
import { canonicalJson } from "@ferry/pki";
import { FerryError } from "../../domain/errors.js";

declare module "fastify" {
  interface FastifyContextConfig {
    idempotent?: boolean;
    /** The response carries a secret shown once: an idempotent replay must not repeat it (nor store it). */
    secretResponse?: boolean;
  }
  interface FastifyRequest {
    idempotencyKey: string | null;
    idempotencyLease: NodeJS.Timeout | null;
  }
}

const KEY = /^[\x21-\x7e]{1,255}$/;
const LEASE_MS = 30_000;
const RENEW_MS = 10_000;
const KEEP = "24 hours";

/** What a key is scoped to: the calling token (anonymous requests never reach idempotent routes, which need a role). */
function scopeOf(req: FastifyRequest): string {
  return req.principal ? `token:${req.principal.tokenId}` : "anonymous";
}

export function registerIdempotency(app: FastifyInstance, store: Store): void {
  app.decorateRequest("idempotencyKey", null);
  app.decorateRequest("idempotencyLease", null);

  const release = (req: FastifyRequest) => {
    if (req.idempotencyLease) clearInterval(req.idempotencyLease);
    req.idempotencyLease = null;
  };

  app.addHook("preHandler", async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.routeOptions.config.idempotent || req.method !== "POST") return;
    const raw = req.headers["idempotency-key"];
    if (raw === undefined) return;
    const key = Array.isArray(raw) ? raw[0] ?? "" : raw;
    if (!KEY.test(key)) throw new FerryError("VALIDATION_FAILED", "Idempotency-Key: 1 to 255 visible ASCII characters", { field: "Idempotency-Key" });
    const scope = scopeOf(req);
    const path = req.routeOptions.url ?? req.url;
    const hash = createHash("sha256").update(`${req.method} ${req.url}\n`).update(canonicalJson(req.body ?? null)).digest("hex");
    await store.query(`DELETE FROM idempotency_keys WHERE created_at < now() - interval '${KEEP}'`);
    const claimed = await store.query(
      `INSERT INTO idempotency_keys (principal, key, method, path, request_hash, lease_until) VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond')
       ON CONFLICT (principal, key) DO NOTHING RETURNING key`,
      [scope, key, req.method, path, hash, LEASE_MS],
    );
    const hold = () => {
      req.idempotencyKey = key;
      req.idempotencyLease = setInterval(() => {
        store
          .query("UPDATE idempotency_keys SET lease_until = now() + $3 * interval '1 millisecond' WHERE principal = $1 AND key = $2 AND status IS NULL", [scope, key, LEASE_MS])
          .catch((err: unknown) => req.log.warn({ err }, "could not renew an idempotency lease"));
      }, RENEW_MS);
      req.idempotencyLease.unref();
    };
    if (claimed.rowCount === 1) return hold();
    const r = await store.query<{ request_hash: string; status: number | null; response: unknown; wait_ms: string | number | null }>(
      `SELECT request_hash, status, response,
              ceil(extract(epoch FROM (coalesce(lease_until, created_at + interval '5 minutes') - now())) * 1000) AS wait_ms
         FROM idempotency_keys WHERE principal = $1 AND key = $2`,
      [scope, key],
    );
    const row = r.rows[0];
    if (!row) {
      void reply.header("retry-after", "1");
      throw new FerryError("IDEMPOTENCY_KEY_IN_PROGRESS", "the earlier request with this Idempotency-Key just finished; retry", { retryAfterSeconds: 1 });
    }
    if (row.request_hash !== hash) {
      throw new FerryError("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for a different request; use a new key for a new request");
    }
    if (row.status === null) {
      const waitMs = Number(row.wait_ms ?? 0);
      if (waitMs > 0) {
        const seconds = Math.min(Math.ceil(LEASE_MS / 1000), Math.max(1, Math.ceil(waitMs / 1000)));
        void reply.header("retry-after", String(seconds));
        throw new FerryError("IDEMPOTENCY_KEY_IN_PROGRESS", `a request with this Idempotency-Key is still running; retry in ${seconds} s`, { retryAfterSeconds: seconds });
      }
      // The first attempt's process died mid-request (its lease ran out): take the key over, unless another retry
      // just did.
      const taken = await store.query(
        `UPDATE idempotency_keys SET created_at = now(), lease_until = now() + $3 * interval '1 millisecond'
          WHERE principal = $1 AND key = $2 AND status IS NULL AND coalesce(lease_until, created_at + interval '5 minutes') <= now() RETURNING key`,
        [scope, key, LEASE_MS],
      );
      if (taken.rowCount === 1) return hold();
      void reply.header("retry-after", "1");
      throw new FerryError("IDEMPOTENCY_KEY_IN_PROGRESS", "a request with this Idempotency-Key is still running; retry shortly", { retryAfterSeconds: 1 });
    }
    const stored = row.response as { secretShown?: boolean; id?: unknown } | null;
    if (stored?.secretShown) {
      throw new FerryError(
        "IDEMPOTENCY_KEY_SECRET_SHOWN",
        `the request with this Idempotency-Key created ${String(stored.id)}, whose secret was shown once and is not kept; revoke it and create another`,
        { id: stored.id },
      );
    }
    return reply.status(row.status).header("idempotent-replayed", "true").send(row.response);
  });

  app.addHook("onSend", async (req, reply, payload) => {
    if (!req.idempotencyKey) return payload;
    release(req);
    const scope = scopeOf(req);
    if (reply.statusCode >= 500) {
      await store.query("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2", [scope, req.idempotencyKey]);
    } else {
      let body: unknown;
      try {
        body = typeof payload === "string" && payload.length > 0 ? JSON.parse(payload) : null;
      } catch {
        body = null;
      }
      // A secret-bearing success keeps only the id of what was created; errors carry no secret and replay as they are.
      if (req.routeOptions.config.secretResponse && reply.statusCode < 300) {
        body = { secretShown: true, id: (body as { id?: unknown } | null)?.id ?? null };
      }
      await store.query("UPDATE idempotency_keys SET status = $3, response = $4 WHERE principal = $1 AND key = $2", [
        scope,
        req.idempotencyKey,
        reply.statusCode,
        JSON.stringify(body),
      ]);
    }
    return payload;
  });

  // A request that ends without a response being sent (client gone) must not keep renewing its lease.
  app.addHook("onResponse", async (req) => release(req));
  app.addHook("onRequestAbort", async (req) => release(req));
}
