// Test support for notifications: collects payloads and lets a test wait for one to arrive (an event, not a sleep).
// The deadline only turns a missing notification into a clear failure instead of a hung test.
import { randomBytes } from "node:crypto";

export class Inbox {
  readonly received: string[] = [];
  private readonly waiters = new Set<{ payload: string; resolve: () => void }>();

  readonly handler = (payload: string): void => {
    this.received.push(payload);
    for (const w of [...this.waiters]) {
      if (w.payload !== payload) continue;
      this.waiters.delete(w);
      w.resolve();
    }
  };

  /** Resolves once `payload` has been received (now or earlier). */
  waitFor(payload: string, timeoutMs = 10_000): Promise<void> {
    if (this.received.includes(payload)) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => this.waiters.add({ payload, resolve })),
      timeoutMs,
      `notification ${JSON.stringify(payload)} (got ${JSON.stringify(this.received)})`,
    );
  }
}

/** Rejects with a message naming what was awaited when `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/**
 * A channel name no other test uses: NOTIFY is database-wide (not per schema), and test files run in parallel
 * against one server.
 */
export function uniqueChannel(label: string): string {
  return `t_${randomBytes(5).toString("hex")}_${label}`;
}

/** A promise with its resolve function, for gates and barriers between concurrent test steps. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
