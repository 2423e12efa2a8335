// The store adapters: PostgreSQL (pg) and embedded PostgreSQL (PGlite) behind the Store port, one set of migrations.
export { openStore, type OpenStoreOptions } from "./open.js";
export { migrate, loadMigrations, MIGRATION_LOCK_KEY, type MigrateOptions, type Migration } from "./migrate.js";
export { PostgresStore, type PostgresStoreOptions, type PoolStats } from "./pg.js";
export { PgliteStore, type PgliteStoreOptions } from "./pglite.js";
export { StoreError, isStoreError, type StoreErrorCode } from "./store-error.js";
export type { StoreLogger } from "./store-logger.js";
