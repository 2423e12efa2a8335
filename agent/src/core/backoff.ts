// Reconnect backoff, exactly as docs/protocol.md fixes it:
//
//   delay = random(0, min(cap, base × 2^attempt))      base 500 ms, cap 30 s
//   wait  = max(retry_after_ms from the server, delay)
//
// The jitter is applied *after* the cap ("full jitter"): once the exponent has saturated, every agent of a fleet
// that lost the control plane draws uniformly from the whole [0, cap) window, so their reconnects spread out instead
// of arriving in waves at cap-sized intervals. A server retry-after is a floor, never a replacement for the jitter,
// so agents refused together by admission control do not all come back at the same instant either.

export interface BackoffOptions {
  /** Delay scale of the first retry (attempt 0). */
  baseMs: number;
  /** Upper bound of the un-jittered delay. */
  capMs: number;
  /** Uniform random in [0, 1); injectable so tests can pin the draw. */
  random?: () => number;
}

export const DEFAULT_BACKOFF: Readonly<Required<Omit<BackoffOptions, "random">>> = { baseMs: 500, capMs: 30_000 };

/** The ceiling of the jitter window for an attempt: min(cap, base × 2^attempt). */
export function backoffCeiling(attempt: number, opts: Pick<BackoffOptions, "baseMs" | "capMs">): number {
  // 2^attempt overflows to Infinity past ~1000; clamp the exponent so the arithmetic stays finite and exact.
  const exp = Math.min(Math.max(0, Math.floor(attempt)), 52);
  return Math.min(opts.capMs, opts.baseMs * 2 ** exp);
}

/** One delay: full jitter over [0, ceiling), floored by the server's retry-after when there is one. */
export function backoffDelay(attempt: number, opts: BackoffOptions, retryAfterMs?: number): number {
  const random = opts.random ?? Math.random;
  const jittered = Math.floor(random() * backoffCeiling(attempt, opts));
  return Math.max(retryAfterMs ?? 0, jittered);
}

/** Attempt counter around backoffDelay. `reset()` after a success (for the session: a Welcome). */
export class Backoff {
  #attempt = 0;
  readonly #opts: BackoffOptions;

  constructor(opts: Partial<BackoffOptions> = {}) {
    this.#opts = { ...DEFAULT_BACKOFF, ...opts };
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt; advances the attempt count. */
  next(retryAfterMs?: number): number {
    const delay = backoffDelay(this.#attempt, this.#opts, retryAfterMs);
    this.#attempt += 1;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
