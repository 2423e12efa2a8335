import { strict as assert } from "node:assert";
import { describe, it } from "node:test";

import { Backoff, backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";

describe("backoff", () => {
  it("uses the documented defaults: base 500 ms, cap 30 s", () => {
    assert.deepEqual(DEFAULT_BACKOFF, { baseMs: 500, capMs: 30_000 });
  });

  it("grows the ceiling as base × 2^attempt until the cap", () => {
    const ceilings = Array.from({ length: 10 }, (_, a) => backoffCeiling(a, DEFAULT_BACKOFF));
    assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    assert.equal(backoffCeiling(10_000, DEFAULT_BACKOFF), 30_000, "huge attempts stay finite");
  });

  it("applies full jitter after the cap: the draw spans [0, ceiling)", () => {
    assert.equal(backoffDelay(3, { ...DEFAULT_BACKOFF, random: () => 0 }), 0);
    assert.equal(backoffDelay(3, { ...DEFAULT_BACKOFF, random: () => 0.5 }), 2000);
    assert.equal(backoffDelay(3, { ...DEFAULT_BACKOFF, random: () => 0.999999 }), 3999);
    // Past saturation the whole [0, cap) window is used, not a band near the cap.
    assert.equal(backoffDelay(20, { ...DEFAULT_BACKOFF, random: () => 0.01 }), 300);
    assert.equal(backoffDelay(20, { ...DEFAULT_BACKOFF, random: () => 0.99 }), 29_700);
  });

  it("spreads saturated delays uniformly over [0, cap]", () => {
    const samples = Array.from({ length: 20_000 }, () => backoffDelay(30, DEFAULT_BACKOFF));
    assert.ok(samples.every((d) => d >= 0 && d <= 30_000));
    const buckets = new Array<number>(10).fill(0);
    for (const d of samples) buckets[Math.min(9, Math.floor(d / 3000))]! += 1;
    // Uniform: every tenth of the window holds ~10 % of the draws.
    for (const count of buckets) assert.ok(count > 1600 && count < 2400, `bucket count ${count} is not ~2000`);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    assert.ok(Math.abs(mean - 15_000) < 500, `mean ${mean} is not ~cap/2`);
  });

  it("treats a server retry-after as a floor, not a replacement", () => {
    // Jitter below the floor: the floor wins.
    assert.equal(backoffDelay(0, { ...DEFAULT_BACKOFF, random: () => 0.5 }, 1_000), 1_000);
    // Jitter above the floor: the jitter wins.
    assert.equal(backoffDelay(10, { ...DEFAULT_BACKOFF, random: () => 0.5 }, 1_000), 15_000);
    const samples = Array.from({ length: 2000 }, () => backoffDelay(8, DEFAULT_BACKOFF, 10_000));
    assert.ok(samples.every((d) => d >= 10_000 && d <= 30_000));
    assert.ok(samples.some((d) => d > 10_000), "the jitter still spreads agents above the floor");
  });

  it("counts attempts and resets", () => {
    const draws: number[] = [];
    const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 1 - Number.EPSILON });
    for (let i = 0; i < 6; i++) draws.push(b.next());
    assert.deepEqual(draws, [99, 199, 399, 799, 999, 999]);
    assert.equal(b.attempt, 6);
    b.reset();
    assert.equal(b.attempt, 0);
    assert.equal(b.next(), 99);
  });
});
