// Waiting helpers for tests: wait for an event or a condition, never for a fixed time.
import type { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

/** Resolves with the arguments of the first `event` whose arguments satisfy `filter`; rejects after timeoutMs. */
export function waitForEvent<A extends unknown[] = unknown[]>(
  emitter: Pick<EventEmitter, "on" | "off">,
  event: string,
  filter: (...args: A) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<A> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for event "${event}"`));
    }, timeoutMs);
    const listener = (...args: unknown[]): void => {
      if (!filter(...(args as A))) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args as A);
    };
    emitter.on(event, listener);
  });
}

/**
 * waitForEvent bound to an events map, for emitters declared as EventEmitter<T>: TypeScript cannot infer T back from
 * such an emitter, so the map is named once: `const nextEvent = eventWaiter<SessionEvents>()`.
 */
export function eventWaiter<T extends Record<keyof T, unknown[]>>() {
  return <K extends keyof T & string>(
    emitter: EventEmitter<T>,
    event: K,
    filter?: (...args: T[K]) => boolean,
    timeoutMs?: number,
  ): Promise<T[K]> => waitForEvent<T[K]>(emitter as unknown as Pick<EventEmitter, "on" | "off">, event, filter, timeoutMs);
}

/**
 * Resolves once `condition` returns something other than undefined/false, checking after every turn of the event
 * loop (polling, for state that has no event); rejects after timeoutMs.
 */
export async function waitUntil<T>(
  condition: () => T | undefined | false,
  what: string,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = condition();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(2);
  }
}
