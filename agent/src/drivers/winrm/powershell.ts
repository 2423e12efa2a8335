// Running a PowerShell script on a Windows host through WinRM's cmd shell:
//   powershell -NoProfile -NonInteractive -EncodedCommand <base64 of the script as UTF-16LE>
// EncodedCommand sidesteps every quoting rule of cmd and PowerShell, but it triples the script's size (UTF-16 doubles
// it, base64 adds a third) and Windows takes at most 8,191 characters on a command line. A longer script is staged:
// its UTF-8 base64 is appended to a file in %TEMP% by several short commands, then one command decodes the file,
// removes it and runs its content as a script block.
//
// Output arrives as base64 chunks in Receive answers; lines go to the caller as they complete (the script targets'
// shared OutputLines: long lines cut, the number of logged lines bounded). The run ends with the
// command's exit code, or: timed out (the command is signalled to terminate), aborted (the same), or lost (the
// connection dropped mid-Receive, so nobody knows how it ended).
import { randomBytes } from "node:crypto";

import { OutputLines, type OnLine, type ScriptEnd } from "../script-target.js";
import { MAX_COMMAND_LINE, WsmanError, type WsmanClient } from "./wsman-client.js";

const PREFIX = "powershell -NoProfile -NonInteractive -EncodedCommand ";
/** Base64 characters of the staged script per staging command (each becomes ~2.7× that on the command line). */
const STAGE_CHUNK = 2400;

export function encodeCommand(script: string): string {
  return Buffer.from(script, "utf16le").toString("base64");
}

/** The command lines that run `script`: one when it fits, else the staging commands and the run. */
export function commandLines(script: string, token = randomBytes(6).toString("hex")): string[][] {
  const direct = encodeCommand(script);
  if (PREFIX.length + direct.length <= MAX_COMMAND_LINE) return [[direct]];
  const file = `$env:TEMP\\ferry-${token}.b64`;
  const b64 = Buffer.from(script, "utf8").toString("base64");
  const lines: string[][] = [];
  for (let i = 0; i < b64.length; i += STAGE_CHUNK) {
    lines.push([encodeCommand(`Add-Content -NoNewline -Encoding ASCII -Path "${file}" -Value '${b64.slice(i, i + STAGE_CHUNK)}'`)]);
  }
  lines.push([
    encodeCommand(
      `$f = "${file}"; $s = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String((Get-Content -Raw -Path $f))); Remove-Item -Force $f; ` +
        "& ([scriptblock]::Create($s)); exit $LASTEXITCODE",
    ),
  ]);
  return lines;
}

export interface PsRun extends ScriptEnd {
  stdout: string;
  stderr: string;
  /** The fault that ended it, when the host answered one mid-run. */
  fault?: WsmanError;
}

export interface PsRunOptions {
  timeoutMs: number;
  signal: AbortSignal;
  onLine?: OnLine;
}

/** What the command lines of one run share: their output, as lines and as text. */
interface Output {
  lines: OutputLines;
  stdout: string;
  stderr: string;
}

/** Runs one command line in a fresh shell, following it to its end. Throws WsmanError only before it started. */
async function runOne(client: WsmanClient, args: string[], opts: PsRunOptions, acc: Output): Promise<Omit<PsRun, "tail" | "stdout" | "stderr" | "durationMs">> {
  const shell = await client.createShell(opts.signal);
  let commandId: string | undefined;
  const feed = (stream: "stdout" | "stderr", data: Buffer) => {
    acc[stream] += data.toString("utf8");
    acc.lines.feed(stream, data);
  };
  const deadline = Date.now() + opts.timeoutMs;
  try {
    commandId = await client.command(shell, "powershell", ["-NoProfile", "-NonInteractive", "-EncodedCommand", ...args], opts.signal);
    for (;;) {
      if (opts.signal.aborted) return { exitCode: undefined, timedOut: false, aborted: true, lost: false };
      if (Date.now() >= deadline) return { exitCode: undefined, timedOut: true, aborted: false, lost: false };
      let r;
      try {
        // Each Receive is bounded by the operation timeout (the service answers w:TimedOut), so the deadline is seen.
        r = await client.receive(shell, commandId, AbortSignal.any([opts.signal, AbortSignal.timeout(Math.max(1000, deadline - Date.now()))]));
      } catch (err) {
        if (opts.signal.aborted) return { exitCode: undefined, timedOut: false, aborted: true, lost: false };
        if (Date.now() >= deadline) return { exitCode: undefined, timedOut: true, aborted: false, lost: false };
        if (err instanceof WsmanError && err.kind === "transport") return { exitCode: undefined, timedOut: false, aborted: false, lost: true, fault: err };
        if (err instanceof WsmanError) return { exitCode: undefined, timedOut: false, aborted: false, lost: false, fault: err };
        throw err;
      }
      if (r.stdout.length) feed("stdout", r.stdout);
      if (r.stderr.length) feed("stderr", r.stderr);
      if (r.done) {
        acc.lines.flush();
        return { exitCode: r.exitCode, timedOut: false, aborted: false, lost: false };
      }
    }
  } finally {
    // Terminate what may still run, then delete the shell; both best effort (the host may be gone).
    if (commandId) await client.signal(shell, commandId).catch(() => undefined);
    await client.deleteShell(shell).catch(() => undefined);
  }
}

export async function runPowerShell(client: WsmanClient, script: string, opts: PsRunOptions): Promise<PsRun> {
  const started = Date.now();
  const acc: Output = { lines: new OutputLines(opts.onLine), stdout: "", stderr: "" };
  const lines = commandLines(script);
  let last: Omit<PsRun, "tail" | "stdout" | "stderr" | "durationMs"> = { exitCode: 0, timedOut: false, aborted: false, lost: false };
  for (const args of lines) {
    last = await runOne(client, args, { ...opts, timeoutMs: Math.max(1, started + opts.timeoutMs - Date.now()) }, acc);
    if (last.exitCode !== 0) break;
  }
  return { ...last, tail: acc.lines.tail, stdout: acc.stdout, stderr: acc.stderr, durationMs: Date.now() - started };
}
