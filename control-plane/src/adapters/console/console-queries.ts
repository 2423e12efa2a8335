// Read models the console needs and the API does not already serve: operational metrics and the activity around one
// agent, release or environment. Plain reads, no writes; columns aliased to camelCase.
import type { Queryable } from "../../ports/store.js";

export interface ConsoleMetrics {
  windowDays: number;
  deployments: { total: number; succeeded: number; failed: number; cancelled: number; running: number; successRate: number | null };
  rollbacks: number;
  /** From a release's creation to its first successful deployment into the last environment, over the window. */
  leadTimeToLast: { environment: string | null; medianSeconds: number | null; samples: number };
  /** Promotions waiting for gates (requested or awaiting_gates), oldest first. */
  waiting: { id: string; environment: string; release: string; requestedAt: string; waitingSeconds: number }[];
  daily: { day: string; succeeded: number; failed: number }[];
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

export async function consoleMetrics(db: Queryable, windowDays = 30): Promise<ConsoleMetrics> {
  const [dep, lead, waiting, daily] = await Promise.all([
    db.query<Record<string, unknown>>(
      `SELECT count(*) AS total,
              count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
              count(*) FILTER (WHERE state = 'failed') AS failed,
              count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
              count(*) FILTER (WHERE state IN ('queued', 'running')) AS running,
              count(*) FILTER (WHERE action = 'rollback') AS rollbacks
         FROM deployments WHERE created_at > now() - make_interval(days => $1)`,
      [windowDays],
    ),
    db.query<{ environment: string | null; median: number | null; samples: unknown }>(
      `WITH last_env AS (SELECT name FROM environments ORDER BY position DESC LIMIT 1),
            firsts AS (SELECT d.release_id, min(d.finished_at) AS at
                         FROM deployments d JOIN last_env e ON e.name = d.environment
                        WHERE d.state = 'succeeded' AND d.action = 'deploy' AND d.release_id IS NOT NULL
                        GROUP BY d.release_id)
       SELECT (SELECT name FROM last_env) AS environment,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.at - r.created_at)) AS median,
              count(f.release_id) AS samples
         FROM firsts f JOIN releases r ON r.id = f.release_id
        WHERE f.at > now() - make_interval(days => $1)`,
      [windowDays],
    ),
    db.query<{ id: string; environment: string; release: string; requestedAt: Date }>(
      `SELECT p.id, p.environment, r.name || '@' || r.version AS release, p.requested_at AS "requestedAt"
         FROM promotions p JOIN releases r ON r.id = p.release_id
        WHERE p.state IN ('requested', 'awaiting_gates')
        ORDER BY p.requested_at LIMIT 50`,
    ),
    db.query<{ day: string; succeeded: unknown; failed: unknown }>(
      `SELECT to_char(date_trunc('day', created_at), 'YYYY-MM-DD') AS day,
              count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
              count(*) FILTER (WHERE state = 'failed') AS failed
         FROM deployments WHERE created_at > now() - interval '14 days'
        GROUP BY 1 ORDER BY 1`,
    ),
  ]);
  const d = dep.rows[0] ?? {};
  const succeeded = num(d["succeeded"]);
  const failed = num(d["failed"]);
  const l = lead.rows[0];
  const now = Date.now();
  return {
    windowDays,
    deployments: {
      total: num(d["total"]),
      succeeded,
      failed,
      cancelled: num(d["cancelled"]),
      running: num(d["running"]),
      successRate: succeeded + failed > 0 ? succeeded / (succeeded + failed) : null,
    },
    rollbacks: num(d["rollbacks"]),
    leadTimeToLast: { environment: l?.environment ?? null, medianSeconds: l?.median === null || l?.median === undefined ? null : Math.round(Number(l.median)), samples: num(l?.samples) },
    waiting: waiting.rows.map((w) => ({
      id: w.id,
      environment: w.environment,
      release: w.release,
      requestedAt: new Date(w.requestedAt).toISOString(),
      waitingSeconds: Math.max(0, Math.round((now - new Date(w.requestedAt).getTime()) / 1000)),
    })),
    daily: daily.rows.map((r) => ({ day: r.day, succeeded: num(r.succeeded), failed: num(r.failed) })),
  };
}

export interface RecentTask {
  id: string;
  /** null for a target check (an inspect task of no deployment). */
  deploymentId: string | null;
  environment: string;
  target: string;
  action: string;
  state: string;
  code: string | null;
  message: string | null;
  release: string | null;
  queuedAt: string;
  finishedAt: string | null;
}

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

export async function recentTasksOfAgent(db: Queryable, agentId: string, limit = 20): Promise<RecentTask[]> {
  const r = await db.query<Omit<RecentTask, "queuedAt" | "finishedAt"> & { queuedAt: Date; finishedAt: Date | null }>(
    `SELECT t.id, t.deployment_id AS "deploymentId", tg.environment, tg.name AS target, t.action, t.state, t.code, t.message,
            r.name || '@' || r.version AS release, t.queued_at AS "queuedAt", t.finished_at AS "finishedAt"
       FROM tasks t JOIN targets tg ON tg.id = t.target_id LEFT JOIN releases r ON r.id = t.release_id
      WHERE t.agent_id = $1 ORDER BY t.queued_at DESC, t.id DESC LIMIT $2`,
    [agentId, limit],
  );
  return r.rows.map((x) => ({ ...x, queuedAt: iso(x.queuedAt)!, finishedAt: iso(x.finishedAt) }));
}

export interface ReleaseDeployment {
  id: string;
  environment: string;
  action: string;
  state: string;
  requestedBy: string;
  createdAt: string;
  finishedAt: string | null;
}

export async function deploymentsOfRelease(db: Queryable, releaseId: string, limit = 50): Promise<ReleaseDeployment[]> {
  const r = await db.query<Omit<ReleaseDeployment, "createdAt" | "finishedAt"> & { createdAt: Date; finishedAt: Date | null }>(
    `SELECT id, environment, action, state, requested_by AS "requestedBy", created_at AS "createdAt", finished_at AS "finishedAt"
       FROM deployments WHERE release_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
    [releaseId, limit],
  );
  return r.rows.map((x) => ({ ...x, createdAt: iso(x.createdAt)!, finishedAt: iso(x.finishedAt) }));
}

export interface ReleasePromotion {
  id: string;
  environment: string;
  state: string;
  requestedBy: string;
  requestedAt: string;
  finishedAt: string | null;
}

export async function promotionsOfRelease(db: Queryable, releaseId: string, limit = 50): Promise<ReleasePromotion[]> {
  const r = await db.query<Omit<ReleasePromotion, "requestedAt" | "finishedAt"> & { requestedAt: Date; finishedAt: Date | null }>(
    `SELECT id, environment, state, requested_by AS "requestedBy", requested_at AS "requestedAt", finished_at AS "finishedAt"
       FROM promotions WHERE release_id = $1 ORDER BY requested_at DESC, id DESC LIMIT $2`,
    [releaseId, limit],
  );
  return r.rows.map((x) => ({ ...x, requestedAt: iso(x.requestedAt)!, finishedAt: iso(x.finishedAt) }));
}

/** Scan reports per digest of a release (counts only): the release page's verification status. */
export async function scansOfDigests(db: Queryable, digests: string[]): Promise<{ digest: string; scanner: string; counts: Record<string, number>; uploadedAt: string }[]> {
  if (digests.length === 0) return [];
  const r = await db.query<{ digest: string; scanner: string; counts: Record<string, number>; uploadedAt: Date }>(
    `SELECT DISTINCT ON (digest, scanner) digest, scanner, counts, uploaded_at AS "uploadedAt"
       FROM scan_reports WHERE digest = ANY($1::text[]) ORDER BY digest, scanner, uploaded_at DESC`,
    [digests],
  );
  return r.rows.map((x) => ({ ...x, uploadedAt: iso(x.uploadedAt)! }));
}
