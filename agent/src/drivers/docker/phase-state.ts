// What the Docker driver records between its phases: plain JSON (ids, names, flags), so that restore — and a later
// task running a later phase — can work from the state alone, without anything held in memory.
import type { EngineClient } from "./engine/client.js";
import type { Logger } from "pino";

import type { StartMark } from "./health.js";
import type { DrainResult, Slot, Weights } from "../../routing/router.js";

/** The container that served before this task, as start found and left it. */
export type PreviousContainer = {
  id: string;
  /** Its name when start found it (the target's name, or a parked name it was recovered from). */
  name: string;
  /** The engine's status when start found it: running, restarting, exited, created, ... */
  status: string;
  /** Whether it ran (or Docker kept restarting it): restore starts it again. */
  wasRunning: boolean;
  /** It was crash-looping before this task (restarting, or restarted within the last minute): restore puts it back
   *  into its loop and reports that, rather than failing because it does not stay up. */
  crashLooping: boolean;
  /** Its name while parked beside the new container; absent while it has the target's name. */
  parkedAs?: string;
  /** Whether start stopped it (it is stopped now). */
  stopped?: boolean;
};

export type DockerPhaseState = {
  socketPath: string;
  container: string;
  /** The verified image every later phase runs. */
  image: { component: string; repository: string; digest: string; ref: string; id: string };
  /** The image defines a HEALTHCHECK (which health honours whatever the configured check). */
  imageHealthcheck: boolean;
  /** How prepare got the image: pulled, or already in the engine under exactly repository@digest. */
  source: "pulled" | "local" | "running";
  /** A redelivered task: this task's container already runs this digest; nothing is replaced. */
  alreadyDeployed?: boolean;
  previous?: PreviousContainer;
  /** Parked containers older than `previous`, which retire removes. */
  older: Array<{ id: string; name: string }>;
  /** Start put back what an interrupted deploy left parked before it began. */
  recovered?: boolean;
  /** The container this task created (or, when alreadyDeployed, found). */
  newId?: string;
  /** The new container as start left it running: a restart after this is a crash. */
  mark?: StartMark;
  /** Containers retire removed, and what it could not remove. */
  retired?: string[];
  retireWarnings?: string[];
  /** Slot mode (a routed target): the slots, the router's weights before, what was switched and drained. */
  slot?: SlotState;
};

/** What the phases share from the driver: one engine client and the agent-wide settings. */
export interface DockerEnv {
  docker: EngineClient;
  socketPath: string;
  /** Where the engine is, for messages (unix:///…, ssh://…). */
  address: string;
  /** Probes a TCP port on the engine's host for the tcp health check; default: 127.0.0.1 from the agent. */
  tcpProbe?: (port: number, timeoutMs: number) => Promise<{ ok: boolean; observed: Record<string, unknown> }>;
  logger: Logger;
  stopTimeoutSeconds: number;
  /** The settle window when the target's healthCheck names none. */
  settleMs: number;
}

/** What slot mode records between phases (plain JSON, like the rest of the state). */
export type SlotState = {
  service: string;
  /** The slot that served before the task; null when nothing served yet. */
  active: Slot | null;
  idle: Slot;
  port: number;
  weightsBefore: Weights;
  /** The container that served in the active slot. */
  activeId?: string;
  /** The new slot's container is a retained one started again (a rollback flip): no pull, no create. */
  reused?: boolean;
  /** A retained older version in the idle slot that start removed to make room. */
  removedIdle?: string;
  switched?: boolean;
  drain?: DrainResult;
  /** Retire stopped the old slot's container (it is retained, stopped). */
  oldStopped?: boolean;
};
