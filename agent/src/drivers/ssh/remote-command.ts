// Running one command on the host over an SSH exec channel, with what an operator needs from it:
//   - its output, stdout and stderr, line by line into the task log as it comes, and the last lines kept for the
//     result (the script targets' shared OutputLines: long lines cut, the number of logged lines bounded);
//   - a timeout: the command is sent SIGKILL (OpenSSH honours the "signal" channel request since 7.9) and the channel
//     closed; the result says it timed out;
//   - its exit code; a channel that closes without one means the connection dropped mid-command.
// Nothing here decides whether a non-zero exit is a failure; callers do (a probe's exit 1 is an answer).
import { OutputLines, type OnLine, type ScriptEnd } from "../script-target.js";
import type { SshSession } from "./connection.js";
import { execChannel } from "./connection.js";

export interface RemoteRun extends ScriptEnd {
  /** stdout as text, up to keepStdout characters. */
  stdout: string;
}

export interface RemoteRunOptions {
  /** Written to the command's stdin, then stdin is closed. */
  stdin?: string | Buffer;
  timeoutMs: number;
  signal: AbortSignal;
  /** Each output line, already prefixed with nothing; omit to log nothing. */
  onLine?: OnLine;
  /** Keep stdout (up to this many bytes) in the result, e.g. to read a file. */
  keepStdout?: number;
  /**
   * Stops the command on the host when it times out or the task is aborted, beyond the SIGKILL sent to the session's
   * shell (which leaves that shell's children running, holding the channel open): e.g. kill its process group.
   */
  stop?: () => Promise<void>;
}

/** How long a stopped command's channel may take to close before the run is reported anyway. */
const STOP_GRACE_MS = 3_000;

/** Single-quotes a string for a POSIX shell. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export async function runRemote(session: SshSession, command: string, opts: RemoteRunOptions): Promise<RemoteRun> {
  const started = Date.now();
  const output = new OutputLines(opts.onLine);
  let stdout = "";
  const feed = (stream: "stdout" | "stderr", chunk: Buffer) => {
    if (stream === "stdout" && opts.keepStdout !== undefined && stdout.length < opts.keepStdout) stdout += chunk.toString("utf8").slice(0, opts.keepStdout - stdout.length);
    output.feed(stream, chunk);
  };

  const channel = await execChannel(session, command);
  return new Promise<RemoteRun>((resolve) => {
    let exitCode: number | undefined;
    let exitSignal: string | undefined;
    let timedOut = false;
    let aborted = false;
    let finished = false;
    const kill = () => {
      void (opts.stop?.() ?? Promise.resolve())
        .catch(() => undefined)
        .finally(() => {
          try {
            channel.signal("KILL");
          } catch {
            // the channel may be gone already
          }
          channel.close();
          setTimeout(finish, STOP_GRACE_MS).unref();
        });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, opts.timeoutMs);
    const onAbort = () => {
      aborted = true;
      kill();
    };
    opts.signal.addEventListener("abort", onAbort, { once: true });
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", onAbort);
      output.flush();
      const run: RemoteRun = {
        exitCode,
        timedOut,
        aborted,
        lost: exitCode === undefined && exitSignal === undefined && !timedOut && !aborted,
        tail: output.tail,
        stdout,
        durationMs: Date.now() - started,
      };
      if (exitSignal !== undefined) run.exitSignal = exitSignal;
      resolve(run);
    };
    channel.on("exit", (code: number | null, sig?: string) => {
      if (typeof code === "number") exitCode = code;
      else if (sig) exitSignal = sig;
    });
    channel.on("data", (d: Buffer) => feed("stdout", d));
    channel.stderr.on("data", (d: Buffer) => feed("stderr", d));
    channel.on("close", finish);
    // The whole connection going away closes the channel too, but not always with a "close" on it.
    void session.closed.then(() => setImmediate(finish));
    if (opts.stdin !== undefined) channel.end(opts.stdin);
    else channel.end();
  });
}
