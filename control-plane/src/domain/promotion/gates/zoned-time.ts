// Wall-clock time in an IANA time zone, from the tz database that ships with Node's ICU (Intl.DateTimeFormat), so
// no date library and no hand-kept offset tables.
//
// A wall-clock reading is held as "local ms": the number Date.UTC() gives for the reading's fields. Arithmetic on it
// (next day, 22:00 that day) is plain integer arithmetic; only the step back to a real instant needs the zone, and
// that step is where daylight saving bites:
//   - gap (spring forward): the reading does not exist, e.g. 02:30 in Berlin on the last Sunday of March. It maps to
//     the first instant that exists after it: the transition itself (03:00 local).
//   - overlap (fall back): the reading exists twice, e.g. 01:30 in New York on the first Sunday of November. The
//     caller chooses: "earlier" (the first occurrence, still on summer time) or "later" (the second).
export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    // Building a formatter costs far more than using one; gates evaluate often, zones are few.
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23",
      year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric",
    });
    formatters.set(zone, f);
  }
  return f;
}

export function isTimeZone(zone: string): boolean {
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

/** The reading formatToParts gives, as local ms; it ignores the instant's milliseconds. */
function readWallClock(instantMs: number, zone: string): number {
  const fields: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(instantMs)) {
    if (p.type !== "literal") fields[p.type] = Number(p.value);
  }
  return Date.UTC(fields.year ?? 1970, (fields.month ?? 1) - 1, fields.day ?? 1, fields.hour ?? 0, fields.minute ?? 0, fields.second ?? 0);
}

// Offsets already read, by zone and whole-second instant. formatToParts is most of what a freeze gate costs, and the
// same instants come back: the readings around a window's start and end on every evaluation, and "now" for every
// request within the same second. Exact (no guess about where transitions fall), and bounded.
const OFFSETS_KEPT = 4096; // measured: about 270 KiB of heap when full
const offsets = new Map<string, Map<number, number>>();
let offsetsSize = 0;

/** The zone's offset from UTC at an instant, in ms (east positive: Berlin in summer is +7_200_000). */
export function offsetAt(instantMs: number, zone: string): number {
  const whole = Math.floor(instantMs / 1000) * 1000;
  let byInstant = offsets.get(zone);
  const known = byInstant?.get(whole);
  if (known !== undefined) return known;
  const offset = readWallClock(whole, zone) - whole;
  if (offsetsSize >= OFFSETS_KEPT) {
    offsets.clear();
    offsetsSize = 0;
    byInstant = undefined;
  }
  if (!byInstant) offsets.set(zone, (byInstant = new Map<number, number>()));
  byInstant.set(whole, offset);
  offsetsSize++;
  return offset;
}

/** The wall-clock reading of an instant in a zone, as local ms (whole seconds). */
export function toLocal(instantMs: number, zone: string): number {
  const whole = Math.floor(instantMs / 1000) * 1000;
  return whole + offsetAt(whole, zone);
}

/** The instant a wall-clock reading stands for; see the header for gaps and overlaps. */
export function fromLocal(localMs: number, zone: string, prefer: "earlier" | "later"): number {
  // No zone moves by more than a day's worth of offset at once, so the offsets a day either side bracket every
  // offset this reading can have.
  const before = offsetAt(localMs - DAY, zone);
  const after = offsetAt(localMs + DAY, zone);
  if (before === after) {
    const t = localMs - before;
    if (offsetAt(t, zone) === before) return t;
  }
  const valid = [...new Set([before, after])].map((o) => localMs - o).filter((t) => offsetAt(t, zone) === localMs - t);
  if (valid.length > 0) return prefer === "earlier" ? Math.min(...valid) : Math.max(...valid);

  // A gap: find the transition, the first instant on the new offset, between the two readings' candidates.
  let lo = Math.min(localMs - before, localMs - after);
  let hi = Math.max(localMs - before, localMs - after);
  const loOffset = offsetAt(lo, zone);
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(mid, zone) === loOffset) lo = mid;
    else hi = mid;
  }
  return hi;
}

const WEEKDAY = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const pad = (n: number): string => String(n).padStart(2, "0");

/** "Mon 2024-04-01 10:00 Europe/Berlin": how an instant reads on the wall in a zone, for messages. */
export function describeLocal(instantMs: number, zone: string): string {
  const d = new Date(toLocal(instantMs, zone));
  return `${WEEKDAY[d.getUTCDay()]} ${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} ${zone}`;
}
