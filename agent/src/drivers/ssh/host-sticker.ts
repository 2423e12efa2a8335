// The version sticker on the SSH host itself: a JSON file (default /var/lib/ferry/stickers/<target id>.json),
// written atomically (a temporary file beside it, then mv) after the new version passed its health check, so a
// sticker never names a version that failed. Read back by readSticker and inspect, and by a script target's prepare
// (to hand the rollback script what ran before).
import { hostStickerFile, parseHostStickerFile, type HostStickerFile } from "../host-sticker-file.js";
import type { SshTargetConfig } from "@ferry/contract";

import type { PhaseContext } from "../driver.js";
import type { SshSession } from "./connection.js";
import { runRemote, shQuote } from "./remote-command.js";

const MAX_STICKER_BYTES = 64 * 1024;

export type HostSticker = HostStickerFile;

export function stickerPath(config: SshTargetConfig, targetId: string): string {
  return config.stickerPath ?? `/var/lib/ferry/stickers/${targetId.replace(/[^A-Za-z0-9_.-]/g, "_")}.json`;
}

/** `sudo -n ` when the target runs commands through sudo. */
export function sudoPrefix(config: SshTargetConfig): string {
  return config.sudo ? "sudo -n " : "";
}

export async function writeHostSticker(session: SshSession, config: SshTargetConfig, ctx: PhaseContext<unknown>, signal: AbortSignal): Promise<string> {
  const file = stickerPath(config, ctx.target.id);
  const sticker = hostStickerFile(ctx);
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  const tmp = `${file}.ferry-tmp`;
  const script = `umask 022 && mkdir -p ${shQuote(dir)} && cat > ${shQuote(tmp)} && mv -f ${shQuote(tmp)} ${shQuote(file)}`;
  const run = await runRemote(session, `${sudoPrefix(config)}sh -c ${shQuote(script)}`, { stdin: `${JSON.stringify(sticker, null, 2)}\n`, timeoutMs: 30_000, signal });
  if (run.exitCode !== 0) throw new Error(`writing the sticker ${file} on ${session.where} failed (${describeEnd(run)}): ${run.tail.join(" ")}`);
  return file;
}

/** The sticker on the host, or undefined when there is none (or it is not Ferry's). */
export async function readHostSticker(session: SshSession, config: SshTargetConfig, targetId: string, signal: AbortSignal): Promise<HostSticker | undefined> {
  const file = stickerPath(config, targetId);
  const run = await runRemote(session, `${sudoPrefix(config)}sh -c ${shQuote(`if [ -f ${shQuote(file)} ]; then cat ${shQuote(file)}; fi`)}`, {
    timeoutMs: 30_000,
    signal,
    keepStdout: MAX_STICKER_BYTES,
  });
  if (run.exitCode !== 0) throw new Error(`reading the sticker ${file} on ${session.where} failed (${describeEnd(run)}): ${run.tail.join(" ")}`);
  return parseHostStickerFile(run.stdout);
}

export function describeEnd(run: { exitCode: number | undefined; exitSignal?: string; timedOut: boolean; lost: boolean; aborted: boolean }): string {
  if (run.timedOut) return "timed out";
  if (run.aborted) return "aborted";
  if (run.lost) return "the connection dropped";
  if (run.exitSignal) return `killed by SIG${run.exitSignal}`;
  return `exit code ${run.exitCode}`;
}

