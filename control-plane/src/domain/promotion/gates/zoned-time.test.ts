import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HOUR, describeLocal, fromLocal, isTimeZone, offsetAt, toLocal } from "./zoned-time.js";

const utc = (iso: string): number => Date.parse(iso);
const local = (reading: string): number => Date.parse(`${reading}Z`); // a wall-clock reading as local ms
const iso = (ms: number): string => new Date(ms).toISOString();

describe("zoned time", () => {
  it("knows IANA zones and refuses anything else", () => {
    assert.equal(isTimeZone("Europe/Berlin"), true);
    assert.equal(isTimeZone("UTC"), true);
    assert.equal(isTimeZone("Mars/Olympus_Mons"), false);
    assert.equal(isTimeZone(""), false);
  });

  it("reads the wall clock, including half-hour offsets", () => {
    assert.equal(iso(toLocal(utc("2024-07-01T12:00:00Z"), "Europe/Berlin")), "2024-07-01T14:00:00.000Z");
    assert.equal(iso(toLocal(utc("2024-01-01T12:00:00Z"), "Europe/Berlin")), "2024-01-01T13:00:00.000Z");
    assert.equal(offsetAt(utc("2024-03-31T12:00:00Z"), "Asia/Kolkata"), 5.5 * HOUR);
    assert.equal(offsetAt(utc("2024-11-03T05:59:00Z"), "America/New_York"), -4 * HOUR);
    assert.equal(offsetAt(utc("2024-11-03T06:00:00Z"), "America/New_York"), -5 * HOUR);
  });

  it("maps readings that exist once to their instant", () => {
    assert.equal(iso(fromLocal(local("2024-07-01T14:00:00"), "Europe/Berlin", "earlier")), "2024-07-01T12:00:00.000Z");
    assert.equal(iso(fromLocal(local("2024-07-01T17:30:00"), "Asia/Kolkata", "later")), "2024-07-01T12:00:00.000Z");
  });

  it("moves a reading in the spring-forward gap to the transition (Berlin, last Sunday of March)", () => {
    // 02:00–03:00 does not exist on 2024-03-31; clocks jump at 01:00 UTC.
    for (const prefer of ["earlier", "later"] as const) {
      assert.equal(iso(fromLocal(local("2024-03-31T02:30:00"), "Europe/Berlin", prefer)), "2024-03-31T01:00:00.000Z");
      assert.equal(iso(fromLocal(local("2024-03-31T02:00:00"), "Europe/Berlin", prefer)), "2024-03-31T01:00:00.000Z");
    }
    assert.equal(iso(fromLocal(local("2024-03-31T03:00:00"), "Europe/Berlin", "earlier")), "2024-03-31T01:00:00.000Z");
    assert.equal(iso(fromLocal(local("2024-03-31T01:59:00"), "Europe/Berlin", "earlier")), "2024-03-31T00:59:00.000Z");
  });

  it("moves a reading in the spring-forward gap to the transition (New York, second Sunday of March)", () => {
    assert.equal(iso(fromLocal(local("2024-03-10T02:15:00"), "America/New_York", "earlier")), "2024-03-10T07:00:00.000Z");
  });

  it("chooses either occurrence of a fall-back reading", () => {
    // Berlin, 2024-10-27: 02:00–03:00 happens twice (CEST, then CET).
    assert.equal(iso(fromLocal(local("2024-10-27T02:30:00"), "Europe/Berlin", "earlier")), "2024-10-27T00:30:00.000Z");
    assert.equal(iso(fromLocal(local("2024-10-27T02:30:00"), "Europe/Berlin", "later")), "2024-10-27T01:30:00.000Z");
    // New York, 2024-11-03: 01:00–02:00 happens twice (EDT, then EST).
    assert.equal(iso(fromLocal(local("2024-11-03T01:30:00"), "America/New_York", "earlier")), "2024-11-03T05:30:00.000Z");
    assert.equal(iso(fromLocal(local("2024-11-03T01:30:00"), "America/New_York", "later")), "2024-11-03T06:30:00.000Z");
  });

  it("handles a half-hour daylight-saving shift (Lord Howe Island)", () => {
    // 2024-10-06 02:00 +10:30 → 02:30 +11:00.
    assert.equal(iso(fromLocal(local("2024-10-06T02:15:00"), "Australia/Lord_Howe", "earlier")), "2024-10-05T15:30:00.000Z");
  });

  it("describes an instant on the zone's wall clock", () => {
    assert.equal(describeLocal(utc("2024-04-01T08:00:00Z"), "Europe/Berlin"), "Mon 2024-04-01 10:00 Europe/Berlin");
    assert.equal(describeLocal(utc("2024-04-01T08:00:00Z"), "Asia/Kolkata"), "Mon 2024-04-01 13:30 Asia/Kolkata");
  });
});
