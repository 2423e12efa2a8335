// HTTP to registries and token realms: which scheme a host gets, one deadline per resolve, bounded body reads, and
// turning transport failures (refused, DNS, TLS, reset, timeout) into REGISTRY_UNREACHABLE naming host:port.
//
// Scheme rule: https everywhere, except loopback (127.0.0.0/8, localhost, [::1]) and hosts the operator lists as
// insecure, which get plain http — the same exceptions the Docker engine makes. A listed entry "host" covers every
// port of that host, "host:port" only that port. There is no fallback from https to http: a registry that fails the
// TLS handshake is unreachable, not silently downgraded.
//
// Redirects are followed by fetch, which drops the Authorization header when a redirect leaves the origin (fetch
// spec, "HTTP-redirect fetch"), so credentials and tokens never reach a third-party host such as a blob CDN.
import { FerryError } from "../../domain/errors.js";

/** The host name of "host[:port]", without IPv6 brackets' port and lowercased. */
export function hostnameOf(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

export function isLoopback(host: string): boolean {
  const name = hostnameOf(host);
  if (name === "localhost" || name === "[::1]") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

export function usesPlainHttp(host: string, insecureRegistries: readonly string[]): boolean {
  if (isLoopback(host)) return true;
  const h = host.toLowerCase();
  const name = hostnameOf(h);
  return insecureRegistries.some((entry) => {
    const e = entry.trim().toLowerCase();
    return e === h || e === name;
  });
}

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
}

export async function send(fetchImpl: typeof fetch, d: Deadline, url: URL, o: SendOptions): Promise<Response> {
  try {
    return await fetchImpl(url, { method: o.method, headers: o.headers, redirect: "follow", signal: d.signal });
  } catch (err) {
    throw transportFailure(err, d, url, o.what);
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
