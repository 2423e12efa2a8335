// Store over PGlite: PostgreSQL compiled to WASM, running in this process on a data directory (or in memory).
//
// Parity with the pg adapter — callers must not be able to tell the backends apart by the values they get back:
//   text, varchar -> string          int2, int4, float8, oid -> number     boolean -> boolean
//   int8/bigint -> string            (PGlite would give a number, or a bigint past 2^53; pg gives a string)
//   numeric -> string                jsonb, json -> parsed value           timestamptz -> Date
//   bytea -> Buffer                  (PGlite gives a Uint8Array; converted, so Buffer methods and equality work)
//   arrays -> arrays of the above    (text[] -> string[], int8[] -> string[]; PGlite builds array parsers from the
//                                     element parsers, so the overrides carry over)
// Parameters are serialised by the server-declared parameter type on PGlite and by JS type on pg. Both accept the
// same things for the types Ferry uses (string, number, boolean, Date, Buffer, string[], plain objects for json/jsonb,
// null/undefined). Pass arrays destined for a json/jsonb parameter as JSON.stringify(value): pg turns a JS array
// into a PostgreSQL array literal, which is not JSON.
// Not covered (avoid, or cast to text): interval (pg: object, PGlite: string), date and timestamp without time zone
// (pg reads them in the process' local time zone, PGlite in UTC).
//
// Concurrency: PGlite is one connection. Its transaction() holds a mutex for the whole transaction and its query()
// takes the same mutex, so a plain query issued while a transaction is open elsewhere waits for it to end (and never
// runs inside it). Every statement answers after a turn of the event loop (turn(), below). A query issued from
// *inside* a transaction callback on the store itself would wait for itself;
// transaction-scope.ts turns that into an error on both adapters.
//
// Durability: PGlite writes through Node's fs without fsync. A crash of the process loses nothing committed; an OS
// crash or power loss can lose the last transactions. Deployments that need more run PostgreSQL.
//
// Prepared statements (the port's PreparedStatement): PGlite's query() plans every statement each time, and offers
// no named statements. A prepared statement is therefore PREPAREd in SQL the first time it is used, and then run as
// EXECUTE name('literal', …) on the simple protocol, its parameters written as quoted literals that PostgreSQL reads
// with the parameter's input function, as it reads text-format parameters (statement-arguments.ts). While one
// caller prepares it, others run the statement's text unprepared; PREPARE is not undone by a rollback, so one made
// inside a transaction stays.
//
// A data directory is locked against a second process (pglite-lock.ts); an in-memory store needs no lock.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { PGlite, types, type Results, type Transaction } from "@electric-sql/pglite";
import type { NotificationHandler, PreparedStatement, Queryable, QueryResult, Store } from "../../ports/store.js";
import { checkChannel, quoteChannel } from "./channel.js";
import { statementArgument } from "./statement-arguments.js";
import { initialiseDataDir } from "./pglite-initdb.js";
import { acquireDirLock, type DirLock } from "./pglite-lock.js";
import { pgliteInitdbParams, pgliteStartParams, useOptimisingWasmCompiler } from "./pglite-settings.js";
import { checkDataDir, makePrivate, openFailed } from "./pglite-data-dir.js";
import { StoreError } from "./store-error.js";
import { silentLogger, type StoreLogger } from "./store-logger.js";
import { assertNotInTransaction, outsideTransactionScope, runInTransactionScope } from "./transaction-scope.js";

export interface PgliteStoreOptions {
  /** Data directory on disk; in memory when undefined (tests). */
  dataDir?: string;
  /** Schema to create and put on the search_path (parity with PostgresStore; rarely needed with PGlite). */
  schema?: string;
  log?: StoreLogger;
  /**
   * Initialise a new database from a data directory dumped with dumpDataDir() instead of running initdb, which is
   * most of PGlite's start-up time; tests use it. Refused by PGlite when dataDir already holds a database.
   */
  loadDataDir?: Blob;
}

// PostgreSQL's default bytea_output is hex: "\x" followed by two hex digits per byte.
const parseBytea = (text: string): Buffer => Buffer.from(text.slice(2), "hex");

const PARSERS = {
  [types.INT8]: (text: string) => text,
  [types.BYTEA]: parseBytea,
};

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

interface ChannelEntry {
  subs: Set<NotificationHandler>;
  unlisten: () => Promise<void>;
}

export class PgliteStore implements Store {
  readonly kind = "pglite" as const;
  /** One process per data directory (pglite-lock.ts); an in-memory database belongs to its process. */
  readonly exclusive = true;
  private readonly channels = new Map<string, ChannelEntry>();
  /** Prepared statements of this (one) session: being prepared by one caller, or ready. */
  private readonly statements = new Map<string, "preparing" | "ready">();
  private listenChain: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly db: PGlite,
    private readonly lock: DirLock | undefined,
    private readonly log: StoreLogger,
    /** Absolute data directory, or undefined in memory. */
    readonly dataDir: string | undefined,
  ) {}

  static async open(o: PgliteStoreOptions = {}): Promise<PgliteStore> {
    if (o.schema !== undefined && !SCHEMA_RE.test(o.schema)) {
      throw new TypeError(`invalid schema name ${JSON.stringify(o.schema)}: use 1-63 characters of [a-z0-9_]`);
    }
    const dataDir = o.dataDir === undefined ? undefined : resolve(o.dataDir);
    let lock: DirLock | undefined;
    if (dataDir) {
      // PGlite creates only the last path component itself.
      mkdirSync(dirname(dataDir), { recursive: true, mode: 0o700 });
      lock = await acquireDirLock(dataDir);
    }
    let db: PGlite | undefined;
    let state: "new" | "existing" | undefined;
    try {
      // Memory settings, the WebAssembly compiler and the out-of-process first initdb: pglite-settings.ts. A directory
      // that holds something but no whole cluster is never initialised (checkDataDir refuses it as STORE_CORRUPT).
      useOptimisingWasmCompiler();
      if (dataDir) {
        state = await checkDataDir(dataDir);
        if (state === "existing") await makePrivate(dataDir);
        else if (!o.loadDataDir) await initialiseDataDir(dataDir);
      }
      db = new PGlite({
        ...(dataDir ? { dataDir } : {}),
        ...(o.loadDataDir ? { loadDataDir: o.loadDataDir } : {}),
        parsers: PARSERS,
        startParams: pgliteStartParams(),
        initDbStartParams: pgliteInitdbParams(),
      });
      await db.waitReady;
      if (dataDir) await makePrivate(dataDir);
      if (o.schema) await db.exec(`CREATE SCHEMA IF NOT EXISTS "${o.schema}"; SET search_path TO "${o.schema}"`);
    } catch (err) {
      if (db && !db.closed) await db.close().catch(() => {});
      lock?.release();
      // PGlite fails on a damaged directory with "Aborted()" or a WASM trap: say what it means.
      throw dataDir && state === "existing" && !(err instanceof StoreError) ? openFailed(dataDir, err) : err;
    }
    return new PgliteStore(db, lock, o.log ?? silentLogger, dataDir);
  }

  async query<R = Record<string, unknown>>(sql: string | PreparedStatement, params?: readonly unknown[]): Promise<QueryResult<R>> {
    assertNotInTransaction("query");
    return typeof sql === "string" ? run<R>(this.db, sql, params) : this.runPrepared<R>(this.db, sql, params);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    assertNotInTransaction("transaction");
    // PGlite's transaction() holds its transaction mutex throughout, issues BEGIN, and COMMITs when the callback
    // resolves or ROLLBACKs when it throws; a COMMIT that PostgreSQL turned into a ROLLBACK (a statement failed and
    // the callback swallowed the error) throws.
    return this.db.transaction(async (ptx) => {
      let over = false;
      const tx: Queryable = {
        query: <R = Record<string, unknown>>(sql: string | PreparedStatement, params?: readonly unknown[]) => {
          if (over) return Promise.reject(new Error("this transaction is over; its Queryable cannot be used after transaction() settles"));
          return typeof sql === "string" ? run<R>(ptx, sql, params) : this.runPrepared<R>(ptx, sql, params);
        },
      };
      try {
        return await runInTransactionScope(() => fn(tx));
      } finally {
        over = true;
      }
    });
  }

  async listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    assertNotInTransaction("listen");
    checkChannel(channel);
    // Each handler is its own subscription, even when the same function is registered twice; one PGlite listener
    // per channel fans out to them.
    const sub: NotificationHandler = (payload) => handler(payload);
    await this.serial(async () => {
      let entry = this.channels.get(channel);
      if (!entry) {
        const subs = new Set<NotificationHandler>();
        const unlisten = await this.db.listen(quoteChannel(channel), (payload) => this.dispatch(channel, subs, payload));
        entry = { subs, unlisten };
        this.channels.set(channel, entry);
      }
      entry.subs.add(sub);
    });
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      await this.serial(async () => {
        const entry = this.channels.get(channel);
        if (!entry) return;
        entry.subs.delete(sub);
        if (entry.subs.size > 0 || this.db.closed || this.closing) return;
        this.channels.delete(channel);
        await entry.unlisten();
      });
    };
  }

  async notify(channel: string, payload: string): Promise<void> {
    checkChannel(channel);
    await this.query("SELECT pg_notify($1, $2)", [channel, payload]);
  }

  /** Waits for running queries and transactions, closes PGlite, releases the directory lock. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.serial(async () => {});
        if (!this.db.closed) await this.db.close();
      } finally {
        this.lock?.release();
      }
    })();
    return this.closing;
  }

  /** True while a transaction is open; a test teardown that finds one has caught a transaction that never ended. */
  inTransaction(): boolean {
    return !this.db.closed && this.db.isInTransaction();
  }

  /** The whole data directory as a tarball (PGlite's dumpDataDir); used to clone a template in tests. */
  dumpDataDir(): Promise<Blob> {
    return this.db.dumpDataDir("none");
  }

  private async runPrepared<R>(q: PgliteQueryable, st: PreparedStatement, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
    // The arguments first: a parameter that cannot be written as a literal is refused before anything runs.
    const execute = params && params.length > 0 ? `EXECUTE ${st.name}(${params.map(statementArgument).join(", ")})` : `EXECUTE ${st.name}`;
    const state = this.statements.get(st.name);
    if (state === "ready") return run<R>(q, execute, undefined);
    if (state === "preparing") return run<R>(q, st.text, params);
    this.statements.set(st.name, "preparing");
    try {
      await run(q, `PREPARE ${st.name} AS ${st.text}`, undefined);
    } catch (err) {
      this.statements.delete(st.name);
      throw err;
    }
    this.statements.set(st.name, "ready");
    return run<R>(q, execute, undefined);
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const p = this.listenChain.then(fn);
    this.listenChain = p.catch(() => {});
    return p;
  }

  private dispatch(channel: string, subs: Set<NotificationHandler>, payload: string): void {
    for (const sub of [...subs]) {
      try {
        const r: unknown = outsideTransactionScope(() => sub(payload));
        if (r instanceof Promise) r.catch((err: unknown) => this.handlerFailed(channel, err));
      } catch (err) {
        this.handlerFailed(channel, err);
      }
    }
  }

  private handlerFailed(channel: string, err: unknown): void {
    this.log.warn({ err: { message: (err as Error).message }, channel }, "a notification handler threw; other handlers still run");
  }
}

type PgliteQueryable = Pick<PGlite, "query" | "exec"> | Transaction;

/**
 * A turn of the event loop after every statement. PGlite runs a statement synchronously inside the call and settles
 * its promise at once, so code that awaits one statement after another (the promotion sweep: a read or a transaction
 * per waiting promotion) would otherwise run to its end in one go, on microtasks alone, letting no HTTP request or
 * agent message in: a sweep of 200 promotions held the whole process for up to a second (docs/performance.md,
 * "bench:gates"). A statement now answers after a turn, as one over a network connection does; other work gets in
 * between, and the connection's FIFO lock interleaves it fairly.
 */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function run<R>(q: PgliteQueryable, sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
  try {
    return await runNow<R>(q, sql, params);
  } finally {
    await turn();
  }
}

async function runNow<R>(q: PgliteQueryable, sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
  try {
    if (!params || params.length === 0) {
      // Simple protocol, like pg without parameters: several statements allowed, the last one's result returned.
      const results = await q.exec(sql);
      return toResult<R>(results[results.length - 1]);
    }
    return toResult<R>(await q.query<R>(sql, [...params]));
  } catch (err) {
    // PGlite attaches the bound parameters to its errors; they can hold secrets (token hashes) and errors get logged.
    // pg's errors carry no parameters either.
    if (err && typeof err === "object" && "params" in err) delete (err as { params?: unknown }).params;
    throw err;
  }
}

function toResult<R>(res: Results<R> | Results | undefined): QueryResult<R> {
  if (!res) return { rows: [], rowCount: 0 };
  // rowCount comes from the command tag (SELECT n, UPDATE n, …), as with pg; absent for DDL.
  return { rows: res.rows as R[], rowCount: res.rowCount ?? res.affectedRows ?? 0 };
}
