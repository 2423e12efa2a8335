// Requests through a router under test, on loopback: one GET, and a bounded load of GETs from a few workers until
// stopped, counting what answered 200 (and with which bodies) and what did not.
import http from "node:http";

export interface HttpAnswer {
  status: number;
  /** The body, trimmed. */
  body: string;
}

export interface HttpGetOptions {
  /** A keep-alive agent to reuse connections, or false (the default) for a fresh connection per request. */
  agent?: http.Agent | false;
  timeoutMs?: number;
  cookie?: string;
}

/**
 * GET `path` from 127.0.0.1:`port`: status and trimmed body, or the error. A timeout is one, and so is an answer cut
 * off mid-body (node:http emits no `end` then, and emits `error` on the response only when it has a listener).
 * `timeoutMs` bounds the whole request, not just the socket's idle time.
 */
export function httpGet(port: number, path: string, o: HttpGetOptions = {}): Promise<HttpAnswer> {
  const timeoutMs = o.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent: o.agent ?? false, timeout: timeoutMs, ...(o.cookie ? { headers: { cookie: o.cookie } } : {}) }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, body: body.trim() });
      });
      res.on("error", (err) => {
        clearTimeout(deadline);
        reject(new Error(`answer cut off: ${err.message}`));
      });
    });
    const deadline = setTimeout(() => req.destroy(new Error("timeout")), timeoutMs);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err) => {
      clearTimeout(deadline);
      reject(err);
    });
  });
}

export interface HttpLoadOptions extends Omit<HttpGetOptions, "cookie"> {
  /** How many requests are in flight at once (one per worker). */
  workers: number;
  /** The load stops by itself after this long, stopped or not. */
  maxMs: number;
  /** A pause after each request, per worker (0: none). */
  pauseMs?: number;
  path?: string;
  /** How many failure messages to keep (all failures are counted). */
  maxErrors?: number;
}

export interface HttpLoadResult {
  ok: number;
  failed: number;
  /** The distinct bodies of the 200 answers. */
  bodies: Set<string>;
  errors: string[];
}

/** GETs `path` (default /version) from 127.0.0.1:`port` from `workers` workers until stopped or `maxMs` pass. */
export function httpLoad(port: number, o: HttpLoadOptions): { stop: () => Promise<HttpLoadResult> } {
  let running = true;
  const r: HttpLoadResult = { ok: 0, failed: 0, bodies: new Set<string>(), errors: [] };
  const deadline = Date.now() + o.maxMs;
  const maxErrors = o.maxErrors ?? 20;
  const get: HttpGetOptions = { ...(o.agent !== undefined ? { agent: o.agent } : {}), ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}) };
  const worker = async (): Promise<void> => {
    while (running && Date.now() < deadline) {
      try {
        const res = await httpGet(port, o.path ?? "/version", get);
        if (res.status === 200) {
          r.ok++;
          r.bodies.add(res.body);
        } else {
          r.failed++;
          if (r.errors.length < maxErrors) r.errors.push(`status ${res.status}: ${res.body}`);
        }
      } catch (err) {
        r.failed++;
        if (r.errors.length < maxErrors) r.errors.push((err as Error).message);
      }
      if (o.pauseMs) await new Promise((res) => setTimeout(res, o.pauseMs));
    }
  };
  const workers = Array.from({ length: o.workers }, worker);
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return r;
    },
  };
}
