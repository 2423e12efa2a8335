import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { nextMatch, parseCron, previousMatch } from "./cron.js";
import { DAY } from "./zoned-time.js";

const local = (reading: string): number => Date.parse(`${reading}Z`);
const show = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString().slice(0, 16));

describe("cron schedules", () => {
  it("parses values, ranges, lists, steps and names", () => {
    const s = parseCron("*/15 9-17/4 1,15 jan-mar MON-fri", "cron");
    assert.deepEqual(s.minutes, [0, 15, 30, 45]);
    assert.deepEqual(s.hours, [9, 13, 17]);
    assert.deepEqual([...s.daysOfMonth], [1, 15]);
    assert.deepEqual([...s.months], [1, 2, 3]);
    assert.deepEqual([...s.daysOfWeek].sort(), [1, 2, 3, 4, 5]);
    assert.equal(s.domStar, false);
    assert.deepEqual(parseCron("5/20 * * * *", "c").minutes, [5, 25, 45]);
    assert.deepEqual([...parseCron("0 0 * * 7", "c").daysOfWeek], [0]); // 7 is Sunday too
    assert.deepEqual([...parseCron("0 0 * * fri-sun", "c").daysOfWeek].sort(), [0, 5, 6]);
  });

  it("refuses malformed expressions naming the field at fault", () => {
    const cases: [string, RegExp][] = [
      ["0 22 * *", /five fields/],
      ["60 * * * *", /minute field "60": 60 is outside 0-59/],
      ["0 24 * * *", /hour field/],
      ["0 0 0 * *", /day of month field/],
      ["0 0 * foo *", /month field "foo": "foo" is not a number or a name/],
      ["0 0 * * 8", /day of week field/],
      ["*/0 * * * *", /step 0/],
      ["5-1 * * * *", /runs backwards/],
      ["0 0 30 2 *", /never matches/],
    ];
    for (const [expr, re] of cases) {
      assert.throws(
        () => parseCron(expr, "config.windows[0].cron"),
        (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED" &&
          e.details.field === "config.windows[0].cron" && e.message.startsWith("config.windows[0].cron: ") && re.test(e.message),
        expr,
      );
    }
  });

  it("finds the previous and next match", () => {
    const fri22 = parseCron("0 22 * * 5", "c");
    // 2024-03-29 is a Friday.
    assert.equal(show(previousMatch(fri22, local("2024-04-01T09:00:00"), local("2024-03-20T00:00:00"))), "2024-03-29T22:00");
    assert.equal(show(previousMatch(fri22, local("2024-03-29T22:00:00"), local("2024-03-20T00:00:00"))), "2024-03-29T22:00");
    assert.equal(show(previousMatch(fri22, local("2024-03-29T21:59:00"), local("2024-03-20T00:00:00"))), "2024-03-22T22:00");
    assert.equal(previousMatch(fri22, local("2024-03-29T21:59:00"), local("2024-03-25T00:00:00")), null);
    assert.equal(show(nextMatch(fri22, local("2024-03-29T22:00:00"), local("2024-04-30T00:00:00"))), "2024-03-29T22:00");
    assert.equal(show(nextMatch(fri22, local("2024-03-29T22:00:30"), local("2024-04-30T00:00:00"))), "2024-04-05T22:00");
    const every5 = parseCron("*/5 * * * *", "c");
    assert.equal(show(previousMatch(every5, local("2024-01-01T00:03:00"), 0)), "2024-01-01T00:00");
    assert.equal(show(previousMatch(every5, local("2024-01-01T00:00:00") - 60_000, 0)), "2023-12-31T23:55");
    assert.equal(show(nextMatch(every5, local("2024-12-31T23:56:00"), local("2025-01-02T00:00:00"))), "2025-01-01T00:00");
  });

  it("matches day of month OR day of week when both are restricted, AND when one is a star", () => {
    const either = parseCron("0 12 13 * fri", "c"); // the 13th, or any Friday
    const onlyDom = parseCron("0 12 13 * *", "c");
    const domStep = parseCron("0 12 */2 * fri", "c"); // "*/2" counts as a star: Fridays only
    const start = local("2024-09-01T00:00:00");
    const list = (s: ReturnType<typeof parseCron>): string[] => {
      const out: string[] = [];
      for (let t = nextMatch(s, start, start + 31 * DAY); t !== null && out.length < 6; t = nextMatch(s, t + 60_000, start + 31 * DAY)) {
        out.push(show(t)!.slice(0, 10));
      }
      return out;
    };
    assert.deepEqual(list(either), ["2024-09-06", "2024-09-13", "2024-09-20", "2024-09-27"]);
    assert.deepEqual(list(onlyDom), ["2024-09-13"]);
    assert.deepEqual(list(domStep), ["2024-09-06", "2024-09-13", "2024-09-20", "2024-09-27"]);
  });
});
