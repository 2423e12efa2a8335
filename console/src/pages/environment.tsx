// An environment: its gates, freeze windows (active now, when they lift, the next one), its targets with what runs
// there, and its agents; rollback and (without gates) deploys start here.
import { useState } from "preact/hooks";
import { Action } from "../actions.js";
import { LiveLog } from "../live-log.js";
import { useResource } from "../resource.js";
import { lacks } from "../session.js";
import type { Agent, Deployment, Environment, Matrix, MatrixTarget } from "../types.js";
import { Badge, ErrorBox, Fields, Placeholder, Section, Table, Time } from "../ui.js";

interface TargetCheck {
  state: string;
  code: string | null;
  message: string;
  taskId: string | null;
}

interface EnvActivity {
  environment: Environment;
  gates: { kind: string; name?: string; config?: Record<string, unknown> }[];
  freezes: {
    gate: string;
    windows: { name: string; timeZone: string; type: string; cron?: string; durationMinutes?: number; days?: string[]; start?: string; end?: string }[];
    active: { window: string; start: string; end: string }[];
    liftsAt: string | null;
    next: { window: string; start: string; end: string } | null;
  }[];
  targets: { id: string; name: string; kind: string; agentId: string | null; check?: TargetCheck | null }[];
  status: Matrix;
  agents: Agent[];
}

export function EnvironmentPage({ name }: { name: string }) {
  const r = useResource<EnvActivity>(`/api/v1/console/environments/${encodeURIComponent(name)}/activity`, ["fleet", "estate", "deployments", "catalog"]);
  const a = r.data;
  if (r.error && !a) return <ErrorBox error={r.error} />;
  if (!a) return <Placeholder rows={8} />;
  const byTarget = new Map<string, MatrixTarget>();
  for (const c of a.status.cells) for (const t of c.targets) byTarget.set(t.targetId, t);
  for (const t of a.status.undeployed) byTarget.set(t.targetId, t);
  return (
    <>
      <div class="page-head">
        <h1>Environment {a.environment.name}</h1>
        <span class="muted">stage {a.environment.position}</span>
      </div>
      <ErrorBox error={r.error} />
      {a.environment.description ? <p>{a.environment.description}</p> : null}
      <Section title="Gates" id="gates">
        {a.gates.length === 0 ? (
          <p class="muted">No gates: releases are deployed directly (from a release's page) and promotions pass at once.</p>
        ) : (
          <Table label="gates">
            <thead>
              <tr>
                <th>Gate</th>
                <th>Kind</th>
                <th>Settings</th>
              </tr>
            </thead>
            <tbody>
              {a.gates.map((g, i) => (
                <tr key={i}>
                  <td>{g.name ?? g.kind}</td>
                  <td>{g.kind}</td>
                  <td class="wrap">
                    <code class="small">{JSON.stringify(g.config ?? {})}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
      </Section>
      {a.freezes.length ? (
        <Section title="Freeze windows" id="freezes">
          {a.freezes.map((f) => (
            <div key={f.gate}>
              <p>
                {f.active.length ? (
                  <>
                    <Badge state="frozen" /> now, by {f.active.map((x) => x.window).join(", ")}; lifts <Time at={f.liftsAt} />
                  </>
                ) : (
                  <>
                    <Badge state="open" /> not frozen now
                  </>
                )}
                {f.next ? (
                  <>
                    {" "}
                    · next window “{f.next.window}” starts <Time at={f.next.start} />, ends <Time at={f.next.end} />
                  </>
                ) : null}
              </p>
              <ul class="plain">
                {f.windows.map((w) => (
                  <li key={w.name}>
                    <b>{w.name}</b> ({w.timeZone}): {w.type === "cron" ? `cron ${w.cron}, ${w.durationMinutes} min` : `${(w.days ?? []).join(",")} ${w.start}–${w.end}`}
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </Section>
      ) : null}
      <Section title="Targets" id="targets">
        <div class="actions-row">
          <Action<Deployment>
            label={`Roll back ${a.environment.name}`}
            testId="rollback-env"
            danger
            title={`Roll back ${a.environment.name}`}
            effect={<p>Puts back, on every target of <b>{a.environment.name}</b>, the images it ran before its current ones (each target's newest earlier success with other images), as one deployment.</p>}
            path="/api/v1/rollbacks"
            body={() => ({ environment: a.environment.name })}
            disabledReason={lacks("deployer")}
            outcome={(d) => <p>Rollback <a href={`/deployments/${d.id}`}>{d.id}</a> started.</p>}
          />
        </div>
        {a.targets.length === 0 ? <p class="muted">No targets.</p> : (
          <Table label="targets">
            <thead>
              <tr>
                <th>Target</th>
                <th>State</th>
                <th>Release</th>
                <th>Agent</th>
                <th>Check</th>
                <th>Last report</th>
              </tr>
            </thead>
            <tbody>
              {a.targets.map((t) => {
                const s = byTarget.get(t.id);
                return (
                  <tr key={t.id} data-target={t.name}>
                    <td>
                      {t.name} <span class="muted small">{t.kind}</span>
                    </td>
                    <td class="wrap">
                      <Badge state={s?.state ?? "never-deployed"} />
                      {s && s.state !== "in-sync" && s.reasons.length ? <div class="reason">{s.reasons.join("; ")}</div> : null}
                    </td>
                    <td>{s?.release ? <a href={`/releases/${s.release.id}`}>{s.release.name}</a> : "—"}</td>
                    <td>{t.agentId ? <a href={`/agents/${t.agentId}`}>{s?.agentName ?? t.agentId}</a> : "—"}</td>
                    <td class="wrap" data-check={t.check?.state ?? "none"}>
                      {t.check ? <Badge state={t.check.state} /> : "—"}
                      {t.check && t.check.state !== "ok" && t.check.message ? <div class={t.check.state === "failed" ? "failure" : "reason"}>{t.check.code ? <code>{t.check.code}</code> : null} {t.check.message}</div> : null}
                      {t.check?.taskId ? <CheckLog env={a.environment.name} target={t.name} check={t.check} /> : null}
                    </td>
                    <td>
                      <Time at={s?.stickerReportedAt ?? null} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </Table>
        )}
      </Section>
      <Section title="Agents" id="agents">
        {a.agents.length === 0 ? <p class="muted">No agents in {a.environment.name}.</p> : (
          <ul class="plain">
            {a.agents.map((x) => (
              <li key={x.id}>
                <Badge state={x.status} /> <a href={`/agents/${x.id}`}>{x.name}</a> <span class="muted">heartbeat <Time at={x.lastHeartbeatAt} /></span>
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Settings" id="settings">
        <Fields rows={[["Raw settings", <pre class="json">{JSON.stringify(a.environment.settings, null, 2)}</pre>]]} />
      </Section>
    </>
  );
}

/** The log of a target's check task, read (and followed while the check is pending) once it is opened. */
function CheckLog({ env, target, check }: { env: string; target: string; check: TargetCheck }) {
  const [open, setOpen] = useState(false);
  return (
    <details class="check-log" data-check-log={check.taskId} onToggle={(ev) => setOpen(ev.currentTarget.open)}>
      <summary class="small">check log</summary>
      {open && check.taskId ? (
        <LiveLog
          url={`/api/v1/environments/${encodeURIComponent(env)}/targets/${encodeURIComponent(target)}/check/log?task=${encodeURIComponent(check.taskId)}`}
          label={`the check of ${target}`}
          running={check.state === "pending"}
          empty="no output"
          topics={["estate", "catalog"]}
        />
      ) : null}
    </details>
  );
}
