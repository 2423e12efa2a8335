// The fake driver's router mirrors the Docker driver's route operations closely enough for the core's tests: an A/B
// split is recorded and reported like a real router's, and a weights operation without one lifts it.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import type { RouteContext } from "../driver.js";
import { FakeDriver, type FakeTargetConfig } from "./fake-driver.js";

const ctx = (): RouteContext<FakeTargetConfig> => ({
  taskId: "tsk_1",
  target: { id: "tgt-1", name: "web", kind: "fake", config: { slot: "web" } },
  config: { slot: "web" },
  signal: new AbortController().signal,
  progress: { step: () => undefined, log: () => undefined },
});

describe("fake driver: route operations", () => {
  it("records an A/B split, reports it in weights and measure, and lifts it on weights without one", async () => {
    const d = new FakeDriver();
    const route = d.route!;
    const split = { by: "cookie" as const, name: "ab_uid", allowlist: ["qa-2", "qa-1", "qa-1"] };
    const digest = createHash("sha256").update("qa-1\nqa-2").digest("hex");
    const expected = { by: "cookie", name: "ab_uid", slot: "new", percent: 10, allowlist: { count: 2, sha256: digest } };
    assert.deepEqual(await route(ctx(), { op: "weights", newWeight: 10, split }, {}), { weights: { new: 0, stable: 100 }, split: expected });
    assert.deepEqual(d.routes.get("web")?.split, split);
    assert.deepEqual((await route(ctx(), { op: "measure" }, {}))["split"], expected);
    assert.deepEqual(await route(ctx(), { op: "weights", newWeight: 0 }, {}), { weights: { new: 0, stable: 100 } });
    assert.equal(d.routes.get("web")?.split, null);
    assert.equal((await route(ctx(), { op: "measure" }, {}))["split"], undefined);
    await assert.rejects(route(ctx(), { op: "weights", newWeight: 10, split }, undefined), /need the state/);
  });
});
