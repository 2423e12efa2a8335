// What changed in the control plane, for the console's event streams.
//
// One query every `intervalMs`, only while at least one console is subscribed, reads a fingerprint per topic (the
// newest update time and a few counts); a topic whose fingerprint moved is announced to every subscriber. It reads the
// database rather than listening to this process's own services so that a change made through any replica — or by an
// agent talking to another replica — reaches every console, on PGlite and on PostgreSQL alike, with no trigger on the
// hot tables (tasks and agents are written at fleet rate). Subscribers get topic names only and fetch what they show,
// so what a slow subscriber can hold is bounded by the number of topics.
import type { Store } from "../../ports/store.js";

export const TOPICS = ["fleet", "deployments", "logs", "promotions", "releases", "estate", "catalog", "rollouts"] as const;
export type Topic = (typeof TOPICS)[number];

export type ChangeListener = (topics: ReadonlySet<Topic>) => void;

export interface ChangeFeedOptions {
  store: Store;
  intervalMs?: number;
  onError?: (err: unknown) => void;
}

interface FingerprintRow {
  fleet: string | null;
  deployments: string | null;
  logs: string | null;
  promotions: string | null;
  releases: string | null;
  estate: string | null;
  catalog: string | null;
  rollouts: string | null;
}

// Each column is text so that a change in any part (a count, a time, a sum) changes the string. Active tasks are few
// (at most one per target), so summing their log bytes and progress stays cheap; they are what live logs follow.
// Rollouts: every operator action and engine transition moves `updated_at` of an active rollout (the partial index
// rollouts_active covers them), and a rollout that ends leaves the active set, which changes the count.
const FINGERPRINT_SQL = `
SELECT
  (SELECT count(*) || ':' || coalesce(max(status_changed_at)::text, '') || ':' || count(*) FILTER (WHERE status = 'online') || ':' || coalesce(max(revoked_at)::text, '') FROM agents) AS fleet,
  (SELECT coalesce(max(updated_at)::text, '') FROM deployments) || '/' ||
    (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') || ':' || coalesce(sum(progress_seq), 0) FROM tasks WHERE state IN ('queued', 'leased', 'running')) AS deployments,
  (SELECT count(*) || ':' || coalesce(sum(log_bytes), 0) FROM tasks WHERE state IN ('leased', 'running')) AS logs,
  (SELECT coalesce(max(updated_at)::text, '') || ':' || count(*) FILTER (WHERE state IN ('requested', 'awaiting_gates', 'approved', 'deploying')) FROM promotions) AS promotions,
  (SELECT coalesce(max(created_at)::text, '') FROM releases) AS releases,
  (SELECT count(*) || ':' || coalesce(max(reported_at)::text, '') FROM target_stickers) AS estate,
  (SELECT coalesce(max(updated_at)::text, '') FROM environments) || '/' || (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM targets) AS catalog,
  (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM rollouts WHERE state IN ('running', 'halted', 'rolling_back')) AS rollouts`;

export class ChangeFeed {
  private readonly listeners = new Set<ChangeListener>();
  private last: FingerprintRow | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  readonly intervalMs: number;

  constructor(private readonly o: ChangeFeedOptions) {
    this.intervalMs = o.intervalMs ?? 250;
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    this.schedule();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
        // Forget the fingerprint: the next subscriber starts from a fresh read, not from a stale comparison.
        this.last = null;
      }
    };
  }

  /** Stops polling; resolves once a poll under way has finished, so no query outlives the feed. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.listeners.clear();
    await this.running;
  }

  /** Reads the fingerprint once and announces what moved; exposed so tests and the first subscriber need not wait. */
  async poll(): Promise<Set<Topic>> {
    const r = await this.o.store.query<FingerprintRow>(FINGERPRINT_SQL);
    const now = r.rows[0];
    const changed = new Set<Topic>();
    if (!now) return changed;
    if (this.last) {
      for (const t of TOPICS) if (now[t] !== this.last[t]) changed.add(t);
    }
    this.last = now;
    if (changed.size > 0) for (const l of [...this.listeners]) l(changed);
    return changed;
  }

  private schedule(): void {
    if (this.timer || this.running || this.stopped || this.listeners.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.poll()
        .then(() => undefined, (err: unknown) => this.o.onError?.(err))
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref();
  }
}
