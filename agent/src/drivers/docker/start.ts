// start: replace the previous container with the new one (replace mode — a Docker target has one name and, under
// host networking, one set of ports, so old and new never run side by side):
//
//   1. recover: put back what an interrupted deploy left (an unfinished new container is removed, the newest parked
//      container gets the target's name again), so the container to restore to is always the last one that ran;
//   2. a previous container that crash-loops is stopped first: Docker refuses to rename it while it restarts, and it
//      serves nothing anyway (container-ops.ts);
//   3. park the previous container as <container>.ferry-old-<id>; create the new one as <container>;
//   4. stop the previous container — the short outage of replace mode starts here, and only here: prepare has
//      already pulled and verified the new image, so the outage is create + stop + start, never a pull;
//   5. start the new one; the image id it runs must be the verified image's; record its RestartCount and StartedAt
//      (the StartMark health compares against).
//
// Every step writes what it did into the state object it was given, before the next step: when a step fails or the
// task is cancelled half-way, the phase runner restores from that same object, so restore sees exactly what start
// left on the target.
import type { DockerTargetConfig } from "@ferry/contract";
import type { ContainerCreateOptions } from "./engine/types.js";

import type { PhaseContext } from "../driver.js";
import { renameContainer, removeContainer, stopContainer } from "./container-ops.js";
import { deployLabels, findContainers, LABELS, parkedName, type ContainerView } from "./containers.js";
import { dockerError, engineMessage, isEngineUnreachable } from "./errors.js";
import type { DockerEnv, DockerPhaseState, PreviousContainer } from "./phase-state.js";

/** A container that restarted within this long counts as crash-looping even while it happens to be running. */
const CRASH_LOOP_WINDOW_MS = 60_000;

export async function start(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv, state: DockerPhaseState): Promise<DockerPhaseState> {
  const { docker } = env;
  const name = ctx.config.container;
  const log = (line: string) => ctx.progress.log(`start: ${line}`);
  const found = await findContainers(docker, name);

  if (state.alreadyDeployed) return adopt(ctx, env, state, found.current, found.parked);

  // 1. Recovery.
  let { current } = found;
  let parked = found.parked;
  const newest = parked[0];
  if (newest && (!current || (!current.running && !current.restarting && current.labels[LABELS.task] !== undefined))) {
    if (current) {
      log(`recovering from an interrupted deploy: removing ${name} (${current.id.slice(0, 12)}, ${current.status}, task ${current.labels[LABELS.task]}), left unfinished`);
      await removeContainer(docker, current.id);
    }
    log(`recovering from an interrupted deploy: renaming ${newest.name} back to ${name}`);
    await renameContainer(docker, newest.id, name, env.stopTimeoutSeconds, log);
    state.recovered = true;
    // It ran before the interrupted deploy stopped it: if this deploy fails, it is what must run again.
    current = { ...newest, name, running: false };
    state.previous = { id: newest.id, name: newest.name, status: newest.status, wasRunning: true, crashLooping: false };
    parked = parked.slice(1);
  } else if (current) {
    state.previous = previousOf(current);
  }
  state.older = parked.map((p) => ({ id: p.id, name: p.name }));
  const previous = state.previous;
  ctx.signal.throwIfAborted();

  // 2 + 3. Park the previous container; create the new one.
  if (previous) {
    if (previous.crashLooping && !previous.stopped) {
      log(
        `the previous container ${previous.id.slice(0, 12)} crash-loops (${previous.status}, ${current?.restartCount ?? 0} restart(s), last exit code ${current?.exitCode ?? "unknown"}); ` +
          "stopping it first (it serves nothing, and Docker refuses to rename a container it is restarting)",
      );
      await stopContainer(docker, previous.id, env.stopTimeoutSeconds);
      previous.stopped = true;
    }
    const parkedAs = parkedName(name, previous.id);
    const renamed = await renameContainer(docker, previous.id, parkedAs, env.stopTimeoutSeconds, log).catch((err: unknown) => {
      if (isEngineUnreachable(err)) throw err;
      throw dockerError("CONTAINER_CREATE_FAILED", `parking the previous container ${previous.id.slice(0, 12)} as ${parkedAs} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
    });
    previous.parkedAs = parkedAs;
    if (renamed.stopped) {
      previous.stopped = true;
      previous.crashLooping = true;
    }
    log(`parked the previous container ${previous.id.slice(0, 12)} as ${parkedAs}`);
  }
  const created = await docker.createContainer(createOptions(ctx, state, log)).catch((err: unknown) => {
    if (isEngineUnreachable(err)) throw err;
    throw dockerError("CONTAINER_CREATE_FAILED", `creating ${name} from ${state.image.ref} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
  });
  state.newId = created.id;
  log(`created ${name} (${created.id.slice(0, 12)}) from ${state.image.ref}`);
  ctx.signal.throwIfAborted();

  // 4. Stop the previous container.
  if (previous && !previous.stopped && previous.wasRunning) {
    log(outageLine(ctx.config));
    await stopContainer(docker, previous.id, env.stopTimeoutSeconds).catch((err: unknown) => {
      if (isEngineUnreachable(err)) throw err;
      throw dockerError("CONTAINER_START_FAILED", `stopping the previous container ${previous.parkedAs ?? previous.id} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
    });
    previous.stopped = true;
    log(`stopped ${previous.parkedAs ?? previous.id.slice(0, 12)}`);
  } else {
    log(!previous ? "no previous container" : previous.stopped ? "the previous container is already stopped" : "the previous container was not running");
  }
  ctx.signal.throwIfAborted();

  // 5. Start the new one and check what it runs.
  await created.start().catch((err: unknown) => {
    if (isEngineUnreachable(err)) throw err;
    throw dockerError("CONTAINER_START_FAILED", `starting ${name} failed: ${engineMessage(err)}`, { error: engineMessage(err) });
  });
  const atMs = Date.now();
  const info = await created.inspect();
  state.mark = { restartCount: info.RestartCount ?? 0, startedAt: info.State.StartedAt, atMs };
  if (info.Image !== state.image.id) {
    throw dockerError("DIGEST_MISMATCH", `${name} runs image ${info.Image}, not the verified image ${state.image.id} of ${state.image.ref}`, {
      expectedImageId: state.image.id,
      runningImageId: info.Image,
    });
  }
  log(`${name} runs image ${state.image.id.slice(7, 19)} (${state.image.digest})`);
  return state;
}

export function outageLine(config: DockerTargetConfig): string {
  const network = config.network ?? "host";
  return network === "host"
    ? "host networking: old and new cannot run side by side; the switch has a short outage (stop the old container, start the new one)"
    : `replace mode: the old container is stopped before the new one starts under the same name (network ${network}); the switch has a short outage`;
}

function previousOf(c: ContainerView): PreviousContainer {
  const startedMs = Date.parse(c.startedAt);
  const restartedLately = c.restartCount > 0 && Number.isFinite(startedMs) && Date.now() - startedMs < CRASH_LOOP_WINDOW_MS;
  return { id: c.id, name: c.name, status: c.status, wasRunning: c.running || c.restarting, crashLooping: c.restarting || restartedLately };
}

/** A redelivered task: the container it put here is checked (health) and kept; nothing is replaced. */
async function adopt(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv, state: DockerPhaseState, current: ContainerView | undefined, parked: ContainerView[]): Promise<DockerPhaseState> {
  if (!current) throw dockerError("CONTAINER_START_FAILED", `${ctx.config.container} disappeared since prepare found it running`, {});
  const info = await env.docker.getContainer(current.id).inspect();
  state.newId = current.id;
  // The settle window counts from the container's own start: one that has run for a while has settled already.
  const startedMs = Date.parse(info.State.StartedAt);
  state.mark = { restartCount: info.RestartCount ?? 0, startedAt: info.State.StartedAt, atMs: Number.isFinite(startedMs) ? startedMs : Date.now() };
  const restorable = parked[0];
  if (restorable) {
    // The previous container is still parked: should the check fail, this is the unfinished deploy it looks like.
    state.previous = { id: restorable.id, name: restorable.name, status: restorable.status, wasRunning: true, crashLooping: false, parkedAs: restorable.name, stopped: !restorable.running };
  }
  state.older = parked.slice(1).map((p) => ({ id: p.id, name: p.name }));
  ctx.progress.log(`start: ${ctx.config.container} (${current.id.slice(0, 12)}) already runs ${state.image.ref}; not replacing it`);
  return state;
}

export function createOptions(ctx: PhaseContext<DockerTargetConfig>, state: DockerPhaseState, log: (line: string) => void): ContainerCreateOptions {
  const { config } = ctx;
  const network = config.network ?? "host";
  const opts: ContainerCreateOptions = {
    name: config.container,
    Image: state.image.ref,
    Labels: deployLabels(ctx, state.image),
    HostConfig: { NetworkMode: network, RestartPolicy: { Name: "unless-stopped" } },
  };
  if (config.command) opts.Cmd = config.command;
  if (config.env) opts.Env = Object.entries(config.env).map(([k, v]) => `${k}=${v}`);
  if (config.volumes) opts.HostConfig!.Binds = config.volumes.map((v) => `${v.source}:${v.target}${v.readOnly ? ":ro" : ""}`);
  if (config.ports && config.ports.length > 0) {
    if (network === "host") {
      log("config.ports is ignored under host networking (the container's ports are the host's); set config.network to publish them");
    } else {
      opts.ExposedPorts = {};
      const bindings: Record<string, Array<{ HostPort: string }>> = {};
      for (const p of config.ports) {
        const key = `${p.container}/${p.protocol ?? "tcp"}`;
        opts.ExposedPorts[key] = {};
        (bindings[key] ??= []).push({ HostPort: String(p.host ?? p.container) });
      }
      opts.HostConfig!.PortBindings = bindings;
    }
  }
  return opts;
}
