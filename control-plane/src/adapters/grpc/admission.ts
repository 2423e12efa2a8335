// Admission limits for enrolments and new agent streams.
//
// A token bucket admits up to `burst` at once and `rate` per second after that. A refused caller is not just told
// "later": it is given its own slot in the future (one slot per 1/rate seconds, handed out in order), so a fleet
// reconnecting at once is spread evenly over the time the server needs, instead of coming back together and being
// refused again. Agents add their own jitter on top (docs/protocol.md).
import type { Clock } from "../../ports/clock.js";

export type Admission = { admitted: true } | { admitted: false; retryAfterMs: number };

export class AdmissionGate {
  private tokens: number;
  private last: number;
  private nextSlot = 0;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly clock: Clock,
    private readonly maxRetryAfterMs = 60_000,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  tryAdmit(): Admission {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { admitted: true };
    }
    const interval = 1000 / this.rate;
    this.nextSlot = Math.max(this.nextSlot, now + (1 - this.tokens) * interval) + interval;
    const retryAfterMs = Math.min(this.maxRetryAfterMs, Math.ceil(this.nextSlot - now));
    if (retryAfterMs >= this.maxRetryAfterMs) this.nextSlot = now + this.maxRetryAfterMs;
    return { admitted: false, retryAfterMs };
  }
}
