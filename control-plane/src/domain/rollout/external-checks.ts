// The analysis's optional external checks, run by the engine during a bake (docs/rollouts.md#analysis):
//
//   probe       GET probeUrl: a 2xx answer passes; any other status fails, and so does no answer at all (refused,
//               unresolvable, timed out): the probe is the service's own health, and silence from it is a failure
//   prometheus  an instant query (GET <prometheusUrl>/api/v1/query?query=…, Prometheus's HTTP API): a scalar, or a
//               vector of exactly one sample, gives the value; above prometheusMax fails, at most passes. No value
//               (an empty vector, NaN), several series, or a Prometheus that does not answer or answers an error is
//               inconclusive: the monitoring system being down is no evidence about the version
//
// Every answer is bounded (1 MiB of body, 10 s by default); a redirect is not followed (a probe answering 3xx fails:
// the URL should name the health endpoint itself); credentials in a probe URL are sent as basic auth and never shown. An abort from the caller (the engine stopping) is not a verdict:
// it is thrown.
import type { ExternalCheck } from "./analysis.js";
import type { AnalysisConfig } from "./strategy.js";

export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
export const MAX_CHECK_TIMEOUT_MS = 60_000;
export const MAX_CHECK_BODY_BYTES = 1024 * 1024;

export interface ExternalCheckOptions {
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Per check, 1 ms to 60 s; default 10 s. */
  timeoutMs?: number;
}

/** Runs the checks the analysis config names (none, the probe, the query, or both, at once), in that order. */
export async function runExternalChecks(config: AnalysisConfig, opts: ExternalCheckOptions = {}): Promise<ExternalCheck[]> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_CHECK_TIMEOUT_MS) throw new RangeError(`timeoutMs must be a whole number from 1 to ${MAX_CHECK_TIMEOUT_MS}`);
  const o = { fetch: opts.fetch ?? fetch, signal: opts.signal, timeoutMs };
  const checks: Promise<ExternalCheck>[] = [];
  if (config.probeUrl !== undefined) checks.push(probe(config.probeUrl, o));
  if (config.prometheusQuery !== undefined) checks.push(prometheus(config, o));
  return Promise.all(checks);
}

interface Resolved {
  fetch: typeof fetch;
  signal: AbortSignal | undefined;
  timeoutMs: number;
}

type Answer = { status: number; body: string | null } | { failure: string };

async function probe(url: string, o: Resolved): Promise<ExternalCheck> {
  const where = `GET ${shown(url)}`;
  const a = await get(url, o, false);
  if ("failure" in a) return { name: "probe", ok: false, value: null, detail: `${where}: ${a.failure}` };
  const ok = a.status >= 200 && a.status < 300;
  return { name: "probe", ok, value: a.status, detail: `${where} answered ${a.status}${ok ? "" : " (a 2xx is needed)"}` };
}

async function prometheus(config: AnalysisConfig, o: Resolved): Promise<ExternalCheck> {
  const max = config.prometheusMax ?? 0;
  const inconclusive = (detail: string): ExternalCheck => ({ name: "prometheus", ok: null, value: null, detail });
  if (!config.prometheusUrl || !URL.canParse(config.prometheusUrl)) return inconclusive("no valid prometheusUrl is configured for the query");
  const url = new URL(config.prometheusUrl);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/api/v1/query`;
  url.search = new URLSearchParams({ query: config.prometheusQuery ?? "" }).toString();
  const where = `Prometheus at ${shown(config.prometheusUrl)}`;

  const a = await get(url.toString(), o, true);
  if ("failure" in a) return inconclusive(`${where}: ${a.failure}`);
  const parsed = parsePrometheusAnswer(a.body);
  if ("error" in parsed) return inconclusive(`${where} (HTTP ${a.status}): ${parsed.error}`);
  if (parsed.value === null) return inconclusive(`${where}: the query gave no value (${parsed.why})`);
  const v = parsed.value;
  const value = Number.isFinite(v) ? v : String(parsed.raw);
  if (v > max) return { name: "prometheus", ok: false, value, detail: `the query gave ${parsed.raw}, above the maximum ${max}` };
  return { name: "prometheus", ok: true, value, detail: `the query gave ${parsed.raw}, at most ${max}` };
}

/**
 * What an instant query's answer says (https://prometheus.io/docs/prometheus/latest/querying/api/): the number, or
 * null with the reason there is none, or an error (Prometheus's own, or an answer that is not its API's shape).
 */
export function parsePrometheusAnswer(body: string | null): { value: number; raw: string } | { value: null; why: string } | { error: string } {
  if (body === null) return { error: `the answer is larger than ${MAX_CHECK_BODY_BYTES} bytes` };
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { error: `the answer is not JSON: ${clip(body)}` };
  }
  if (!isObject(doc)) return { error: "the answer is not a JSON object" };
  if (doc["status"] === "error") return { error: `${clip(text(doc["errorType"], "error"))}: ${clip(text(doc["error"], "no message"))}` };
  const data = doc["data"];
  if (doc["status"] !== "success" || !isObject(data)) return { error: "the answer is not a Prometheus API answer (no status success with data)" };
  const type = data["resultType"];
  const result = data["result"];
  let sample: unknown;
  if (type === "scalar") sample = result;
  else if (type === "vector") {
    if (!Array.isArray(result)) return { error: "a vector result that is not a list" };
    if (result.length === 0) return { value: null, why: "an empty vector: no series matched" };
    if (result.length > 1) return { value: null, why: `${result.length} series; the query must reduce to one (sum, max, …)` };
    const first: unknown = result[0];
    sample = isObject(first) ? first["value"] : undefined;
  } else return { value: null, why: `a ${clip(String(type))} result; an instant query must give a scalar or a vector of one sample` };
  // A sample is [<unix time>, "<value>"], the value a string: a float, NaN, +Inf or -Inf.
  if (!Array.isArray(sample) || sample.length !== 2 || typeof sample[1] !== "string") return { error: "a sample that is not [time, value]" };
  const raw = sample[1];
  const value = raw === "+Inf" || raw === "Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
  if (raw.trim() === "" || Number.isNaN(value)) return raw === "NaN" ? { value: null, why: "NaN" } : { error: `a sample value that is not a number: ${clip(raw)}` };
  return { value, raw };
}

/** One bounded GET: the status and (when asked) the body up to the bound, or why there was no answer. */
async function get(url: string, o: Resolved, readBody: boolean): Promise<Answer> {
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
  if (!URL.canParse(url)) return { failure: "not a valid URL" };
  // Credentials in the URL (a probe behind basic auth) become an Authorization header: fetch refuses them in a URL.
  const u = new URL(url);
  const headers: Record<string, string> = { accept: readBody ? "application/json" : "*/*" };
  if (u.username || u.password) {
    headers["authorization"] = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}`;
    u.username = "";
    u.password = "";
  }
  try {
    const res = await o.fetch(u, { method: "GET", redirect: "manual", signal, headers });
    if (!readBody) {
      await res.body?.cancel().catch(() => undefined);
      return { status: res.status, body: null };
    }
    return { status: res.status, body: await boundedText(res) };
  } catch (err) {
    o.signal?.throwIfAborted();
    if (timeout.aborted) return { failure: `no answer within ${o.timeoutMs} ms` };
    return { failure: networkFailure(err) };
  }
}

/** The body as text, or null when it is larger than the bound (the rest is not read). */
async function boundedText(res: Response): Promise<string | null> {
  if (!res.body) return "";
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_CHECK_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  UND_ERR_SOCKET: "the connection closed before an answer",
  UND_ERR_HEADERS_TIMEOUT: "no answer headers in time",
  UND_ERR_BODY_TIMEOUT: "the answer's body stalled",
};

function networkFailure(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const code = typeof cause?.code === "string" ? cause.code : undefined;
  if (code) return `${NETWORK_CODES[code] ?? "the request failed"} (${code})`;
  const message = typeof cause?.message === "string" ? cause.message : (err as Error | null)?.message;
  return `the request failed: ${clip(String(message ?? err))}`;
}

/** A URL as it may appear in a detail: no credentials, no query (either may hold a secret). */
function shown(url: string): string {
  if (!URL.canParse(url)) return clip(url);
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

const text = (v: unknown, dflt: string): string => (typeof v === "string" ? v : dflt);
const clip = (s: string, n = 200): string => (s.length > n ? `${s.slice(0, n)}…` : s);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
