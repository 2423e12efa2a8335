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
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
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
