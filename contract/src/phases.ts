// The vocabulary of what a task does on a target.
//
// An action says why (deploy a release, roll back to earlier digests, look at a target); phases say how. Every
// driver implements the same phases:
//
//   prepare   pull every image by digest and verify it; nothing that serves changes
//   start     start the new instance, beside the old one where the kind can, else in its place
//   health    wait until the new instance is healthy (running, no restart during a settle window, check passing)
//   switch    make the new instance the one that serves (a router's weights, a name, a service's primary)
//   retire    stop and remove what served before (kept where the strategy retains it for a fast rollback)
//   restore   put back what served before the task; run by the agent after a failure, never scheduled on its own
//
// An all-at-once deploy runs prepare → start → health → switch → retire inside one signed task, with restore on any
// failure after start. Strategies (rolling, blue-green, canary) schedule the same phases as separate steps, so a
// task can carry any ordered run of them (see task-payload.ts).
// `route` (v2 only) changes or reads the host router in front of a routed target: weights for a canary step, a
// measure of the per-slot counters for an analysis, maintenance mode on or off. It runs no phase.
export const TASK_ACTIONS = ["deploy", "rollback", "inspect", "route"] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

export const PHASES = ["prepare", "start", "health", "switch", "retire", "restore"] as const;
export type Phase = (typeof PHASES)[number];

/** The phases a task runs when it names none (a v1 task) or is an all-at-once deploy. */
export const ALL_AT_ONCE_PHASES: readonly Phase[] = ["prepare", "start", "health", "switch", "retire"];

export function isPhase(s: string): s is Phase {
  return (PHASES as readonly string[]).includes(s);
}

/** Why `phases` is not a non-empty run of distinct phases in vocabulary order, or undefined when it is. */
export function phasesProblem(phases: readonly string[]): string | undefined {
  if (phases.length === 0) return "must name at least one phase";
  let last = -1;
  for (const p of phases) {
    const i = (PHASES as readonly string[]).indexOf(p);
    if (i < 0) return `${JSON.stringify(p)} is not a phase (one of ${PHASES.join(", ")})`;
    if (i <= last) return `must be distinct and in the order ${PHASES.join(" → ")}`;
    last = i;
  }
  return undefined;
}

export function isAllAtOnce(phases: readonly string[]): boolean {
  return phases.length === ALL_AT_ONCE_PHASES.length && phases.every((p, i) => p === ALL_AT_ONCE_PHASES[i]);
}
