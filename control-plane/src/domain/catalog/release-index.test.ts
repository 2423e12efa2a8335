import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReleaseIndex, type IndexedRelease, type IndexQuery } from "./release-index.js";

/** A deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const COMPONENTS = ["api", "web", "worker"];

function release(r: () => number, i: number): IndexedRelease {
  // Few distinct instants, so ties on the time are common and the id decides.
  const us = Math.floor(r() * 40);
  const components = COMPONENTS.filter(() => r() < 0.6);
  return {
    at: `2026-11-22T12:00:00.${String(123_400 + us).padStart(6, "0")}Z`,
    id: `rel_${Math.floor(r() * 1e9).toString(16)}${i}`,
    name: `p${Math.floor(r() * 3)}`,
    components: components.length ? components : ["web"],
  };
}

/** What the query on releases_created_idx returns: every match, newest first, then the page. */
function expected(all: IndexedRelease[], q: IndexQuery): { items: string[]; more: boolean } {
  const sorted = [...all].sort((a, b) => (a.at === b.at ? (a.id < b.id ? 1 : -1) : a.at < b.at ? 1 : -1));
  const b = q.before;
  const matches = sorted.filter(
    (e) =>
      (!b || e.at < b.at || (e.at === b.at && e.id < b.id)) &&
      (q.name === undefined || e.name === q.name) &&
      (q.component === undefined || e.components.includes(q.component)),
  );
  return { items: matches.slice(0, q.limit).map((e) => e.id), more: matches.length > q.limit };
}

describe("ReleaseIndex", () => {
  it("answers every page as the query would, or not at all, for any capacity and order of arrival", async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const all = Array.from({ length: 60 + Math.floor(r() * 60) }, (_, i) => release(r, i));
      // Some releases are in the table when the index loads; the rest arrive later, in any order.
      const atLoad = all.slice(0, Math.floor(r() * all.length));
      const later = all.slice(atLoad.length);
      const capacity = 1 + Math.floor(r() * 150);
      // One arrives while the load is under way; the load may or may not have seen it committed.
      const first = later.shift();
      const loadSeesFirst = r() < 0.5;
      const index = new ReleaseIndex(async (limit) => {
        const table = loadSeesFirst && first ? [...atLoad, first] : atLoad;
        const rows = expected(table, { limit: Number.MAX_SAFE_INTEGER }).items.map((id) => table.find((e) => e.id === id) as IndexedRelease);
        return rows.slice(0, limit);
      }, capacity);
      const known: IndexedRelease[] = [...atLoad];
      const loading = index.ready();
      if (first) {
        index.add(first);
        known.push(first);
      }
      await loading;
      let answered = 0;
      for (const e of [...later, null]) {
        if (e) {
          index.add(e);
          known.push(e);
        }
        for (let k = 0; k < 6; k++) {
          const pick = known[Math.floor(r() * known.length)] as IndexedRelease;
          const q: IndexQuery = {
            limit: 1 + Math.floor(r() * 12),
            ...(r() < 0.3 ? { name: `p${Math.floor(r() * 3)}` } : {}),
            ...(r() < 0.3 ? { component: COMPONENTS[Math.floor(r() * 3)] } : {}),
            ...(r() < 0.6 ? { before: { at: pick.at, id: pick.id } } : {}),
          };
          const got = index.page(q);
          const want = expected(known, q);
          if (known.length <= capacity) assert.ok(got, `seed ${seed}: every release fits, so every page is answered`);
          if (got) {
            answered++;
            assert.deepEqual({ items: got.items.map((x) => x.id), more: got.more }, want, `seed ${seed}, ${JSON.stringify(q)}`);
          }
        }
      }
      assert.ok(index.size <= capacity);
      assert.ok(answered > 0, `seed ${seed}: some pages answered`);
    }
  });

  it("keeps the newest releases when full and sends older pages to the database", async () => {
    const at = (n: number) => `2026-11-22T12:00:${String(n).padStart(2, "0")}.000000Z`;
    const e = (n: number): IndexedRelease => ({ at: at(n), id: `rel_${n}`, name: "shop", components: ["web"] });
    const index = new ReleaseIndex(async () => [e(3), e(2), e(1)], 3);
    await index.ready();
    assert.deepEqual(index.page({ limit: 5 })?.items.map((x) => x.id), ["rel_3", "rel_2", "rel_1"]);
    index.add(e(4)); // full: the oldest goes, and the index no longer holds every release
    assert.equal(index.size, 3);
    assert.deepEqual(index.page({ limit: 2 }), { items: [e(4), e(3)], more: true });
    assert.equal(index.page({ limit: 3 }), null, "is rel_2 the last release? only the database knows now");
    assert.equal(index.page({ limit: 1, before: { at: at(2), id: "rel_2" } }), null);
    index.add(e(0)); // older than everything kept: not kept
    assert.equal(index.size, 3);
  });

  it("retries a load that failed", async () => {
    let calls = 0;
    const index = new ReleaseIndex(async () => {
      calls++;
      if (calls === 1) throw new Error("database restarting");
      return [];
    });
    await assert.rejects(index.ready(), /database restarting/);
    await index.ready();
    assert.deepEqual(index.page({ limit: 10 }), { items: [], more: false });
    assert.equal(calls, 2);
  });
});
