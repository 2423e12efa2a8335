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

  it("formats round durations", () => {
    assert.equal(formatDuration(1_800_000), "30m");
    assert.equal(formatDuration(1500), "1500ms");
  });
});
