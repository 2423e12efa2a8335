import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { activeFreezes, freezeGate, nextFreeze, nextWindowEnd, type FreezeInput } from "./freeze.js";
import type { BreakGlass } from "./types.js";

const at = (iso: string): Date => new Date(iso);
const weekly = (timeZone: string, days: string[], start: string, end: string, name = "w") =>
  freezeGate.parseConfig({ windows: [{ name, timeZone, weekly: { days, start, end } }] });
const cron = (timeZone: string, expr: string, durationMinutes: number, name = "c") =>
  freezeGate.parseConfig({ windows: [{ name, timeZone, cron: expr, durationMinutes }] });
const frozen = (config: ReturnType<typeof weekly>, iso: string): boolean => activeFreezes(config, at(iso)).length > 0;
const endOf = (config: ReturnType<typeof weekly>, iso: string): string | null => nextWindowEnd(config, at(iso))?.toISOString() ?? null;
const input = (breakGlass: BreakGlass | null = null): FreezeInput => ({
  promotion: { id: "prm_1", requestedBy: "alice", requestedAt: at("2024-01-01T00:00:00Z"), environment: "prod", previousEnvironment: "staging", breakGlass },
});

describe("freeze gate: config", () => {
  const bad: [unknown, string, RegExp][] = [
    [{}, "config.windows", /non-empty list/],
    [{ windows: [{ name: "x", timeZone: "Europe/Berlin" }] }, "config.windows[0]", /exactly one of cron/],
    [{ windows: [{ name: "x", timeZone: "Europe/Berlin", cron: "0 22 * * 5", durationMinutes: 60, weekly: { days: ["fri"], start: "22:00", end: "23:00" } }] }, "config.windows[0]", /exactly one/],
    [{ windows: [{ name: "x", timeZone: "Europe/Berlln", weekly: { days: ["fri"], start: "22:00", end: "23:00" } }] }, "config.windows[0].timeZone", /"Europe\/Berlln" is not an IANA time zone/],
    [{ windows: [{ name: "x", timeZone: "UTC", cron: "0 22 * * 5" }] }, "config.windows[0].durationMinutes", /whole number of minutes/],
    [{ windows: [{ name: "x", timeZone: "UTC", cron: "0 22 * * fry", durationMinutes: 60 }] }, "config.windows[0].cron", /day of week field/],
    [{ windows: [{ name: "x", timeZone: "UTC", weekly: { days: ["fry"], start: "22:00", end: "23:00" } }] }, "config.windows[0].weekly.days[0]", /"fry" is not a weekday/],
    [{ windows: [{ name: "x", timeZone: "UTC", weekly: { days: ["fri"], start: "24:00", end: "23:00" } }] }, "config.windows[0].weekly.start", /HH:MM/],
    [{ windows: [{ name: "x", timeZone: "UTC", weekly: { days: ["fri"], start: "9:00", end: "23:00" } }] }, "config.windows[0].weekly.start", /HH:MM/],
    [{ windows: [{ name: "x", timeZone: "UTC", weekly: { days: ["fri"], start: "22:00", end: "22:00" } }] }, "config.windows[0].weekly.end", /equals start/],
    [{ windows: [{ name: "x", timeZone: "UTC", weekly: { days: ["fri"], start: "22:00", end: "23:00", tz: "x" } }] }, "config.windows[0].weekly.tz", /unknown field/],
    [{ windows: [{ name: "x", timeZone: "UTC", weekly: { days: ["fri"], start: "22:00", end: "23:00" } }, { name: "x", timeZone: "UTC", cron: "0 1 * * *", durationMinutes: 5 }] }, "config.windows[1].name", /earlier window/],
    [{ windows: [{ name: "x", timeZone: "UTC", cron: "0 1 * * *", durationMinutes: 5 }], breakGlassRole: "root" }, "config.breakGlassRole", /not a role/],
  ];
  for (const [raw, field, re] of bad) {
    it(`refuses ${field}: ${re.source}`, () => {
      assert.throws(() => freezeGate.parseConfig(raw), (e: unknown) =>
        e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.details.field === field && e.message.startsWith(`${field}: `) && re.test(e.message));
    });
  }

  it("accepts full day names, 24:00 and defaults the break-glass role to admin", () => {
    const c = weekly("UTC", ["Saturday", "sun"], "00:00", "24:00");
    assert.equal(c.breakGlassRole, "admin");
    assert.equal(frozen(c, "2024-06-08T23:59:00Z"), true); // a Saturday
    assert.equal(frozen(c, "2024-06-10T00:00:00Z"), false); // Monday
  });
});

describe("freeze gate: windows", () => {
  it("a weekly window crossing midnight (Friday 22:00 – Saturday 06:00, Berlin)", () => {
    const c = weekly("Europe/Berlin", ["fri"], "22:00", "06:00");
    // 2024-06-07 is a Friday; Berlin is UTC+2 in June.
    assert.equal(frozen(c, "2024-06-07T19:59:00Z"), false);
    assert.equal(frozen(c, "2024-06-07T20:00:00Z"), true);
    assert.equal(frozen(c, "2024-06-08T03:59:00Z"), true);
    assert.equal(endOf(c, "2024-06-08T03:59:00Z"), "2024-06-08T04:00:00.000Z");
    assert.equal(frozen(c, "2024-06-08T04:00:00Z"), false); // end is exclusive
    assert.equal(frozen(c, "2024-06-08T21:00:00Z"), false); // Saturday night is not listed
    assert.equal(frozen(c, "2024-06-06T21:00:00Z"), false); // nor Thursday night
  });

  it("a cron window: 0 22 * * 5 for 60 h is Friday 22:00 to Monday 10:00", () => {
    const c = cron("Europe/Berlin", "0 22 * * 5", 3600, "weekend");
    assert.equal(frozen(c, "2024-06-07T19:59:00Z"), false);
    assert.equal(frozen(c, "2024-06-07T20:00:00Z"), true);
    assert.equal(frozen(c, "2024-06-09T12:00:00Z"), true);
    assert.equal(endOf(c, "2024-06-08T12:00:00Z"), "2024-06-10T08:00:00.000Z"); // Monday 10:00 CEST
    assert.equal(frozen(c, "2024-06-10T08:00:00Z"), false);
  });

  it("Berlin spring forward (last Sunday of March): the cron weekend still ends Monday 10:00 local", () => {
    const c = cron("Europe/Berlin", "0 22 * * 5", 3600, "weekend");
    // Starts Friday 2024-03-29 22:00 CET (21:00Z); Monday 10:00 is CEST (08:00Z): 59 real hours.
    assert.deepEqual(activeFreezes(c, at("2024-03-31T01:30:00Z")).map((o) => [o.start.toISOString(), o.end.toISOString()]),
      [["2024-03-29T21:00:00.000Z", "2024-04-01T08:00:00.000Z"]]);
  });

  it("Berlin spring forward: a window starting in the gap starts at the transition", () => {
    const c = weekly("Europe/Berlin", ["sun"], "02:30", "03:30");
    assert.equal(frozen(c, "2024-03-31T00:59:00Z"), false); // 01:59 CET
    assert.equal(frozen(c, "2024-03-31T01:00:00Z"), true); // 03:00 CEST, the first instant after 02:30
    assert.equal(endOf(c, "2024-03-31T01:00:00Z"), "2024-03-31T01:30:00.000Z"); // 03:30 CEST
    // An ordinary Sunday: 02:30–03:30 CET is 01:30–02:30Z.
    assert.equal(frozen(c, "2024-03-24T01:30:00Z"), true);
    assert.equal(endOf(c, "2024-03-24T01:30:00Z"), "2024-03-24T02:30:00.000Z");
  });

  it("Berlin fall back (last Sunday of October): a window inside the repeated hour covers both occurrences", () => {
    const c = weekly("Europe/Berlin", ["sun"], "02:00", "02:30");
    // 02:00 CEST = 00:00Z (first occurrence) … 02:30 CET = 01:30Z (second occurrence).
    assert.equal(frozen(c, "2024-10-26T23:59:00Z"), false);
    assert.equal(frozen(c, "2024-10-27T00:00:00Z"), true);
    assert.equal(frozen(c, "2024-10-27T01:15:00Z"), true); // 02:15 CET, the second time round
    assert.equal(endOf(c, "2024-10-27T00:10:00Z"), "2024-10-27T01:30:00.000Z");
    assert.equal(frozen(c, "2024-10-27T01:30:00Z"), false);
  });

  it("New York spring forward (second Sunday of March): a window across the gap is an hour shorter", () => {
    const c = weekly("America/New_York", ["sun"], "01:30", "03:30");
    // 01:30 EST = 06:30Z; 03:30 EDT = 07:30Z.
    assert.equal(frozen(c, "2024-03-10T06:29:00Z"), false);
    assert.equal(frozen(c, "2024-03-10T06:30:00Z"), true);
    assert.equal(endOf(c, "2024-03-10T06:30:00Z"), "2024-03-10T07:30:00.000Z");
    // A window entirely inside the gap has no instants that day.
    const gapOnly = weekly("America/New_York", ["sun"], "02:00", "03:00");
    assert.equal(frozen(gapOnly, "2024-03-10T07:00:00Z"), false);
    assert.equal(frozen(gapOnly, "2024-03-17T06:30:00Z"), true); // a week later it exists (02:30 EDT)
  });

  it("New York fall back (first Sunday of November): local 01:00–02:00 is frozen for both occurrences", () => {
    const c = weekly("America/New_York", ["sun"], "01:00", "02:00");
    assert.equal(frozen(c, "2024-11-03T04:59:00Z"), false); // 00:59 EDT
    assert.equal(frozen(c, "2024-11-03T05:00:00Z"), true); // 01:00 EDT
    assert.equal(frozen(c, "2024-11-03T06:30:00Z"), true); // 01:30 EST, the second time round
    assert.equal(endOf(c, "2024-11-03T05:00:00Z"), "2024-11-03T07:00:00.000Z"); // 02:00 EST
  });

  it("New York fall back: a cron start in the repeated hour fires once, and is found from the second occurrence", () => {
    const c = cron("America/New_York", "30 1 * * *", 60, "nightly");
    // 01:30 EDT = 05:30Z; ends at 02:30 local, which is EST (07:30Z).
    assert.deepEqual(activeFreezes(c, at("2024-11-03T06:10:00Z")).map((o) => o.start.toISOString()), ["2024-11-03T05:30:00.000Z"]);
    assert.equal(endOf(c, "2024-11-03T06:10:00Z"), "2024-11-03T07:30:00.000Z");
    assert.equal(frozen(c, "2024-11-03T07:30:00Z"), false);
  });

  it("a zone with a half-hour offset (Asia/Kolkata, UTC+05:30)", () => {
    const c = weekly("Asia/Kolkata", ["mon", "tue", "wed", "thu", "fri"], "09:00", "17:30");
    // 2024-06-10 is a Monday: 09:00 IST = 03:30Z, 17:30 IST = 12:00Z.
    assert.equal(frozen(c, "2024-06-10T03:29:00Z"), false);
    assert.equal(frozen(c, "2024-06-10T03:30:00Z"), true);
    assert.equal(frozen(c, "2024-06-10T11:59:00Z"), true);
    assert.equal(frozen(c, "2024-06-10T12:00:00Z"), false);
    const k = cron("Asia/Kolkata", "45 23 * * *", 30);
    assert.equal(endOf(k, "2024-06-10T18:20:00Z"), "2024-06-10T18:45:00.000Z"); // 23:45 → 00:15 IST
  });

  it("follows windows that touch or overlap to when the freeze really lifts", () => {
    const c = freezeGate.parseConfig({
      windows: [
        { name: "friday night", timeZone: "UTC", weekly: { days: ["fri"], start: "22:00", end: "24:00" } },
        { name: "saturday", timeZone: "UTC", weekly: { days: ["sat"], start: "00:00", end: "06:00" } },
        { name: "maintenance", timeZone: "UTC", cron: "0 5 * * 6", durationMinutes: 120 },
      ],
    });
    assert.equal(endOf(c, "2024-06-07T23:00:00Z"), "2024-06-08T07:00:00.000Z");
    assert.equal(endOf(c, "2024-06-08T08:00:00Z"), null);
  });

  it("gives up following a window that never lets go, and says so", () => {
    const always = cron("UTC", "* * * * *", 1, "always");
    const r = freezeGate.evaluate(always, input(), at("2024-06-08T12:00:00Z"));
    assert.equal(r.state, "failed");
    assert.match(r.reason, /^frozen by window "always" until at least 2024-06-08T20:20:00Z/);
  });

  it("finds the next freeze ahead", () => {
    const c = cron("Europe/Berlin", "0 22 * * 5", 3600, "weekend");
    const next = nextFreeze(c, at("2024-06-04T12:00:00Z"));
    assert.equal(next?.window, "weekend");
    assert.equal(next?.start.toISOString(), "2024-06-07T20:00:00.000Z");
  });
});

describe("freeze gate: evaluation", () => {
  const c = cron("Europe/Berlin", "0 22 * * 5", 3600, "weekend");
  const during = at("2024-06-08T12:00:00Z");

  it("passes outside every window and says when the next one starts", () => {
    const r = freezeGate.evaluate(c, input(), at("2024-06-04T12:00:00Z"));
    assert.equal(r.state, "passed");
    assert.equal(r.remedy, null);
    assert.equal(r.reason, 'no freeze window is in effect; the next, "weekend", starts at 2024-06-07T20:00:00Z (Fri 2024-06-07 22:00 Europe/Berlin)');
  });

  it("fails inside a window, saying until when and how to break glass", () => {
    const r = freezeGate.evaluate(c, input(), during);
    assert.equal(r.state, "failed");
    assert.equal(r.reason, 'frozen by window "weekend" until 2024-06-10T08:00:00Z (Mon 2024-06-10 10:00 Europe/Berlin)');
    assert.equal(r.remedy, "wait until 2024-06-10T08:00:00Z (Mon 2024-06-10 10:00 Europe/Berlin), or break glass with a reason (role admin)");
    assert.equal(r.details.frozenUntil, "2024-06-10T08:00:00.000Z");
  });

  it("passes with a break-glass by the right role, and records it", () => {
    const bg = { by: "bob", roles: ["admin"], reason: "hotfix for INC-42", at: at("2024-06-08T11:58:00Z") };
    const r = freezeGate.evaluate(c, input(bg), during);
    assert.equal(r.state, "passed");
    assert.match(r.reason, /overridden: bob broke glass at 2024-06-08T11:58:00Z: "hotfix for INC-42"/);
    assert.equal(r.details.breakGlassUsed, true);
    assert.deepEqual(r.details.breakGlass, { by: "bob", reason: "hotfix for INC-42", at: "2024-06-08T11:58:00.000Z", role: "admin" });
  });

  it("takes a break-glass without roles as checked by the caller", () => {
    const r = freezeGate.evaluate(c, input({ by: "bob", reason: "hotfix", at: during }), during);
    assert.equal(r.state, "passed");
  });

  it("refuses a break-glass without the role or without a reason", () => {
    const noRole = freezeGate.evaluate(c, input({ by: "dave", roles: ["deployer"], reason: "please", at: during }), during);
    assert.equal(noRole.state, "failed");
    assert.match(noRole.reason, /the break-glass by dave does not count: dave does not hold the admin role$/);
    const noReason = freezeGate.evaluate(c, input({ by: "bob", roles: ["admin"], reason: "  ", at: during }), during);
    assert.equal(noReason.state, "failed");
    assert.match(noReason.reason, /does not count: it has no reason/);
  });

  it("honours a configured break-glass role (admin still implies it)", () => {
    const rm = freezeGate.parseConfig({ windows: [{ name: "w", timeZone: "UTC", cron: "0 0 * * *", durationMinutes: 1440 }], breakGlassRole: "release-manager" });
    const now = at("2024-06-08T12:00:00Z");
    assert.equal(freezeGate.evaluate(rm, input({ by: "rm", roles: ["release-manager"], reason: "x", at: now }), now).state, "passed");
    assert.equal(freezeGate.evaluate(rm, input({ by: "ad", roles: ["admin"], reason: "x", at: now }), now).state, "passed");
    const refused = freezeGate.evaluate(rm, input(), now);
    assert.match(refused.remedy ?? "", /break glass with a reason \(role release-manager\)$/);
  });
});
