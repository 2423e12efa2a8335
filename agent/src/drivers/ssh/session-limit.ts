// At most N SSH connections at once per host, however many tasks and phases want one: an appliance or a small VM
// behind a gateway agent must not be flooded (sshd's own MaxStartups would refuse the excess with a reset, which
// would look like a failed deploy). Waiters are served in order and give up when their task is aborted.
export class SessionLimit {
  readonly #max: number;
  readonly #active = new Map<string, number>();
  readonly #waiting = new Map<string, Array<() => void>>();

  constructor(maxPerHost: number) {
    this.#max = maxPerHost;
  }

  /** Waits for a slot for `host`; resolves with its release (call it exactly once). */
  async acquire(host: string, signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if ((this.#active.get(host) ?? 0) >= this.#max) {
      await new Promise<void>((resolve, reject) => {
        const queue = this.#waiting.get(host) ?? [];
        this.#waiting.set(host, queue);
        const wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = queue.indexOf(wake);
          if (i >= 0) queue.splice(i, 1);
          reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
        };
        queue.push(wake);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    } else {
      this.#active.set(host, (this.#active.get(host) ?? 0) + 1);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.get(host)?.shift();
      // The slot passes straight to the next waiter; the count stays.
      if (next) return next();
      const n = (this.#active.get(host) ?? 1) - 1;
      if (n <= 0) this.#active.delete(host);
      else this.#active.set(host, n);
    };
  }

  /** Connections open to `host` now. */
  active(host: string): number {
    return this.#active.get(host) ?? 0;
  }
}
