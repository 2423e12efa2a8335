// Idempotency-Key for POST routes marked `idempotent` in their config, so a CI job that retries after a timeout
// does not create twice.
//
// The first request with a key claims it (INSERT … ON CONFLICT DO NOTHING: exactly one concurrent request wins)
// and runs; its response is stored. A retry with the same key and the same request gets the stored response
// (header Idempotent-Replayed: true); the same key with a different request is refused (IDEMPOTENCY_KEY_REUSED);
// a retry while the first is still running gets IDEMPOTENCY_KEY_IN_PROGRESS. Server errors (5xx) release the key,
// so the retry runs for real. Keys are scoped to the token's subject and kept for 24 hours.
import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Store } from "../../ports/store.js";
import { canonicalJson } from "@ferry/pki";
import { FerryError } from "../../domain/errors.js";

declare module "fastify" {
  interface FastifyContextConfig {
    idempotent?: boolean;
  }
  interface FastifyRequest {
    idempotencyKey: string | null;
  }
}

const KEY = /^[\x21-\x7e]{1,255}$/;
const STALE_MS = 5 * 60_000;
const KEEP = "24 hours";

export function registerIdempotency(app: FastifyInstance, store: Store): void {
  app.decorateRequest("idempotencyKey", null);

  app.addHook("preHandler", async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.routeOptions.config.idempotent || req.method !== "POST") return;
    const raw = req.headers["idempotency-key"];
    if (raw === undefined) return;
    const key = Array.isArray(raw) ? raw[0] ?? "" : raw;
    if (!KEY.test(key)) throw new FerryError("VALIDATION_FAILED", "Idempotency-Key: 1 to 255 visible ASCII characters", { field: "Idempotency-Key" });
    const principal = req.principal?.subject ?? "anonymous";
    const path = req.routeOptions.url ?? req.url;
    const hash = createHash("sha256").update(`${req.method} ${req.url}\n`).update(canonicalJson(req.body ?? null)).digest("hex");
    await store.query(`DELETE FROM idempotency_keys WHERE created_at < now() - interval '${KEEP}'`);
    const claimed = await store.query(
      `INSERT INTO idempotency_keys (principal, key, method, path, request_hash) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (principal, key) DO NOTHING RETURNING key`,
      [principal, key, req.method, path, hash],
    );
    if (claimed.rowCount === 1) {
      req.idempotencyKey = key;
      return;
    }
    const r = await store.query<{ request_hash: string; status: number | null; response: unknown; created_at: Date }>(
      "SELECT request_hash, status, response, created_at FROM idempotency_keys WHERE principal = $1 AND key = $2",
      [principal, key],
    );
    const row = r.rows[0];
    if (!row) throw new FerryError("IDEMPOTENCY_KEY_IN_PROGRESS", "the earlier request with this Idempotency-Key just finished; retry");
    if (row.request_hash !== hash) {
      throw new FerryError("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for a different request; use a new key for a new request");
    }
    if (row.status === null) {
      if (Date.now() - row.created_at.getTime() < STALE_MS) {
        throw new FerryError("IDEMPOTENCY_KEY_IN_PROGRESS", "a request with this Idempotency-Key is still running; retry shortly");
      }
      // The first attempt's process died mid-request: take the key over.
      await store.query("UPDATE idempotency_keys SET created_at = now() WHERE principal = $1 AND key = $2", [principal, key]);
      req.idempotencyKey = key;
      return;
    }
    return reply.status(row.status).header("idempotent-replayed", "true").send(row.response);
  });

  app.addHook("onSend", async (req, reply, payload) => {
    if (!req.idempotencyKey) return payload;
    const principal = req.principal?.subject ?? "anonymous";
    if (reply.statusCode >= 500) {
      await store.query("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2", [principal, req.idempotencyKey]);
    } else {
      let body: unknown;
      try {
        body = typeof payload === "string" && payload.length > 0 ? JSON.parse(payload) : null;
      } catch {
        body = null;
      }
      await store.query("UPDATE idempotency_keys SET status = $3, response = $4 WHERE principal = $1 AND key = $2", [
        principal,
        req.idempotencyKey,
        reply.statusCode,
        JSON.stringify(body),
      ]);
    }
    return payload;
  });
}
