// retire: remove what served before — the parked previous container and any older parked ones. The new container
// serves and passed its health check, so a container that cannot be removed is a warning in the outcome, not a
// failed deploy; only an engine that stopped answering makes the phase itself fail (the phase runner turns that into
// a warning too).
import type { DockerTargetConfig } from "@ferry/contract";

import type { PhaseContext } from "../driver.js";
import { removeContainer } from "./container-ops.js";
import { engineMessage, isEngineUnreachable } from "./errors.js";
import type { DockerEnv, DockerPhaseState } from "./phase-state.js";

export async function retire(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv, state: DockerPhaseState): Promise<DockerPhaseState> {
  const log = (line: string) => ctx.progress.log(`retire: ${line}`);
  const doomed = [...(state.previous ? [{ id: state.previous.id, name: state.previous.parkedAs ?? state.previous.name }] : []), ...state.older];
  const retired: string[] = [];
  const warnings: string[] = [];
  for (const c of doomed) {
    try {
      await removeContainer(env.docker, c.id);
      retired.push(c.id);
      log(`removed ${c.name} (${c.id.slice(0, 12)})`);
    } catch (err) {
      if (isEngineUnreachable(err)) throw err;
      const warning = `could not remove ${c.name} (${c.id.slice(0, 12)}): ${engineMessage(err)}`;
      warnings.push(warning);
      log(warning);
      env.logger.warn({ taskId: ctx.taskId, container: c.name, err: engineMessage(err) }, "docker retire could not remove a container");
    }
  }
  if (doomed.length === 0) log("nothing served before; nothing to remove");
  return { ...state, retired, ...(warnings.length > 0 ? { retireWarnings: warnings } : {}) };
}
