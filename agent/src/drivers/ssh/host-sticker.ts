// The version sticker on the SSH host itself: a JSON file (default /var/lib/ferry/stickers/<target id>.json),
// written atomically (a temporary file beside it, then mv) after the new version passed its health check, so a
// sticker never names a version that failed. Read back by readSticker and inspect, and by a script target's prepare
// (to hand the rollback script what ran before).
import { hostStickerFile, parseHostStickerFile, type HostStickerFile } from "../host-sticker-file.js";
import type { SshTargetConfig } from "@ferry/contract";

import type { PhaseContext } from "../driver.js";
import { describeEnd } from "../script-target.js";
import type { SshSession } from "./connection.js";
import { runRemote, shQuote, type RemoteRun } from "./remote-command.js";
import { sudoFailure, sudoPrefix } from "./sudo.js";

const MAX_STICKER_BYTES = 64 * 1024;

export type HostSticker = HostStickerFile;

export function stickerPath(config: SshTargetConfig, targetId: string): string {
  return config.stickerPath ?? `/var/lib/ferry/stickers/${targetId.replace(/[^A-Za-z0-9_.-]/g, "_")}.json`;
}

/**
 * Writes the sticker: into a temporary file beside it, then moved over it, so a reader never sees half a sticker.
 * Four plain commands, no shell text under sudo, so a sudoers rule can name each exactly (docs/drivers/ssh.md#sudo).
 */
export async function writeHostSticker(session: SshSession, config: SshTargetConfig, ctx: PhaseContext<unknown>, signal: AbortSignal): Promise<string> {
  const file = stickerPath(config, ctx.target.id);
  const sticker = hostStickerFile(ctx);
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  const tmp = `${file}.ferry-tmp`;
  const sudo = sudoPrefix(config);
  const command = `umask 022 && ${sudo}mkdir -p ${shQuote(dir)} && ${sudo}tee ${shQuote(tmp)} >/dev/null && ${sudo}mv -f ${shQuote(tmp)} ${shQuote(file)}`;
  const run = await runRemote(session, command, { stdin: `${JSON.stringify(sticker, null, 2)}\n`, timeoutMs: 30_000, signal });
  if (run.exitCode !== 0) throw stickerFailure(run, config, `writing the sticker ${file}`, session.where);
  return file;
}

/** The sticker on the host, or undefined when there is none (or it is not Ferry's). */
export async function readHostSticker(session: SshSession, config: SshTargetConfig, targetId: string, signal: AbortSignal): Promise<HostSticker | undefined> {
  const file = stickerPath(config, targetId);
  // cat's own "No such file or directory" (in the C locale) says there is no sticker: the login user may not be
  // able to look into the directory itself when the file is read through sudo.
  const run = await runRemote(session, `${sudoPrefix(config) || "LC_ALL=C "}cat ${shQuote(file)}`, { timeoutMs: 30_000, signal, keepStdout: MAX_STICKER_BYTES });
  if (run.exitCode === 1 && run.tail.some((l) => l.endsWith(`${file}: No such file or directory`))) return undefined;
  if (run.exitCode !== 0) throw stickerFailure(run, config, `reading the sticker ${file}`, session.where);
  return parseHostStickerFile(run.stdout);
}

function stickerFailure(run: RemoteRun, config: SshTargetConfig, what: string, where: string): Error {
  return sudoFailure(run, config, what, where) ?? new Error(`${what} on ${where} failed (${describeEnd(run)}): ${run.tail.join(" ")}`);
}
