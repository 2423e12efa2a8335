// The Docker token flow (distribution's docs/spec/auth/token.md): a registry answers 401 with
//   WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",scope="repository:x:pull"
// and the client GETs realm?service=…&scope=… (with Basic credentials when it has any, anonymously otherwise), reads
// `token` (or the OAuth2 spelling `access_token`) and `expires_in` (default 60 s) from the JSON answer, and repeats
// the request with "Authorization: Bearer <token>".
//
// Tokens are cached per (realm, service, scope, identity). The identity is a hash of the credentials used for the
// exchange, so a token obtained with one set of credentials is never presented for a caller that passed other (or
// no) credentials. A token is dropped a little before its expiry (the registry checks `exp` with its own clock) and
// as soon as a registry refuses it.
//
// Security: the realm passes the same outbound check as a redirect (outbound-policy.ts) — https unless its host
// passes the plain-http rule, no loopback or link-local address unless allowed — since the exchange carries the
// password; tokens and passwords never appear in errors.
import { createHash } from "node:crypto";
import { FerryError } from "../../domain/errors.js";
import type { Clock } from "../../ports/clock.js";
import type { RegistryCredentials } from "../../ports/registry.js";
import { checkOutbound, type OutboundPolicy } from "./outbound-policy.js";
import { discard, readLimited, send, type Deadline } from "./transport.js";

export interface TokenKey {
  realm: string;
  service: string;
  scope: string;
  identity: string;
}

const DEFAULT_EXPIRES_IN_S = 60;
const MAX_TOKEN_RESPONSE_BYTES = 256 * 1024;
const MAX_CACHE_ENTRIES = 1000;

export function identityOf(credentials: RegistryCredentials | null): string {
  if (!credentials) return "anonymous";
  return createHash("sha256").update(credentials.username).update("\0").update(credentials.password).digest("hex");
}

function keyString(k: TokenKey): string {
  return JSON.stringify([k.realm, k.service, k.scope, k.identity]);
}

export class BearerTokenCache {
  readonly #entries = new Map<string, { token: string; refreshAt: number }>();

  constructor(private readonly clock: Clock) {}

  get(key: TokenKey): string | null {
    const k = keyString(key);
    const e = this.#entries.get(k);
    if (!e) return null;
    if (this.clock.now() >= e.refreshAt) {
      this.#entries.delete(k);
      return null;
    }
    return e.token;
  }

  set(key: TokenKey, token: string, expiresInS: number): void {
    const now = this.clock.now();
    const lifetimeMs = expiresInS * 1000;
    // Refresh before the registry would refuse it: 10% early, at most 10 s.
    const refreshAt = now + lifetimeMs - Math.min(10_000, lifetimeMs / 10);
    const k = keyString(key);
    this.#entries.delete(k);
    this.#entries.set(k, { token, refreshAt });
    if (this.#entries.size > MAX_CACHE_ENTRIES) {
      for (const [name, e] of this.#entries) if (now >= e.refreshAt) this.#entries.delete(name);
      // Still full: drop the oldest insertions (Map iterates in insertion order).
      for (const name of this.#entries.keys()) {
        if (this.#entries.size <= MAX_CACHE_ENTRIES) break;
        this.#entries.delete(name);
      }
    }
  }

  delete(key: TokenKey): void {
    this.#entries.delete(keyString(key));
  }

  get size(): number {
    return this.#entries.size;
  }
}

export interface ExchangeContext {
  fetch: typeof fetch;
  deadline: Deadline;
  userAgent: string;
  insecureRegistries: readonly string[];
  /** The same policy as the registry's redirects: the realm is checked before credentials go there. */
  policy: OutboundPolicy;
  credentials: RegistryCredentials | null;
  /** For messages and details: the registry host and the reference being resolved. */
  describe: { registry: string; reference: string };
}

function authFailed(ctx: ExchangeContext, message: string, details: Record<string, unknown> = {}): FerryError {
  return new FerryError("REGISTRY_AUTH_FAILED", message, { registry: ctx.describe.registry, reference: ctx.describe.reference, ...details });
}

/** Exchanges credentials (or nothing) for a bearer token at the realm. Returns the token and its lifetime. */
export async function exchangeToken(
  ctx: ExchangeContext,
  challenge: { realm: string; service: string | null; scope: string },
): Promise<{ token: string; expiresInS: number }> {
  let url: URL;
  try {
    url = new URL(challenge.realm);
  } catch {
    throw authFailed(ctx, `registry ${ctx.describe.registry} named a token realm that is not a URL`, { realm: challenge.realm.slice(0, 200) });
  }
  const realm = `${url.origin}${url.pathname}`;
  // The realm is where the password goes: https (or plain http only where the registry rules allow it), and never a
  // loopback or link-local address the operator did not allow (outbound-policy.ts).
  await checkOutbound(ctx.policy, url, "named the token realm");
  if (challenge.service !== null) url.searchParams.set("service", challenge.service);
  // Docker clients send one scope parameter per scope; a challenge may carry several separated by spaces.
  for (const s of challenge.scope.split(" ").filter(Boolean)) url.searchParams.append("scope", s);

  const headers: Record<string, string> = { accept: "application/json", "user-agent": ctx.userAgent };
  if (ctx.credentials) headers["authorization"] = basicAuthorization(ctx.credentials);
  const res = await send(ctx.fetch, ctx.deadline, url, { method: "GET", headers, what: "token realm", policy: ctx.policy });
  const details = { realm, service: challenge.service, scope: challenge.scope, status: res.status };
  if (res.status === 401 || res.status === 403) {
    await discard(res);
    throw authFailed(
      ctx,
      ctx.credentials
        ? `the token realm ${realm} refused the credentials for ${ctx.describe.registry} (HTTP ${res.status})`
        : `the token realm ${realm} refused anonymous access to ${ctx.describe.registry} (HTTP ${res.status}); configure credentials for this registry`,
      details,
    );
  }
  if (!res.ok) {
    await discard(res);
    throw authFailed(ctx, `the token exchange with ${realm} failed with HTTP ${res.status}`, details);
  }
  const body = await readLimited(res, MAX_TOKEN_RESPONSE_BYTES, ctx.deadline, url, "token realm");
  let parsed: unknown;
  try {
    parsed = body === null ? null : JSON.parse(body.toString("utf8"));
  } catch {
    parsed = null;
  }
  const doc = typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  const token = typeof doc["token"] === "string" && doc["token"] !== "" ? doc["token"] : doc["access_token"];
  if (typeof token !== "string" || token === "") {
    throw authFailed(ctx, `the token realm ${realm} answered without a token`, details);
  }
  const expiresIn = doc["expires_in"];
  const expiresInS = typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_EXPIRES_IN_S;
  return { token, expiresInS };
}

export function basicAuthorization(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
}
