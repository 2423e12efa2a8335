// Detects calls on the Store from inside one of its own transaction callbacks.
//
// PGlite is a single connection guarded by a mutex that a transaction holds until it ends, so `store.query()` (or a
// nested `store.transaction()`, `listen`, `notify`) issued from inside a transaction callback waits for that same
// transaction: a silent deadlock. On PostgreSQL the same code "works" but runs outside the transaction, on a second
// pooled connection, where it cannot see the transaction's writes and can deadlock on its row locks. Both adapters
// therefore refuse such a call with a clear error, so code tested on one backend behaves the same on the other.
//
// The scope is tracked with AsyncLocalStorage and marked closed as soon as the callback settles: work that merely
// started inside the callback and runs later (a notification handler, a fire-and-forget task) is not refused.
//
// AsyncLocalStorage costs every asynchronous operation of the process while it is enabled (on Node 20 it is async
// hooks: an init hook on every socket write, timer and promise). Measured on the agent listener at 1,000
// heartbeats/s, that was about 5 % of the server's CPU, with no transaction open at all. So it is enabled only while
// a transaction callback runs and disabled when the last one ends. Nothing is lost by that: outside every
// transaction there is no scope to find, and a resource created inside one keeps its (by then closed) scope.
import { AsyncLocalStorage } from "node:async_hooks";

interface Scope {
  open: boolean;
}

const scopes = new AsyncLocalStorage<Scope>();
let openScopes = 0;

export async function runInTransactionScope<T>(fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { open: true };
  openScopes++;
  try {
    return await scopes.run(scope, fn);
  } finally {
    scope.open = false;
    if (--openScopes === 0) scopes.disable();
  }
}

export function assertNotInTransaction(method: string): void {
  if (scopes.getStore()?.open) {
    throw new Error(
      `store.${method}() was called inside a store.transaction() callback; use the transaction's Queryable (tx.query) ` +
        `instead — on PGlite this call would wait for the transaction that is waiting for it`,
    );
  }
}

/** Runs a callback (e.g. a notification handler) outside any transaction scope it may have been scheduled from. */
export function outsideTransactionScope<T>(fn: () => T): T {
  return scopes.exit(fn);
}
