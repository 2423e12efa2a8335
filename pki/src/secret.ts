// Join-token secrets. The control plane keeps only the hash, so a leaked database cannot enrol agents.
import { createHash, randomBytes } from "node:crypto";

/** 256-bit random secret, base64url without padding (43 characters). */
export function generateSecret(): string {
  return randomBytes(32).toString("base64url");
}

/**
 * SHA-256 of the secret's UTF-8 bytes. A plain hash (no salt, no slow KDF) is enough because the secret is 256
 * random bits, not a password: there is nothing to brute-force, and lookups by hash stay a simple index.
 */
export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}
