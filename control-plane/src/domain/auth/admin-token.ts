// The bootstrap admin API token.
//
// Created exactly once per database: at the first start, which records that it did (control_plane_settings
// "admin-token.bootstrapped", under an advisory lock so replicas starting together create one). A later start that
// finds no admin token left (all revoked or expired) does not mint a new one: an attacker who can revoke tokens, or
// delete a row, must not be able to make the server write a fresh admin secret to disk. Getting admin access back is
// an explicit, audited act by someone with the data directory or the database URL: `ferry admin-token reset`.
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit } from "../audit/audit-log.js";
import { createApiToken } from "./api-tokens.js";

const BOOTSTRAP_LOCK = 0x4645_5232;
export const ADMIN_BOOTSTRAPPED_KEY = "admin-token.bootstrapped";

async function markBootstrapped(tx: Queryable, how: string): Promise<void> {
  await tx.query(
    "INSERT INTO control_plane_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    [ADMIN_BOOTSTRAPPED_KEY, JSON.stringify({ how, at: new Date().toISOString() })],
  );
}

/** Creates the first admin token on the first start of a database; returns its secret only then. */
export async function bootstrapAdminToken(store: Store): Promise<string | null> {
  return store.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [BOOTSTRAP_LOCK]);
    const marked = await tx.query("SELECT 1 FROM control_plane_settings WHERE key = $1", [ADMIN_BOOTSTRAPPED_KEY]);
    if (marked.rowCount > 0) return null;
    // A database from before the marker existed: it was bootstrapped if it ever had an admin token.
    const ever = await tx.query("SELECT 1 FROM api_tokens WHERE 'admin' = ANY(roles) LIMIT 1");
    if (ever.rowCount > 0) {
      await markBootstrapped(tx, "found");
      return null;
    }
    const created = await createApiToken(tx, { subject: "admin", roles: ["admin"], createdBy: "bootstrap", description: "created at first start" });
    await appendAudit(tx, { actor: "bootstrap", action: "api-token.create", object: created.id, outcome: "ok", details: { subject: "admin", roles: ["admin"] } });
    await markBootstrapped(tx, "created");
    return created.secret;
  });
}

/** Whether any admin token can still be used. */
export async function hasUsableAdminToken(db: Queryable): Promise<boolean> {
  const r = await db.query(
    "SELECT 1 FROM api_tokens WHERE 'admin' = ANY(roles) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) LIMIT 1",
  );
  return r.rowCount > 0;
}

/**
 * `ferry admin-token reset`: revokes every admin token of subject "admin" (the bootstrap token and earlier resets)
 * and creates a new one. Tokens of other subjects, admin or not, are left alone.
 */
export async function resetAdminToken(store: Store, by: string): Promise<{ id: string; secret: string; revoked: string[] }> {
  return store.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [BOOTSTRAP_LOCK]);
    const revoked = await tx.query<{ id: string }>(
      "UPDATE api_tokens SET revoked_at = now() WHERE subject = 'admin' AND 'admin' = ANY(roles) AND revoked_at IS NULL RETURNING id",
    );
    const created = await createApiToken(tx, { subject: "admin", roles: ["admin"], createdBy: by, description: "created by ferry admin-token reset" });
    await appendAudit(tx, {
      actor: by,
      action: "api-token.reset-admin",
      object: created.id,
      outcome: "ok",
      details: { revoked: revoked.rows.map((r) => r.id) },
    });
    await markBootstrapped(tx, "reset");
    return { id: created.id, secret: created.secret, revoked: revoked.rows.map((r) => r.id) };
  });
}
