// The console's environment × component matrix, from Ferry's records, the agents' stickers and the agents' liveness.
//
// A target's sync state from the deployment service compares records with the sticker, but a sticker is only as good
// as the agent that sent it: a target whose agent is offline or revoked, or whose sticker is old, is shown as such and
// never as in-sync (what it last reported is still shown, marked).
import type { TargetStatusView } from "../../domain/deploy/deployment-service.js";
import type { AgentView } from "../../domain/fleet/fleet-service.js";

export type CellState = "in-sync" | "deploying" | "drift" | "offline" | "revoked" | "no-agent" | "stale" | "not-reported" | "never-deployed";

/** Worst first: a cell shows the worst state among its targets. */
export const STATE_ORDER: readonly CellState[] = ["revoked", "offline", "no-agent", "drift", "stale", "deploying", "not-reported", "never-deployed", "in-sync"];

export interface MatrixTarget {
  environment: string;
  targetId: string;
  target: string;
  kind: string;
  agentId: string | null;
  agentName: string | null;
  agentStatus: string | null;
  state: CellState;
  reasons: string[];
  release: { id: string; name: string } | null;
  digest: string | null;
  deploymentId: string | null;
  stickerReportedAt: string | null;
  activeTask: TargetStatusView["activeTask"];
}

export interface MatrixCell {
  environment: string;
  component: string;
  state: CellState;
  releases: string[];
  targets: MatrixTarget[];
}

export interface EstateMatrix {
  environments: string[];
  components: string[];
  cells: MatrixCell[];
  /** Targets Ferry never deployed to (no component to place them under). */
  undeployed: MatrixTarget[];
  staleAfterSeconds: number;
}

/**
 * A sticker is stale when no report came for this long: agents resend every sticker in full every 20th heartbeat,
 * so three of those cycles (with a two-minute floor for short test intervals) without any report means the
 * agent's view of the target is not being refreshed.
 */
export function staleAfterMs(heartbeatIntervalMs: number): number {
  return Math.max(120_000, 60 * heartbeatIntervalMs);
}

export function buildMatrix(environments: string[], components: string[], statuses: TargetStatusView[], agents: AgentView[], now: Date): EstateMatrix {
  const byAgent = new Map(agents.map((a) => [a.id, a]));
  const cells = new Map<string, MatrixCell>();
  const undeployed: MatrixTarget[] = [];
  const compSet = new Set(components);
  let minInterval = 15_000;
  for (const a of agents) minInterval = Math.min(minInterval, a.heartbeatIntervalMs);
  for (const s of statuses) {
    const agent = s.agentId ? byAgent.get(s.agentId) : undefined;
    const reasons: string[] = [...s.drift];
    let state: CellState;
    const staleMs = staleAfterMs(agent?.heartbeatIntervalMs ?? 15_000);
    const reportedAge = s.stickerReportedAt ? now.getTime() - Date.parse(s.stickerReportedAt) : null;
    if (!s.agentId || !agent) {
      state = "no-agent";
      reasons.unshift("no agent serves this target");
    } else if (agent.status === "revoked") {
      state = "revoked";
      reasons.unshift(`agent ${agent.name} was revoked; what is shown is its last report`);
    } else if (agent.status === "offline") {
      state = "offline";
      reasons.unshift(`agent ${agent.name} is offline since ${agent.statusChangedAt}; what is shown is its last report`);
    } else if (s.activeTask) {
      state = "deploying";
      reasons.unshift(`task ${s.activeTask.id} is ${s.activeTask.state}`);
    } else if (s.sync === "drift") {
      state = "drift";
    } else if (reportedAge !== null && reportedAge > staleMs) {
      state = "stale";
      reasons.unshift(`no report from the agent for ${Math.round(reportedAge / 1000)} s (stale after ${Math.round(staleMs / 1000)} s)`);
    } else {
      state = s.sync;
      if (s.sync === "not-reported") reasons.unshift("Ferry deployed here but the agent has not reported a sticker yet");
    }
    const stickerImages = Array.isArray(s.sticker?.["images"]) ? (s.sticker["images"] as { component?: string; digest?: string }[]) : [];
    const images = s.deployed?.images.map((i) => ({ component: i.component, digest: i.digest })) ??
      stickerImages.filter((i) => typeof i.component === "string").map((i) => ({ component: i.component as string, digest: i.digest ?? "" }));
    const base = {
      environment: s.environment,
      targetId: s.targetId,
      target: s.target,
      kind: s.kind,
      agentId: s.agentId,
      agentName: agent?.name ?? null,
      agentStatus: agent?.status ?? null,
      state,
      reasons,
      release: s.deployed ? { id: s.deployed.releaseId, name: s.deployed.release } : null,
      deploymentId: s.deployed?.deploymentId ?? null,
      stickerReportedAt: s.stickerReportedAt,
      activeTask: s.activeTask,
    };
    if (images.length === 0) {
      undeployed.push({ ...base, digest: null });
      continue;
    }
    for (const img of images) {
      compSet.add(img.component);
      const key = `${s.environment}\u0000${img.component}`;
      let cell = cells.get(key);
      if (!cell) {
        cell = { environment: s.environment, component: img.component, state: "in-sync", releases: [], targets: [] };
        cells.set(key, cell);
      }
      cell.targets.push({ ...base, digest: img.digest || null });
    }
  }
  for (const cell of cells.values()) {
    cell.state = STATE_ORDER.find((st) => cell.targets.some((t) => t.state === st)) ?? "in-sync";
    cell.releases = [...new Set(cell.targets.map((t) => t.release?.name).filter((n): n is string => !!n))].sort();
  }
  return {
    environments,
    components: [...compSet].sort(),
    cells: [...cells.values()],
    undeployed,
    staleAfterSeconds: Math.round(staleAfterMs(minInterval) / 1000),
  };
}
