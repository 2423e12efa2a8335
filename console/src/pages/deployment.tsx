// A deployment: per-target progress, the steps each task went through, failure reasons, and each task's log streamed
// as it arrives (fetched from the last offset whenever the control plane says logs moved).
import { Action } from "../actions.js";
import { LiveLog } from "../live-log.js";
import { useResource } from "../resource.js";
import { lacks } from "../session.js";
import type { Deployment, Task } from "../types.js";
import { Badge, ErrorBox, Fields, Id, Placeholder, Section, Time } from "../ui.js";
import { navigate } from "../router.js";
import { RolloutOfDeployment } from "./rollout.js";

const FAILED = new Set(["failed", "errored", "expired", "cancelled"]);

export function FailureReason({ t }: { t: Task }) {
  if (!FAILED.has(t.state) || (!t.code && !t.message)) return null;
  return (
    <div class="failure" data-failure={t.id}>
      {t.code ? <code>{t.code}</code> : null} {t.message}
    </div>
  );
}

/** A deployment started by a promotion names it as "promotion:<id>": link to it. */
function Requester({ who }: { who: string }) {
  const m = /^promotion:(\S+)$/.exec(who);
  return m ? <a href={`/promotions/${m[1]}`}>promotion {m[1]}</a> : <>{who}</>;
}

export function DeploymentPage({ id }: { id: string }) {
  const r = useResource<Deployment>(`/api/v1/deployments/${encodeURIComponent(id)}`, ["deployments", "logs", "rollouts"]);
  const d = r.data;
  if (r.error && !d) return <ErrorBox error={r.error} />;
  if (!d) return <Placeholder rows={8} />;
  const active = d.state === "queued" || d.state === "running";
  const done = d.tasks.filter((t) => !["queued", "leased", "running"].includes(t.state)).length;
  return (
    <>
      <div class="page-head">
        <h1>
          {d.action === "rollback" ? "Rollback" : "Deployment"} <Id value={d.id} />
        </h1>
        <Badge state={d.state} />
      </div>
      <ErrorBox error={r.error} />
      <Section title="Summary" id="summary">
        <Fields
          rows={[
            ["Release", d.release ? <a href={`/releases/${d.release.id}`}>{d.release.name}@{d.release.version}</a> : "each target's previous release"],
            ["Environment", <a href={`/environments/${d.environment}`}>{d.environment}</a>],
            ["Requested", <><Time at={d.createdAt} /> by <Requester who={d.requestedBy} /></>],
            ["Finished", d.finishedAt ? <Time at={d.finishedAt} /> : "not yet"],
            ["Progress", `${done} of ${d.tasks.length} targets finished`],
            ["Retry of", d.retryOf ? <a href={`/deployments/${d.retryOf}`}>{d.retryOf}</a> : "—"],
            ["Strategy", d.rolloutId ? <>a wave of rollout <a href={`/rollouts/${d.rolloutId}`}>{d.rolloutId}</a>: each target's phases run in one signed task</> : "all at once: each target's phases (prepare, start, health, switch, retire) run in one signed task"],
          ]}
        />
        <div class="progress" role="progressbar" aria-valuemin={0} aria-valuemax={d.tasks.length} aria-valuenow={done}>
          {d.tasks.map((t) => (
            <span key={t.id} class={`progress-seg s-${t.state}`} title={`${t.target.name}: ${t.state}`} />
          ))}
        </div>
        <div class="actions-row">
          <Action<Deployment>
            label="Retry failed targets"
            testId="retry"
            title={`Retry deployment ${d.id}`}
            effect={<p>Deploys the same release again to the targets whose tasks did not succeed, as a new deployment.</p>}
            path={`/api/v1/deployments/${d.id}/retry`}
            disabledReason={d.state !== "failed" ? "only a failed deployment can be retried" : lacks("deployer")}
            outcome={(n) => <p>Deployment <a href={`/deployments/${n.id}`}>{n.id}</a> started.</p>}
          />
          <Action
            label="Cancel queued tasks"
            testId="cancel"
            danger
            title={`Cancel deployment ${d.id}`}
            effect={<p>Cancels the tasks no agent has picked up yet. Tasks already running finish (or fail) on their agents.</p>}
            path={`/api/v1/deployments/${d.id}/cancel`}
            disabledReason={!active ? "the deployment has finished" : lacks("deployer")}
          />
          <Action<Deployment>
            label={`Roll back ${d.environment}`}
            testId="rollback"
            danger
            title={`Roll back ${d.environment}`}
            effect={<p>Puts back, on every target of <b>{d.environment}</b>, the images it ran before its current ones (each target's newest earlier success with other images). Environments with gates may refuse this; the refusal says why.</p>}
            path="/api/v1/rollbacks"
            body={() => ({ environment: d.environment })}
            disabledReason={lacks("deployer")}
            outcome={(n) => <p>Rollback <a href={`/deployments/${n.id}`} onClick={(e) => { e.preventDefault(); navigate(`/deployments/${n.id}`); }}>{n.id}</a> started.</p>}
          />
        </div>
      </Section>
      {d.rolloutId ? (
        <RolloutOfDeployment id={d.rolloutId} deploymentId={d.id} />
      ) : (
        <Section title="Rollout" id="rollout">
          <p class="muted small">This deployment ran all at once: it is not part of a rolling rollout.</p>
        </Section>
      )}
      {d.tasks.map((t) => (
        <TaskCard key={t.id} deploymentId={d.id} t={t} />
      ))}
    </>
  );
}

function TaskCard({ deploymentId, t }: { deploymentId: string; t: Task }) {
  return (
    <section class="card task" aria-label={`target ${t.target.name}`} data-task={t.id}>
      <div class="card-head">
        <h2>
          {t.target.name} <span class="muted small">{t.target.kind}</span>
        </h2>
        <Badge state={t.state} />
      </div>
      <FailureReason t={t} />
      <Fields
        rows={[
          ["Task", <Id value={t.id} />],
          ["Agent", <a href={`/agents/${t.agentId}`}>{t.agentId}</a>],
          ["Attempt", String(t.attempt)],
          ["Queued", <Time at={t.queuedAt} />],
          ["Started", <Time at={t.startedAt} />],
          ["Finished", t.finishedAt ? <Time at={t.finishedAt} /> : "not yet"],
          ["Images", <ul class="plain">{t.images.map((i) => <li key={i.component}>{i.component} <Id value={i.digest} /></li>)}</ul>],
        ]}
      />
      {t.events && t.events.length ? (
        <ol class="steps" aria-label="steps">
          {t.events.map((e) => (
            <li key={e.seq}>
              <Time at={e.at} /> <b>{e.step}</b> {e.detail}
            </li>
          ))}
        </ol>
      ) : null}
      <LiveLog
        url={`/api/v1/deployments/${deploymentId}/tasks/${t.id}/log`}
        label={t.target.name}
        running={["queued", "leased", "running"].includes(t.state)}
        empty={t.logBytes === 0 ? "no output yet" : ""}
        topics={["deployments"]}
      />
    </section>
  );
}
