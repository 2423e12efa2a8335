// A short-lived cache of authenticated API tokens, so a busy client does not cost a database lookup per request.
//
// Entries live a few seconds. A revocation on this replica clears the cache at once (routes/api-tokens.ts); on
// other replicas a revoked token keeps working for at most the TTL, which is the documented bound. Failed lookups
// are never cached, and the key is a hash of the secret, never the secret itself. An entry never outlives its token:
// a token that expires within the TTL is cached only until it expires (an expired token was accepted for up to the
// TTL before).
import { createHash } from "node:crypto";
import type { Principal } from "../../domain/auth/roles.js";

export class TokenCache {
  private readonly entries = new Map<string, { principal: Principal; until: number }>();

  constructor(
    private readonly lookup: (secret: string) => Promise<Principal & { expiresAtMs?: number | null }>,
    private readonly ttlMs = 5000,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(secret: string): Promise<Principal> {
    const key = createHash("sha256").update(secret).digest("base64");
    const hit = this.entries.get(key);
    const t = this.now();
    if (hit && hit.until > t) return hit.principal;
    if (hit) this.entries.delete(key);
    const found = await this.lookup(secret);
    const expiresAtMs = found.expiresAtMs;
    let principal: Principal = found;
    if ("expiresAtMs" in found) {
      const { expiresAtMs: _, ...rest } = found;
      principal = rest;
    }
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    const until = Math.min(t + this.ttlMs, expiresAtMs ?? Number.POSITIVE_INFINITY);
    if (until > t) this.entries.set(key, { principal, until });
    return principal;
  }

  clear(): void {
    this.entries.clear();
  }
}
