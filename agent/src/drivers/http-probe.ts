// An HTTP check both a driver's health phase (docker, compose, ssh through the docker pieces) and the Nomad canary
// analysis run from the agent: GET within a timeout, 2xx passes, no redirect followed, what it saw kept short.
//
// node:http rather than fetch(): the agent's Docker client already loads node:http, while the first fetch() loads
// undici (its code, a WebAssembly HTTP parser with memory of its own) for the rest of the process's life, and every
// fetch() adds an entry to the process's resource-timing buffer (up to 250). A probe also reads at most a few KB of
// the answer, however large the body, and holds no connection open once it has its answer (docs/performance.md,
// "What the agent keeps after tasks").
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

const SNIPPET_CHARS = 512;
/** What is read of an answer's body: enough for the snippet, whatever the body's size. */
export const PROBE_BODY_BYTES = 4 * SNIPPET_CHARS;

/** Trimmed, and at most SNIPPET_CHARS characters (an ellipsis marks a cut). */
export function snippet(s: string): string {
  const t = s.trim();
  return t.length > SNIPPET_CHARS ? `${t.slice(0, SNIPPET_CHARS)}…` : t;
}

/** GET url within timeoutMs: 2xx passes; what it answered (status, a snippet of the body) or the error is observed. */
export async function httpProbe(url: string, timeoutMs: number, signal: AbortSignal): Promise<{ ok: boolean; observed: Record<string, unknown> }> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const res = await get(url, AbortSignal.any([signal, timeout]));
    return { ok: res.status >= 200 && res.status < 300, observed: { status: res.status, body: snippet(res.body) } };
  } catch (err) {
    signal.throwIfAborted();
    if (timeout.aborted) return { ok: false, observed: { error: `no answer within ${timeoutMs} ms` } };
    const e = err as NodeJS.ErrnoException;
    return { ok: false, observed: { error: e.code ?? e.message } };
  }
}

/** One GET on a connection of its own (closed after the answer); the status and the first PROBE_BODY_BYTES of the body. */
function get(url: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new Error(`not a URL: ${url}`));
      return;
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      reject(new Error(`not an http or https URL: ${url}`));
      return;
    }
    const send = u.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(u, { method: "GET", agent: false, signal, headers: { connection: "close" } }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        res.destroy();
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).subarray(0, PROBE_BODY_BYTES).toString("utf8") });
      };
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= PROBE_BODY_BYTES) finish();
      });
      res.on("end", finish);
      res.on("error", (err) => (done ? undefined : reject(err)));
    });
    req.on("error", reject);
    req.end();
  });
}
