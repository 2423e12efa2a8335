// Human durations as operators type them on the command line: "90s", "30m", "2h", "1h30m", "7d".
//
// Every duration Ferry accepts is bounded. Unbounded, a duration overflows where it ends up: an int64 on the wire
// ("Error serializing response" on every later Connect and Enrol after a rotation overlap of 99999999999999h), an
// Invalid Date (a 500 instead of a refusal), or Node's timers, which run a delay above 2^31-1 ms (24.8 days) after
// 1 ms. Callers pass the range that makes sense for the field; the default ceiling is ten years.
import { FerryError } from "../errors.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The longest duration accepted where the field sets no tighter bound: ten years. */
export const MAX_DURATION_MS = 3650 * 86_400_000;
/** The longest delay a Node.js timer honours; durations that end up in setTimeout/setInterval stay below it. */
export const MAX_TIMER_MS = 2_147_483_647;

export interface DurationBounds {
  /** Smallest accepted value in ms (default 0). */
  min?: number;
  /** Largest accepted value in ms (default MAX_DURATION_MS). */
  max?: number;
}

export function parseDuration(text: string, field = "duration", bounds: DurationBounds = {}): number {
  const s = text.trim();
  const bad = (): never => {
    throw new FerryError("VALIDATION_FAILED", `${field}: "${text.slice(0, 40)}" is not a duration (examples: 90s, 30m, 2h, 1h30m)`, { field });
  };
  let total = 0;
  if (/^\d+$/.test(s)) {
    total = Number(s) * 1000; // bare numbers are seconds
  } else {
    const re = /(\d+)(ms|s|m|h|d)/gy;
    let consumed = 0;
    for (let m = re.exec(s); m; m = re.exec(s)) {
      total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
      consumed = re.lastIndex;
    }
    if (s.length === 0 || consumed !== s.length) bad();
  }
  checkDuration(total, field, bounds);
  return total;
}

/** Refuses a duration in ms outside the field's bounds, naming the bounds in human units. */
export function checkDuration(ms: number, field: string, bounds: DurationBounds = {}): void {
  const min = bounds.min ?? 0;
  const max = bounds.max ?? MAX_DURATION_MS;
  if (!Number.isSafeInteger(ms) || ms < min || ms > max) {
    throw new FerryError("VALIDATION_FAILED", `${field}: must be between ${formatDuration(min)} and ${formatDuration(max)}`, { field, min: formatDuration(min), max: formatDuration(max) });
  }
}

export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
