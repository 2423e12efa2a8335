// Freeze gate: recurring windows during which nothing is promoted into the environment, unless someone holding the
// break-glass role overrides it with a reason (the override is recorded in the result and so in the evidence).
//
// Windows live in an IANA time zone and are read on that zone's wall clock, DST included:
//   - weekly {days, start, end}: starts at `start` on each listed day and ends at `end` the same day, or the next
//     day when end <= start (22:00–06:00 crosses midnight); "24:00" ends at midnight;
//   - cron "m h dom mon dow" + durationMinutes: starts at each match and ends durationMinutes later on the wall
//     clock, so "0 22 * * 5" for 3600 minutes is Friday 22:00 to Monday 10:00 local even on a DST weekend (59 or 61
//     real hours then), the way an operator who wrote it reads it.
// Daylight saving (docs/gates.md has examples):
//   - a start or end in the spring-forward gap moves to the first instant that exists after it (the transition);
//   - in the fall-back overlap a start takes the first occurrence and an end the second, so a window always covers
//     every instant whose wall-clock reading lies inside it: local 01:00–02:00 on the fall-back night is frozen for
//     both occurrences of that hour (two real hours). A cron start in the overlap fires once, at the first
//     occurrence, like cron itself.
// Windows are half-open: frozen from the start instant, free again at the end instant.
import { ROLES, satisfies, isRole, type Role } from "../../auth/roles.js";
import { FerryError } from "../../errors.js";
import { nextMatch, parseCron, previousMatch, type CronSchedule } from "./cron.js";
import { isoSeconds, type GateContext, type GateEvaluator, type GateResult } from "./types.js";
import { DAY, HOUR, MINUTE, describeLocal, fromLocal, isTimeZone, offsetAt, toLocal } from "./zoned-time.js";

const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
type Weekday = (typeof WEEKDAYS)[number];
const DAY_NAMES = new Map<string, Weekday>(WEEKDAYS.flatMap((d, i) => [
  [d, d],
  [["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"][i] as string, d],
]));

interface WindowBase {
  name: string;
  timeZone: string;
}
export interface CronWindow extends WindowBase {
  type: "cron";
  cron: string;
  schedule: CronSchedule;
  durationMinutes: number;
}
export interface WeeklyWindow extends WindowBase {
  type: "weekly";
  days: Weekday[];
  start: string;
  end: string;
  /** Minutes after local midnight of the start day. */
  startMinute: number;
  /** Minutes from start to end on the wall clock (1..1440). */
  spanMinutes: number;
}
export type FreezeWindow = CronWindow | WeeklyWindow;

export interface FreezeConfig {
  windows: FreezeWindow[];
  breakGlassRole: Role;
}

export type FreezeInput = Pick<GateContext, "promotion">;

/** One occurrence of a window, as real instants. */
export interface FreezeOccurrence {
  window: string;
  timeZone: string;
  start: Date;
  end: Date;
}

const KIND = "freeze";
const MAX_DURATION_MINUTES = 31 * 24 * 60;
/** Larger than any daylight-saving shift (the largest in use is one hour; two have existed). */
const DST_SLACK = 3 * HOUR;
/** How far ahead the next freeze is looked for, for the "next freeze" detail. */
const LOOKAHEAD = 400 * DAY;

// ---- config -----------------------------------------------------------------------------------------------------

const fail = (field: string, msg: string): never => {
  throw new FerryError("VALIDATION_FAILED", `${field}: ${msg}`, { field });
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function parseClock(v: unknown, field: string, allow24: boolean): number {
  const m = typeof v === "string" ? /^([01]\d|2[0-4]):([0-5]\d)$/.exec(v) : null;
  const minutes = m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  if (!m || minutes > (allow24 ? 1440 : 1439)) fail(field, `must be a time "HH:MM" from 00:00 to ${allow24 ? "24:00" : "23:59"}`);
  return minutes;
}

function onlyKeys(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${path}.${k}`, `unknown field (known: ${keys.join(", ")})`);
}

function parseWindow(raw: unknown, path: string): FreezeWindow {
  if (!isObject(raw)) return fail(path, "must be an object");
  onlyKeys(raw, ["name", "timeZone", "cron", "durationMinutes", "weekly"], path);
  if (typeof raw.name !== "string" || raw.name.trim() === "" || raw.name.length > 128) fail(`${path}.name`, "must be a non-empty string of at most 128 characters");
  const name = raw.name as string;
  if (typeof raw.timeZone !== "string" || !isTimeZone(raw.timeZone)) {
    fail(`${path}.timeZone`, `${JSON.stringify(raw.timeZone)} is not an IANA time zone (such as Europe/Berlin, America/New_York, UTC)`);
  }
  const timeZone = raw.timeZone as string;
  const hasCron = raw.cron !== undefined && raw.cron !== null;
  const hasWeekly = raw.weekly !== undefined && raw.weekly !== null;
  if (hasCron === hasWeekly) fail(path, "needs exactly one of cron (with durationMinutes) or weekly");

  if (hasCron) {
    if (typeof raw.cron !== "string") fail(`${path}.cron`, "must be a string");
    const d = raw.durationMinutes;
    if (typeof d !== "number" || !Number.isInteger(d) || d < 1 || d > MAX_DURATION_MINUTES) {
      fail(`${path}.durationMinutes`, `must be a whole number of minutes from 1 to ${MAX_DURATION_MINUTES}`);
    }
    const cron = raw.cron as string;
    return { name, timeZone, type: "cron", cron, schedule: parseCron(cron, `${path}.cron`), durationMinutes: d as number };
  }
  if (raw.durationMinutes !== undefined) fail(`${path}.durationMinutes`, "applies to cron windows only; a weekly window ends at its end time");
  const wpath = `${path}.weekly`;
  const w = raw.weekly;
  if (!isObject(w)) return fail(wpath, "must be an object");
  onlyKeys(w, ["days", "start", "end"], wpath);
  if (!Array.isArray(w.days) || w.days.length === 0) fail(`${wpath}.days`, `must be a non-empty list of ${WEEKDAYS.join(", ")}`);
  const days: Weekday[] = [];
  (w.days as unknown[]).forEach((d, i) => {
    const day = typeof d === "string" ? DAY_NAMES.get(d.toLowerCase()) : undefined;
    if (day === undefined) fail(`${wpath}.days[${i}]`, `${JSON.stringify(d)} is not a weekday (${WEEKDAYS.join(", ")})`);
    else if (!days.includes(day)) days.push(day);
  });
  const startMinute = parseClock(w.start, `${wpath}.start`, false);
  const endMinute = parseClock(w.end, `${wpath}.end`, true);
  if (startMinute === endMinute) fail(`${wpath}.end`, `equals start; for a whole day use start "00:00" and end "24:00"`);
  const spanMinutes = endMinute > startMinute ? endMinute - startMinute : endMinute + 1440 - startMinute;
  return { name, timeZone, type: "weekly", days, start: w.start as string, end: w.end as string, startMinute, spanMinutes };
}

export function parseFreezeConfig(raw: unknown): FreezeConfig {
  if (!isObject(raw)) return fail("config", "must be an object");
  onlyKeys(raw, ["windows", "breakGlassRole"], "config");
  if (!Array.isArray(raw.windows) || raw.windows.length === 0) fail("config.windows", "must be a non-empty list of windows");
  const windows = (raw.windows as unknown[]).map((w, i) => parseWindow(w, `config.windows[${i}]`));
  const names = new Set<string>();
  windows.forEach((w, i) => {
    if (names.has(w.name)) fail(`config.windows[${i}].name`, `"${w.name}" is used by an earlier window`);
    names.add(w.name);
  });
  let breakGlassRole: Role = "admin";
  if (raw.breakGlassRole !== undefined && raw.breakGlassRole !== null) {
    if (typeof raw.breakGlassRole !== "string" || !isRole(raw.breakGlassRole)) {
      fail("config.breakGlassRole", `${JSON.stringify(raw.breakGlassRole)} is not a role (${ROLES.join(", ")})`);
    }
    breakGlassRole = raw.breakGlassRole as Role;
  }
  return { windows, breakGlassRole };
}

// ---- occurrences ------------------------------------------------------------------------------------------------

const WEEKDAY_INDEX: Record<Weekday, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

/** The latest start reading at or before `localMs` (not before `limitLocal`). */
function previousStartLocal(w: FreezeWindow, localMs: number, limitLocal: number): number | null {
  if (w.type === "cron") return previousMatch(w.schedule, localMs, limitLocal);
  const days = new Set(w.days.map((d) => WEEKDAY_INDEX[d]));
  for (let day = Math.floor(localMs / DAY) * DAY; day + DAY > limitLocal; day -= DAY) {
    const start = day + w.startMinute * MINUTE;
    if (start <= localMs && days.has(new Date(day).getUTCDay())) return start >= limitLocal ? start : null;
  }
  return null;
}

/** The earliest start reading at or after `localMs` (not after `limitLocal`). */
function nextStartLocal(w: FreezeWindow, localMs: number, limitLocal: number): number | null {
  if (w.type === "cron") return nextMatch(w.schedule, localMs, limitLocal);
  const days = new Set(w.days.map((d) => WEEKDAY_INDEX[d]));
  for (let day = Math.floor(localMs / DAY) * DAY; day <= limitLocal; day += DAY) {
    const start = day + w.startMinute * MINUTE;
    if (start >= localMs && days.has(new Date(day).getUTCDay())) return start <= limitLocal ? start : null;
  }
  return null;
}

/** Length on the wall clock: an occurrence ends at the reading start + span, whatever DST does in between. */
const spanOf = (w: FreezeWindow): number => (w.type === "cron" ? w.durationMinutes : w.spanMinutes) * MINUTE;

function occurrence(w: FreezeWindow, startLocal: number): FreezeOccurrence {
  const start = fromLocal(startLocal, w.timeZone, "earlier");
  const end = fromLocal(startLocal + spanOf(w), w.timeZone, "later");
  return { window: w.name, timeZone: w.timeZone, start: new Date(start), end: new Date(end) };
}


/**
 * The occurrence of `w` that started last at or before `atMs`, or null. Start and end instants both grow with the
 * start reading, so the latest start is also the one that ends last: if any occurrence covers `atMs`, this one does.
 */
function latestOccurrence(w: FreezeWindow, atMs: number): FreezeOccurrence | null {
  const local = toLocal(atMs, w.timeZone);
  // Just after a fall-back, readings a little ahead of the clock were already passed once (first occurrence).
  const fellBack = Math.max(0, offsetAt(atMs - DST_SLACK, w.timeZone) - offsetAt(atMs, w.timeZone));
  const limit = local - spanOf(w) - DST_SLACK;
  let cursor = local + fellBack;
  for (;;) {
    const startLocal = previousStartLocal(w, cursor, limit);
    if (startLocal === null) return null;
    const occ = occurrence(w, startLocal);
    if (occ.start.getTime() <= atMs) return occ;
    cursor = startLocal - MINUTE;
  }
}

/** Every window occurrence that covers `at` (start <= at < end). */
export function activeFreezes(config: Pick<FreezeConfig, "windows">, at: Date): FreezeOccurrence[] {
  const atMs = at.getTime();
  const out: FreezeOccurrence[] = [];
  for (const w of config.windows) {
    const occ = latestOccurrence(w, atMs);
    if (occ && occ.end.getTime() > atMs) out.push(occ);
  }
  return out;
}

/** How many back-to-back occurrences nextWindowEnd follows before it gives up (a window that never lets go). */
const MAX_CHAIN = 500;

/**
 * When the freeze covering `now` lifts: the first instant at or after `now` that no window covers, following
 * windows that overlap or follow each other without a gap. null when `now` is not frozen. Windows chained back to
 * back more than MAX_CHAIN times (say "* * * * *" for one minute) return the instant where the search stopped,
 * which is still frozen: the gate then says "until at least".
 */
export function nextWindowEnd(config: Pick<FreezeConfig, "windows">, now: Date): Date | null {
  let t = now;
  for (let i = 0; i < MAX_CHAIN; i++) {
    const active = activeFreezes(config, t);
    if (active.length === 0) return i === 0 ? null : t;
    t = new Date(Math.max(...active.map((o) => o.end.getTime())));
  }
  return t;
}

/** The next occurrence of any window that starts after `now` (within about a year), or null. */
export function nextFreeze(config: Pick<FreezeConfig, "windows">, now: Date): FreezeOccurrence | null {
  const nowMs = now.getTime();
  let best: FreezeOccurrence | null = null;
  for (const w of config.windows) {
    const local = toLocal(nowMs, w.timeZone);
    let cursor = local;
    for (;;) {
      const startLocal = nextStartLocal(w, cursor, local + LOOKAHEAD);
      if (startLocal === null) break;
      const occ = occurrence(w, startLocal);
      // Readings ahead of the clock can still lie in the past right after a fall-back; skip those.
      if (occ.start.getTime() > nowMs) {
        if (!best || occ.start < best.start) best = occ;
        break;
      }
      cursor = startLocal + MINUTE;
    }
  }
  return best;
}

// ---- the gate ---------------------------------------------------------------------------------------------------

const windowList = (occ: FreezeOccurrence[]): string =>
  `${occ.length === 1 ? "window" : "windows"} ${occ.map((o) => `"${o.window}"`).join(", ")}`;

export const freezeGate: GateEvaluator<FreezeConfig, FreezeInput> = {
  kind: KIND,
  parseConfig: parseFreezeConfig,

  evaluate(config: FreezeConfig, input: FreezeInput, now: Date): GateResult {
    const active = activeFreezes(config, now);
    const bg = input.promotion.breakGlass;
    const role = config.breakGlassRole;
    const breakGlass = bg ? { by: bg.by, reason: bg.reason, at: bg.at.toISOString(), role } : null;
    const base = { gate: KIND, name: KIND };

    if (active.length === 0) {
      const next = nextFreeze(config, now);
      return {
        ...base, state: "passed",
        reason: "no freeze window is in effect" +
          (next ? `; the next, "${next.window}", starts at ${isoSeconds(next.start)} (${describeLocal(next.start.getTime(), next.timeZone)})` : ""),
        remedy: null,
        details: {
          active: [], breakGlass, breakGlassUsed: false,
          nextFreeze: next ? { window: next.window, start: next.start.toISOString(), end: next.end.toISOString() } : null,
        },
      };
    }

    const first = active[0] as FreezeOccurrence;
    const until = nextWindowEnd(config, now) ?? first.end;
    const zone = first.timeZone;
    const endless = activeFreezes(config, until).length > 0;
    const untilText = `${endless ? "at least " : ""}${isoSeconds(until)} (${describeLocal(until.getTime(), zone)})`;
    const details = {
      active: active.map((o) => ({ window: o.window, timeZone: o.timeZone, start: o.start.toISOString(), end: o.end.toISOString() })),
      frozenUntil: until.toISOString(),
      breakGlass,
      breakGlassUsed: false,
    };

    let refused: string | null = null;
    if (bg !== null) {
      if (!bg.reason.trim()) refused = "it has no reason";
      else if (bg.roles !== undefined && !satisfies(bg.roles.filter(isRole), role)) {
        refused = `${bg.by} does not hold the ${role} role`;
      } else {
        return {
          ...base, state: "passed",
          reason: `frozen by ${windowList(active)} until ${untilText}, overridden: ${bg.by} broke glass at ${isoSeconds(bg.at)}: "${bg.reason}"`,
          remedy: null,
          details: { ...details, breakGlassUsed: true },
        };
      }
    }
    return {
      ...base, state: "failed",
      reason: `frozen by ${windowList(active)} until ${untilText}` + (bg !== null && refused !== null ? `; the break-glass by ${bg.by} does not count: ${refused}` : ""),
      remedy: `wait until ${untilText}, or break glass with a reason (role ${role})`,
      details,
    };
  },
};
