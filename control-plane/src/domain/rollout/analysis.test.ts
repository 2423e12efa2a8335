import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { analyse, combine, type CounterRead } from "./analysis.js";
import { parseAnalysis } from "./strategy.js";

const config = parseAnalysis({ minRequests: 50, maxErrorRate: 0.01, maxLatencyRatio: 1.5 }, "analysis");
const read = (epoch: string, stable: [number, number, number], next: [number, number, number]): CounterRead => ({
  epoch,
  stable: { requests: stable[0], errors5xx: stable[1], avgResponseMs: stable[2] },
  new: { requests: next[0], errors5xx: next[1], avgResponseMs: next[2] },
});

describe("canary analysis", () => {
  it("passes on enough healthy traffic with latency like the stable slot's", () => {
    const r = analyse(config, read("e1", [1000, 0, 5], [10, 0, 5]), read("e1", [1900, 1, 5], [110, 0, 6]));
    assert.equal(r.verdict, "pass");
    assert.deepEqual(r.deltas?.new, { requests: 100, errors5xx: 0, avgResponseMs: 6 });
    assert.deepEqual(r.measurements.map((m) => [m.name, m.verdict]), [["error-rate", "pass"], ["requests", "pass"], ["latency-ratio", "pass"]]);
  });

  it("too little traffic is inconclusive, never a pass", () => {
    const r = analyse(config, read("e1", [0, 0, 0], [0, 0, 0]), read("e1", [500, 0, 5], [20, 0, 5]));
    assert.equal(r.verdict, "inconclusive");
    assert.match(r.measurements.find((m) => m.name === "requests")!.detail, /only 20 requests/);
  });

  it("no traffic at all is inconclusive", () => {
    assert.equal(analyse(config, read("e1", [0, 0, 0], [0, 0, 0]), read("e1", [0, 0, 0], [0, 0, 0])).verdict, "inconclusive");
  });

  it("fails on a 5xx rate above the threshold, even with few requests when the errors are plain", () => {
    const r = analyse(config, read("e1", [0, 0, 0], [0, 0, 0]), read("e1", [200, 0, 5], [100, 30, 5]));
    assert.equal(r.verdict, "fail");
    assert.equal(r.measurements[0]!.value, 0.3);
    assert.equal(analyse(config, read("e1", [0, 0, 0], [0, 0, 0]), read("e1", [200, 0, 5], [8, 6, 5])).verdict, "fail");
    // One 5xx in three requests is not yet evidence either way.
    assert.equal(analyse(config, read("e1", [0, 0, 0], [0, 0, 0]), read("e1", [200, 0, 5], [3, 1, 5])).verdict, "inconclusive");
  });

  it("fails when the new slot is much slower than the stable one", () => {
    const r = analyse(config, read("e1", [0, 0, 0], [0, 0, 0]), read("e1", [1000, 0, 10], [100, 0, 50]));
    assert.equal(r.verdict, "fail");
    assert.equal(r.measurements.find((m) => m.name === "latency-ratio")!.value, 5);
  });

  it("a router restart during the bake (a new epoch) is inconclusive", () => {
    const r = analyse(config, read("e1", [1000, 0, 0], [100, 0, 0]), read("e2", [10, 0, 0], [5, 0, 0]));
    assert.equal(r.verdict, "inconclusive");
    assert.equal(r.deltas, null);
  });

  it("a counter going backwards in one epoch is inconclusive", () => {
    assert.equal(analyse(config, read("e1", [1000, 0, 0], [100, 0, 0]), read("e1", [900, 0, 0], [200, 0, 0])).verdict, "inconclusive");
  });

  it("an external check that fails fails the analysis; one that could not run makes it inconclusive", () => {
    const healthy: [CounterRead, CounterRead] = [read("e", [0, 0, 0], [0, 0, 0]), read("e", [1000, 0, 5], [100, 0, 5])];
    assert.equal(analyse(config, ...healthy, [{ name: "probe", ok: false, value: 503, detail: "GET /health answered 503" }]).verdict, "fail");
    assert.equal(analyse(config, ...healthy, [{ name: "prometheus", ok: null, value: null, detail: "query timed out" }]).verdict, "inconclusive");
    assert.equal(analyse(config, ...healthy, [{ name: "prometheus", ok: true, value: 0.001, detail: "0.001 <= 0.01" }]).verdict, "pass");
  });

  it("combines targets: any failure fails", () => {
    const pass = analyse(config, read("e", [0, 0, 0], [0, 0, 0]), read("e", [1000, 0, 5], [100, 0, 5]));
    const fail = analyse(config, read("e", [0, 0, 0], [0, 0, 0]), read("e", [1000, 0, 5], [100, 50, 5]));
    const inc = analyse(config, read("e", [0, 0, 0], [0, 0, 0]), read("e", [0, 0, 0], [0, 0, 0]));
    assert.equal(combine([pass, pass]), "pass");
    assert.equal(combine([pass, inc]), "inconclusive");
    assert.equal(combine([inc, fail, pass]), "fail");
    assert.equal(combine([]), "inconclusive");
  });
});
