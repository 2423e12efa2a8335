// The overview: environment × component matrix, fleet health, delivery metrics, waiting promotions, recent
// deployments. One filter narrows every section.
import { useState } from "preact/hooks";
import { Badge, duration, ErrorBox, Id, Placeholder, Section, Table, Time } from "../ui.js";
import { useResource } from "../resource.js";
import type { Deployment, Matrix, Overview, Promotion } from "../types.js";
import { FailureReason } from "./deployment.js";

const has = (q: string, ...parts: unknown[]) => !q || JSON.stringify(parts).toLowerCase().includes(q);

export function OverviewPage() {
  const ov = useResource<Overview>("/api/v1/console/overview", ["fleet", "deployments", "promotions", "estate", "catalog", "releases"]);
  const deps = useResource<{ deployments: Deployment[] }>("/api/v1/deployments?limit=10", ["deployments"]);
  const proms = useResource<{ promotions: Promotion[] }>("/api/v1/promotions?limit=10", ["promotions"]);
  const [filter, setFilter] = useState("");
  const q = filter.trim().toLowerCase();
  const o = ov.data;
  return (
    <>
      <div class="page-head">
        <h1>Overview</h1>
        <input type="search" class="filter" placeholder="Filter everything: environment, component, release, agent…" aria-label="Filter the overview" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      </div>
      <ErrorBox error={ov.error} />
      <div class="stats" aria-label="fleet health and delivery metrics">
        {o ? <Stats o={o} /> : <Placeholder rows={1} />}
      </div>
      <Section title="What runs where" id="matrix">
        <p class="muted small">From the agents' version stickers. Offline agents, revoked agents and reports older than {o ? duration(o.matrix.staleAfterSeconds) : "…"} are marked as such, never as in sync.</p>
        {o ? <MatrixTable m={o.matrix} q={q} /> : <Placeholder rows={4} />}
      </Section>
      <div class="two">
        <Section title="Promotions waiting" id="waiting">
          {o ? (
            o.metrics.waiting.filter((w) => has(q, w)).length === 0 ? (
              <p class="muted">Nothing is waiting for a gate.</p>
            ) : (
              <ul class="plain">
                {o.metrics.waiting.filter((w) => has(q, w)).map((w) => (
                  <li key={w.id}>
                    <a href={`/promotions/${w.id}`}>{w.release} → {w.environment}</a> <span class="muted">waiting {duration(w.waitingSeconds)}</span>
                  </li>
                ))}
              </ul>
            )
          ) : (
            <Placeholder rows={2} />
          )}
        </Section>
        <Section title="Recent promotions" id="recent-promotions" actions={<a href="/promotions">all promotions</a>}>
          {proms.data ? (
            proms.data.promotions.length === 0 ? <p class="muted">No promotions yet.</p> : <ul class="plain">
              {proms.data.promotions.filter((p) => has(q, p.release, p.environment, p.state, p.requestedBy)).map((p) => (
                <li key={p.id}>
                  <Badge state={p.state} /> <a href={`/promotions/${p.id}`}>{p.release.name}@{p.release.version} → {p.environment}</a> <span class="muted">by {p.requestedBy}, <Time at={p.requestedAt} /></span>
                </li>
              ))}
            </ul>
          ) : (
            <Placeholder rows={3} />
          )}
        </Section>
      </div>
      <Section title="Recent deployments" id="recent-deployments" actions={<a href="/deployments">all deployments</a>}>
        {deps.data ? <DeploymentList items={deps.data.deployments.filter((d) => has(q, d.environment, d.release, d.state, d.action, d.requestedBy, d.tasks.map((t) => t.target.name)))} /> : <Placeholder rows={4} />}
      </Section>
    </>
  );
}

function Stats({ o }: { o: Overview }) {
  const m = o.metrics;
  const rate = m.deployments.successRate;
  const oldest = m.waiting[0];
  return (
    <>
      <a class="stat" href="/fleet">
        <span class="stat-label">Agents</span>
        <span class="stat-value" data-testid="agents-online">{o.fleet.online}</span>
        <span class="stat-sub">online of {o.fleet.total}{o.fleet.offline ? <> · <b class="warn">{o.fleet.offline} offline</b></> : null}{o.fleet.revoked ? ` · ${o.fleet.revoked} revoked` : ""}</span>
      </a>
      <a class="stat" href="/deployments">
        <span class="stat-label">Deployments ({m.windowDays} d)</span>
        <span class="stat-value">{m.deployments.total}</span>
        <span class="stat-sub">{rate === null ? "no finished deployments" : `${Math.round(rate * 100)} % succeeded`}{m.deployments.failed ? ` · ${m.deployments.failed} failed` : ""}</span>
      </a>
      <div class="stat">
        <span class="stat-label">Lead time to {m.leadTimeToLast.environment ?? "the last environment"}</span>
        <span class="stat-value">{duration(m.leadTimeToLast.medianSeconds)}</span>
        <span class="stat-sub">median, release cut → first success, {m.leadTimeToLast.samples} releases</span>
      </div>
      <a class="stat" href="/deployments">
        <span class="stat-label">Rollbacks ({m.windowDays} d)</span>
        <span class="stat-value">{m.rollbacks}</span>
        <span class="stat-sub">{m.deployments.running} deployments running now</span>
      </a>
      <a class="stat" href="/promotions?state=awaiting_gates">
        <span class="stat-label">Promotions waiting</span>
        <span class="stat-value">{m.waiting.length}</span>
        <span class="stat-sub">{oldest ? `oldest for ${duration(oldest.waitingSeconds)}` : "none"}</span>
      </a>
      <div class="stat chart" aria-label="deployments per day, last 14 days">
        <span class="stat-label">Last 14 days</span>
        <Bars daily={m.daily} />
      </div>
    </>
  );
}

/** Deployments per day as bars (succeeded over failed); small enough that a charting library would be the bigger part. */
function Bars({ daily }: { daily: Overview["metrics"]["daily"] }) {
  const days: { day: string; succeeded: number; failed: number }[] = [];
  const byDay = new Map(daily.map((d) => [d.day, d]));
  for (let i = 13; i >= 0; i--) {
    const day = new Date(Date.now() - i * 86400_000).toISOString().slice(0, 10);
    days.push(byDay.get(day) ?? { day, succeeded: 0, failed: 0 });
  }
  const max = Math.max(1, ...days.map((d) => d.succeeded + d.failed));
  return (
    <div class="bars">
      {days.map((d) => (
        <span key={d.day} class="bar" title={`${d.day}: ${d.succeeded} succeeded, ${d.failed} failed`}>
          <span class="bar-fail" style={{ height: `${(d.failed / max) * 100}%` }} />
          <span class="bar-ok" style={{ height: `${(d.succeeded / max) * 100}%` }} />
        </span>
      ))}
    </div>
  );
}

function MatrixTable({ m, q }: { m: Matrix; q: string }) {
  const cells = new Map(m.cells.map((c) => [`${c.environment}\u0000${c.component}`, c]));
  const comps = m.components.filter((c) => !q || c.includes(q) || m.cells.some((x) => x.component === c && has(q, x)));
  const envs = m.environments.filter((e) => !q || e.includes(q) || m.cells.some((x) => x.environment === e && has(q, x)) || m.undeployed.some((t) => has(q, e, t)));
  if (m.environments.length === 0) return <p class="muted">No environments yet: create them with <code>ferry env create</code>.</p>;
  return (
    <Table label="environment by component">
      <thead>
        <tr>
          <th scope="col">Environment</th>
          {comps.map((c) => (
            <th scope="col" key={c}>{c}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {envs.map((e) => {
          const undeployed = m.undeployed.filter((t) => t.environment === e);
          return (
            <tr key={e}>
              <th scope="row">
                <a href={`/environments/${e}`}>{e}</a>
                {undeployed.length ? <div class="muted small">{undeployed.length} target{undeployed.length > 1 ? "s" : ""} never deployed</div> : null}
              </th>
              {comps.map((c) => {
                const cell = cells.get(`${e}\u0000${c}`);
                if (!cell) return <td key={c} class="muted">—</td>;
                return (
                  <td key={c} class={`cell c-${cell.state}`} data-cell={`${e}/${c}`}>
                    <Cell cell={cell} />
                  </td>
                );
              })}
            </tr>
          );
        })}
      </tbody>
    </Table>
  );
}

const natural = new Intl.Collator(undefined, { numeric: true });
const SHOW_ALL_UP_TO = 3;
const SHOW_PROBLEMS = 4;

/** One environment × component cell: the worst state, the release(s) and digest(s), counts per state, and the
 *  targets that need attention (all targets when there are only a few). */
function Cell({ cell }: { cell: Matrix["cells"][number] }) {
  const counts = new Map<string, number>();
  const digests = new Map<string, number>();
  for (const t of cell.targets) {
    counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
    if (t.digest) digests.set(t.digest, (digests.get(t.digest) ?? 0) + 1);
  }
  const targets = [...cell.targets].sort((a, b) => natural.compare(a.target, b.target));
  const few = targets.length <= SHOW_ALL_UP_TO;
  const shown = few ? targets : targets.filter((t) => t.state !== "in-sync").slice(0, SHOW_PROBLEMS);
  const problems = targets.filter((t) => t.state !== "in-sync").length;
  return (
    <>
      <Badge state={cell.state} />
      <div class="cell-release">
        {cell.releases.length === 0 ? <span class="muted">no release</span> : cell.releases.length > 1 ? <span class="warn">mixed: {cell.releases.join(", ")}</span> : (
          <a href={`/releases/${cell.targets[0]?.release?.id ?? ""}`}>{cell.releases[0]}</a>
        )}
      </div>
      <div class="small">
        {[...digests.entries()].slice(0, 2).map(([d, n]) => (
          <div key={d}>
            <Id value={d} short={10} />
            {digests.size > 1 ? <span class="muted"> on {n}</span> : null}
          </div>
        ))}
        {digests.size > 2 ? <div class="warn">{digests.size} different digests</div> : null}
      </div>
      {!few ? (
        <div class="small muted">
          {targets.length} targets: {[...counts.entries()].sort((a, b) => b[1] - a[1]).map(([st, n]) => `${n} ${st}`).join(", ")}
        </div>
      ) : null}
      <ul class="cell-targets">
        {shown.map((t) => (
          <li key={t.targetId} title={t.reasons.join("\n")}>
            {t.target} {t.state !== "in-sync" || !few ? <Badge state={t.state} /> : null}
            {t.agentStatus && t.agentStatus !== "online" && t.agentId ? <> · <a href={`/agents/${t.agentId}`}>{t.agentName}</a></> : null}
            {t.activeTask ? <> · <a href={`/deployments/${t.activeTask.deploymentId}`}>{t.activeTask.state}</a></> : null}
            {t.reasons.length && t.state !== "in-sync" ? <div class="reason">{t.reasons[0]}</div> : null}
          </li>
        ))}
      </ul>
      {!few && problems > shown.length ? (
        <a class="small" href={`/environments/${cell.environment}`}>
          {problems - shown.length} more needing attention
        </a>
      ) : null}
    </>
  );
}

export function DeploymentList({ items }: { items: Deployment[] }) {
  if (items.length === 0) return <p class="muted">No deployments yet.</p>;
  return (
    <Table label="deployments">
      <thead>
        <tr>
          <th>Deployment</th>
          <th>State</th>
          <th>Release</th>
          <th>Environment</th>
          <th>Targets</th>
          <th>Requested</th>
        </tr>
      </thead>
      <tbody>
        {items.map((d) => (
          <tr key={d.id}>
            <td>
              <a href={`/deployments/${d.id}`}>{d.id}</a>
              {d.action === "rollback" ? <span class="tag">rollback</span> : null}
            </td>
            <td>
              <Badge state={d.state} />
            </td>
            <td>{d.release ? <a href={`/releases/${d.release.id}`}>{d.release.name}@{d.release.version}</a> : <span class="muted">previous releases</span>}</td>
            <td>
              <a href={`/environments/${d.environment}`}>{d.environment}</a>
            </td>
            <td class="wrap">
              {d.tasks.map((t) => (
                <div key={t.id}>
                  {t.target.name} <Badge state={t.state} />
                  <FailureReason t={t} />
                </div>
              ))}
            </td>
            <td>
              <Time at={d.createdAt} /> <span class="muted">by {d.requestedBy}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}
