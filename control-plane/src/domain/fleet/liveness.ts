// Liveness rules for agents (see docs/protocol.md, "Liveness").
//
// An agent is offline once no heartbeat arrived for 3 × interval + grace. After a control-plane start (from the
// moment its listeners accept agents, not from process start: opening the database can take seconds), offline
// decisions are frozen for one grace period, and an agent's silence is counted from the later of its last heartbeat
// and the start: the control plane being down is not the agent's fault, and agents need a moment to reconnect
// (their backoff spreads reconnects over up to 30 s).

export interface LivenessPolicy {
  heartbeatIntervalMs: number;
  graceMs: number;
}

export function offlineAfterMs(p: LivenessPolicy): number {
  return 3 * p.heartbeatIntervalMs + p.graceMs;
}

/** True while a freshly started replica must not mark anyone offline. */
export function offlineFrozen(p: LivenessPolicy, startedAt: number, now: number): boolean {
  return now < startedAt + p.graceMs;
}

/** Whether an agent last heard from at lastHeartbeatAt counts as offline now. */
export function isSilent(p: LivenessPolicy, startedAt: number, now: number, lastHeartbeatAt: number | null): boolean {
  if (offlineFrozen(p, startedAt, now)) return false;
  const reference = Math.max(lastHeartbeatAt ?? 0, startedAt);
  return reference < now - offlineAfterMs(p);
}

/**
 * Clock skew of the agent relative to this server: positive when the agent's clock is ahead. The agent's timestamp
 * was taken about half a round trip before the server received it.
 */
export function clockSkewMs(agentTimeMs: number, receivedAtMs: number, lastRttMs: number): number {
  return Math.round(agentTimeMs - (receivedAtMs - lastRttMs / 2));
}
