// The task-signing keys: list what agents trust, and rotate with overlap. Rotation makes a new key sign from now on;
// the previous key keeps verifying for the overlap, which must outlast every task already signed (task TTL plus
// clock-skew leeway), so no queued task becomes unverifiable.
import type { FastifyPluginAsync } from "fastify";
import { CLOCK_SKEW_LEEWAY_MS, type TaskSigningKeyring } from "@ferry/pki";
import { appendAudit } from "../../../domain/audit/audit-log.js";
import { FerryError } from "../../../domain/errors.js";
import { parseDuration } from "../../../domain/fleet/durations.js";
import type { Store } from "../../../ports/store.js";
import { actor } from "../request-principal.js";

export const SIGNING_KEYS_CHANNEL = "ferry_signing_keys";

export function signingKeyRoutes(d: { store: Store; keyring: TaskSigningKeyring; taskTtlMs: number }): FastifyPluginAsync {
  const view = () => ({ activeKeyId: d.keyring.active.keyId, keys: d.keyring.publicKeys() });
  return async (app) => {
    app.get("/task-signing-keys", { config: { role: "viewer" }, schema: { summary: "The task-signing public keys agents trust now (two during a rotation)" } }, async () => {
      await d.keyring.reload();
      return view();
    });
    app.post<{ Body: { overlap?: string } }>(
      "/task-signing-keys/rotate",
      {
        config: { role: "admin" },
        schema: {
          summary: "Rotate the task-signing key; the previous key keeps verifying for the overlap (default 24h)",
          body: { type: "object", additionalProperties: false, properties: { overlap: { type: "string", minLength: 1, maxLength: 32 } } },
        },
      },
      async (req) => {
        const overlapMs = parseDuration(req.body?.overlap ?? "24h", "overlap");
        const floor = d.taskTtlMs + CLOCK_SKEW_LEEWAY_MS;
        if (overlapMs < floor) {
          throw new FerryError("VALIDATION_FAILED", `overlap: must be at least the task TTL plus ${CLOCK_SKEW_LEEWAY_MS / 1000} s (${Math.ceil(floor / 1000)} s), or tasks signed before the rotation could no longer be verified`, { field: "overlap" });
        }
        const before = d.keyring.active.keyId;
        const active = await d.keyring.rotate({ overlapMs });
        await d.store.transaction(async (tx) => {
          await appendAudit(tx, { actor: actor(req), action: "task-signing-key.rotate", object: active.keyId, outcome: "ok", details: { previous: before, overlapMs } });
          await tx.query("SELECT pg_notify($1, $2)", [SIGNING_KEYS_CHANNEL, active.keyId]);
        });
        return view();
      },
    );
  };
}
