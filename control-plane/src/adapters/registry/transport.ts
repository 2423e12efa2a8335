// HTTP to registries and token realms: which scheme a host gets, one deadline per resolve, bounded body reads, and
// turning transport failures (refused, DNS, TLS, reset, timeout) into REGISTRY_UNREACHABLE naming host:port.
//
// Scheme rule: https everywhere, except loopback (127.0.0.0/8, localhost, [::1]) and hosts the operator lists as
// insecure, which get plain http — the same exceptions the Docker engine makes. A listed entry "host" covers every
// port of that host, "host:port" only that port. There is no fallback from https to http: a registry that fails the
// TLS handshake is unreachable, not silently downgraded.
//
// Redirects are followed by send() itself, never by fetch: every hop is checked against the outbound policy
// (outbound-policy.ts: no https → http downgrade, no loopback or link-local target unless configured), the
// Authorization header is dropped when a hop leaves the origin (as the fetch spec does), and a body that arrived
// through a redirect is marked so that no error message ever quotes it.
import { FerryError } from "../../domain/errors.js";
import { checkOutbound, type OutboundPolicy } from "./outbound-policy.js";

export { hostnameOf, isLoopback, usesPlainHttp } from "./transport-hosts.js";

/** "host:port" with the scheme's default port filled in, for messages. */
export function hostPort(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

export interface Deadline {
  /** What every request of one resolve() is bound to: the caller's signal and the timeout. */
  signal: AbortSignal;
  timeout: AbortSignal;
  timeoutMs: number;
  callerSignal: AbortSignal | undefined;
}

export function deadline(timeoutMs: number, callerSignal?: AbortSignal): Deadline {
  const timeout = AbortSignal.timeout(timeoutMs);
  return { signal: callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout, timeout, timeoutMs, callerSignal };
}

function errnoCode(err: unknown): string | undefined {
  let e: unknown = err;
  // fetch wraps the socket error: TypeError("fetch failed", { cause: Error{ code } }), sometimes two levels deep.
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = e.cause;
  }
  return undefined;
}

function innermostMessage(err: unknown): string {
  let e: unknown = err;
  let msg = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    if (e.message) msg = e.message;
    e = e.cause;
  }
  return msg.split("\n")[0] ?? msg;
}

function describe(code: string | undefined, err: unknown, url: URL): string {
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return `DNS lookup of ${url.hostname} failed (${code})`;
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
    case "EPIPE":
      return "the connection was closed before the answer was complete";
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return "the connection timed out";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `no route to ${url.hostname} (${code})`;
  }
  if (code && /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|EPROTO|HOSTNAME_MISMATCH)/.test(code)) {
    const hint = url.protocol === "https:" ? "; if this registry serves plain http on a trusted network, list it in insecureRegistries" : "";
    return `TLS failed (${code}: ${innermostMessage(err)})${hint}`;
  }
  return code ? `${code}: ${innermostMessage(err)}` : innermostMessage(err);
}

/**
 * Maps a failed fetch (or body read) to REGISTRY_UNREACHABLE. A caller's abort is not a registry fault: its reason
 * is rethrown unchanged.
 */
export function transportFailure(err: unknown, d: Deadline, url: URL, what: string): unknown {
  if (err instanceof FerryError) return err;
  if (d.callerSignal?.aborted) return d.callerSignal.reason;
  const target = hostPort(url);
  if (d.timeout.aborted) {
    return new FerryError("REGISTRY_UNREACHABLE", `${what} ${target} did not answer within ${d.timeoutMs} ms`, { host: target, reason: "timeout", timeoutMs: d.timeoutMs }, { cause: err });
  }
  const code = errnoCode(err);
  return new FerryError(
    "REGISTRY_UNREACHABLE",
    `${what} ${target} is unreachable: ${describe(code, err, url)}`,
    { host: target, reason: code ?? "network" },
    { cause: err },
  );
}

export interface SendOptions {
  method: string;
  headers: Record<string, string>;
  /** "registry" or "token realm", for messages. */
  what: string;
  /** Where redirects may lead (outbound-policy.ts); every hop is checked against it. */
  policy: OutboundPolicy;
}

/** At most this many redirects per request: distribution's blob redirects need one, CDNs sometimes two. */
export const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Responses that arrived through at least one redirect: their bodies come from a host the registry chose, and are
// never quoted back to the caller (an error page of an internal host must not leak through Ferry's API).
const redirected = new WeakSet<Response>();

/** True when the response came from a host the registry redirected Ferry to. */
export function wasRedirected(res: Response): boolean {
  return redirected.has(res);
}

/**
 * One request, following redirects by hand (fetch's own following would accept https → http and any host): each
 * Location is checked against the outbound policy before it is requested, and the Authorization header is dropped
 * as soon as a hop leaves the origin, as the fetch spec does.
 */
export async function send(fetchImpl: typeof fetch, d: Deadline, url: URL, o: SendOptions): Promise<Response> {
  let current = url;
  let method = o.method;
  const headers = { ...o.headers };
  for (let hop = 0; ; hop++) {
    let res: Response;
    try {
      res = await fetchImpl(current, { method, headers, redirect: "manual", signal: d.signal });
    } catch (err) {
      throw transportFailure(err, d, current, o.what);
    }
    const location = REDIRECT_STATUSES.has(res.status) ? res.headers.get("location") : null;
    if (location === null) {
      if (hop > 0) redirected.add(res);
      return res;
    }
    await discard(res);
    if (hop >= MAX_REDIRECTS) {
      throw new FerryError("REGISTRY_TARGET_REFUSED", `${o.what} ${hostPort(url)} redirected more than ${MAX_REDIRECTS} times`, { host: hostPort(url), reason: "too many redirects" });
    }
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new FerryError("REGISTRY_TARGET_REFUSED", `${o.what} ${hostPort(current)} redirected to a Location that is not a URL`, { host: hostPort(current), reason: "bad Location" });
    }
    await checkOutbound(o.policy, next, `redirected a request to`);
    if (next.origin !== current.origin) delete headers["authorization"];
    if (res.status === 303 && method !== "HEAD") method = "GET";
    current = next;
  }
}

/** Releases a response's connection without reading it. */
export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

/**
 * Reads at most `limit` bytes of a body; null when it is larger (the connection is released). A transport failure
 * mid-body is REGISTRY_UNREACHABLE like any other.
 */
export async function readLimited(res: Response, limit: number, d: Deadline, url: URL, what: string): Promise<Buffer | null> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await discard(res);
    return null;
  }
  if (!res.body) return Buffer.alloc(0);
  // @types/node types fetch bodies as ReadableStream<any>; they carry bytes.
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => undefined);
        return null;
      }
      chunks.push(value);
    }
  } catch (err) {
    throw transportFailure(err, d, url, what);
  }
  return Buffer.concat(chunks, total);
}
