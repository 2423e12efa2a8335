// API bearer tokens: "ferry_" + 256-bit secret. Only the SHA-256 of the secret is stored; the secret is shown once.
import { randomBytes } from "node:crypto";
import { generateSecret, hashSecret } from "@ferry/pki";
import type { Queryable } from "../../ports/store.js";
import { FerryError } from "../errors.js";
import { isRole, type Principal, type Role } from "./roles.js";

export const API_TOKEN_PREFIX = "ferry_";

export interface CreatedApiToken {
  id: string;
  subject: string;
  roles: Role[];
  secret: string;
  expiresAt: string | null;
}

export function newTokenId(): string {
  return `tok_${randomBytes(8).toString("hex")}`;
}

export async function createApiToken(
  db: Queryable,
  opts: { subject: string; roles: Role[]; createdBy: string; description?: string; expiresAt?: Date | null },
): Promise<CreatedApiToken> {
  if (opts.roles.length === 0) throw new FerryError("VALIDATION_FAILED", "an API token needs at least one role");
  const bad = opts.roles.filter((r) => !isRole(r));
  if (bad.length > 0) throw new FerryError("VALIDATION_FAILED", `unknown role(s): ${bad.join(", ")}`);
  const id = newTokenId();
  const secret = API_TOKEN_PREFIX + generateSecret();
  const expiresAt = opts.expiresAt ? opts.expiresAt.toISOString() : null;
  await db.query(
    `INSERT INTO api_tokens (id, subject, roles, token_hash, description, created_by, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [id, opts.subject, opts.roles, hashSecret(secret), opts.description ?? "", opts.createdBy, expiresAt],
  );
  return { id, subject: opts.subject, roles: opts.roles, secret, expiresAt };
}

/** Resolves a bearer secret to its principal (and when the token expires, for caches), or throws UNAUTHENTICATED. */
export async function authenticateApiToken(db: Queryable, secret: string, now: Date = new Date()): Promise<Principal & { expiresAtMs: number | null }> {
  if (!secret.startsWith(API_TOKEN_PREFIX) || secret.length !== API_TOKEN_PREFIX.length + 43) {
    throw new FerryError("UNAUTHENTICATED", "the bearer token is not a Ferry API token");
  }
  const res = await db.query<{ id: string; subject: string; roles: string[]; expires_at: Date | null; revoked_at: Date | null }>(
    "SELECT id, subject, roles, expires_at, revoked_at FROM api_tokens WHERE token_hash = $1",
    [hashSecret(secret)],
  );
  const row = res.rows[0];
  if (!row) throw new FerryError("UNAUTHENTICATED", "the bearer token is not known");
  if (row.revoked_at) throw new FerryError("UNAUTHENTICATED", "the bearer token was revoked");
  if (row.expires_at && row.expires_at.getTime() <= now.getTime()) {
    throw new FerryError("UNAUTHENTICATED", "the bearer token has expired");
  }
  return { tokenId: row.id, subject: row.subject, roles: row.roles.filter(isRole), expiresAtMs: row.expires_at ? row.expires_at.getTime() : null };
}

export interface ApiTokenView {
  id: string;
  subject: string;
  roles: Role[];
  description: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

interface TokenRow {
  id: string;
  subject: string;
  roles: string[];
  description: string;
  created_by: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
}

const tokenView = (r: TokenRow): ApiTokenView => ({
  id: r.id,
  subject: r.subject,
  roles: r.roles.filter(isRole),
  description: r.description,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  expiresAt: r.expires_at ? r.expires_at.toISOString() : null,
  revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
});

export async function listApiTokens(db: Queryable): Promise<ApiTokenView[]> {
  return (await db.query<TokenRow>("SELECT * FROM api_tokens ORDER BY created_at")).rows.map(tokenView);
}

export async function revokeApiToken(db: Queryable, id: string): Promise<ApiTokenView> {
  const r = await db.query<TokenRow>("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING *", [id]);
  if (!r.rows[0]) throw new FerryError("API_TOKEN_NOT_FOUND", `no API token ${id}`);
  return tokenView(r.rows[0]);
}
