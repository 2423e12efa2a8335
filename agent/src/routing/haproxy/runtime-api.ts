// HAProxy's runtime API ("stats socket ... level admin"): one command per connection, answered as text, the
// connection closed by HAProxy when it has answered (non-interactive mode). Nothing here is parsed beyond lines.
import net from "node:net";

import { RouterError } from "../router.js";

/** Bounds: a command is short and so is any answer this client asks for (a stat table of two servers). */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
const COMMAND_RE = /^[\x20-\x7e]{1,4096}$/;

export class RuntimeApi {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 5000,
  ) {}

  /** Sends one command and resolves with HAProxy's whole answer. */
  command(cmd: string): Promise<string> {
    // A newline or a semicolon would let one value smuggle a second command onto an admin-level socket.
    if (!COMMAND_RE.test(cmd)) return Promise.reject(new RouterError("ROUTER_COMMAND_FAILED", "haproxy: refusing a command with control characters"));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const sock = net.createConnection(this.socketPath);
      const timer = setTimeout(() => sock.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      sock.on("connect", () => sock.end(`${cmd}\n`));
      sock.on("data", (b: Buffer) => {
        size += b.length;
        if (size > MAX_ANSWER_BYTES) sock.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(b);
      });
      sock.on("error", (err) => {
        clearTimeout(timer);
        reject(new RouterError("ROUTER_UNAVAILABLE", `haproxy runtime API at ${this.socketPath}: ${err.message}`));
      });
      sock.on("close", (hadError) => {
        clearTimeout(timer);
        if (!hadError) resolve(Buffer.concat(chunks).toString("utf8"));
      });
    });
  }
}

/** One argument of a runtime API command: the API splits arguments on spaces and commands on semicolons, and a backslash escapes either (and itself). */
export function cliArg(value: string): string {
  return value.replace(/[\\ ;]/g, (c) => `\\${c}`);
}

/** Parses `show map <file>`: one "<ref> <key> <value>" line per entry (keys hold no space here). */
export function parseMapEntries(text: string): { ref: string; key: string; value: string }[] {
  const out: { ref: string; key: string; value: string }[] = [];
  for (const line of text.split("\n")) {
    const m = /^(0x[0-9a-fA-F]+) (\S+) ?(.*)$/.exec(line);
    if (m) out.push({ ref: m[1]!, key: m[2]!, value: m[3] ?? "" });
  }
  return out;
}

/** Parses `show stat` CSV: the header names the columns ("# pxname,svname,..."). */
export function parseStatCsv(text: string): Record<string, string>[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const header = lines.shift();
  if (!header?.startsWith("# ")) throw new RouterError("ROUTER_COMMAND_FAILED", `haproxy: show stat answered something else: ${text.slice(0, 200)}`);
  const cols = header.slice(2).split(",");
  return lines.map((l) => {
    const vals = l.split(",");
    return Object.fromEntries(cols.map((c, i) => [c, vals[i] ?? ""]));
  });
}

/** Parses `show info` ("Key: value" lines). */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of text.split("\n")) {
    const i = l.indexOf(": ");
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 2).trim();
  }
  return out;
}
