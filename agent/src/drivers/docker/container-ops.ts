// The few changes the driver makes to containers, with the engine's quirks handled in one place.
//
// Docker (checked on 20.10) refuses to rename a container while it is restarting under its restart policy: between
// two runs of a crash loop the engine still counts it as running but has released its network sandbox, and rename
// fails with "sandbox <id> not found". `docker update --restart=no` does not help (the pending restart still
// happens); `docker stop` does: it cancels the pending restart at once, leaves the container exited with its restart
// policy unchanged, and a later start puts it back into its loop exactly as it was. So a container that crash-loops
// is stopped before it is renamed — it serves nothing either way.
import type { EngineClient } from "./engine/client.js";

import { engineMessage, engineStatus } from "./errors.js";

/** Stops a container; one that is already stopped is fine (304). */
export async function stopContainer(docker: EngineClient, id: string, timeoutSeconds: number): Promise<void> {
  try {
    await docker.getContainer(id).stop({ t: timeoutSeconds });
  } catch (err) {
    if (engineStatus(err) !== 304) throw err;
  }
}

/** Removes a container, killing it if it runs; one that is already gone is fine (404). */
export async function removeContainer(docker: EngineClient, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true });
  } catch (err) {
    if (engineStatus(err) !== 404) throw err;
  }
}

/** Starts a container; one that already runs is fine (304). */
export async function startContainer(docker: EngineClient, id: string): Promise<void> {
  try {
    await docker.getContainer(id).start();
  } catch (err) {
    if (engineStatus(err) !== 304) throw err;
  }
}

/**
 * Renames a container. When the engine refuses because the container is restarting (or it turns out to be restarting
 * now), stops it and tries once more. Resolves with whether it had to stop it.
 */
export async function renameContainer(docker: EngineClient, id: string, name: string, stopTimeoutSeconds: number, log: (line: string) => void): Promise<{ stopped: boolean }> {
  const c = docker.getContainer(id);
  try {
    await c.rename({ name });
    return { stopped: false };
  } catch (err) {
    const state = await c.inspect().then((i) => i.State, () => undefined);
    if (!state?.Restarting && !/sandbox .* not found/i.test(engineMessage(err))) throw err;
    log(`the engine refused to rename ${id.slice(0, 12)} while Docker restarts it (${engineMessage(err)}); stopping it first`);
    await stopContainer(docker, id, stopTimeoutSeconds);
    await c.rename({ name });
    return { stopped: true };
  }
}
