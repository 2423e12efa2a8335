// Reading what the engine streams, with bounds: newline-delimited JSON (pull progress, events) one line at a time
// with a limit on a line, and container output (logs) demultiplexed as it arrives, keeping only its last bytes.
import { EngineAnswerError } from "./errors.js";

/**
 * The JSON values of a newline-delimited JSON stream, one per line (blank lines and a trailing "\r" skipped). A line
 * longer than `maxLineBytes`, or one that is not JSON, ends the stream with an EngineAnswerError.
 */
export async function* jsonLines<T>(stream: AsyncIterable<Buffer | string>, maxLineBytes: number, what: string): AsyncGenerator<T, void, undefined> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const tooLong = () => new EngineAnswerError("ENGINE_LINE_TOO_LONG", `${what}: the engine sent a line longer than ${maxLineBytes} bytes`);
  for await (const raw of stream) {
    const chunk = typeof raw === "string" ? Buffer.from(raw) : raw;
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (pendingBytes + piece.length > maxLineBytes) throw tooLong();
      const line = pendingBytes > 0 ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      pendingBytes = 0;
      const value = parseLine<T>(line, what);
      if (value !== undefined) yield value;
    }
    const rest = chunk.subarray(start);
    if (pendingBytes + rest.length > maxLineBytes) throw tooLong();
    if (rest.length > 0) {
      // A copy: the stream may reuse its chunk's memory once it is handed on.
      pending.push(Buffer.from(rest));
      pendingBytes += rest.length;
    }
  }
  if (pendingBytes > 0) {
    const value = parseLine<T>(Buffer.concat(pending), what);
    if (value !== undefined) yield value;
  }
}

function parseLine<T>(line: Buffer, what: string): T | undefined {
  const text = line.toString("utf8").replace(/\r$/, "");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new EngineAnswerError("ENGINE_BAD_JSON", `${what}: the engine sent a line that is not JSON: ${preview(text)}`);
  }
}

/** The start of an unexpected answer, for an error message: one line, at most 200 characters. */
export function preview(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

/**
 * Container output as GET /containers/{id}/logs sends it, turned into text as it arrives. Without a TTY the engine
 * frames it: [stream (0 stdin, 1 stdout, 2 stderr), 0, 0, 0, size (u32 BE)] + payload; with a TTY it is raw. The
 * first header tells which (as docker's own stdcopy does); a header that makes no sense later ends the framed reading
 * and the rest is kept as it is. Only the last `maxBytes` are kept: a tail is what a failure report shows.
 */
export class LogDemuxer {
  readonly #maxBytes: number;
  #mode: "unknown" | "framed" | "raw" = "unknown";
  #header = Buffer.alloc(0);
  /** Payload bytes still to come of the current frame. */
  #remaining = 0;
  #kept: Buffer[] = [];
  #keptBytes = 0;
  #cut = false;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.#mode === "raw") {
        this.#keep(chunk.subarray(off));
        return;
      }
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, chunk.length - off);
        this.#keep(chunk.subarray(off, off + n));
        this.#remaining -= n;
        off += n;
        continue;
      }
      const take = chunk.subarray(off, off + (8 - this.#header.length));
      this.#header = Buffer.concat([this.#header, take]);
      off += take.length;
      if (this.#header.length < 8) return;
      const h = this.#header;
      this.#header = Buffer.alloc(0);
      if (h[1] !== 0 || h[2] !== 0 || h[3] !== 0) {
        this.#mode = "raw";
        this.#keep(h);
        continue;
      }
      this.#mode = "framed";
      this.#remaining = h.readUInt32BE(4);
    }
  }

  /** The text kept; "…" in front when earlier output was cut. */
  text(): string {
    // A partial header at the end of a raw (or too short to tell) answer is output; in a framed one it is noise.
    if (this.#mode !== "framed" && this.#header.length > 0) this.#keep(this.#header);
    this.#header = Buffer.alloc(0);
    let all = Buffer.concat(this.#kept);
    if (all.length > this.#maxBytes) {
      all = all.subarray(all.length - this.#maxBytes);
      this.#cut = true;
    }
    return `${this.#cut ? "…" : ""}${all.toString("utf8")}`;
  }

  #keep(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (bytes.length > this.#maxBytes) {
      bytes = bytes.subarray(bytes.length - this.#maxBytes);
      this.#cut = true;
    }
    this.#kept.push(Buffer.from(bytes));
    this.#keptBytes += bytes.length;
    // Drop whole chunks from the front while what remains still holds the last maxBytes.
    while (this.#kept.length > 1 && this.#keptBytes - this.#kept[0]!.length >= this.#maxBytes) {
      this.#keptBytes -= this.#kept.shift()!.length;
      this.#cut = true;
    }
  }
}
