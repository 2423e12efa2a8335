// The one narrow interface the control plane uses to reach PostgreSQL.
//
// Two adapters implement it with the same SQL dialect: `pg` against a PostgreSQL server (N replicas share it) and
// PGlite, an embedded PostgreSQL in a directory on disk (the single-process default). Everything above this port
// writes plain PostgreSQL SQL with $1-style parameters; replicas coordinate only through the database (row locks,
// FOR UPDATE SKIP LOCKED, LISTEN/NOTIFY).

export interface QueryResult<R> {
  rows: R[];
  /** Rows affected by INSERT/UPDATE/DELETE, or returned by SELECT. */
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string | PreparedStatement, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

/**
 * A hot statement the store plans once per connection and keeps (PREPARE), for statements whose planning costs more
 * than running them: on the embedded store, planning a statement of several subqueries takes longer than executing
 * it. Made with preparedStatement(); passed to query() in place of the SQL text.
 *
 * Its parameters are strings, finite numbers, booleans, bigints, Dates and null (no arrays, objects or bytes), and it
 * names the columns it returns (no `*`): a kept plan must not change the shape of its result when a table gains a
 * column.
 */
export interface PreparedStatement {
  readonly name: string;
  readonly text: string;
}

const STATEMENT_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const statements = new Map<string, string>();

/** A PreparedStatement; one name stands for one text in the whole process (a second text under it is refused). */
export function preparedStatement(name: string, text: string): PreparedStatement {
  if (!STATEMENT_NAME.test(name)) throw new TypeError(`invalid statement name ${JSON.stringify(name)}: use 1-63 characters of [a-z0-9_]`);
  const known = statements.get(name);
  if (known !== undefined && known !== text) throw new TypeError(`the statement name ${name} is already used for another statement`);
  statements.set(name, text);
  return Object.freeze({ name, text });
}

export type NotificationHandler = (payload: string) => void;

export interface Store extends Queryable {
  readonly kind: "postgres" | "pglite";
  /**
   * No other process writes this database (PGlite: its data directory is locked to one process). What this process
   * has committed is then everything there is, which lets a service keep an index of what it wrote. False for a
   * PostgreSQL server, which replicas share.
   */
  readonly exclusive: boolean;
  /**
   * Runs fn inside one transaction on one connection: committed when fn resolves, rolled back when it throws.
   * Nested calls are not supported; pass the Queryable down instead.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Subscribes to a NOTIFY channel. Resolves once LISTEN is in effect; the returned function unsubscribes. */
  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  /** pg_notify(channel, payload); delivered to listeners in every process sharing the database. */
  notify(channel: string, payload: string): Promise<void>;
  /** Closes every connection. Pending queries finish first. */
  close(): Promise<void>;
}
