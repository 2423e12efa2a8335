// An HTTP check both a driver's health phase (docker, compose, ssh through the docker pieces) and the Nomad canary
// analysis run from the agent: GET within a timeout, 2xx passes, no redirect followed, what it saw kept short.
const SNIPPET_CHARS = 512;

/** Trimmed, and at most SNIPPET_CHARS characters (an ellipsis marks a cut). */
export function snippet(s: string): string {
  const t = s.trim();
  return t.length > SNIPPET_CHARS ? `${t.slice(0, SNIPPET_CHARS)}…` : t;
}

/** GET url within timeoutMs: 2xx passes; what it answered (status, a snippet of the body) or the error is observed. */
export async function httpProbe(url: string, timeoutMs: number, signal: AbortSignal): Promise<{ ok: boolean; observed: Record<string, unknown> }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), redirect: "manual" });
    const body = snippet(await res.text());
    return { ok: res.status >= 200 && res.status < 300, observed: { status: res.status, body } };
  } catch (err) {
    signal.throwIfAborted();
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, observed: { error: cause?.code ?? cause?.message ?? (err as Error).message } };
  }
}
