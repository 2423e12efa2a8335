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

  it("reads the same wall clock from its remembered offsets as from the tz database, past the bound of what it keeps", () => {
    // The test's own formatters: nothing shared with what zoned-time remembers.
    const formatters = new Map<string, Intl.DateTimeFormat>();
    const formatter = (zone: string): Intl.DateTimeFormat => {
      let f = formatters.get(zone);
      if (!f) formatters.set(zone, (f = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" })));
      return f;
    };
    const direct = (ms: number, zone: string): number => {
      const f: Record<string, number> = {};
      for (const p of formatter(zone).formatToParts(ms)) {
        if (p.type !== "literal") f[p.type] = Number(p.value);
      }
      return Date.UTC(f.year ?? 0, (f.month ?? 0) - 1, f.day ?? 0, f.hour ?? 0, f.minute ?? 0, f.second ?? 0);
    };
    const zones = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Europe/Amsterdam"];
    // Every 1 h 45 min 13.5 s across 2024, every 61.5 s in the hours around the Berlin and New York changes, and a
    // stretch of 1920 (offsets of local mean time, with seconds in them, where the tz data has them): more instants
    // than are kept, each read twice.
    const instants: number[] = [];
    const every = (from: string, to: string, step: number) => {
      for (let t = utc(from); t < utc(to); t += step) instants.push(t);
    };
    every("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", 6_313_500);
    for (const at of ["2024-03-31T01:00:00Z", "2024-10-27T01:00:00Z", "2024-03-10T07:00:00Z", "2024-11-03T06:00:00Z"]) every(new Date(utc(at) - 2 * HOUR).toISOString(), new Date(utc(at) + 2 * HOUR).toISOString(), 61_500);
    every("1920-01-01T00:00:00Z", "1920-12-31T00:00:00Z", 6_313_500);
    assert.ok(instants.length * zones.length > 4096 * 2);
    for (const pass of [1, 2]) {
      for (const zone of zones) {
        for (const t of instants) {
          const want = direct(t, zone);
          if (toLocal(t, zone) !== want) assert.fail(`pass ${pass}: ${zone} at ${iso(t)} read ${iso(toLocal(t, zone))}, the tz database says ${iso(want)}`);
        }
      }
    }
    assert.equal(offsetAt(utc("2024-07-01T12:00:00.999Z"), "Europe/Berlin"), offsetAt(utc("2024-07-01T12:00:00.000Z"), "Europe/Berlin"));
  });

  it("describes an instant on the zone's wall clock", () => {
    assert.equal(describeLocal(utc("2024-04-01T08:00:00Z"), "Europe/Berlin"), "Mon 2024-04-01 10:00 Europe/Berlin");
    assert.equal(describeLocal(utc("2024-04-01T08:00:00Z"), "Asia/Kolkata"), "Mon 2024-04-01 13:30 Asia/Kolkata");
  });
});
