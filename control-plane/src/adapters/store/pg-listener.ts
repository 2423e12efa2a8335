// LISTEN/NOTIFY for the PostgreSQL adapter: one dedicated connection (not from the pool) carries every channel.
//
// Why a dedicated client: a pooled connection is handed to other queries and may be closed by the pool when idle,
// and LISTEN is session state — notifications would go to whoever holds the connection, or nowhere.
//
// Connection loss: PostgreSQL does not queue notifications for a session that is gone, so what is sent while the
// listener is disconnected is lost; that is inherent to LISTEN/NOTIFY. What this class guarantees is that loss is
// never silent and never permanent: it is logged, the connection is re-established with full-jitter exponential
// backoff, every channel is LISTENed again, the reconnection is logged, and `onReconnect` fires so a consumer can
// re-read whatever state the notifications were hints about. A periodic probe (`SELECT 1`) detects a connection
// that died without the socket noticing (a NAT or load balancer dropping an idle flow), since TCP keepalive alone can
// take a long time to notice.
//
// Desired state (the channels that have handlers) and actual state (the channels LISTENed on the current connection)
// are kept apart and reconciled by one serialised routine, so subscribe, unsubscribe and reconnect never race.
import { Client, DatabaseError, type ClientConfig } from "pg";
import type { NotificationHandler } from "../../ports/store.js";
import { checkChannel, quoteChannel } from "./channel.js";
import type { StoreLogger } from "./store-logger.js";
import { outsideTransactionScope } from "./transaction-scope.js";

export interface PgListenerOptions {
  /** How the listener connects: same server, schema-independent. */
  client: ClientConfig;
  log: StoreLogger;
  /** Backoff between reconnection attempts: full jitter over min·2^attempt, capped (defaults 100 ms .. 10 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often the idle connection is probed, and how long a probe may take (defaults 30 s, 10 s). 0 disables. */
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
  /** Called after the connection was lost and is back with every channel LISTENed again. */
  onReconnect?: () => void;
}

interface Subscription {
  handler: NotificationHandler;
}

export class PgListener {
  private readonly subs = new Map<string, Set<Subscription>>();
  /** The healthy connection, if any, and the channels LISTENed on it. */
  private client: Client | undefined;
  private backendPid: number | undefined;
  private readonly listened = new Set<string>();
  private connecting: Promise<Client> | undefined;
  private chain: Promise<void> = Promise.resolve();
  private lostAt: number | undefined;
  private closed = false;
  private cancelDelay: (() => void) | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(private readonly o: PgListenerOptions) {
    this.minBackoffMs = o.minBackoffMs ?? 100;
    this.maxBackoffMs = o.maxBackoffMs ?? 10_000;
    const probeEvery = o.probeIntervalMs ?? 30_000;
    if (probeEvery > 0) {
      this.probeTimer = setInterval(() => this.probe(), probeEvery);
      this.probeTimer.unref();
    }
  }

  /** The server process id of the listening session, while connected (diagnostics and tests). */
  get pid(): number | undefined {
    return this.client ? this.backendPid : undefined;
  }

  async listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    checkChannel(channel);
    if (this.closed) throw new Error("the store is closed");
    const sub: Subscription = { handler };
    let set = this.subs.get(channel);
    if (!set) this.subs.set(channel, (set = new Set()));
    set.add(sub);
    try {
      await this.reconcile();
    } catch (err) {
      this.remove(channel, sub);
      throw err;
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      // Delivery stops here, before UNLISTEN reaches the server.
      this.remove(channel, sub);
      if (!this.closed) await this.reconcile();
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.cancelDelay?.();
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => {});
    await this.connecting?.catch(() => {});
  }

  private remove(channel: string, sub: Subscription): void {
    const set = this.subs.get(channel);
    set?.delete(sub);
    if (set?.size === 0) this.subs.delete(channel);
  }

  /** Brings the LISTENed set of the current connection in line with the channels that have handlers. */
  private reconcile(): Promise<void> {
    const run = async (): Promise<void> => {
      for (;;) {
        const client = await this.connection();
        try {
          for (const channel of this.subs.keys()) {
            if (this.listened.has(channel)) continue;
            await client.query(`LISTEN ${quoteChannel(channel)}`);
            this.listened.add(channel);
          }
          for (const channel of [...this.listened]) {
            if (this.subs.has(channel)) continue;
            await client.query(`UNLISTEN ${quoteChannel(channel)}`);
            this.listened.delete(channel);
          }
        } catch (err) {
          // An error PostgreSQL reported on a live connection is real; anything else means the connection went away
          // under us, and the next connection starts with nothing LISTENed, so go round again.
          if (err instanceof DatabaseError && this.client === client) throw err;
          this.lose(client, err);
          continue;
        }
        if (this.lostAt !== undefined) {
          const downMs = Date.now() - this.lostAt;
          this.lostAt = undefined;
          this.o.log.warn(
            { channels: [...this.listened], downMs },
            "PostgreSQL listener reconnected and LISTENs again; notifications sent while it was down were missed",
          );
          this.o.onReconnect?.();
        }
        return;
      }
    };
    const p = this.chain.then(run);
    this.chain = p.catch(() => {});
    return p;
  }

  private connection(): Promise<Client> {
    if (this.closed) return Promise.reject(new Error("the store is closed"));
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.connectWithBackoff().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectWithBackoff(): Promise<Client> {
    for (let attempt = 0; ; attempt++) {
      // The first attempt after a loss is immediate: most losses are a single dropped connection.
      if (attempt > 0) await this.delay(this.backoffMs(attempt - 1));
      if (this.closed) throw new Error("the store is closed");
      const client = new Client(this.o.client);
      // Without an 'error' listener, a socket error would be an uncaught exception that takes the process down.
      client.on("error", (err) => this.lose(client, err));
      client.on("end", () => this.lose(client, new Error("the listener connection ended")));
      client.on("notification", (msg) => this.dispatch(msg.channel, msg.payload ?? ""));
      let pid: number;
      try {
        await client.connect();
        const res = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        pid = res.rows[0]?.pid ?? -1;
      } catch (err) {
        void client.end().catch(() => {});
        this.o.log.warn({ err: describe(err), attempt }, "cannot connect the PostgreSQL listener; retrying");
        continue;
      }
      if (this.closed) {
        await client.end().catch(() => {});
        throw new Error("the store is closed");
      }
      this.client = client;
      this.backendPid = pid;
      this.listened.clear();
      return client;
    }
  }

  /** Forgets a connection that failed; reconnects at once if anyone is listening. */
  private lose(client: Client, err: unknown): void {
    if (client !== this.client) return; // an old connection, or one still connecting (its connect() rejects)
    this.client = undefined;
    this.listened.clear();
    client.removeAllListeners("notification");
    void client.end().catch(() => {});
    if (this.closed) return;
    if (this.subs.size === 0) return; // nobody listening, nothing missed: the next listen() connects afresh
    this.lostAt ??= Date.now();
    this.o.log.warn(
      { err: describe(err), channels: [...this.subs.keys()] },
      "PostgreSQL listener connection lost; reconnecting (notifications sent until it is back are missed)",
    );
    this.reconcile().catch((e: unknown) => {
      if (!this.closed) this.o.log.warn({ err: describe(e) }, "PostgreSQL listener could not LISTEN again");
    });
  }

  private probe(): void {
    const client = this.client;
    if (!client || this.closed) return;
    const timeoutMs = this.o.probeTimeoutMs ?? 10_000;
    const timer = setTimeout(() => this.lose(client, new Error(`listener probe got no answer in ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    client.query("SELECT 1").then(
      () => clearTimeout(timer),
      (err: unknown) => {
        clearTimeout(timer);
        this.lose(client, err);
      },
    );
  }

  private dispatch(channel: string, payload: string): void {
    const set = this.subs.get(channel);
    if (!set) return;
    for (const sub of [...set]) {
      try {
        // Handlers are typed to return void, but an async one must not become an unhandled rejection.
        const r: unknown = outsideTransactionScope(() => sub.handler(payload));
        if (r instanceof Promise) r.catch((err: unknown) => this.handlerFailed(channel, err));
      } catch (err) {
        this.handlerFailed(channel, err);
      }
    }
  }

  private handlerFailed(channel: string, err: unknown): void {
    this.o.log.warn({ err: describe(err), channel }, "a notification handler threw; other handlers still run");
  }

  private backoffMs(attempt: number): number {
    // Full jitter, applied after the cap, so a fleet of replicas that lost the server together does not come back in
    // lockstep.
    const ceiling = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(attempt, 30));
    return Math.random() * ceiling;
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.cancelDelay = done;
    });
  }
}

function describe(err: unknown): Record<string, unknown> {
  if (err instanceof Error) return { message: err.message, code: (err as { code?: unknown }).code };
  return { message: String(err) };
}
