// The ssh target's optional sudo (config.sudo): every command that needs root goes through `sudo -n`, which never
// prompts. A sudo that wants a password (no NOPASSWD rule for that exact command), or refuses the user outright,
// fails at once with its own message on stderr and exit code 1; those runs are told apart from the command's own
// failures here, by sudo's messages (LC_ALL=C is set for them, so they are sudo's English ones).
import type { SshTargetConfig } from "@ferry/contract";

import { DriverError } from "../driver.js";

/** `LC_ALL=C sudo -n ` when the target runs commands through sudo, else nothing. */
export function sudoPrefix(config: SshTargetConfig): string {
  return config.sudo ? "LC_ALL=C sudo -n " : "";
}

const REFUSED = [/^sudo: a password is required/, /^sudo: a terminal is required/, /^sudo: .* is not in the sudoers file/, /^sudo: .* may not run sudo/, /^Sorry, user .* is not allowed to execute/];
const NOT_FOUND = /^sudo: (.+): command not found/;

/** The failure a run through sudo is when sudo itself said no (or found no such command), else undefined. */
export function sudoFailure(run: { exitCode: number | undefined; tail: string[] }, config: SshTargetConfig, what: string, where: string): DriverError | undefined {
  // Exit code 1, or none at all: under load the channel can close before its exit status is read, and sudo's own
  // refusal line on stderr is decisive either way (the command never ran).
  if (!config.sudo || (run.exitCode !== 1 && run.exitCode !== undefined)) return undefined;
  const refused = run.tail.find((l) => REFUSED.some((r) => r.test(l)));
  if (refused) {
    return new DriverError(
      "SUDO_REFUSED",
      `${what}: sudo on ${where} would not run it without a password ("${refused}"): the login user needs a NOPASSWD sudoers rule for this exact command (docs/drivers/ssh.md#sudo)`,
      { host: where, sudo: refused, output: run.tail },
    );
  }
  const missing = run.tail.map((l) => NOT_FOUND.exec(l)).find((m) => m);
  if (missing) return new DriverError("COMMAND_NOT_FOUND", `${what}: sudo on ${where} found no command ${missing[1]} in its secure_path`, { host: where, command: missing[1], output: run.tail });
  return undefined;
}
