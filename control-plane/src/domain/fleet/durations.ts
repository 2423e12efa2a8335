// Human durations as operators type them on the command line: "90s", "30m", "2h", "1h30m", "7d".
import { FerryError } from "../errors.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, field = "duration"): number {
  const s = text.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000; // bare numbers are seconds
  const re = /(\d+)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    consumed = re.lastIndex;
  }
  if (s.length === 0 || consumed !== s.length) {
    throw new FerryError("VALIDATION_FAILED", `${field}: "${text}" is not a duration (examples: 90s, 30m, 2h, 1h30m)`, { field });
  }
  return total;
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
