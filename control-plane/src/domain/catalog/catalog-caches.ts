// In-memory caches of the catalog, one per CatalogService (so one per replica).
//
// Releases: immutable once committed — no column of `releases` or `release_pins` is ever updated, and neither table
// is deleted from — so a release read once can be served from memory for ever: no invalidation, no TTL, and no
// replica can make a cached release wrong. Only the size is bounded (least recently used out first). Only reads
// made outside a transaction fill the cache: a row read inside a transaction may not be committed yet (or ever).
// Cached views are deep-frozen because every caller gets the same object: a caller that changed one would change
// it for all of them.
//
// Components: a small, rarely changed table, snapshotted whole. Changes made through this process invalidate the
// snapshot when they commit; changes made by another replica are seen when the snapshot expires (TTL, default 5 s)
// or sooner, when the snapshot is found wrong (a component it lacks is looked up again; a release pins only what
// the table holds when it is written — see CatalogService.createRelease).

/** A Map bounded to `max` entries that drops the least recently used first (Map keeps insertion order). */
export class LruMap<K, V> {
  private readonly m = new Map<K, V>();
  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`LruMap: max must be a whole number ≥ 0, not ${max}`);
  }

  get size(): number {
    return this.m.size;
  }

  /** The value, now the most recently used; undefined on a miss. */
  get(key: K): V | undefined {
    const v = this.m.get(key);
    if (v === undefined) return undefined;
    this.m.delete(key);
    this.m.set(key, v);
    return v;
  }

  set(key: K, value: V): void {
    if (this.max === 0) return;
    this.m.delete(key);
    this.m.set(key, value);
    while (this.m.size > this.max) {
      const oldest = this.m.keys().next();
      if (oldest.done) break;
      this.m.delete(oldest.value);
    }
  }

  has(key: K): boolean {
    return this.m.has(key);
  }

  clear(): void {
    this.m.clear();
  }
}

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

export interface CacheStats {
  hits: number;
  misses: number;
}

/**
 * Committed releases by id and by name@version, each index bounded to `max` releases. Both indexes hold the same
 * frozen object, so the memory bound is `max` views (≈1 KB each for a release of 1–3 pins).
 */
export class ReleaseCache<V extends { id: string; name: string; version: string }> {
  private readonly byId: LruMap<string, V>;
  private readonly byRef: LruMap<string, V>;
  readonly stats: CacheStats = { hits: 0, misses: 0 };

  constructor(max: number) {
    this.byId = new LruMap(max);
    this.byRef = new LruMap(max);
  }

  get size(): { byId: number; byNameVersion: number } {
    return { byId: this.byId.size, byNameVersion: this.byRef.size };
  }

  getById(id: string): V | undefined {
    return this.count(this.byId.get(id));
  }

  getByNameVersion(name: string, version: string): V | undefined {
    return this.count(this.byRef.get(`${name}@${version}`));
  }

  /** Only for a release read outside any transaction (so committed). Returns the frozen view that is cached. */
  add(view: V): V {
    const frozen = deepFreeze(view);
    this.byId.set(frozen.id, frozen);
    this.byRef.set(`${frozen.name}@${frozen.version}`, frozen);
    return frozen;
  }

  private count(v: V | undefined): V | undefined {
    if (v) this.stats.hits++;
    else this.stats.misses++;
    return v;
  }
}

/**
 * The whole components table, read at most once per `ttlMs` (and again after invalidate()). Concurrent callers
 * share one read. A read that was under way when invalidate() was called is returned to its callers but not kept,
 * since it may predate the change that invalidated it.
 */
export class SnapshotCache<T> {
  private current: { value: T; at: number } | null = null;
  private loading: { promise: Promise<T>; generation: number } | null = null;
  private generation = 0;
  readonly stats = { hits: 0, loads: 0 };

  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  /** The snapshot, read again when older than the TTL, invalidated, or when `fresh` is set. */
  async get(fresh = false): Promise<T> {
    const c = this.current;
    if (!fresh && c && this.now() - c.at < this.ttlMs) {
      this.stats.hits++;
      return c.value;
    }
    if (this.loading && this.loading.generation === this.generation && !fresh) return this.loading.promise;
    const generation = this.generation;
    const at = this.now();
    this.stats.loads++;
    const promise = this.load().then(
      (value) => {
        if (generation === this.generation && this.ttlMs > 0) this.current = { value, at };
        if (this.loading?.promise === promise) this.loading = null;
        return value;
      },
      (err: unknown) => {
        if (this.loading?.promise === promise) this.loading = null;
        throw err;
      },
    );
    this.loading = { promise, generation };
    return promise;
  }

  /** Forget the snapshot; call after a change to the table has committed. */
  invalidate(): void {
    this.generation++;
    this.current = null;
    this.loading = null;
  }
}
