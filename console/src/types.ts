// The API's shapes as the console reads them (a subset of the server's views; docs/api.md has the full ones).
export interface Gate { gate: string; name: string; state: "passed" | "pending" | "failed"; reason: string; remedy: string | null; details?: Record<string, unknown> }
export interface Promotion {
  id: string;
  release: { id: string; name: string; version: string };
  environment: string;
  state: string;
  digestSetHash: string;
  requestedBy: string;
  requestedAt: string;
  breakGlass: { by: string; reason: string; at: string } | null;
  deploymentId: string | null;
  gates: Gate[];
  approvals: { subject: string; decision: string; comment: string; at: string }[];
  reason: string | null;
  expiresAt: string;
  decidedAt: string | null;
  finishedAt: string | null;
  transitions?: { seq: number; from: string | null; to: string; at: string; actor: string; reason: string }[];
  evidence?: { id: string; kind: string; hash: string; createdAt: string }[];
}
export interface TaskImage { component: string; repository: string; digest: string; ref?: string }
export interface Task {
  id: string;
  target: { id: string; name: string; kind: string };
  agentId: string;
  releaseId: string;
  action: string;
  state: string;
  images: TaskImage[];
  attempt: number;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  logBytes: number;
  events?: { seq: number; at: string; step: string; detail: string }[];
}
export interface Deployment {
  id: string;
  environment: string;
  releaseId: string | null;
  release: { id: string; name: string; version: string } | null;
  action: string;
  state: string;
  retryOf: string | null;
  requestedBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  tasks: Task[];
  /** The rollout this deployment is a wave of (on a single deployment's view). */
  rolloutId?: string | null;
}
export interface Pin { component: string; repository: string; digest: string; image: string; sourceTag: string | null; mediaType: string; platforms: { os?: string; architecture?: string }[] }
export interface Release { id: string; name: string; version: string; notes: string; provenance: Record<string, unknown>; pins: Pin[]; createdBy: string; createdAt: string }
export interface Agent {
  id: string;
  name: string;
  environment: string;
  labels: Record<string, string>;
  facts: { hostname?: string; os?: string; arch?: string; agentVersion?: string; drivers?: string[]; [k: string]: unknown };
  status: "online" | "offline" | "revoked";
  connected: boolean;
  lastHeartbeatAt: string | null;
  clockSkewMs: number | null;
  heartbeatIntervalMs: number;
  certificate: { serial: string | null; notAfter: string | null };
  enrolledAt: string;
  statusChangedAt: string;
  revokedAt: string | null;
  revokeReason: string | null;
}
export interface Environment { name: string; position: number; description: string; settings: { gates?: { kind: string; name?: string; config?: Record<string, unknown> }[] } & Record<string, unknown> }
export interface MatrixTarget {
  environment: string;
  targetId: string;
  target: string;
  kind: string;
  agentId: string | null;
  agentName: string | null;
  agentStatus: string | null;
  state: string;
  reasons: string[];
  release: { id: string; name: string } | null;
  digest: string | null;
  deploymentId: string | null;
  stickerReportedAt: string | null;
  activeTask: { id: string; deploymentId: string; state: string } | null;
}
export interface Matrix {
  environments: string[];
  components: string[];
  cells: { environment: string; component: string; state: string; releases: string[]; targets: MatrixTarget[] }[];
  undeployed: MatrixTarget[];
  staleAfterSeconds: number;
}
export interface Overview {
  generatedAt: string;
  environments: { name: string; position: number; gates: string[]; agents: { online: number; offline: number } }[];
  matrix: Matrix;
  fleet: { online: number; offline: number; revoked: number; total: number; reconnecting: number; certificatesExpiringSoon: number; clockSkewed: number };
  metrics: {
    windowDays: number;
    deployments: { total: number; succeeded: number; failed: number; cancelled: number; running: number; successRate: number | null };
    rollbacks: number;
    leadTimeToLast: { environment: string | null; medianSeconds: number | null; samples: number };
    waiting: { id: string; environment: string; release: string; requestedAt: string; waitingSeconds: number }[];
    daily: { day: string; succeeded: number; failed: number }[];
  };
}
