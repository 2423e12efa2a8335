// The deploy bench's process protocol: the orchestrator (main.ts) drives the simulated-agent processes
// (dispatch-agents.ts) and the baseline server (dispatch-baseline.ts) over Node's IPC channel, with the typed
// request/response helpers of the fleet bench (bench/fleet/ipc.ts). Times that cross processes are epoch
// milliseconds with sub-millisecond precision (`now()` there): every process runs on the same host.
import type { AgentIdentity } from "../fleet/ipc.js";

export type DispatchMode = "ferry" | "baseline";

/** One task as one simulated agent saw it. */
export interface TaskSeen {
  taskId: string;
  agentId: string;
  /** The TaskOffer arrived (decoded), epoch ms. */
  receivedAt: number;
  /** verifySignedTask returned, epoch ms. */
  verifiedAt: number;
  /** false when the signature, audience or expiry did not check (the task is refused, as the agent would). */
  verified: boolean;
  refusal?: string;
}

export interface AgentsStatus {
  agents: number;
  up: number;
  /** Streams of up agents that ended without the bench asking, by reason. */
  lost: Record<string, number>;
  offers: number;
  refused: number;
  /** Heartbeats written by this process's agents since it started. */
  heartbeatsSent: number;
}

export type AgentsCommands = {
  /** Enrols `count` agents through the real Enrol RPC with one join token. */
  enrol: {
    args: { caPem: string; enrolPort: number; joinToken: string; count: number; firstIndex: number; concurrency: number };
    result: { identities: AgentIdentity[]; failures: Record<string, number> };
  };
  /** Takes identities enrolled earlier (the fleet cache). */
  load: { args: { caPem: string; identities: AgentIdentity[] }; result: { loaded: number } };
  /** Drops every stream and points the agents at a server. */
  target: { args: { mode: DispatchMode; port: number; caPem: string; heartbeatEveryMs?: number }; result: null };
  /** Connects every agent (bounded attempts in flight); resolves when all are up or at the deadline. */
  connect: { args: { concurrency: number; timeoutMs: number }; result: { up: number; notUp: number; failures: Record<string, number> } };
  /** Every task seen since the last collect (and forgets them). */
  collect: { args: Record<string, never>; result: TaskSeen[] };
  status: { args: Record<string, never>; result: AgentsStatus };
  drop: { args: Record<string, never>; result: null };
};

export type BaselineCommands = {
  start: { args: { keyPem: string; certChainPem: string; caPem: string; keyringDir: string; heartbeatIntervalMs: number }; result: { port: number } };
  /** Signs one task for the agent and writes it on the agent's stream; `queuedAt` is when the command arrived. */
  offer: { args: { agentId: string; taskId: string; target: { id: string; name: string } }; result: { queuedAt: number; sent: boolean } };
  stats: { args: Record<string, never>; result: { streams: number; acks: number; results: number } };
  stop: { args: Record<string, never>; result: null };
};
