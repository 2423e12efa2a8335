import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { FerryError } from "../errors.js";
import { parseStrategy, strategyNeeds } from "./strategy.js";

describe("strategy: parse", () => {
  it("fills the documented defaults", () => {
    assert.deepEqual(parseStrategy("blue-green"), { kind: "blue-green", rollback: "auto", failureThreshold: 0, approvalBetweenSteps: false, drainSeconds: 30 });
    const c = parseStrategy({ kind: "canary", steps: [{ weight: 5 }, { weight: 50, bakeSeconds: 10 }] });
    assert.ok(c.kind === "canary");
    assert.deepEqual(c.steps, [{ weight: 5, bakeSeconds: 60 }, { weight: 50, bakeSeconds: 10 }, { weight: 100, bakeSeconds: 0 }]);
    assert.deepEqual(c.analysis, { minRequests: 50, maxErrorRate: 0.01, maxLatencyRatio: 1.5, maxInconclusive: 3 });
  });

  it("reads the analysis's external checks: a probe, and a Prometheus query with its server", () => {
    const c = parseStrategy({ kind: "canary", steps: [{ weight: 5 }], analysis: { probeUrl: "http://127.0.0.1:8081/health", prometheusQuery: "sum(rate(errors[5m]))", prometheusMax: 0.5, prometheusUrl: "https://mon.example.com/prometheus/" } });
    assert.ok(c.kind === "canary");
    assert.deepEqual(c.analysis, {
      minRequests: 50,
      maxErrorRate: 0.01,
      maxLatencyRatio: 1.5,
      maxInconclusive: 3,
      probeUrl: "http://127.0.0.1:8081/health",
      prometheusQuery: "sum(rate(errors[5m]))",
      prometheusMax: 0.5,
      prometheusUrl: "https://mon.example.com/prometheus/",
    });
  });

  it("says which capabilities a strategy needs", () => {
    assert.deepEqual(strategyNeeds(parseStrategy({ kind: "rolling", batch: 1 })), []);
    assert.deepEqual(strategyNeeds(parseStrategy({ kind: "canary", steps: [{ weight: 10 }] })), ["side-by-side", "router"]);
  });

  const bad: [unknown, string, RegExp][] = [
    [42, "strategy", /must be an object/],
    [{ kind: "big-bang" }, "strategy.kind", /must be one of/],
    [{ kind: "all-at-once", batch: 2 }, "strategy.batch", /unknown field/],
    [{ kind: "all-at-once", rollback: "sometimes" }, "strategy.rollback", /auto or manual/],
    [{ kind: "rolling" }, "strategy.batch", /count of targets/],
    [{ kind: "rolling", batch: "0%" }, "strategy.batch", /1% to 100%/],
    [{ kind: "rolling", batch: "250%" }, "strategy.batch", /1% to 100%/],
    [{ kind: "rolling", batch: 0 }, "strategy.batch", /from 1 to/],
    [{ kind: "rolling", batch: 1, soakSeconds: -1 }, "strategy.soakSeconds", /from 0 to 86400/],
    [{ kind: "rolling", batch: 1, soakSeconds: 1.5 }, "strategy.soakSeconds", /whole number/],
    [{ kind: "blue-green", drainSeconds: 99999 }, "strategy.drainSeconds", /from 0 to 3600/],
    [{ kind: "canary", steps: [] }, "strategy.steps", /1 to 20 steps/],
    [{ kind: "canary", steps: [{ weight: 50 }, { weight: 25 }] }, "strategy.steps[1].weight", /greater than the step before \(50\)/],
    [{ kind: "canary", steps: [{ weight: 0 }] }, "strategy.steps[0].weight", /from 1 to 100/],
    [{ kind: "canary", steps: [{ weight: 5, bake: 1 }] }, "strategy.steps[0].bake", /unknown field/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { maxErrorRate: 2 } }, "strategy.analysis.maxErrorRate", /from 0 to 1/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { prometheusQuery: "up" } }, "strategy.analysis.prometheusMax", /required/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { probeUrl: "file:///etc/passwd" } }, "strategy.analysis.probeUrl", /http/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { prometheusQuery: "up", prometheusMax: 1 } }, "strategy.analysis.prometheusUrl", /required with prometheusQuery/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { prometheusQuery: "up", prometheusMax: 1, prometheusUrl: "prometheus:9090" } }, "strategy.analysis.prometheusUrl", /http/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { prometheusQuery: "up", prometheusMax: 1, prometheusUrl: "http://u:p@prometheus:9090" } }, "strategy.analysis.prometheusUrl", /without credentials/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { prometheusQuery: "up", prometheusMax: 1, prometheusUrl: "http://prometheus:9090/?x=1" } }, "strategy.analysis.prometheusUrl", /query or fragment/],
    [{ kind: "canary", steps: [{ weight: 5 }], analysis: { prometheusUrl: "http://prometheus:9090" } }, "strategy.analysis.prometheusUrl", /needs prometheusQuery/],
    [{ kind: "ab", split: { by: "ip", name: "x", percent: 10 } }, "strategy.split.by", /cookie or header/],
    [{ kind: "ab", split: { by: "cookie", name: "bad name", percent: 10 } }, "strategy.split.name", /HTTP token/],
    [{ kind: "ab", split: { by: "cookie", name: "uid", percent: 10 }, allowlist: ["has space"] }, "strategy.allowlist[0]", /printable ASCII/],
  ];
  for (const [raw, field, re] of bad) {
    it(`refuses ${field}: ${re.source}`, () => {
      assert.throws(() => parseStrategy(raw), (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.details.field === field && re.test(e.message));
    });
  }
});
