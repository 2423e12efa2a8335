// Script mode: the operator's scripts do the deploying; Ferry uploads them, runs them with the release in their
// environment, streams their output into the task log, bounds them in time, and judges them by their exit code.
//
//   prepare  connect (host key, key auth), read the sticker on the host: what ran before (for the rollback script)
//   start    upload and run script.deploy                                    the target changes here
//   health   run script.health when given; otherwise the deploy script's exit 0 is the verdict
//   switch   write the sticker file on the host
//   retire   nothing to retire: the deploy script replaced what ran
//   restore  run script.rollback with the previous release in its environment; without one, restore fails
//            (RESTORE_FAILED: what the deploy script changed stays, and only an operator knows how to undo it)
//
// What is common to the ssh and winrm script targets (environment, output, what an end means, the health and
// rollback verdicts) is in ../script-target.ts; here is how a script gets to an SSH host and runs there. Exit code
// 127 (the shell's "not found", also for sudo or sh missing) is COMMAND_NOT_FOUND.
import type { SshTargetConfig } from "@ferry/contract";

import type { PhaseContext } from "../driver.js";
import { scriptFailure, type ScriptHost } from "../script-target.js";
import type { SshSession } from "./connection.js";
import { runRemote, shQuote, type RemoteRun } from "./remote-command.js";
import { sudoFailure, sudoPrefix } from "./sudo.js";

const NEVER_ABORTS = new AbortController().signal;
const UPLOAD_TIMEOUT_SECONDS = 60;

/**
 * Scripts on an SSH host. Each goes through stdin into a file of its own (mode 0700, name with the task id), never
 * onto a command line, so neither its size nor its quoting matter; it runs with sh in the work directory, and the
 * file is removed afterwards. With sudo, everything that touches the work directory runs as `sudo -n sh -c …`: one
 * command for sudoers to allow.
 */
export function sshScriptHost(session: SshSession, ctx: PhaseContext<SshTargetConfig>): ScriptHost<RemoteRun> {
  const config = ctx.config;
  const dir = config.script?.workDir ?? "/tmp";
  const sudo = sudoPrefix(config);
  const fileFor = (name: string) => `${dir}/ferry-${ctx.taskId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 80)}-${name}.sh`;
  const host: ScriptHost<RemoteRun> = {
    where: session.where,
    describe: (name) => `${fileFor(name)}${config.sudo ? ", sudo" : ""}`,
    commandNotFound: (run) => run.exitCode === 127,
    async run(name, text, env, opts) {
      const file = fileFor(name);
      const upload = await runRemote(session, `${sudo}sh -c ${shQuote(`umask 077 && cat > ${shQuote(file)}`)}`, { stdin: text, timeoutMs: UPLOAD_TIMEOUT_SECONDS * 1000, signal: opts.signal });
      if (upload.exitCode !== 0) {
        const what = `uploading the ${name} script to ${file} on ${session.where}`;
        throw sudoFailure(upload, config, what, session.where) ?? scriptFailure(host, upload, what, name, UPLOAD_TIMEOUT_SECONDS);
      }
      opts.onStarted?.();
      const assignments = Object.entries(env).map(([k, v]) => `${k}=${shQuote(v)}`).join(" ");
      // sshd starts an exec session's shell in a session of its own (setsid), so that shell's pid ($$, handed to the
      // inner shell as $1) is the process group of everything the script starts, sudo included: on a timeout or an
      // abort the whole group is killed, not just the shell.
      const pidFile = `${file}.pid`;
      const inner = `echo "$1" > ${shQuote(pidFile)} && cd ${shQuote(dir)} && exec env ${assignments} sh ${shQuote(file)}`;
      const cleanup = `${sudo}sh -c ${shQuote(`rm -f ${shQuote(file)} ${shQuote(pidFile)}`)}`;
      const command = `${sudo}sh -c ${shQuote(inner)} ferry-${name} $$; status=$?; ${cleanup}; exit $status`;
      const stop = async () => {
        const kill = `pg=$(cat ${shQuote(pidFile)} 2>/dev/null) && [ -n "$pg" ] && kill -s KILL -- "-$pg"; rm -f ${shQuote(file)} ${shQuote(pidFile)}`;
        await runRemote(session, `${sudo}sh -c ${shQuote(kill)}`, { timeoutMs: 10_000, signal: NEVER_ABORTS });
      };
      return runRemote(session, command, { timeoutMs: opts.timeoutMs, signal: opts.signal, stop, onLine: opts.onLine });
    },
  };
  return host;
}
