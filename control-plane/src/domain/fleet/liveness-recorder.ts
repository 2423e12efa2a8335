// Write-behind recorder for agent liveness.
//
// Heartbeats are the hot path (thousands per second across a large fleet), so they only touch memory here. Two
// flushes reach PostgreSQL:
//   - state changes (an agent connected or disconnected) are batched for a few milliseconds and written together,
//     so a reconnect storm of thousands of agents becomes a handful of UPDATEs instead of thousands;
//   - last-heartbeat times and clock skew are written at most once per agent per `lastSeenFlushMs` (30 s by
//     default), which keeps the database load of a fleet flat no matter the heartbeat interval.
// A sweeper marks agents offline once they are silent for 3 × interval + grace (see liveness.ts). Every replica
// runs one; the UPDATE is idempotent, so they do not need to agree on who sweeps. What each replica trusts:
//   - an agent connected to this replica is judged from memory, where every heartbeat lands: the database's
//     last-heartbeat time lags by up to one flush period plus one interval plus one flush tick, which can exceed the
//     offline window (at the default flush period it does, by up to a tick), so judging it from the database
//     would flap healthy agents offline and back;
//   - an agent connected to another replica is that replica's to judge; this one steps in only when the database
//     shows nothing from it for longer than the holder's largest write lag (the window, or flush period + interval +
//     tick + a second when that is longer), e.g. when the holder died with the agent;
//   - an agent connected nowhere is judged from the database, which its last replica brought up to date when the
//     stream ended (the disconnect write carries the last heartbeat time).
//
// Batches are passed as one JSON parameter and expanded with jsonb_to_recordset, which behaves identically on the
// PostgreSQL server and on PGlite (array parameters of composite types do not) — except the last-seen batch, the
// one that runs all the time: it goes as parallel arrays of scalars through unnest(), which both backends take
// alike and which costs PGlite about a fifth less CPU than parsing the JSON.
//
// What agents send is made storable before it is batched (agent-input.ts): one agent must not be able to stop the
// writes of every agent of its replica. Should a batch still fail, the recorder tells a database that is down from a
// row it refuses: it probes with SELECT 1; when the database answers, the batch is bisected until the refused rows
// are isolated, those are dropped (logged once each, as errors) and every other row is written. When the database
// does not answer, the batch is kept and retried with a backoff (20 ms doubling to 5 s), and the warning is logged
// at most once per backoff step instead of at every attempt.
import type { Logger } from "pino";
import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import { isSilent, offlineAfterMs, offlineFrozen, type LivenessPolicy } from "./liveness.js";
import type { HostFactsRecord } from "./fleet-service.js";
import { storableFacts, storableSkew } from "./agent-input.js";

const RETRY_FIRST_MS = 20;
const RETRY_MAX_MS = 5000;

interface Connected {
  kind: "connected";
  at: number;
  facts: Partial<HostFactsRecord>;
  serial: string;
  notAfter: number;
}
interface Disconnected {
  kind: "disconnected";
  at: number;
}
interface Seen {
  /** The last heartbeat (or connection) time. */
  at: number;
  skewMs: number | null;
  flushedAt: number;
  dirty: boolean;
  /** The agent's stream is open on this replica. */
  held: boolean;
}

export interface LivenessRecorderOptions {
  store: Store;
  clock: Clock;
  policy: LivenessPolicy;
  /** When this replica began accepting agents (see liveness.ts). */
  readyAt: () => number;
  replicaId: string;
  log: Logger;
  /** Minimum time between two last-heartbeat writes for one agent. */
  lastSeenFlushMs: number;
  /** How long state changes wait to be batched. */
  stateBatchMs?: number;
  onFlush?: (kind: "state" | "seen" | "sweep", rows: number) => void;
}

export class LivenessRecorder {
  private readonly pendingState = new Map<string, Connected | Disconnected>();
  private readonly seen = new Map<string, Seen>();
  private stateTimer: NodeJS.Timeout | null = null;
  private seenTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private stopped = false;
  /** How often last-seen writes that fell due are made. */
  private readonly seenTickMs: number;
  /** Current retry delay of state writes while the database is unavailable. */
  private retryMs = RETRY_FIRST_MS;
  /** Rows dropped because the database refused them (metrics and tests). */
  droppedRows = 0;

  constructor(private readonly o: LivenessRecorderOptions) {
    this.seenTickMs = Math.max(50, Math.min(5000, Math.floor(o.lastSeenFlushMs / 4)));
  }

  /**
   * How long an agent held by another replica may look silent in the database before this replica marks it
   * offline: the holder writes its last heartbeat at most every flush period, and the value written can be one
   * interval old and wait up to one tick.
   */
  heldElsewhereWindowMs(): number {
    const lag = this.o.lastSeenFlushMs + this.o.policy.heartbeatIntervalMs + this.seenTickMs + 1000;
    return Math.max(offlineAfterMs(this.o.policy), lag);
  }

  start(): void {
    this.seenTimer = setInterval(() => this.enqueue(() => this.flushSeen(false)), this.seenTickMs);
    this.sweepTimer = setInterval(
      () => this.enqueue(() => this.sweep()),
      Math.max(50, Math.min(this.o.policy.heartbeatIntervalMs, 15_000)),
    );
    this.seenTimer.unref();
    this.sweepTimer.unref();
  }

  connected(agentId: string, facts: Partial<HostFactsRecord>, serial: string, notAfter: number): void {
    const at = this.o.clock.now();
    this.pendingState.set(agentId, { kind: "connected", at, facts: storableFacts(facts), serial, notAfter });
    // The connect write records the heartbeat time too, so the next last-seen write can wait a full period.
    this.seen.set(agentId, { at, skewMs: null, flushedAt: at, dirty: false, held: true });
    this.scheduleState();
  }

  disconnected(agentId: string): void {
    const s = this.seen.get(agentId);
    if (s) s.held = false;
    this.pendingState.set(agentId, { kind: "disconnected", at: this.o.clock.now() });
    this.scheduleState();
  }

  heartbeat(agentId: string, rawSkewMs: number | null): void {
    const at = this.o.clock.now();
    const skewMs = storableSkew(rawSkewMs);
    const s = this.seen.get(agentId);
    if (s) {
      s.at = at;
      s.skewMs = skewMs;
      s.dirty = true;
    } else {
      // A heartbeat comes only on an open stream, so the agent is held here even if connected() was not seen.
      this.seen.set(agentId, { at, skewMs, flushedAt: 0, dirty: true, held: true });
    }
  }

  /** The freshest heartbeat this replica holds for an agent (fresher than the database by up to one flush period). */
  recent(agentId: string): { at: number; skewMs: number | null } | undefined {
    const s = this.seen.get(agentId);
    return s ? { at: s.at, skewMs: s.skewMs } : undefined;
  }

  /** Forgets an agent (revoked): its pending writes must not bring it back online. */
  forget(agentId: string): void {
    this.seen.delete(agentId);
    this.pendingState.delete(agentId);
  }

  /** Writes everything pending now, whatever its age. Used at shutdown and by tests. */
  async flushAll(): Promise<void> {
    await this.enqueue(async () => {
      await this.flushState();
      await this.flushSeen(true);
    });
  }

  /** Writes the last-seen rows that are due, as the flush timer does (after any flush under way). Used by tests. */
  async flushDueNow(): Promise<void> {
    await this.enqueue(() => this.flushSeen(false));
  }

  /** Runs one offline sweep now (after any flush under way). Used by tests. */
  async sweepNow(): Promise<void> {
    await this.enqueue(() => this.sweep());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.stateTimer, this.seenTimer, this.sweepTimer]) if (t) clearInterval(t);
    this.stateTimer = this.seenTimer = this.sweepTimer = null;
    await this.enqueue(async () => {
      await this.flushState();
      await this.flushSeen(true);
    });
  }

  private scheduleState(delayMs = this.o.stateBatchMs ?? 20): void {
    if (this.stateTimer || this.stopped) return;
    this.stateTimer = setTimeout(() => {
      this.stateTimer = null;
      void this.enqueue(() => this.flushState());
    }, delayMs);
  }

  /**
   * Writes `rows` with `write`; when that fails and the database answers a probe, bisects to find the rows it
   * refuses, drops them (each logged as an error with its agent id) and writes the rest. When the database does not answer, rethrows:
   * the caller keeps the batch for a later attempt.
   */
  private async writeIsolating<T extends { id: string }>(kind: string, rows: T[], write: (rows: T[]) => Promise<void>): Promise<void> {
    if (rows.length === 0) return;
    try {
      await write(rows);
      return;
    } catch (err) {
      try {
        await this.o.store.query("SELECT 1");
      } catch {
        throw err; // the database is unavailable, not refusing a row
      }
      if (rows.length === 1) {
        const id = (rows[0] as T).id;
        this.droppedRows++;
        this.o.log.error({ err, agentId: id, kind }, "the database refused this agent's liveness row; it was dropped, other agents are unaffected");
        return;
      }
    }
    const half = Math.ceil(rows.length / 2);
    await this.writeIsolating(kind, rows.slice(0, half), write);
    await this.writeIsolating(kind, rows.slice(half), write);
  }

  /** Flushes run one at a time, in order; a failure is logged and the data is kept for the next attempt. */
  private enqueue(fn: () => Promise<void>): Promise<void> {
    this.flushing = this.flushing.then(fn).catch((err: unknown) => {
      this.o.log.warn({ err, retryInMs: this.retryMs }, "liveness write failed: the database is unavailable; will retry");
    });
    return this.flushing;
  }

  private async flushState(): Promise<void> {
    if (this.pendingState.size === 0) return;
    const batch = [...this.pendingState.entries()];
    this.pendingState.clear();
    const connects = batch.filter((e): e is [string, Connected] => e[1].kind === "connected");
    const disconnects = batch.filter((e): e is [string, Disconnected] => e[1].kind === "disconnected");
    try {
      if (connects.length > 0) {
        const rows = connects.map(([id, c]) => ({
          id,
          at: new Date(c.at).toISOString(),
          facts: c.facts,
          serial: c.serial,
          not_after: new Date(c.notAfter).toISOString(),
        }));
        await this.writeIsolating("connect", rows, (part) => this.o.store.query(
          `UPDATE agents a SET
              status = 'online',
              status_changed_at = CASE WHEN a.status = 'online' THEN a.status_changed_at ELSE u.at END,
              connected = true, connected_replica = $2, last_heartbeat_at = u.at, facts = u.facts,
              cert_serial = u.serial, cert_not_after = u.not_after, heartbeat_interval_ms = $3, updated_at = now()
             FROM jsonb_to_recordset($1::jsonb) AS u(id text, at timestamptz, facts jsonb, serial text, not_after timestamptz)
            WHERE a.id = u.id AND a.status <> 'revoked'`,
          [JSON.stringify(part), this.o.replicaId, this.o.policy.heartbeatIntervalMs],
        ).then(() => undefined));
      }
      if (disconnects.length > 0) {
        // Only the replica that holds the connection may mark it closed: the agent may already be connected
        // somewhere else. The last heartbeat goes with it, so that from now on the database alone tells when the
        // agent went silent (it is judged from there once no replica holds it).
        const rows = disconnects.map(([id]) => {
          const s = this.seen.get(id);
          return { id, at: s ? new Date(s.at).toISOString() : null, skew: s?.skewMs ?? null };
        });
        await this.writeIsolating("disconnect", rows, (part) => this.o.store.query(
          `UPDATE agents a SET connected = false,
              last_heartbeat_at = GREATEST(a.last_heartbeat_at, u.at),
              clock_skew_ms = COALESCE(u.skew, a.clock_skew_ms),
              updated_at = now()
             FROM jsonb_to_recordset($1::jsonb) AS u(id text, at timestamptz, skew integer)
            WHERE a.id = u.id AND a.connected_replica = $2`,
          [JSON.stringify(part), this.o.replicaId],
        ).then(() => undefined));
        // The database now knows all this replica knew of them, unless they came back meanwhile.
        for (const [id] of disconnects) if (this.seen.get(id)?.held === false) this.seen.delete(id);
      }
      this.o.onFlush?.("state", batch.length);
      this.retryMs = RETRY_FIRST_MS;
    } catch (err) {
      // The database is unavailable: put back what is not superseded by a newer event, retry after a backoff, and
      // let the caller log.
      for (const [id, e] of batch) if (!this.pendingState.has(id)) this.pendingState.set(id, e);
      const delay = this.retryMs;
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
      this.scheduleState(delay);
      throw err;
    }
  }

  private async flushSeen(all: boolean): Promise<void> {
    const now = this.o.clock.now();
    const due: Array<[string, Seen]> = [];
    for (const [id, s] of this.seen) {
      if (s.dirty && (all || now - s.flushedAt >= this.o.lastSeenFlushMs)) due.push([id, s]);
    }
    if (due.length === 0) return;
    const rows = due.map(([id, s]) => ({ id, at: new Date(s.at).toISOString(), skew: s.skewMs }));
    await this.writeIsolating("last-seen", rows, (part) => this.o.store.query(
      `UPDATE agents a SET
          last_heartbeat_at = GREATEST(a.last_heartbeat_at, u.at),
          clock_skew_ms = COALESCE(u.skew, a.clock_skew_ms),
          status = CASE WHEN a.status = 'offline' THEN 'online' ELSE a.status END,
          status_changed_at = CASE WHEN a.status = 'offline' THEN u.at ELSE a.status_changed_at END,
          updated_at = now()
         FROM unnest($1::text[], $2::timestamptz[], $3::integer[]) AS u(id, at, skew)
        WHERE a.id = u.id AND a.status <> 'revoked'`,
      [part.map((r) => r.id), part.map((r) => r.at), part.map((r) => r.skew)],
    ).then(() => undefined));
    for (const [, s] of due) {
      s.flushedAt = now;
      s.dirty = false;
    }
    this.o.onFlush?.("seen", due.length);
  }

  private async sweep(): Promise<void> {
    const now = this.o.clock.now();
    const readyAt = this.o.readyAt();
    if (offlineFrozen(this.o.policy, readyAt, now)) return;
    const silentHere: string[] = [];
    for (const [id, s] of this.seen) if (s.held && isSilent(this.o.policy, readyAt, now, s.at)) silentHere.push(id);
    const res = await this.o.store.query<{ id: string; last_heartbeat_at: Date | null }>(
      `UPDATE agents SET status = 'offline', status_changed_at = now(), updated_at = now()
        WHERE status = 'online'
          AND CASE
                WHEN connected AND connected_replica = $3 THEN id = ANY($4::text[])
                WHEN connected THEN GREATEST(COALESCE(last_heartbeat_at, '-infinity'::timestamptz), $2::timestamptz) < $5::timestamptz
                ELSE GREATEST(COALESCE(last_heartbeat_at, '-infinity'::timestamptz), $2::timestamptz) < $1::timestamptz
              END
        RETURNING id, last_heartbeat_at`,
      [
        new Date(now - offlineAfterMs(this.o.policy)).toISOString(),
        new Date(readyAt).toISOString(),
        this.o.replicaId,
        silentHere,
        new Date(now - this.heldElsewhereWindowMs()).toISOString(),
      ],
    );
    for (const r of res.rows) {
      this.o.log.info({ agentId: r.id, lastHeartbeatAt: r.last_heartbeat_at }, "agent is offline: no heartbeat within the liveness window");
      this.seen.delete(r.id);
    }
    if (res.rowCount > 0) this.o.onFlush?.("sweep", res.rowCount);
  }
}
