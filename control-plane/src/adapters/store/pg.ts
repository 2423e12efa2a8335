// Store over a PostgreSQL server (node-postgres). N control-plane replicas share one server through this adapter.
//
// Result types are node-postgres' defaults, and the PGlite adapter is made to match them (see pglite.ts):
//   int8/bigint -> string (a JS number cannot hold every int8; parse where the domain knows the range, e.g. audit seq)
//   numeric -> string, timestamptz -> Date, bytea -> Buffer, jsonb/json -> parsed value, text[] -> string[]
//
// Connections:
// - a pg.Pool (default max 10) for queries and transactions; `schema`, when given, is created if missing and made
//   the search_path of every connection through the startup `options` parameter, so it holds from the first query
//   on each connection with no extra round trip (tests use this to give each test a schema of its own);
// - one dedicated client for LISTEN (pg-listener.ts).
// Connect directly or through a session-mode pooler: transaction-mode pgbouncer breaks LISTEN and the startup
// `options` parameter alike.
//
// Queries without parameters go over the simple protocol, where one string may hold several statements (migrations
// rely on this); the result is that of the last statement. With parameters, one statement.
import { DatabaseError, Pool, type PoolClient, type QueryResult as PgQueryResult } from "pg";
import type { NotificationHandler, PreparedStatement, Queryable, QueryResult, Store } from "../../ports/store.js";
import { checkChannel } from "./channel.js";
import { PgListener } from "./pg-listener.js";
import { checkStatementArguments } from "./statement-arguments.js";
import { StoreError } from "./store-error.js";
import { silentLogger, type StoreLogger } from "./store-logger.js";
import { assertNotInTransaction, runInTransactionScope } from "./transaction-scope.js";

export interface PostgresStoreOptions {
  connectionString: string;
  /** Schema for every connection's search_path; created if missing. Lower-case identifier. Default: server's. */
  schema?: string;
  /** Pool size (default 10). */
  poolMax?: number;
  /** How long to wait for a new connection before failing (default 10 s). */
  connectionTimeoutMs?: number;
  log?: StoreLogger;
  /** Backoff and probe settings of the LISTEN connection (see pg-listener.ts); tests shorten them. */
  listener?: { minBackoffMs?: number; maxBackoffMs?: number; probeIntervalMs?: number; probeTimeoutMs?: number };
  /** Called when the LISTEN connection is back after a loss: notifications sent meanwhile were missed. */
  onListenerReconnect?: () => void;
}

export interface PoolStats {
  /** Connections open (idle or checked out). */
  total: number;
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  readonly exclusive = false;
  readonly schema: string | undefined;
  private readonly pool: Pool;
  private readonly listener: PgListener;
  private readonly log: StoreLogger;
  /** Human-readable host:port of the server, for error messages; never contains credentials. */
  readonly target: string;
  /** Clients checked out by transaction(), so destroy() can free them when a caller never finishes. */
  private readonly checkedOut = new Map<PoolClient, (err?: Error) => void>();
  private closing: Promise<void> | undefined;

  /** Creates the pool without connecting; use PostgresStore.connect() to also check the server and schema. */
  constructor(private readonly o: PostgresStoreOptions) {
    if (o.schema !== undefined && !SCHEMA_RE.test(o.schema)) {
      throw new TypeError(`invalid schema name ${JSON.stringify(o.schema)}: use 1-63 characters of [a-z0-9_]`);
    }
    this.schema = o.schema;
    this.log = o.log ?? silentLogger;
    this.target = describeTarget(o.connectionString);
    const common = {
      connectionString: o.connectionString,
      connectionTimeoutMillis: o.connectionTimeoutMs ?? 10_000,
      keepAlive: true,
      ...(o.schema ? { options: `-c search_path=${o.schema}` } : {}),
    };
    this.pool = new Pool({ ...common, max: o.poolMax ?? 10, application_name: "ferry" });
    // An idle pooled connection that fails (server restart, terminated backend) is dropped and replaced by the pool;
    // without a listener the 'error' event would crash the process.
    this.pool.on("error", (err) => this.log.warn({ err: { message: err.message } }, "an idle PostgreSQL connection failed; the pool replaces it"));
    // pg-pool removes that listener while a connection is checked out, yet pg still emits 'error' on a client whose
    // connection breaks under a running query (the query is rejected with the same error, which the caller gets and
    // the API answers as STORE_UNAVAILABLE). A listener for the client's whole life keeps that from being an
    // uncaught exception that stops the process.
    this.pool.on("connect", (client) => {
      client.on("error", (err) => this.log.warn({ err: { message: err.message } }, "a PostgreSQL connection in use failed"));
    });
    this.listener = new PgListener({
      client: { ...common, application_name: "ferry-listener" },
      log: this.log,
      ...o.listener,
      ...(o.onListenerReconnect ? { onReconnect: o.onListenerReconnect } : {}),
    });
  }

  /** Connects, checks the server answers, and creates the schema if it is missing. */
  static async connect(o: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(o);
    try {
      await store.init();
    } catch (err) {
      await store.close().catch(() => {});
      throw err;
    }
    return store;
  }

  private async init(): Promise<void> {
    const client = await this.checkout();
    try {
      if (this.schema) await ensureSchema(client, this.schema);
    } finally {
      client.release();
    }
  }

  async query<R = Record<string, unknown>>(sql: string | PreparedStatement, params?: readonly unknown[]): Promise<QueryResult<R>> {
    assertNotInTransaction("query");
    const client = await this.checkout();
    let broken: Error | undefined;
    try {
      return toResult<R>(await send(client, sql, params));
    } catch (err) {
      if (!(err instanceof DatabaseError)) broken = err as Error; // the connection's state is unknown: discard it
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    assertNotInTransaction("transaction");
    const client = await this.checkout();
    let released = false;
    const release = (err?: Error): void => {
      if (released) return;
      released = true;
      this.checkedOut.delete(client);
      client.release(err);
    };
    this.checkedOut.set(client, release);
    let over = false;
    const tx: Queryable = {
      query: async <R = Record<string, unknown>>(sql: string | PreparedStatement, params?: readonly unknown[]) => {
        if (over) throw new Error("this transaction is over; its Queryable cannot be used after transaction() settles");
        return toResult<R>(await send(client, sql, params));
      },
    };
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const result = await runInTransactionScope(() => fn(tx));
      over = true;
      const commit = await client.query("COMMIT");
      // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK and no error. That happens when a statement
      // failed and fn caught the error; reporting success would claim writes that are gone (PGlite throws here too).
      if (commit.command === "ROLLBACK") throw new Error("Transaction was rolled back instead of committed: a statement in it failed");
      return result;
    } catch (err) {
      over = true;
      try {
        await client.query("ROLLBACK");
      } catch (rollbackErr) {
        broken = rollbackErr as Error; // cannot tell what state the session is in: do not hand it to anyone else
      }
      throw err;
    } finally {
      release(broken);
    }
  }

  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    assertNotInTransaction("listen");
    return this.listener.listen(channel, handler);
  }

  async notify(channel: string, payload: string): Promise<void> {
    checkChannel(channel);
    await this.query("SELECT pg_notify($1, $2)", [channel, payload]);
  }

  /** Waits for checked-out connections to come back, then closes everything. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.listener.close();
      await this.pool.end();
    })();
    return this.closing;
  }

  /**
   * Closes at once, breaking the connections of transactions still running (they fail). For a caller that must
   * not hang on a leaked transaction, e.g. a test teardown that found one.
   */
  async destroy(): Promise<void> {
    for (const release of [...this.checkedOut.values()]) release(new Error("the store was destroyed"));
    await this.close();
  }

  /** Pool occupancy; a test that leaves a connection checked out is caught with this. */
  poolStats(): PoolStats {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  /** The server pid of the LISTEN session while it is connected (tests terminate it to exercise reconnection). */
  listenerPid(): number | undefined {
    return this.listener.pid;
  }

  private async checkout(): Promise<PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      if (this.closing) throw err;
      throw new StoreError("STORE_UNAVAILABLE", `PostgreSQL at ${this.target} is unavailable: ${(err as Error).message}`, { target: this.target }, { cause: err });
    }
  }
}

async function ensureSchema(client: PoolClient, schema: string): Promise<void> {
  // Look first: CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege on the database even when the schema
  // exists, and a role that may only use its schema should still be able to start.
  const found = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
  if (found.rowCount) return;
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  } catch (err) {
    // Two replicas starting together can both pass IF NOT EXISTS and collide on the catalog's unique index.
    if (err instanceof DatabaseError && (err.code === "23505" || err.code === "42P06")) return;
    throw err;
  }
}

function args(params: readonly unknown[] | undefined): unknown[] | undefined {
  return params && params.length > 0 ? [...params] : undefined;
}

/** SQL text as given; a prepared statement as pg's named statement, which pg prepares once on each connection. */
function send(client: PoolClient, sql: string | PreparedStatement, params: readonly unknown[] | undefined): Promise<PgQueryResult> {
  if (typeof sql === "string") return client.query(sql, args(params));
  checkStatementArguments(params);
  return client.query({ name: sql.name, text: sql.text, values: params ? [...params] : [] });
}

function toResult<R>(res: PgQueryResult | PgQueryResult[]): QueryResult<R> {
  // Several statements in one simple-protocol query give one result per statement; callers get the last.
  const last = Array.isArray(res) ? res[res.length - 1] : res;
  if (!last) return { rows: [], rowCount: 0 };
  return { rows: last.rows as R[], rowCount: last.rowCount ?? 0 };
}

/** host:port (or socket path) of a connection string, for messages; credentials never appear. */
export function describeTarget(connectionString: string): string {
  // Parsed by hand: WHATWG URL rejects forms libpq accepts, such as an empty host with credentials
  // ("postgresql://user:pw@/db?host=/run/postgresql").
  // The user-info part runs to the last "@" before the path, so an unencoded "@" in a password stays in it.
  const m = /^postgres(?:ql)?:\/\/(?:[^/?]*@)?([^@/?]*)[^?]*(?:\?(.*))?$/.exec(connectionString);
  if (!m) return "the configured server"; // key=value form: say nothing rather than risk echoing a password
  const query = new URLSearchParams(m[2] ?? "");
  const hostPort = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(m[1] ?? "");
  const host = query.get("host") ?? (decodeURIComponent(hostPort?.[1] ?? "") || "localhost");
  const port = query.get("port") ?? (hostPort?.[2] || "5432");
  return host.startsWith("/") ? `${host} (socket, port ${port})` : `${host}:${port}`;
}
