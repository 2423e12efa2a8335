// Resolves image references to manifest digests through the OCI distribution API
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md), with no registry client library.
//
// One resolve():
//   1. HEAD /v2/<name>/manifests/<tag or digest>, Accept: OCI index, OCI manifest, Docker list, Docker schema 2.
//      HEAD answers Docker-Content-Digest without sending the body (and is not a "pull" for Docker Hub's limits).
//   2. GET the manifest — by the digest HEAD reported, so the bytes hashed are the ones the tag pointed at even if
//      the tag moves meanwhile — hash the body, and require every Docker-Content-Digest seen (HEAD's and GET's) and
//      any digest the caller asked for to equal that hash. The hash of the bytes is what gets pinned; a header is
//      only a claim (REGISTRY_DIGEST_MISMATCH when a claim and the bytes disagree).
//   3. Check the media type and read the platforms of an index (manifest.ts).
// A HEAD that fails carries no body, so errors are read from the GET's JSON error document.
//
// Auth: requests go out anonymously first. On 401 the WWW-Authenticate challenge decides: Basic → repeat with the
// caller's credentials; Bearer → exchange at the realm (bearer-tokens.ts) and repeat with the token. The scheme and
// realm a registry asked for are remembered, so later requests present a cached token (or Basic credentials)
// straight away. Every resolve() runs under one deadline (timeoutMs) covering token exchange, HEAD and GET.
//
// Not found: distribution answers MANIFEST_UNKNOWN for a tag or digest in a repository that does not exist (not
// NAME_UNKNOWN), so on a 404 Ferry asks GET /v2/<name>/tags/list once: NAME_UNKNOWN there means the repository is
// missing (REPOSITORY_NOT_FOUND), anything else leaves TAG_NOT_FOUND / DIGEST_NOT_FOUND.
//
// Redirects and realms: every Location and every realm a registry names is checked (outbound-policy.ts) before
// Ferry sends anything there, and a body that came through a redirect is never quoted in an error.
//
// Secrets: credentials and tokens go only into Authorization headers. Errors carry host, repository, reference,
// status and the registry's error code and message — the message with any credential or token text removed.
import { createHash } from "node:crypto";
import { FerryError } from "../../domain/errors.js";
import { systemClock, type Clock } from "../../ports/clock.js";
import type { ImageReference, ImageRegistry, RegistryCredentials, ResolvedImage } from "../../ports/registry.js";
import { BearerTokenCache, basicAuthorization, exchangeToken, identityOf, type TokenKey } from "./bearer-tokens.js";
import { MANIFEST_ACCEPT, ManifestError, isDigestSyntax, readManifest, type ManifestInfo } from "./manifest.js";
import { canonicalRepository, formatReference, parseReference } from "./reference.js";
import type { OutboundPolicy } from "./outbound-policy.js";
import { deadline, discard, readLimited, send, usesPlainHttp, wasRedirected, type Deadline } from "./transport.js";
import { ChallengeParseError, parseWwwAuthenticate, type Challenge } from "./www-authenticate.js";

export interface OciRegistryOptions {
  /** Deadline for one resolve(), all requests included. Default 10 000 ms. */
  timeoutMs?: number;
  /** Hosts ("host" = any port, or "host:port") reached over plain http. Loopback always is; everything else is https. */
  insecureRegistries?: readonly string[];
  userAgent?: string;
  fetch?: typeof fetch;
  /** For token expiry. */
  clock?: Clock;
  /**
   * Hosts ("host" or "host:port") that a registry's redirects and token realms may name although they are loopback
   * or link-local addresses (outbound-policy.ts). Empty by default.
   */
  internalHosts?: readonly string[];
  /** Name resolution for the outbound check; injectable for tests. */
  lookup?: (host: string) => Promise<string[]>;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_USER_AGENT = "ferry-control-plane";
// distribution refuses manifests over 4 MiB; an answer larger than that is not a manifest.
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_BYTES = 64 * 1024;
const MAX_REMEMBERED_REGISTRIES = 256;
const SUPPORTED_DIGEST_ALGORITHMS: Record<string, string> = { sha256: "sha256", sha512: "sha512" };

type Authorization = { kind: "basic"; header: string } | { kind: "bearer"; header: string; key: TokenKey };

interface Remembered {
  scheme: "basic" | "bearer";
  realm: string;
  service: string | null;
}

interface Ctx {
  ref: ImageReference;
  /** Canonical "registry/repository[:tag][@digest]", for messages. */
  display: string;
  base: string;
  credentials: RegistryCredentials | null;
  deadline: Deadline;
  /** Text that must never appear in an error: the password, its Basic encoding, tokens presented. */
  secrets: Set<string>;
  /** Where this registry's redirects and realms may lead. */
  policy: OutboundPolicy;
}

export class OciRegistry implements ImageRegistry {
  readonly #timeoutMs: number;
  readonly #insecure: readonly string[];
  readonly #userAgent: string;
  readonly #fetch: typeof fetch;
  readonly #tokens: BearerTokenCache;
  readonly #remembered = new Map<string, Remembered>();
  readonly #internalHosts: readonly string[];
  readonly #lookup: ((host: string) => Promise<string[]>) | undefined;

  constructor(opts: OciRegistryOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(this.#timeoutMs) || this.#timeoutMs <= 0) throw new RangeError("timeoutMs must be a positive number");
    this.#insecure = [...(opts.insecureRegistries ?? [])];
    this.#userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
    this.#fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.#tokens = new BearerTokenCache(opts.clock ?? systemClock);
    this.#internalHosts = [...(opts.internalHosts ?? [])];
    this.#lookup = opts.lookup;
  }

  async resolve(reference: string, opts: { credentials?: RegistryCredentials | null; signal?: AbortSignal } = {}): Promise<ResolvedImage> {
    const ref = parseReference(reference);
    opts.signal?.throwIfAborted();
    const credentials = opts.credentials ?? null;
    const secrets = new Set<string>();
    if (credentials) {
      if (credentials.password !== "") secrets.add(credentials.password);
      secrets.add(basicAuthorization(credentials).slice("Basic ".length));
    }
    const ctx: Ctx = {
      ref,
      display: formatReference(ref),
      base: `${usesPlainHttp(ref.registry, this.#insecure) ? "http" : "https"}://${ref.registry}/v2/${ref.repository}`,
      credentials,
      deadline: deadline(this.#timeoutMs, opts.signal),
      secrets,
      policy: {
        registry: ref.registry,
        insecureRegistries: this.#insecure,
        internalHosts: this.#internalHosts,
        ...(this.#lookup ? { lookup: this.#lookup } : {}),
      },
    };

    const requested = ref.digest ?? ref.tag ?? "";
    const head = await this.#request(ctx, "HEAD", `/manifests/${requested}`);
    const headDigest = head.ok ? this.#contentDigest(ctx, head) : null;
    // HEAD error answers have no body; the GET below gets the same status with the registry's error document.
    await discard(head);
    const fetchBy = ref.digest ?? headDigest ?? requested;
    const get = await this.#request(ctx, "GET", `/manifests/${fetchBy}`);
    if (!get.ok) throw await this.#notOk(ctx, get, fetchBy !== requested ? fetchBy : null);

    const url = new URL(`${ctx.base}/manifests/${fetchBy}`);
    const body = await readLimited(get, MAX_MANIFEST_BYTES, ctx.deadline, url, "registry");
    if (body === null) throw this.#registryError(ctx, `served a manifest larger than ${MAX_MANIFEST_BYTES} bytes`);
    const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;

    const claims: Array<[string, string | null]> = [
      ["the Docker-Content-Digest of its HEAD answer", headDigest],
      ["the Docker-Content-Digest of its GET answer", this.#contentDigest(ctx, get)],
      ["the requested digest", ref.digest],
    ];
    for (const [what, claimed] of claims) {
      if (claimed === null) continue;
      const actual = claimed.startsWith("sha256:") ? digest : this.#hashAs(ctx, claimed, body);
      if (claimed !== actual) {
        throw new FerryError(
          "REGISTRY_DIGEST_MISMATCH",
          `registry ${ctx.ref.registry} served ${ctx.display} as bytes hashing to ${actual}, but ${what} is ${claimed}; nothing was pinned`,
          { registry: ctx.ref.registry, repository: canonicalRepository(ref), reference: ctx.display, expected: claimed, actual },
        );
      }
    }

    let info: ManifestInfo;
    try {
      info = readManifest(body, get.headers.get("content-type"));
    } catch (err) {
      if (err instanceof ManifestError) throw this.#registryError(ctx, `served a manifest Ferry cannot pin: ${err.message}`, {}, err);
      throw err;
    }
    return {
      repository: canonicalRepository(ref),
      digest,
      mediaType: info.mediaType,
      sourceTag: ref.digest === null ? ref.tag : null,
      platforms: info.platforms,
    };
  }

  /** The Docker-Content-Digest header: null when absent, REGISTRY_ERROR when it is not a digest at all. */
  #contentDigest(ctx: Ctx, res: Response): string | null {
    const value = res.headers.get("docker-content-digest")?.trim() || null;
    if (value !== null && !isDigestSyntax(value)) {
      throw this.#registryError(ctx, `answered a Docker-Content-Digest that is not a digest`, { headerDigest: value.slice(0, 200) });
    }
    return value;
  }

  #hashAs(ctx: Ctx, claimed: string, body: Buffer): string {
    const algorithm = claimed.slice(0, claimed.indexOf(":"));
    const nodeAlgorithm = SUPPORTED_DIGEST_ALGORITHMS[algorithm];
    if (!nodeAlgorithm) throw this.#registryError(ctx, `uses digest algorithm ${JSON.stringify(algorithm)}, which Ferry cannot check`);
    return `${algorithm}:${createHash(nodeAlgorithm).update(body).digest("hex")}`;
  }

  // ---- requests and auth --------------------------------------------------------------------------------------

  async #send(ctx: Ctx, method: string, path: string, authorization: Authorization | null): Promise<Response> {
    const headers: Record<string, string> = { accept: path.startsWith("/manifests/") ? MANIFEST_ACCEPT : "application/json", "user-agent": this.#userAgent };
    if (authorization) headers["authorization"] = authorization.header;
    return send(this.#fetch, ctx.deadline, new URL(`${ctx.base}${path}`), { method, headers, what: "registry", policy: ctx.policy });
  }

  /** Sends a request, answering one auth challenge if the registry asks for it. */
  async #request(ctx: Ctx, method: string, path: string): Promise<Response> {
    let authorization = this.#preemptive(ctx);
    const first = await this.#send(ctx, method, path, authorization);
    if (first.status !== 401) return first;
    const header = first.headers.get("www-authenticate");
    await discard(first);
    const challenge = this.#pickChallenge(ctx, header);

    if (challenge.scheme === "basic") {
      if (!ctx.credentials) throw this.#authFailed(ctx, `asks for credentials (Basic) and none were given for it`);
      if (authorization?.kind === "basic") throw this.#authFailed(ctx, `refused the credentials (Basic)`);
      authorization = { kind: "basic", header: basicAuthorization(ctx.credentials) };
    } else {
      const key: TokenKey = {
        realm: challenge.params["realm"] ?? "",
        service: challenge.params["service"] ?? "",
        scope: challenge.params["scope"] ?? `repository:${ctx.ref.repository}:pull`,
        identity: identityOf(ctx.credentials),
      };
      // A token we presented was refused (expired early, revoked): never present it again; get a fresh one.
      if (authorization?.kind === "bearer") {
        this.#tokens.delete(authorization.key);
        this.#tokens.delete(key);
      }
      let token = this.#tokens.get(key);
      if (token === null) {
        const issued = await exchangeToken(
          {
            fetch: this.#fetch,
            deadline: ctx.deadline,
            userAgent: this.#userAgent,
            insecureRegistries: this.#insecure,
            policy: ctx.policy,
            credentials: ctx.credentials,
            describe: { registry: ctx.ref.registry, reference: ctx.display },
          },
          { realm: key.realm, service: challenge.params["service"] ?? null, scope: key.scope },
        );
        token = issued.token;
        this.#tokens.set(key, token, issued.expiresInS);
      }
      ctx.secrets.add(token);
      authorization = { kind: "bearer", header: `Bearer ${token}`, key };
    }

    const second = await this.#send(ctx, method, path, authorization);
    if (second.status !== 401) return second;
    const again = second.headers.get("www-authenticate");
    await discard(second);
    if (authorization.kind === "basic") throw this.#authFailed(ctx, `refused the credentials (Basic)`);
    this.#tokens.delete(authorization.key);
    // distribution says why in the challenge's error parameter (e.g. insufficient_scope).
    let reason: string | undefined;
    try {
      reason = again ? parseWwwAuthenticate(again).find((c) => c.scheme === "bearer")?.params["error"] : undefined;
    } catch {
      reason = undefined;
    }
    throw this.#authFailed(
      ctx,
      ctx.credentials
        ? `refused the bearer token issued for these credentials${reason ? ` (${reason})` : ""}: they do not grant pull access to ${ctx.ref.repository}, or the repository does not exist`
        : `refused anonymous access${reason ? ` (${reason})` : ""}; configure credentials for this registry`,
      reason ? { challengeError: reason } : {},
    );
  }

  #pickChallenge(ctx: Ctx, header: string | null): Challenge & { scheme: "basic" | "bearer" } {
    let challenges: Challenge[];
    try {
      challenges = header ? parseWwwAuthenticate(header) : [];
    } catch (err) {
      if (!(err instanceof ChallengeParseError)) throw err;
      throw this.#authFailed(ctx, `answered 401 with a WWW-Authenticate header Ferry cannot parse (${err.message})`);
    }
    // Bearer first: a registry offering both prefers it, and it keeps the password off the registry itself.
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params["realm"]);
    const basic = challenges.find((c) => c.scheme === "basic");
    const chosen = bearer ? { ...bearer, scheme: "bearer" as const } : basic ? { ...basic, scheme: "basic" as const } : null;
    if (!chosen) {
      throw this.#authFailed(ctx, header ? `answered 401 with no Basic or Bearer challenge Ferry supports` : `answered 401 without a WWW-Authenticate challenge`);
    }
    this.#remembered.delete(ctx.ref.registry);
    this.#remembered.set(ctx.ref.registry, { scheme: chosen.scheme, realm: chosen.params["realm"] ?? "", service: chosen.params["service"] ?? null });
    if (this.#remembered.size > MAX_REMEMBERED_REGISTRIES) {
      const oldest = this.#remembered.keys().next();
      if (!oldest.done) this.#remembered.delete(oldest.value);
    }
    return chosen;
  }

  /** What to send before any challenge, from what this registry asked for last time. */
  #preemptive(ctx: Ctx): Authorization | null {
    const known = this.#remembered.get(ctx.ref.registry);
    if (!known) return null;
    if (known.scheme === "basic") return ctx.credentials ? { kind: "basic", header: basicAuthorization(ctx.credentials) } : null;
    const key: TokenKey = { realm: known.realm, service: known.service ?? "", scope: `repository:${ctx.ref.repository}:pull`, identity: identityOf(ctx.credentials) };
    const token = this.#tokens.get(key);
    if (token === null) return null;
    ctx.secrets.add(token);
    return { kind: "bearer", header: `Bearer ${token}`, key };
  }

  // ---- errors ---------------------------------------------------------------------------------------------------

  #details(ctx: Ctx, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { registry: ctx.ref.registry, repository: canonicalRepository(ctx.ref), reference: ctx.display, ...extra };
  }

  #authFailed(ctx: Ctx, what: string, extra: Record<string, unknown> = {}): FerryError {
    return new FerryError("REGISTRY_AUTH_FAILED", `registry ${ctx.ref.registry} ${what} (resolving ${ctx.display})`, this.#details(ctx, extra));
  }

  #registryError(ctx: Ctx, what: string, extra: Record<string, unknown> = {}, cause?: unknown): FerryError {
    return new FerryError("REGISTRY_ERROR", `registry ${ctx.ref.registry} ${what} (resolving ${ctx.display})`, this.#details(ctx, extra), { cause });
  }

  /** Reads the registry's error document: {"errors":[{"code","message","detail"}]}. */
  async #errorDocument(ctx: Ctx, res: Response, url: URL): Promise<{ code: string | null; message: string | null }> {
    // A body from a host the registry redirected to is never read into an error: it could be any internal page.
    if (wasRedirected(res)) {
      await discard(res);
      return { code: null, message: null };
    }
    const body = await readLimited(res, MAX_ERROR_BYTES, ctx.deadline, url, "registry").catch((err: unknown) => {
      // A body that cannot be read leaves the status to speak for itself; a caller's abort still propagates.
      if (ctx.deadline.callerSignal?.aborted) throw err;
      return null;
    });
    if (!body) return { code: null, message: null };
    try {
      const doc = JSON.parse(body.toString("utf8")) as { errors?: Array<{ code?: unknown; message?: unknown }> };
      const first = Array.isArray(doc.errors) ? doc.errors[0] : undefined;
      return {
        code: typeof first?.code === "string" ? first.code.slice(0, 100) : null,
        message: typeof first?.message === "string" ? this.#redact(ctx, first.message).slice(0, 300) : null,
      };
    } catch {
      const text = this.#redact(ctx, body.toString("utf8").trim()).slice(0, 300);
      return { code: null, message: text === "" ? null : text };
    }
  }

  #redact(ctx: Ctx, text: string): string {
    let out = text;
    for (const secret of ctx.secrets) {
      if (secret.length < 4) continue;
      for (const form of secretForms(secret)) out = out.replace(form, "[redacted]");
    }
    return out;
  }

  async #notOk(ctx: Ctx, res: Response, headDigest: string | null): Promise<FerryError> {
    const url = new URL(res.url || `${ctx.base}/manifests/${headDigest ?? ""}`);
    const { code, message } = await this.#errorDocument(ctx, res, url);
    const said = `${code ?? ""}${code && message ? ": " : ""}${message ?? ""}`;
    const extra: Record<string, unknown> = { status: res.status };
    if (code) extra["registryCode"] = code;
    if (message) extra["registryMessage"] = message;

    if (res.status === 404) {
      if (headDigest !== null) {
        return this.#registryError(ctx, `reported tag ${ctx.ref.tag ?? ""} at ${headDigest} but then had no manifest with that digest; the tag may have moved while Ferry resolved it — retry`, extra);
      }
      const repository = canonicalRepository(ctx.ref);
      if (code === "NAME_UNKNOWN" || (await this.#repositoryMissing(ctx))) {
        return new FerryError("REPOSITORY_NOT_FOUND", `registry ${ctx.ref.registry} has no repository ${ctx.ref.repository} (resolving ${ctx.display})`, this.#details(ctx, extra));
      }
      if (ctx.ref.digest !== null) {
        return new FerryError("DIGEST_NOT_FOUND", `${repository} has no manifest with digest ${ctx.ref.digest}`, this.#details(ctx, extra));
      }
      return new FerryError("TAG_NOT_FOUND", `${repository} has no tag ${ctx.ref.tag ?? ""}`, this.#details(ctx, extra));
    }
    if (res.status === 401 || res.status === 403) {
      return this.#authFailed(ctx, `denied access (HTTP ${res.status}${said ? ` ${said}` : ""})`, extra);
    }
    if (res.status === 429) {
      const retryAfter = res.headers.get("retry-after");
      if (retryAfter) extra["retryAfter"] = retryAfter.slice(0, 50);
      return this.#registryError(ctx, `is rate-limiting Ferry (HTTP 429${said ? ` ${said}` : ""}); retry later`, extra);
    }
    return this.#registryError(ctx, `answered HTTP ${res.status}${said ? ` ${said}` : ""}`, extra);
  }

  /** One tags/list request: does the registry say NAME_UNKNOWN for this repository? Any other outcome is "no". */
  async #repositoryMissing(ctx: Ctx): Promise<boolean> {
    try {
      const res = await this.#request(ctx, "GET", "/tags/list?n=1");
      if (res.status !== 404) {
        await discard(res);
        return false;
      }
      const { code } = await this.#errorDocument(ctx, res, new URL(`${ctx.base}/tags/list`));
      return code === "NAME_UNKNOWN";
    } catch (err) {
      if (ctx.deadline.callerSignal?.aborted) throw err;
      return false;
    }
  }
}

/**
 * Every spelling in which a registry might echo a secret: as is, percent-encoded (a password with "@" or "+", a
 * base64 Basic value with "+", "/" and "=" quoted back from a URL or a form), with "+" for spaces, in either hex case.
 */
export function secretForms(secret: string): RegExp[] {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const encoded = encodeURIComponent(secret);
  const forms = new Set([secret, encoded, encoded.replace(/%20/g, "+"), encodeURIComponent(encoded)]);
  return [...forms].map((f) => new RegExp(escape(f).replace(/%([0-9A-F]{2})/g, (_m, hex: string) => `%(?:${hex}|${hex.toLowerCase()})`), "g"));
}
