// What a certificate renewal must satisfy beyond a valid CSR: a fresh key, and not too many renewals per agent.
//
// An agent renews at half-life (12 h with the default 24 h lifetime), so a handful of renewals per hour is already
// abnormal; a compromised or broken agent hammering RenewCertificate makes the CA sign in a loop, fills
// agent_certificates and the audit log. Both checks run inside the renewal's transaction, after the agent's row is
// locked, against the database (issued_at is the database's clock), so they hold across replicas and concurrent calls.
//
// Fresh key: a renewal whose key this agent has had certified before is refused (CSR_KEY_REUSED). Renewing is how a
// key's exposure is bounded in time; re-certifying the same key for another lifetime would defeat that, and a
// replayed CSR (the same request sent again and again) is exactly such a renewal. Ferry's agent makes a new key for
// every attempt, so it never meets this refusal.
import { createHash, X509Certificate } from "node:crypto";
import type { Queryable } from "../../ports/store.js";
import { FerryError } from "../errors.js";

export interface RenewalLimit {
  /** Renewals allowed per agent within windowMs. */
  max: number;
  windowMs: number;
}

const WINDOW_MS = 10 * 60_000;

/**
 * 3 renewals per 10 minutes beyond what the certificate lifetime itself calls for (one per half-life): 4 with the
 * default 24 h lifetime, more for an operator who chose very short-lived certificates, so the limit never stops an
 * agent that renews on schedule.
 */
export function defaultRenewalLimit(certLifetimeMs: number): RenewalLimit {
  return { max: 3 + Math.ceil(WINDOW_MS / Math.max(1000, certLifetimeMs / 2)), windowMs: WINDOW_MS };
}

/** SHA-256 (hex) of a certificate's public key, as stored in agent_certificates.public_key_sha256. */
export function publicKeySha256(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

/** Throws RATE_LIMITED (with details.retryAfterMs) when the agent has renewed `limit.max` times in the window. */
export async function checkRenewalRate(tx: Queryable, agentId: string, limit: RenewalLimit): Promise<void> {
  const r = await tx.query<{ n: string | number; oldest_age_ms: string | number | null }>(
    `SELECT count(*) AS n, (extract(epoch FROM now() - min(issued_at)) * 1000)::bigint AS oldest_age_ms
       FROM agent_certificates WHERE agent_id = $1 AND reason = 'renew' AND issued_at > now() - ($2 * interval '1 millisecond')`,
    [agentId, limit.windowMs],
  );
  const n = Number(r.rows[0]?.n ?? 0);
  if (n < limit.max) return;
  const retryAfterMs = Math.max(1000, limit.windowMs - Number(r.rows[0]?.oldest_age_ms ?? 0));
  throw new FerryError(
    "RATE_LIMITED",
    `agent ${agentId} renewed its certificate ${n} times in the last ${Math.round(limit.windowMs / 60_000)} minutes (at most ${limit.max}); retry in ${Math.ceil(retryAfterMs / 1000)} s`,
    { agentId, retryAfterMs },
  );
}

/** Throws CSR_KEY_REUSED when the agent has had this public key certified before. */
export async function checkFreshKey(tx: Queryable, agentId: string, keySha256: string): Promise<void> {
  const r = await tx.query<{ serial: string }>("SELECT serial FROM agent_certificates WHERE agent_id = $1 AND public_key_sha256 = $2 LIMIT 1", [agentId, keySha256]);
  const used = r.rows[0];
  if (!used) return;
  throw new FerryError(
    "CSR_KEY_REUSED",
    `the CSR's public key was already certified for agent ${agentId} (certificate ${used.serial}); a renewal must use a new key pair`,
    { agentId, serial: used.serial },
  );
}
