/** Wall-clock time in epoch milliseconds. Injected so liveness and expiry logic can be tested without sleeping. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
