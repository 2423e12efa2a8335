// The fleet and one agent: status, facts, certificate, heartbeats, the targets it serves and its recent tasks; join
// tokens are created and agents revoked from here (admin).
import { useState } from "preact/hooks";
import { Action } from "../actions.js";
import { useResource } from "../resource.js";
import { lacks } from "../session.js";
import type { Agent, Environment } from "../types.js";
import { Badge, Copy, ErrorBox, Fields, Id, Placeholder, Section, Table, Time, relative } from "../ui.js";

const natural = new Intl.Collator(undefined, { numeric: true });
// Agents needing attention first: offline, then reconnecting, then online; revoked ones last.
const rank = (a: Agent) => (a.status === "offline" ? 0 : a.status === "revoked" ? 3 : a.connected ? 2 : 1);

function certWarn(a: Agent): boolean {
  return a.status !== "revoked" && !!a.certificate.notAfter && Date.parse(a.certificate.notAfter) - Date.now() < 2 * 3600_000;
}

export function FleetPage() {
  const r = useResource<{ agents: Agent[] }>("/api/v1/agents", ["fleet"]);
  const envs = useResource<{ environments: Environment[] }>("/api/v1/environments", ["catalog"]);
  const [filter, setFilter] = useState("");
  const q = filter.trim().toLowerCase();
  const agents = (r.data?.agents ?? [])
    .filter((a) => !q || JSON.stringify([a.name, a.id, a.environment, a.labels, a.facts.hostname, a.status]).toLowerCase().includes(q))
    .sort((a, b) => rank(a) - rank(b) || natural.compare(a.name, b.name));
  const counts = { online: 0, offline: 0, revoked: 0 };
  for (const a of r.data?.agents ?? []) counts[a.status]++;
  return (
    <>
      <div class="page-head">
        <h1>Fleet</h1>
        <input type="search" class="filter" placeholder="Filter by name, environment, label, host, status…" aria-label="Filter agents" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      </div>
      <p class="summary" aria-live="polite">
        <b>{counts.online}</b> online · <b class={counts.offline ? "warn" : ""}>{counts.offline}</b> offline · <b>{counts.revoked}</b> revoked
      </p>
      <div class="actions-row">
        <Action<{ joinString: string; expiresAt: string; id: string }>
          label="Create join token"
          testId="join-token"
          title="Create a join token"
          effect={<p>Creates a one-time secret that lets one new agent enrol into an environment. The join string is shown once, here; only its hash is stored.</p>}
          path="/api/v1/join-tokens"
          fields={[
            { name: "environment", label: "Environment", required: true, options: (envs.data?.environments ?? []).map((e) => ({ value: e.name, label: e.name })), initial: envs.data?.environments[0]?.name ?? "" },
            { name: "ttl", label: "Valid for", initial: "30m", placeholder: "30m" },
          ]}
          body={(v) => ({ environment: v["environment"], ...(v["ttl"] ? { ttl: v["ttl"] } : {}) })}
          disabledReason={lacks("admin")}
          outcome={(t) => (
            <>
              <p>
                Join token <code>{t.id}</code>, valid until <Time at={t.expiresAt} />. On the host run:
              </p>
              <pre class="json" data-join-string>ferry-agent enrol --join '{t.joinString}' --state-dir /var/lib/ferry-agent</pre>
              <Copy value={t.joinString} label="join string" />
            </>
          )}
        />
      </div>
      <ErrorBox error={r.error} />
      {r.data ? (
        agents.length === 0 ? (
          <p class="muted">{q ? "No agent matches the filter." : "No agents yet: create a join token and enrol one."}</p>
        ) : (
          <Table label="agents">
            <thead>
              <tr>
                <th>Status</th>
                <th>Agent</th>
                <th>Environment</th>
                <th>Host</th>
                <th>Drivers</th>
                <th>Last heartbeat</th>
                <th>Certificate</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((a) => (
                <tr key={a.id} data-agent={a.name}>
                  <td>
                    <Badge state={a.status === "online" && !a.connected ? "reconnecting" : a.status} />
                  </td>
                  <td>
                    <a href={`/agents/${a.id}`}>{a.name}</a>
                  </td>
                  <td>
                    <a href={`/environments/${a.environment}`}>{a.environment}</a>
                  </td>
                  <td>{[a.facts.hostname, a.facts.os && `${a.facts.os}/${a.facts.arch ?? ""}`].filter(Boolean).join(" · ") || "—"}</td>
                  <td>{(a.facts.drivers ?? []).join(", ") || "—"}</td>
                  <td>
                    <Time at={a.lastHeartbeatAt} />
                  </td>
                  <td class={certWarn(a) ? "warn" : ""}>{a.certificate.notAfter ? (a.status === "revoked" ? "revoked" : `expires ${relative(a.certificate.notAfter)}`) : "—"}</td>
                </tr>
              ))}
            </tbody>
          </Table>
        )
      ) : (
        <Placeholder rows={6} />
      )}
    </>
  );
}

interface AgentActivity {
  targets: { id: string; environment: string; name: string; kind: string }[];
  tasks: { id: string; deploymentId: string | null; environment: string; target: string; action: string; state: string; code: string | null; message: string | null; release: string | null; queuedAt: string; finishedAt: string | null }[];
}

export function AgentPage({ id }: { id: string }) {
  const r = useResource<Agent>(`/api/v1/agents/${encodeURIComponent(id)}`, ["fleet"]);
  const act = useResource<AgentActivity>(`/api/v1/console/agents/${encodeURIComponent(id)}/activity`, ["deployments", "catalog"]);
  const a = r.data;
  if (r.error && !a) return <ErrorBox error={r.error} />;
  if (!a) return <Placeholder rows={8} />;
  const offlineAfter = 3 * a.heartbeatIntervalMs;
  return (
    <>
      <div class="page-head">
        <h1>Agent {a.name}</h1>
        <span data-agent-status={a.status}>
          <Badge state={a.status === "online" && !a.connected ? "reconnecting" : a.status} />
        </span>
      </div>
      <ErrorBox error={r.error} />
      <div class="two">
        <Section title="Liveness" id="liveness">
          <Fields
            rows={[
              ["Status", <>{a.status} since <Time at={a.statusChangedAt} /></>],
              ["Last heartbeat", <Time at={a.lastHeartbeatAt} />],
              ["Heartbeat interval", `${a.heartbeatIntervalMs / 1000} s (offline after ${offlineAfter / 1000} s of silence plus a grace period)`],
              ["Clock skew", a.clockSkewMs === null ? "—" : `${a.clockSkewMs} ms`],
              ["Stream", a.connected ? "connected" : "not connected"],
              ["Enrolled", <Time at={a.enrolledAt} />],
              ...(a.revokedAt ? ([["Revoked", <><Time at={a.revokedAt} /> {a.revokeReason ? `— ${a.revokeReason}` : ""}</>]] as [string, preact.ComponentChildren][]) : []),
            ]}
          />
        </Section>
        <Section title="Certificate and identity" id="certificate">
          <Fields
            rows={[
              ["Agent id", <Id value={a.id} />],
              ["Certificate serial", a.certificate.serial ? <Id value={a.certificate.serial} /> : "—"],
              ["Expires", a.certificate.notAfter ? <Time at={a.certificate.notAfter} /> : "—"],
              ["Environment", <a href={`/environments/${a.environment}`}>{a.environment}</a>],
              ["Labels", Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "—"],
            ]}
          />
          <div class="actions-row">
            <Action
              label="Revoke agent"
              testId="revoke"
              danger
              title={`Revoke agent ${a.name}`}
              effect={<p>Revokes the agent and all its certificates. Its stream closes at once on every replica and its next call is refused. Revocation is final: to bring the host back, enrol it again with a new join token.</p>}
              path={`/api/v1/agents/${a.id}/revoke`}
              fields={[{ name: "reason", label: "Reason", maxLength: 500 }]}
              body={(v) => (v["reason"] ? { reason: v["reason"] } : {})}
              disabledReason={a.status === "revoked" ? "already revoked" : lacks("admin")}
              onDone={() => r.reload()}
            />
          </div>
        </Section>
      </div>
      <Section title="Host facts" id="facts">
        <pre class="json">{JSON.stringify(a.facts, null, 2)}</pre>
      </Section>
      <Section title="Targets it serves" id="targets">
        {act.data ? (
          act.data.targets.length === 0 ? <p class="muted">None.</p> : (
            <ul class="plain">
              {act.data.targets.map((t) => (
                <li key={t.id}>
                  <a href={`/environments/${t.environment}`}>{t.environment}</a> / {t.name} <span class="muted">{t.kind}</span>
                </li>
              ))}
            </ul>
          )
        ) : <Placeholder rows={2} />}
      </Section>
      <Section title="Recent tasks" id="tasks">
        {act.data ? (
          act.data.tasks.length === 0 ? <p class="muted">No tasks yet.</p> : (
            <Table label="recent tasks">
              <thead>
                <tr>
                  <th>Task</th>
                  <th>State</th>
                  <th>Target</th>
                  <th>Release</th>
                  <th>Queued</th>
                </tr>
              </thead>
              <tbody>
                {act.data.tasks.map((t) => (
                  <tr key={t.id}>
                    <td>
                      {t.deploymentId ? <a href={`/deployments/${t.deploymentId}`}>{t.action}</a> : <span title="a check of the target">{t.action}</span>} <code class="small">{t.id}</code>
                    </td>
                    <td>
                      <Badge state={t.state} />
                      {t.code && t.state !== "succeeded" ? <div class="failure"><code>{t.code}</code> {t.message}</div> : null}
                    </td>
                    <td>{t.environment} / {t.target}</td>
                    <td>{t.release ?? "—"}</td>
                    <td>
                      <Time at={t.queuedAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </Table>
          )
        ) : <Placeholder rows={3} />}
      </Section>
    </>
  );
}
