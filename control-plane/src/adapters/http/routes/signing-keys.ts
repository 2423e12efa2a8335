// The task-signing keys: list what agents trust, and rotate with overlap. Rotation makes a new key sign from now on;
// the previous key keeps verifying for the overlap, which must outlast every task already signed (task TTL plus
// clock-skew leeway), so no queued task becomes unverifiable. The overlap is bounded above too (30 days): the
// retirement time is sent to every agent as an int64, and an unbounded one broke every later Connect and Enrol.
//
// Emergency retirement (a key is suspected compromised): `emergency: true` rotates with overlap 0, so agents stop
// trusting the old key as soon as they hear of the rotation (at once on open streams). Undelivered tasks signed with
// it are re-signed with the new key (domain/deploy/task-resign.ts); running tasks carry on; an offer in flight at
// that moment can be refused by its agent as TASK_UNKNOWN_KEY and is then retried by a new deployment. The response
// says all of this, with the numbers.
import type { FastifyPluginAsync } from "fastify";
import { CLOCK_SKEW_LEEWAY_MS, MAX_ROTATION_OVERLAP_MS, type TaskSigningKeyring } from "@ferry/pki";
import { appendAudit } from "../../../domain/audit/audit-log.js";
import { resignUndeliveredTasks } from "../../../domain/deploy/task-resign.js";
import { FerryError } from "../../../domain/errors.js";
import { parseDuration } from "../../../domain/fleet/durations.js";
import { recordKeyring } from "../../../domain/fleet/replica-identity.js";
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
    app.post<{ Body: { overlap?: string; emergency?: boolean } }>(
      "/task-signing-keys/rotate",
      {
        config: { role: "admin" },
        schema: {
          summary: "Rotate the task-signing key; the previous key keeps verifying for the overlap (default 24h, at most 30d), or stops at once with emergency: true",
          body: {
            type: "object",
            additionalProperties: false,
            properties: { overlap: { type: "string", minLength: 1, maxLength: 32 }, emergency: { type: "boolean" } },
          },
        },
      },
      async (req) => {
        const emergency = req.body?.emergency === true;
        let overlapMs: number;
        if (emergency) {
          overlapMs = req.body?.overlap === undefined ? 0 : parseDuration(req.body.overlap, "overlap", { max: MAX_ROTATION_OVERLAP_MS });
          if (overlapMs !== 0) {
            throw new FerryError("VALIDATION_FAILED", "overlap: an emergency rotation retires the old key at once; leave overlap out (or give 0s)", { field: "overlap" });
          }
        } else {
          overlapMs = parseDuration(req.body?.overlap ?? "24h", "overlap", { max: MAX_ROTATION_OVERLAP_MS });
          const floor = d.taskTtlMs + CLOCK_SKEW_LEEWAY_MS;
          if (overlapMs < floor) {
            throw new FerryError(
              "VALIDATION_FAILED",
              `overlap: must be at least the task TTL plus ${CLOCK_SKEW_LEEWAY_MS / 1000} s (${Math.ceil(floor / 1000)} s), or tasks signed before the rotation could no longer be verified; to retire a compromised key at once, rotate with emergency: true`,
              { field: "overlap" },
            );
          }
        }
        const before = d.keyring.active.keyId;
        const active = await d.keyring.rotate({ overlapMs });
        const outcome = await d.store.transaction(async (tx) => {
          const resign = emergency ? await resignUndeliveredTasks(tx, d.keyring, before) : null;
          await recordKeyring(tx, active.keyId, d.keyring.keys.map((k) => k.keyId));
          await appendAudit(tx, {
            actor: actor(req),
            action: emergency ? "task-signing-key.retire" : "task-signing-key.rotate",
            object: active.keyId,
            outcome: "ok",
            details: { previous: before, overlapMs, emergency, ...(resign ?? {}) },
          });
          await tx.query("SELECT pg_notify($1, $2)", [SIGNING_KEYS_CHANNEL, active.keyId]);
          return resign;
        });
        if (!outcome) return view();
        req.log.warn({ retiredKeyId: before, activeKeyId: active.keyId, ...outcome }, "task-signing key retired at once (emergency rotation)");
        return {
          ...view(),
          emergency: {
            retiredKeyId: before,
            resignedTasks: outcome.resigned,
            runningTasks: outcome.running,
            warning:
              `Key ${before} is retired now: agents stop trusting it as soon as they hear of the rotation. ` +
              `${outcome.resigned} queued or offered task(s) were re-signed with ${active.keyId}; ` +
              `${outcome.running} running task(s) were verified before and carry on. ` +
              `A task offered in the same instant may still be refused by its agent (TASK_UNKNOWN_KEY) and its deployment fail: retry that deployment. ` +
              `Anything signed with ${before} from now on, including by whoever holds the compromised key, is refused.`,
          },
        };
      },
    );
  };
}
