import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { newestFirst } from "./containers.js";

describe("newestFirst", () => {
  const c = (created: string) => ({ created });

  it("orders engine timestamps newest first, whatever the number of fraction digits", () => {
    // The engine trims trailing zeros: .12345 is earlier than .123456789, though it sorts after it as text.
    const times = ["2026-12-06T01:23:45.12345Z", "2026-12-06T01:23:45.123456789Z", "2026-12-06T01:23:45Z", "2026-12-06T01:23:46.1Z", "2026-12-05T23:59:59.999999999Z"];
    assert.deepEqual(
      times.map(c).sort(newestFirst).map((x) => x.created),
      ["2026-12-06T01:23:46.1Z", "2026-12-06T01:23:45.123456789Z", "2026-12-06T01:23:45.12345Z", "2026-12-06T01:23:45Z", "2026-12-05T23:59:59.999999999Z"],
    );
  });

  it("treats equal instants as equal", () => {
    assert.equal(newestFirst(c("2026-12-06T01:23:45.1Z"), c("2026-12-06T01:23:45.100Z")), 0);
  });
});
