// Five-field cron schedules ("m h dom mon dow") as crontab(5) reads them, matched against wall-clock readings
// (local ms, see zoned-time.ts). Fields take *, n, a-b, lists (a,b), steps (*/s, a-b/s, a/s), month names (jan…dec)
// and weekday names (sun…sat); weekday 0 and 7 are both Sunday. When both day-of-month and day-of-week are
// restricted, a day matches if either does (the classic cron rule); a field written starting with "*" (such as
// "*/2") counts as unrestricted for that rule, as in Vixie cron.
import { FerryError } from "../../errors.js";
import { DAY, MINUTE } from "./zoned-time.js";

export interface CronSchedule {
  minutes: number[]; // ascending
  hours: number[];
  daysOfMonth: Set<number>;
  months: Set<number>; // 1-12
  daysOfWeek: Set<number>; // 0-6, Sunday 0
  domStar: boolean;
  dowStar: boolean;
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FIELD_NAMES = ["minute", "hour", "day of month", "month", "day of week"] as const;
const MAX_DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function parseField(text: string, min: number, max: number, names: string[] | null, nameBase: number, fail: (msg: string) => never): Set<number> {
  const out = new Set<number>();
  const value = (s: string): number => {
    const byName = names?.indexOf(s.toLowerCase()) ?? -1;
    if (byName >= 0) return byName + nameBase;
    if (!/^\d+$/.test(s)) fail(`"${s}" is not a number${names ? " or a name" : ""}`);
    const n = Number(s);
    if (n < min || n > max) fail(`${n} is outside ${min}-${max}`);
    return n;
  };
  for (const part of text.split(",")) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!m) fail(`"${part}" is not a value, range or step`);
    const [, range = "", stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) fail(`step ${stepText} must be at least 1`);
    let lo: number;
    let hi: number;
    if (range === "*") { lo = min; hi = max; }
    else if (range.includes("-")) {
      const [a = "", b = "", ...rest] = range.split("-");
      if (rest.length > 0) fail(`"${range}" is not a range`);
      lo = value(a);
      hi = value(b);
      if (max === 7 && hi === 0 && lo > 0) hi = 7; // "fri-sun": Sunday closes a weekday range
      if (lo > hi) fail(`range ${range} runs backwards`);
    } else {
      lo = value(range);
      hi = stepText === undefined ? lo : max; // "a/s": from a to the end, every s
    }
    for (let n = lo; n <= hi; n += step) out.add(n);
  }
  return out;
}

/** Parses a five-field expression; errors name `field` and the cron field at fault. */
export function parseCron(expr: string, field: string): CronSchedule {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new FerryError("VALIDATION_FAILED", `${field}: "${expr}" must have five fields: minute hour day-of-month month day-of-week`, { field });
  }
  const at = (i: number) => (msg: string): never => {
    throw new FerryError("VALIDATION_FAILED", `${field}: ${FIELD_NAMES[i]} field "${parts[i]}": ${msg}`, { field });
  };
  const [mi = "", h = "", dom = "", mon = "", dow = ""] = parts;
  const daysOfWeek = new Set([...parseField(dow, 0, 7, WEEKDAYS, 0, at(4))].map((d) => d % 7));
  const s: CronSchedule = {
    minutes: [...parseField(mi, 0, 59, null, 0, at(0))].sort((a, b) => a - b),
    hours: [...parseField(h, 0, 23, null, 0, at(1))].sort((a, b) => a - b),
    daysOfMonth: parseField(dom, 1, 31, null, 0, at(2)),
    months: parseField(mon, 1, 12, MONTHS, 1, at(3)),
    daysOfWeek,
    domStar: dom.startsWith("*"),
    dowStar: dow.startsWith("*"),
  };
  // "0 0 30 2 *" is valid syntax that never fires; a freeze window that can never start is a mistake worth naming.
  if (s.dowStar || s.domStar) {
    const possible = [...s.months].some((m) => [...s.daysOfMonth].some((d) => d <= (MAX_DAYS_IN_MONTH[m - 1] ?? 31)));
    if (!possible) throw new FerryError("VALIDATION_FAILED", `${field}: "${expr}" never matches: no chosen month has the chosen day`, { field });
  }
  return s;
}

function dayMatches(s: CronSchedule, dayStartLocal: number): boolean {
  const d = new Date(dayStartLocal);
  if (!s.months.has(d.getUTCMonth() + 1)) return false;
  const dom = s.daysOfMonth.has(d.getUTCDate());
  const dow = s.daysOfWeek.has(d.getUTCDay());
  if (s.domStar && s.dowStar) return true;
  if (s.domStar) return dow;
  if (s.dowStar) return dom;
  return dom || dow;
}

/** The latest matching reading at or before `localMs`, not before `limitLocal`; null if none. */
export function previousMatch(s: CronSchedule, localMs: number, limitLocal: number): number | null {
  let day = Math.floor(localMs / DAY) * DAY;
  let maxMinuteOfDay = Math.floor((localMs - day) / MINUTE);
  while (day + DAY > limitLocal) {
    if (dayMatches(s, day)) {
      for (let i = s.hours.length - 1; i >= 0; i--) {
        const h = s.hours[i] as number;
        if (h * 60 > maxMinuteOfDay) continue;
        const cap = h === Math.floor(maxMinuteOfDay / 60) ? maxMinuteOfDay % 60 : 59;
        for (let j = s.minutes.length - 1; j >= 0; j--) {
          const m = s.minutes[j] as number;
          if (m > cap) continue;
          const t = day + (h * 60 + m) * MINUTE;
          return t >= limitLocal ? t : null;
        }
      }
    }
    day -= DAY;
    maxMinuteOfDay = 1439;
  }
  return null;
}

/** The earliest matching reading at or after `localMs`, not after `limitLocal`; null if none. */
export function nextMatch(s: CronSchedule, localMs: number, limitLocal: number): number | null {
  const first = Math.ceil(localMs / MINUTE) * MINUTE;
  let day = Math.floor(first / DAY) * DAY;
  let minMinuteOfDay = Math.floor((first - day) / MINUTE);
  while (day <= limitLocal) {
    if (dayMatches(s, day)) {
      for (const h of s.hours) {
        if (h * 60 + 59 < minMinuteOfDay) continue;
        const floor = h === Math.floor(minMinuteOfDay / 60) ? minMinuteOfDay % 60 : 0;
        for (const m of s.minutes) {
          if (m < floor) continue;
          const t = day + (h * 60 + m) * MINUTE;
          return t <= limitLocal ? t : null;
        }
      }
    }
    day += DAY;
    minMinuteOfDay = 0;
  }
  return null;
}
