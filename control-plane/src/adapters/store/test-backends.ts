// The store backends a store-backed test runs against: PGlite in memory always, and PostgreSQL when
// FERRY_TEST_DATABASE_URL is set. Write a test once and run it on both:
//
//   for (const b of testBackends()) {
//     describe(b.name, () => {
//       it("does something", async (t) => {
//         const store = await b.open(t);   // fresh, migrated, private to this test; cleaned up after it
//         ...
//       });
//     });
//   }
//
// Isolation: on PostgreSQL every open() gets a schema of its own (random name, dropped after the test); on PGlite a
// fresh in-memory database (cloned from a template made once per process, which skips initdb — most of PGlite's
// start-up time).
//
// Teardown fails the test when it left work unfinished: on PostgreSQL a pooled connection still checked out (or a
// caller still waiting for one), on PGlite a transaction still open. Such a store is destroyed rather than closed,
// so the leak fails one test instead of hanging the run.
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import { PGlite } from "@electric-sql/pglite";
import { Client } from "pg";
import type { Store } from "../../ports/store.js";
import { migrate } from "./migrate.js";
import { PostgresStore, type PostgresStoreOptions } from "./pg.js";
import { PgliteStore } from "./pglite.js";
import type { StoreLogger } from "./store-logger.js";

export const TEST_DATABASE_URL_ENV = "FERRY_TEST_DATABASE_URL";

export interface OpenTestStoreOptions {
  /** Apply the migrations before returning (default true). */
  migrate?: boolean;
  log?: StoreLogger;
  /**
   * PostgreSQL only: open a second Store on the same schema as this one — a second pool, as another replica would
   * have. Guard such tests with `b.kind === "postgres"`.
   */
  shareWith?: Store;
  /** PostgreSQL only: adapter options for this store (pool size, listener backoff). */
  postgres?: Partial<Omit<PostgresStoreOptions, "connectionString" | "schema">>;
}

export interface TestBackend {
  /** "pglite" or "postgres"; use as the describe() name. */
  readonly name: string;
  readonly kind: Store["kind"];
  open(t: TestContext, opts?: OpenTestStoreOptions): Promise<Store>;
}

export function testDatabaseUrl(): string | undefined {
  return process.env[TEST_DATABASE_URL_ENV] || undefined;
}

export function testBackends(): TestBackend[] {
  const backends: TestBackend[] = [pgliteBackend];
  const url = testDatabaseUrl();
  if (url) backends.push(postgresBackend(url));
  return backends;
}

/** What a store still holds that a finished test should have given back, or undefined when it is clean. */
export function connectionLeak(store: Store): string | undefined {
  if (store instanceof PostgresStore) {
    const s = store.poolStats();
    const out = s.total - s.idle;
    if (out === 0 && s.waiting === 0) return undefined;
    return `${out} pooled connection(s) still checked out and ${s.waiting} caller(s) waiting for one`;
  }
  if (store instanceof PgliteStore && store.inTransaction()) return "a transaction is still open";
  return undefined;
}

// ---- per-test resources --------------------------------------------------------------------------------------

interface Resources {
  stores: Store[];
  schemas: string[];
  adminUrl?: string;
  /** Set once teardown has run: a store whose open() finishes later (the test timed out meanwhile) is closed at once. */
  tornDown: boolean;
}

const resources = new WeakMap<TestContext, Resources>();

function resourcesOf(t: TestContext): Resources {
  let r = resources.get(t);
  if (!r) {
    const created: Resources = { stores: [], schemas: [], tornDown: false };
    resources.set(t, created);
    // A hook has no timeout by default: a close() that cannot finish would hang the whole run instead of failing
    // this test.
    t.after(() => teardown(created), { timeout: CLOSE_TIMEOUT_MS * 2 });
    r = created;
  }
  return r;
}

async function teardown(r: Resources): Promise<void> {
  r.tornDown = true;
  const leaks: string[] = [];
  for (const store of r.stores.reverse()) {
    const leak = connectionLeak(store);
    if (leak === undefined) {
      const closed = await settlesWithin(store.close(), CLOSE_TIMEOUT_MS);
      if (!closed) leaks.push(`${store.kind}: close() did not finish within ${CLOSE_TIMEOUT_MS} ms (a query or transaction never ended)`);
      continue;
    }
    leaks.push(`${store.kind}: ${leak}`);
    // Closing would wait for the leaked work forever.
    if (store instanceof PostgresStore) await store.destroy();
  }
  if (r.adminUrl) for (const schema of r.schemas) await dropSchema(r.adminUrl, schema);
  if (leaks.length > 0) throw new Error(`the test left work unfinished: ${leaks.join("; ")}`);
}

/** Registers a store for teardown, or closes it when teardown already ran (the test timed out while it opened). */
async function adopt(r: Resources, store: Store): Promise<void> {
  if (!r.tornDown) {
    r.stores.push(store);
    return;
  }
  await store.close();
  if (r.adminUrl) for (const schema of r.schemas) await dropSchema(r.adminUrl, schema);
  throw new Error("the test finished (timed out?) before its store was open");
}

const CLOSE_TIMEOUT_MS = 20_000;

async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- PGlite ----------------------------------------------------------------------------------------------------

let template: Promise<Blob> | undefined;

/** A freshly initialised, empty PGlite data directory (made once per process), for PgliteStore's loadDataDir. */
export function pgliteTemplate(): Promise<Blob> {
  template ??= (async () => {
    const db = new PGlite();
    try {
      await db.waitReady;
      return await db.dumpDataDir("none");
    } finally {
      await db.close();
    }
  })();
  return template;
}

const pgliteBackend: TestBackend = {
  name: "pglite",
  kind: "pglite",
  async open(t, opts = {}) {
    if (opts.shareWith) throw new Error("PGlite is one in-process database: shareWith needs the postgres backend");
    const r = resourcesOf(t);
    const store = await PgliteStore.open({ loadDataDir: await pgliteTemplate(), ...(opts.log ? { log: opts.log } : {}) });
    await adopt(r, store);
    if (opts.migrate ?? true) await migrate(store);
    return store;
  },
};

// ---- PostgreSQL ------------------------------------------------------------------------------------------------

function postgresBackend(url: string): TestBackend {
  return {
    name: "postgres",
    kind: "postgres",
    async open(t, opts = {}) {
      const r = resourcesOf(t);
      r.adminUrl = url;
      let schema: string;
      if (opts.shareWith) {
        if (!(opts.shareWith instanceof PostgresStore) || !opts.shareWith.schema) throw new Error("shareWith needs a store opened by this backend");
        schema = opts.shareWith.schema;
      } else {
        schema = `ferry_t_${randomBytes(6).toString("hex")}`;
        r.schemas.push(schema); // registered before connect, so a failed open still drops whatever got created
      }
      const store = await PostgresStore.connect({
        connectionString: url,
        schema,
        // Small pools: many test files run at once against one server.
        poolMax: 4,
        listener: { minBackoffMs: 20, maxBackoffMs: 500 },
        ...opts.postgres,
        ...(opts.log ? { log: opts.log } : {}),
      });
      await adopt(r, store);
      if (opts.migrate ?? true) await migrate(store);
      return store;
    },
  };
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
}
