import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../errors.js";
import { formatDuration, parseDuration } from "./durations.js";

describe("durations", () => {
  it("parses what operators type", () => {
    assert.equal(parseDuration("30m"), 1_800_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("90"), 90_000);
    assert.equal(parseDuration(" 2d "), 172_800_000);
  });

  it("refuses anything else with VALIDATION_FAILED naming the field", () => {
    for (const bad of ["", "m", "30 minutes", "1.5h", "-5m", "5m!"]) {
      assert.throws(
        () => parseDuration(bad, "ttl"),
        (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.message.startsWith("ttl:"),
        bad,
      );
    }
  });

  it("bounds every duration: ten years at most by default, the field's own range when it gives one", () => {
    const refused = (fn: () => unknown, field: string) =>
      assert.throws(fn, (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.message.startsWith(`${field}: must be between`));
    refused(() => parseDuration("99999999999999h", "overlap"), "overlap");
    refused(() => parseDuration("9".repeat(400), "ttl"), "ttl");
    refused(() => parseDuration("3651d", "ttl"), "ttl");
    assert.equal(parseDuration("3650d", "ttl"), 3650 * 86_400_000);
    refused(() => parseDuration("50ms", "heartbeat-interval", { min: 100, max: 600_000 }), "heartbeat-interval");
    refused(() => parseDuration("11m", "heartbeat-interval", { min: 100, max: 600_000 }), "heartbeat-interval");
  });

  it("formats round durations", () => {
    assert.equal(formatDuration(1_800_000), "30m");
    assert.equal(formatDuration(1500), "1500ms");
  });
});
