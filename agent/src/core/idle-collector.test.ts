import { strict as assert } from "node:assert";
import { describe, it } from "node:test";

import { IdleCollector } from "./idle-collector.js";

function collector(o: { busy: boolean[]; heap: number[] }) {
  let collected = 0;
  const c = new IdleCollector({
    busy: () => o.busy.shift() ?? false,
    usedHeap: () => o.heap.shift() ?? 0,
    collect: () => (collected += 1),
    minGrowthBytes: 1000,
    intervalMs: 3_600_000,
  });
  return { c, collected: () => collected };
}

describe("idle collector", () => {
  it("collects once the agent was idle at two checks in a row and the heap grew", () => {
    // heap: start 5000, then per check; after the collection the baseline is read again.
    const t = collector({ busy: [true, false, false, false], heap: [5000, 9000, 5200, 5300] });
    t.c.check(); // busy
    t.c.check(); // idle, but busy at the previous check
    assert.equal(t.collected(), 0);
    t.c.check(); // idle twice, grew by 4000: collect, baseline 5200
    assert.equal(t.collected(), 1);
    t.c.check(); // 5300 < 5200 + 1000
    assert.equal(t.collected(), 1);
    assert.equal(t.c.collections, 1);
    t.c.stop();
  });

  it("does not collect for small growth, nor while a task runs", () => {
    const t = collector({ busy: [false, false, true, false], heap: [5000, 5500, 5900, 9000, 9000] });
    t.c.check();
    t.c.check();
    assert.equal(t.collected(), 0, "growth under the threshold");
    t.c.check();
    t.c.check();
    assert.equal(t.collected(), 0, "busy, then only one idle check");
    t.c.stop();
  });

  it("does nothing without gc() (node without --expose-gc)", () => {
    const c = new IdleCollector({ busy: () => false, usedHeap: () => 1e9, collect: undefined });
    c.check();
    c.check();
    assert.equal(c.collections, 0);
    c.stop();
  });

  it("by default calls gc() twice: the second gives back the pages the first emptied", () => {
    const g = globalThis as { gc?: () => void };
    const saved = g.gc;
    let calls = 0;
    g.gc = () => (calls += 1);
    try {
      const heap = [0, 5_000_000];
      const c = new IdleCollector({ busy: () => false, usedHeap: () => heap.shift() ?? 0 });
      c.check();
      assert.equal(calls, 2);
      assert.equal(c.collections, 1);
      c.stop();
    } finally {
      if (saved === undefined) delete g.gc;
      else g.gc = saved;
    }
  });
});
