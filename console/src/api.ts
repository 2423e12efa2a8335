// The console's one way to the JSON API: the token goes in the Authorization header, never in a URL. Errors keep the
// API's code and message, so the console shows exactly what the CLI would.

const KEY = "ferry.console.token";

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: Record<string, unknown>) {
    super(message);
  }
}

// The link `ferry server` prints on its first start carries the admin token in the URL fragment, which browsers never
// send to a server: take it into this tab's storage and drop it from the address bar (and so from history).
const fromFragment = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
if (fromFragment?.[1]) {
  sessionStorage.setItem(KEY, decodeURIComponent(fromFragment[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

let token: string | null = sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);

export function getToken(): string | null {
  return token;
}

export function setToken(t: string | null, remember = false): void {
  token = t;
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  if (t) (remember ? localStorage : sessionStorage).setItem(KEY, t);
}

type Unauthorised = (err: ApiError) => void;
let onUnauthorised: Unauthorised = () => undefined;
export function whenUnauthorised(f: Unauthorised): void {
  onUnauthorised = f;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  idempotencyKey?: string;
  signal?: AbortSignal;
}

async function send(path: string, o: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  if (token) headers["authorization"] = `Bearer ${token}`;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  if (o.idempotencyKey) headers["idempotency-key"] = o.idempotencyKey;
  let res: Response;
  try {
    res = await fetch(path, { method: o.method ?? "GET", headers, body: o.body === undefined ? null : JSON.stringify(o.body), signal: o.signal ?? null, cache: "no-store" });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, "UNREACHABLE", `the control plane cannot be reached (${(err as Error).message})`);
  }
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { code: string; message: string; details?: Record<string, unknown> } } | null;
    const e = body?.error
      ? new ApiError(res.status, body.error.code, body.error.message, body.error.details)
      : new ApiError(res.status, `HTTP_${res.status}`, `${res.status} ${res.statusText} from ${path}`);
    if (res.status === 401) onUnauthorised(e);
    throw e;
  }
  return res;
}

export async function api<T>(path: string, o: RequestOptions = {}): Promise<T> {
  const res = await send(path, o);
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

export async function apiText(path: string, o: RequestOptions = {}): Promise<{ text: string; headers: Headers }> {
  const res = await send(path, o);
  return { text: await res.text(), headers: res.headers };
}

/** A streamed GET with the token in the header (server-sent events read through fetch). */
export function openStream(path: string, signal: AbortSignal): Promise<Response> {
  return send(path, { signal });
}
