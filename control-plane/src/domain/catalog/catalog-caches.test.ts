// The catalog's caches: the LRU and snapshot primitives on their own, then CatalogService on both store backends —
// releases served from memory (hit, miss, bound, transactions), list pages built from it, and the components
// snapshot (invalidated by this process's changes; a stale one from another replica's change never reaches a pin).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { testBackends } from "../../adapters/store/test-backends.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { Queryable, Store } from "../../ports/store.js";
import { listAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { LruMap, SnapshotCache } from "./catalog-caches.js";
import { CatalogService, type CatalogDeps } from "./catalog-service.js";

const code = (c: string) => (e: unknown) => e instanceof FerryError && e.code === c;

/** Resolves any reference to a digest derived from it, and records what it was asked. */
function fakeRegistry(): ImageRegistry & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolve: (reference) => {
      asked.push(reference);
      const sourceTag = /:([^/:@]+)$/.exec(reference)?.[1] ?? null;
      return Promise.resolve({
        repository: reference.replace(/[:@].*$/, ""),
        digest: `sha256:${createHash("sha256").update(reference).digest("hex")}`,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        sourceTag,
        platforms: [],
      });
    },
  };
}

/** The store with every query counted (in and out of transactions): a cache hit issues none. */
function counting(store: Store): Store & { queries: string[] } {
  const queries: string[] = [];
  return {
    queries,
    kind: store.kind,
    exclusive: store.exclusive,
    query: (sql, params) => {
      queries.push(typeof sql === "string" ? sql : sql.text);
      return store.query(sql, params);
    },
    transaction: (fn) =>
      store.transaction((tx) =>
        fn({
          query: (sql, params) => {
            queries.push(typeof sql === "string" ? sql : sql.text);
            return tx.query(sql, params);
          },
        } satisfies Queryable),
      ),
    listen: (c, h) => store.listen(c, h),
    notify: (c, p) => store.notify(c, p),
    close: () => store.close(),
  };
}

function service(store: Store, o: { cache?: CatalogDeps["cache"]; now?: () => number; registry?: ImageRegistry } = {}): CatalogService {
  return new CatalogService({
    store,
    registry: o.registry ?? fakeRegistry(),
    credentials: { get: async () => null },
    clock: { now: o.now ?? (() => Date.now()) },
    ...(o.cache ? { cache: o.cache } : {}),
  });
}

describe("LruMap", () => {
  it("keeps at most max entries and drops the least recently used first", () => {
    const m = new LruMap<string, number>(2);
    m.set("a", 1);
    m.set("b", 2);
    assert.equal(m.get("a"), 1); // a is now newer than b
    m.set("c", 3);
    assert.equal(m.size, 2);
    assert.equal(m.get("b"), undefined);
    assert.equal(m.get("a"), 1);
    assert.equal(m.get("c"), 3);
    m.set("a", 10); // an update refreshes too
    m.set("d", 4);
    assert.deepEqual([m.has("a"), m.has("c"), m.has("d")], [true, false, true]);
  });

  it("holds nothing with max 0 and refuses a bad bound", () => {
    const m = new LruMap<string, number>(0);
    m.set("a", 1);
    assert.equal(m.get("a"), undefined);
    assert.throws(() => new LruMap(-1), RangeError);
    assert.throws(() => new LruMap(1.5), RangeError);
  });
});

describe("SnapshotCache", () => {
  it("reads once per TTL, again after invalidate(), and on demand", async () => {
    let t = 0;
    let reads = 0;
    const c = new SnapshotCache(async () => ++reads, 5000, () => t);
    assert.equal(await c.get(), 1);
    t = 4999;
    assert.equal(await c.get(), 1);
    t = 5000;
    assert.equal(await c.get(), 2);
    c.invalidate();
    assert.equal(await c.get(), 3);
    assert.equal(await c.get(true), 4);
    assert.equal(await c.get(), 4);
  });

  it("shares one read among concurrent callers and does not keep a read that an invalidation overtook", async () => {
    let reads = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const c = new SnapshotCache(
      async () => {
        const n = ++reads;
        if (n === 1) await gate;
        return n;
      },
      60_000,
      () => 0,
    );
    const a = c.get();
    const b = c.get();
    c.invalidate(); // a change committed while the first read was under way
    const d = c.get();
    release();
    assert.deepEqual(await Promise.all([a, b, d]), [1, 1, 2]);
    assert.equal(await c.get(), 2, "the read started after the invalidation is the one kept");
    assert.equal(reads, 2);
  });

  it("keeps nothing when the TTL is 0, and a failed read is not cached", async () => {
    let reads = 0;
    const c = new SnapshotCache(
      async () => {
        reads++;
        if (reads === 2) throw new Error("down");
        return reads;
      },
      0,
      () => 0,
    );
    assert.equal(await c.get(), 1);
    await assert.rejects(c.get(), /down/);
    assert.equal(await c.get(), 3);
  });
});

for (const b of testBackends()) {
  describe(`CatalogService caches on ${b.name}`, () => {
    async function estate(t: Parameters<typeof b.open>[0], o: Parameters<typeof service>[1] = {}) {
      const raw = await b.open(t);
      const store = counting(raw);
      const c = service(store, o);
      await c.createComponent({ name: "web", repository: "reg.example:5000/shop/web" }, "admin");
      await c.createComponent({ name: "api", repository: "reg.example:5000/shop/api" }, "admin");
      return { raw, store, c };
    }

    it("serves a release read once from memory, by id and by name@version, as a frozen view", async (t) => {
      const { store, c } = await estate(t);
      const rel = await c.createRelease({ name: "shop", version: "1.0.0", components: { web: ":1", api: ":2" } }, "rm");
      const first = await c.getRelease(rel.id);
      assert.deepEqual(first, { ...rel, pins: [...rel.pins].sort((x, y) => x.component.localeCompare(y.component)) });
      const n = store.queries.length;
      const again = await c.getRelease(rel.id);
      assert.equal(again, first, "the same object");
      assert.equal(store.queries.length, n, "a hit issues no query");
      assert.ok(Object.isFrozen(again) && Object.isFrozen(again.pins) && Object.isFrozen(again.pins[0]) && Object.isFrozen(again.provenance));
      assert.throws(() => {
        (again.pins as unknown[]).push({});
      }, TypeError);

      // a read by id fills the name@version index too, and the other way round
      assert.equal(await c.getRelease("shop@1.0.0"), first);
      assert.equal(store.queries.length, n);
      assert.deepEqual(c.cacheStats().releases, { hits: 2, misses: 1, byId: 1, byNameVersion: 1 });
      const rel2 = await c.createRelease({ name: "shop", version: "1.0.1", components: { web: ":1" } }, "rm");
      const byName = await c.getRelease("shop@1.0.1");
      const m = store.queries.length;
      assert.equal(await c.getRelease(rel2.id), byName);
      assert.equal(store.queries.length, m);

      // misses are not cached
      await assert.rejects(c.getRelease("rel_0000000000000000"), code("RELEASE_NOT_FOUND"));
      await assert.rejects(c.getRelease("shop@9"), code("RELEASE_NOT_FOUND"));
      await assert.rejects(c.getRelease("shop"), code("RELEASE_NOT_FOUND"));
      assert.equal(c.cacheStats().releases.byId, 2);
    });

    it("holds at most the configured number of releases, least recently used out first", async (t) => {
      const { store, c } = await estate(t, { cache: { releases: 2 } });
      const ids: string[] = [];
      for (const v of ["1", "2", "3"]) ids.push((await c.createRelease({ name: "shop", version: v, components: { web: `:${v}` } }, "rm")).id);
      const [a, b2, c3] = ids as [string, string, string];
      await c.getRelease(a);
      await c.getRelease(b2);
      await c.getRelease(a); // a is now the most recent
      await c.getRelease(c3); // evicts b2
      assert.deepEqual(c.cacheStats().releases, { hits: 1, misses: 3, byId: 2, byNameVersion: 2 });
      const n = store.queries.length;
      await c.getRelease(a);
      await c.getRelease(c3);
      assert.equal(store.queries.length, n);
      await c.getRelease(b2);
      assert.equal(store.queries.length, n + 1, "the evicted release is read again");
    });

    it("reads inside a transaction through it, serves it from the cache, and caches nothing read there", async (t) => {
      const { store, c } = await estate(t);
      const cached = await c.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "rm");
      await c.getRelease(cached.id);
      const other = await c.createRelease({ name: "shop", version: "2", components: { web: ":2" } }, "rm");
      await store.transaction(async (tx) => {
        assert.equal((await c.getRelease(cached.id, tx)).id, cached.id);
        assert.equal((await c.getRelease("shop@2", tx)).id, other.id);
      });
      assert.deepEqual(c.cacheStats().releases, { hits: 1, misses: 2, byId: 1, byNameVersion: 1 });

      // A release inserted in a transaction that rolls back must not outlive it in the cache.
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.query("INSERT INTO releases (id, name, version, created_by) VALUES ('rel_ghost', 'ghost', '1', 'x')");
          await c.getRelease("rel_ghost", tx);
          throw new Error("roll back");
        }),
        /roll back/,
      );
      await assert.rejects(c.getRelease("rel_ghost"), code("RELEASE_NOT_FOUND"));
      await assert.rejects(c.getRelease("ghost@1"), code("RELEASE_NOT_FOUND"));
    });

    it("lists the same pages as without a cache, reading only the page's ids once the releases are cached", async (t) => {
      const { raw, store, c } = await estate(t);
      const uncached = service(raw, { cache: { releases: 0, releaseIndex: 0 } });
      // An index too small for the table answers the newest pages and leaves the rest to the database.
      const smallIndex = service(raw, { cache: { releaseIndex: 2 } });
      for (let i = 0; i < 7; i++) {
        await c.createRelease({ name: i % 2 ? "odd" : "even", version: `1.${i}`, components: i % 3 ? { web: `:${i}`, api: `:${i}` } : { api: `:${i}` }, notes: `n${i}` }, "rm");
      }
      const walk = async (svc: CatalogService, q: { name?: string; component?: string; limit: number }) => {
        const pages: unknown[] = [];
        let cursor: string | undefined;
        for (;;) {
          const p = await svc.listReleases({ ...q, ...(cursor ? { cursor } : {}) });
          pages.push(p);
          if (!p.nextCursor) return pages;
          cursor = p.nextCursor;
        }
      };
      for (const q of [{ limit: 3 }, { limit: 50 }, { name: "odd", limit: 2 }, { component: "web", limit: 2 }, { component: "api", limit: 4 }]) {
        const want = await walk(uncached, q);
        assert.deepEqual(await walk(c, q), want, JSON.stringify(q));
        assert.deepEqual(await walk(smallIndex, q), want, `${JSON.stringify(q)}, index of 2`);
      }
      // A release created after the index was loaded is on the first page at once.
      await c.createRelease({ name: "even", version: "2.0", components: { web: ":9" } }, "rm");
      assert.equal((await c.listReleases({ limit: 1 })).items[0]?.version, "2.0");
      const n = store.queries.length;
      const page = await c.listReleases({ limit: 50 });
      assert.equal(page.items.length, 8);
      // On PGlite, which no other process writes, the page's ids come from the release index; on PostgreSQL, which
      // replicas share, from the database.
      assert.equal(store.queries.length, n + (raw.exclusive ? 0 : 1), raw.exclusive ? "no query at all" : "one query: the page's ids");
      // the list filled the cache for single reads too
      const m = store.queries.length;
      await c.getRelease(page.items[3]?.id ?? "");
      assert.equal(store.queries.length, m);
    });

    it("lists at once a release that another service on the same store created", async (t) => {
      const { raw } = await estate(t);
      const creator = service(raw);
      const lister = service(raw);
      assert.deepEqual((await lister.listReleases({})).items, []); // the lister has read the (empty) table
      const rel = await creator.createRelease({ name: "shop", version: "1.0", components: { web: ":1" } }, "rm");
      assert.deepEqual((await lister.listReleases({})).items.map((r) => r.id), [rel.id]);
      assert.deepEqual((await lister.listReleases({ component: "web" })).items.map((r) => r.id), [rel.id]);
    });

    it("refuses a duplicate name@version through the unique constraint, leaving nothing behind", async (t) => {
      const { raw, c } = await estate(t);
      await c.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "rm");
      const before = (await listAudit(raw)).length;
      await assert.rejects(c.createRelease({ name: "shop", version: "1", components: { api: ":1" } }, "rm"), code("RELEASE_EXISTS"));
      assert.equal((await listAudit(raw)).length, before);
      assert.deepEqual((await raw.query("SELECT count(*)::int AS n FROM release_pins")).rows, [{ n: 1 }]);
    });

    it("reads components once per TTL and again at once after a change made through the service", async (t) => {
      let now = 1_000_000;
      const { store, c } = await estate(t, { now: () => now });
      const reads = () => store.queries.filter((q) => q === "SELECT * FROM components").length;
      await c.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "rm");
      await c.createRelease({ name: "shop", version: "2", components: { web: ":2", api: ":2" } }, "rm");
      assert.equal(reads(), 1);
      now += 5000;
      await c.createRelease({ name: "shop", version: "3", components: { web: ":3" } }, "rm");
      assert.equal(reads(), 2, "read again once the TTL has passed");

      await c.updateComponent("web", { repository: "reg.example:5000/shop/web2" }, "admin");
      const r4 = await c.createRelease({ name: "shop", version: "4", components: { web: ":4" } }, "rm");
      assert.equal(r4.pins[0]?.image.startsWith("reg.example:5000/shop/web2@sha256:"), true);
      assert.equal(reads(), 3);

      await c.createComponent({ name: "worker", repository: "reg.example:5000/shop/worker" }, "admin");
      await c.createRelease({ name: "shop", version: "5", components: { worker: ":5" } }, "rm");
      await c.createComponent({ name: "gone", repository: "reg.example:5000/shop/gone" }, "admin");
      await c.createRelease({ name: "shop", version: "5b", components: { web: ":5" } }, "rm"); // snapshot now holds "gone"
      await c.deleteComponent("gone", "admin");
      await assert.rejects(c.createRelease({ name: "shop", version: "6", components: { gone: ":6" } }, "rm"), code("UNKNOWN_COMPONENT"));
    });

    it("never pins from a snapshot that another replica's change made stale", async (t) => {
      const registry = fakeRegistry();
      const { raw, c } = await estate(t, { now: () => 0, registry }); // the clock stands still: the TTL never passes
      await c.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "rm");

      // another replica moves web to a new repository: the pin insert finds the planned row gone, and the release
      // is planned again from a fresh read
      await raw.query("UPDATE components SET repository = 'reg.example:5000/shop/web-new' WHERE name = 'web'");
      registry.asked.length = 0;
      const r2 = await c.createRelease({ name: "shop", version: "2", components: { web: ":2" } }, "rm");
      assert.deepEqual(r2.pins.map((p) => p.repository), ["reg.example:5000/shop/web-new"]);
      assert.deepEqual(registry.asked, ["reg.example:5000/shop/web:2", "reg.example:5000/shop/web-new:2"]);
      assert.deepEqual((await raw.query("SELECT repository FROM release_pins WHERE release_id = $1", [r2.id])).rows, [{ repository: "reg.example:5000/shop/web-new" }]);
      assert.deepEqual((await raw.query("SELECT count(*)::int AS n FROM releases")).rows, [{ n: 2 }], "the stale attempt wrote nothing");

      // another replica registers a component: not in the snapshot, so it is looked up before UNKNOWN_COMPONENT
      await raw.query("INSERT INTO components (name, repository, created_by) VALUES ('batch', 'reg.example:5000/shop/batch', 'x')");
      const r3 = await c.createRelease({ name: "shop", version: "3", components: { batch: ":3" } }, "rm");
      assert.equal(r3.pins[0]?.component, "batch");

      // another replica changes which credentials api uses: refused as stale too, then resolved with them
      await c.createRelease({ name: "shop", version: "4", components: { api: ":4" } }, "rm");
      await raw.query("UPDATE components SET credentials_ref = 'nowhere' WHERE name = 'api'");
      await assert.rejects(c.createRelease({ name: "shop", version: "5", components: { api: ":5" } }, "rm"), code("REGISTRY_CREDENTIALS_NOT_FOUND"));

      // and deletes one the snapshot holds: the insert pins nothing, the fresh read lacks it: UNKNOWN_COMPONENT
      await raw.query("INSERT INTO components (name, repository, created_by) VALUES ('tmp', 'reg.example:5000/shop/tmp', 'x'), ('tmp2', 'reg.example:5000/shop/tmp2', 'x')");
      await c.createRelease({ name: "shop", version: "6", components: { tmp2: ":6" } }, "rm"); // a miss: read again, with tmp
      await raw.query("DELETE FROM components WHERE name = 'tmp'");
      await assert.rejects(c.createRelease({ name: "shop", version: "7", components: { tmp: ":7" } }, "rm"), code("UNKNOWN_COMPONENT"));
      assert.deepEqual((await raw.query("SELECT count(*)::int AS n FROM releases")).rows, [{ n: 5 }]);
    });
  });
}
