// Opens the store the configuration asks for and brings its schema up to date.
//
//   databaseUrl given      -> PostgreSQL (replicas share it); `schema` selects the search_path
//   else dataDir given     -> PGlite in <dataDir>/pglite, locked by <dataDir>/pglite.lock
//   neither                -> PGlite in memory (tests)
import { join } from "node:path";
import type { Store } from "../../ports/store.js";
import { migrate } from "./migrate.js";
import { PgliteStore } from "./pglite.js";
import { PostgresStore } from "./pg.js";
import type { StoreLogger } from "./store-logger.js";

export interface OpenStoreOptions {
  databaseUrl?: string;
  dataDir?: string;
  schema?: string;
  log?: StoreLogger;
  /** PostgreSQL pool size (default 10). */
  poolMax?: number;
}

export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const log = opts.log;
  const store: Store = opts.databaseUrl
    ? await PostgresStore.connect({
        connectionString: opts.databaseUrl,
        ...(opts.schema ? { schema: opts.schema } : {}),
        ...(opts.poolMax ? { poolMax: opts.poolMax } : {}),
        ...(log ? { log } : {}),
      })
    : await PgliteStore.open({
        ...(opts.dataDir ? { dataDir: join(opts.dataDir, "pglite") } : {}),
        ...(opts.schema ? { schema: opts.schema } : {}),
        ...(log ? { log } : {}),
      });
  try {
    await migrate(store, log ? { log } : {});
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}
