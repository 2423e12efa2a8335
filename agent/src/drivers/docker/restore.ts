// restore: put back what served before the task, from the phase state alone (it is all restore may rely on: the
// phase runner calls it after any failure from start on, including a start that failed half-way or was cancelled).
//
//   - the new container is removed (force: it may run, or crash-loop);
//   - the previous container gets the target's name again and, if it ran before, is started again;
//   - "restored" means running: a previous container that ran well before the task must still be running a moment
//     after it was started, or restore fails (RESTORE_FAILED: the target needs an operator);
//   - a previous container that was crash-looping before the task is put back exactly as it was — its name, its
//     restart policy, started, so Docker resumes restarting it — and the restore reports that it crash-loops instead
//     of failing: the task failed for its own reason, and the target is no worse than before it;
//   - a redelivered task whose own container failed its check, with no parked previous container left (the first run
//     had already removed it), has nothing to put back: its container is left as it is and the result says so.
import type { DockerTargetConfig } from "@ferry/contract";
import { setTimeout as sleep } from "node:timers/promises";

import type { PhaseContext } from "../driver.js";
import { removeContainer, renameContainer, startContainer } from "./container-ops.js";
import { engineMessage } from "./errors.js";
import type { DockerEnv, DockerPhaseState } from "./phase-state.js";

/** How long a restarted previous container must keep running before restore counts it as running again. */
const RESTORED_RUNNING_MS = 300;

export async function restore(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv, state: Partial<DockerPhaseState>): Promise<Record<string, unknown>> {
  const { docker } = env;
  const name = ctx.config.container;
  const log = (line: string) => ctx.progress.log(`restore: ${line}`);
  const done: Record<string, unknown> = {};
  const previous = state.previous;

  try {
    if (state.alreadyDeployed && !previous) {
      log(`the previous container was already removed by this task's first run; nothing to put back; ${name} (${state.newId?.slice(0, 12) ?? "?"}) is left as it is`);
      done["kept"] = state.newId;
      return done;
    }
    if (state.newId) {
      await removeContainer(docker, state.newId);
      log(`removed the new container ${state.newId.slice(0, 12)}`);
      done["removed"] = state.newId;
    }
    if (!previous) {
      log("there was no previous container; the target is empty again");
      return done;
    }
    if (previous.parkedAs) {
      await renameContainer(docker, previous.id, name, env.stopTimeoutSeconds, log);
      log(`renamed ${previous.parkedAs} back to ${name}`);
      delete previous.parkedAs;
    }
    done["container"] = previous.id;
    if (!previous.wasRunning) {
      log(`${name} (${previous.id.slice(0, 12)}) was not running before the task (${previous.status}); left stopped`);
      return done;
    }
    await startContainer(docker, previous.id);
    previous.stopped = false;
    // Give it a moment to fail on its own (a port still held, a crash at start): "restored" must mean running.
    await sleep(RESTORED_RUNNING_MS);
    const info = await docker.getContainer(previous.id).inspect();
    const s = info.State;
    if (s.Running && !s.Restarting) {
      log(`${name} (${previous.id.slice(0, 12)}) runs again`);
      done["restarted"] = true;
      if (previous.crashLooping) done["crashLooping"] = true;
      return done;
    }
    if (previous.crashLooping) {
      log(
        `${name} (${previous.id.slice(0, 12)}) is back as it was before the task: it crash-loops (${s.Status}, exit code ${s.ExitCode}), ` +
          "and Docker keeps restarting it under its restart policy; the target needs a good deploy",
      );
      done["restarted"] = true;
      done["crashLooping"] = true;
      return done;
    }
    throw new Error(`the previous container ${previous.id.slice(0, 12)} did not stay running (${s.Status}, exit code ${s.ExitCode})`);
  } catch (err) {
    throw new Error(engineMessage(err), { cause: err });
  }
}
