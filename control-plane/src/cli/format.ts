// Human output helpers for the CLI, and the terminal-safe writers every command prints through.
//
// Much of what the CLI prints was written by someone else: agent names and host facts (from any enrolled host),
// task logs and progress details (from agents and the programs they run), target and release names, reasons and
// comments (from users). A terminal interprets control characters in that text — ESC sequences can move the cursor,
// rewrite earlier lines, retitle the window or, on some terminals, answer back — so nothing reaches the terminal
// raw: C0 controls other than newline and tab, DEL, C1 controls (U+0080–U+009F, e.g. U+009B, a one-character CSI),
// and the Unicode bidirectional overrides and line separators are shown escaped (\x1b, \u202e). JSON output gets
// the same characters as \u escapes, which JSON parsers read back unchanged.

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string): string => {
  const n = c.charCodeAt(0);
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
};

/** Where the CLI writes; tests swap these to capture what a command printed, and on which stream. */
export const terminal = {
  out: (text: string): void => void process.stdout.write(text),
  err: (text: string): void => void process.stderr.write(text),
};

/** Text made safe for a terminal: newlines and tabs kept, every other control character escaped. */
export function safe(text: string): string {
  return text.replace(UNSAFE, escape);
}

/** JSON text with the characters JSON.stringify leaves raw (C1, bidi controls, separators) as \u escapes. */
export function safeJson(json: string): string {
  return json.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Text for people to stdout, made terminal-safe. */
export function out(text: string): void {
  terminal.out(`${safe(text)}\n`);
}

/** A JSON document to stdout; JSON.stringify escapes C0 controls, safeJson the rest, so it parses back unchanged. */
export function outJson(data: unknown): void {
  terminal.out(`${safeJson(JSON.stringify(data, null, 2))}\n`);
}

/** Progress and notes to stderr, terminal-safe. */
export function note(text: string): void {
  terminal.err(`${safe(text)}\n`);
}

/** Raw data to stdout (task logs, release notes) with control characters escaped, keeping it exactly as written otherwise. */
export function writeOut(text: string): void {
  terminal.out(safe(text));
}

export function table(headers: string[], rows: string[][]): string {
  // Escaped before the widths are measured, so columns still line up.
  const cells = rows.map((r) => r.map((c) => safe(c ?? "")));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (cs: string[]) => cs.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  return [line(headers), ...cells.map(line)].join("\n");
}

export function ago(iso: string | null): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
