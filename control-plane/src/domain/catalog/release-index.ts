// The order of releases, in memory, for list pages served without a query.
//
// Only for a store no other process writes (Store.exclusive: PGlite, whose data directory is locked to one process).
// There, every release ever committed was committed by this process's CatalogService, which adds it here once its
// transaction has committed, so the index never misses one that a query would find. A release row is never updated
// or deleted, so an entry never goes stale. On PostgreSQL other replicas create releases too, and pages are queried.
//
// It holds the newest `capacity` releases (sort key, id, name, components: about 200 bytes each), contiguous from the
// newest: a page is answered from memory when its rows, and the one after them that says whether there is a next
// page, all lie inside that span, or when the span is the whole table. Otherwise the caller queries. A page reads
// ids only: the releases themselves come from the release cache (or one query for those it lacks).
//
// Sort key: created_at as fixed-width UTC text with microseconds (pagination.ts cursorTimeSql), then id, both
// descending — the order of releases_created_idx, compared as PostgreSQL's "C" collation compares ASCII text.

export interface IndexedRelease {
  /** created_at, as cursorTimeSql() renders it. */
  readonly at: string;
  readonly id: string;
  readonly name: string;
  readonly components: readonly string[];
}

export interface IndexQuery {
  name?: string | undefined;
  component?: string | undefined;
  limit: number;
  /** Only releases strictly older than this key (a cursor). */
  before?: { at: string; id: string } | undefined;
}

export interface IndexPage {
  /** The page's releases, newest first: at most `limit`. */
  items: IndexedRelease[];
  /** Whether more releases match after them. */
  more: boolean;
}

/** a sorts before b (a is newer). */
function newer(a: { at: string; id: string }, b: { at: string; id: string }): boolean {
  return a.at > b.at || (a.at === b.at && a.id > b.id);
}

const shared = new WeakMap<object, ReleaseIndex>();

export class ReleaseIndex {
  /**
   * The index of one store, shared by everything in this process that lists or creates releases on it: an index of
   * its own per service would miss the releases another service created. The first caller's capacity and loader
   * make it.
   */
  static of(store: object, make: () => ReleaseIndex): ReleaseIndex {
    let index = shared.get(store);
    if (!index) {
      index = make();
      shared.set(store, index);
    }
    return index;
  }

  /** Newest first. */
  private entries: IndexedRelease[] = [];
  private ids = new Set<string>();
  /** True while the entries are every release there is. */
  private complete = false;
  private loaded: Promise<void> | null = null;
  /** Releases committed while the first load was under way: applied after it (the load may or may not see them). */
  private early: IndexedRelease[] | null = [];

  constructor(
    private readonly load: (limit: number) => Promise<IndexedRelease[]>,
    readonly capacity = 50_000,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ReleaseIndex: capacity must be a whole number ≥ 1, not ${capacity}`);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Loads the newest releases on first use; concurrent callers share one load, and a failed load is retried. */
  ready(): Promise<void> {
    this.loaded ??= (async () => {
      const rows = await this.load(this.capacity + 1);
      this.complete = rows.length <= this.capacity;
      const kept = rows.slice(0, this.capacity);
      kept.sort((a, b) => (newer(a, b) ? -1 : newer(b, a) ? 1 : 0));
      this.entries = kept;
      this.ids = new Set(kept.map((e) => e.id));
      const early = this.early ?? [];
      this.early = null;
      for (const e of early) this.add(e);
    })().catch((err: unknown) => {
      this.loaded = null;
      throw err;
    });
    return this.loaded;
  }

  /** A release whose creation has committed. */
  add(e: IndexedRelease): void {
    if (this.early) {
      this.early.push(e);
      return;
    }
    if (this.ids.has(e.id)) return;
    const i = this.position(e);
    if (i === this.entries.length && !this.complete && this.entries.length >= this.capacity) return; // older than all kept
    this.entries.splice(i, 0, e);
    this.ids.add(e.id);
    if (this.entries.length > this.capacity) {
      const dropped = this.entries.pop() as IndexedRelease;
      this.ids.delete(dropped.id);
      this.complete = false;
    }
  }

  /** The page, or null when the index cannot answer it (the caller queries). Call ready() first. */
  page(q: IndexQuery): IndexPage | null {
    if (this.early) return null;
    let i = q.before ? this.position(q.before) : 0;
    // position() puts a key equal to an entry before that entry; the cursor's own row is not part of the page.
    if (q.before && this.entries[i]?.id === q.before.id && this.entries[i]?.at === q.before.at) i++;
    const items: IndexedRelease[] = [];
    for (; i < this.entries.length; i++) {
      const e = this.entries[i] as IndexedRelease;
      if (q.name !== undefined && e.name !== q.name) continue;
      if (q.component !== undefined && !e.components.includes(q.component)) continue;
      if (items.length === q.limit) return { items, more: true };
      items.push(e);
    }
    return this.complete ? { items, more: false } : null;
  }

  /** Index of the first entry not newer than key (binary search). */
  private position(key: { at: string; id: string }): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (newer(this.entries[mid] as IndexedRelease, key)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
