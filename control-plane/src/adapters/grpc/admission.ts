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

/**
 * One admission bucket per peer address, in front of the shared one: a single address that floods the listener
 * (a misconfigured host, someone guessing join tokens) spends its own bucket and is refused before it can drain the
 * shared one, so enrolments from everyone else still get in. IPv6 peers are keyed by their /64, the unit one host
 * usually gets. At most `maxPeers` buckets are kept; the least recently seen goes first.
 */
export class PeerAdmission {
  readonly #peers = new Map<string, AdmissionGate>();

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly clock: Clock,
    private readonly maxPeers = 10_000,
  ) {}

  get size(): number {
    return this.#peers.size;
  }

  tryAdmit(peer: string): Admission {
    const key = peerKey(peer);
    let gate = this.#peers.get(key);
    if (gate) this.#peers.delete(key);
    else gate = new AdmissionGate(this.rate, this.burst, this.clock);
    // Re-inserted so Map order is least recently seen first.
    this.#peers.set(key, gate);
    while (this.#peers.size > this.maxPeers) this.#peers.delete(this.#peers.keys().next().value as string);
    return gate.tryAdmit();
  }
}

/** The address part of a gRPC peer ("ipv4:10.0.0.1:5123", "ipv6:[2001:db8::1]:5123"); IPv6 cut to its /64. */
export function peerKey(peer: string): string {
  const v4 = /^(?:ipv4:)?(\d+\.\d+\.\d+\.\d+)(?::\d+)?$/.exec(peer);
  if (v4) return v4[1]!;
  const v6 = /^(?:ipv6:)?\[?([0-9a-fA-F:.]+?)(?:%[^\]]*)?\]?(?::\d+)?$/.exec(peer);
  if (v6 && v6[1]!.includes(":")) {
    const groups = expandV6(v6[1]!);
    if (groups) return `${groups.slice(0, 4).join(":")}::/64`;
  }
  return peer;
}

function expandV6(addr: string): string[] | null {
  const [head, tail, more] = addr.toLowerCase().split("::");
  if (more !== undefined) return null;
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  if (tail === undefined && h.length !== 8) return null;
  const zeros = Array(Math.max(0, 8 - h.length - t.length)).fill("0") as string[];
  const all = tail === undefined ? h : [...h, ...zeros, ...t];
  return all.length === 8 ? all.map((g) => g.replace(/^0+(?=.)/, "")) : null;
}
