// A deployment: per-target progress, the steps each task went through, failure reasons, and each task's log streamed
// as it arrives (fetched from the last offset whenever the control plane says logs moved).
import { useEffect, useRef, useState } from "preact/hooks";
import { apiText, ApiError } from "../api.js";
import { onChange } from "../events.js";
import { Action } from "../actions.js";
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
      <LiveLog deploymentId={deploymentId} task={t} />
    </section>
  );
}

const MAX_SHOWN = 512 * 1024;

function LiveLog({ deploymentId, task }: { deploymentId: string; task: Task }) {
  const [text, setText] = useState("");
  const [complete, setComplete] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const offset = useRef(0);
  const busy = useRef(false);
  const box = useRef<HTMLPreElement>(null);
  const stick = useRef(true);

  useEffect(() => {
    let alive = true;
    const pull = async () => {
      if (busy.current || !alive) return;
      busy.current = true;
      try {
        for (;;) {
          const r = await apiText(`/api/v1/deployments/${deploymentId}/tasks/${task.id}/log?offset=${offset.current}&limit=262144`);
          if (!alive) return;
          const next = Number(r.headers.get("x-ferry-log-next") ?? offset.current);
          const got = next - offset.current;
          offset.current = next;
          if (r.text) setText((s) => (s + r.text).slice(-MAX_SHOWN));
          setComplete(r.headers.get("x-ferry-log-complete") === "true");
          setError(null);
          if (got < 262144) break;
        }
      } catch (err) {
        if (alive) setError(err instanceof ApiError ? err : new ApiError(0, "CLIENT", (err as Error).message));
      } finally {
        busy.current = false;
      }
    };
    void pull();
    const off = onChange((topics) => {
      if (topics.has("logs") || topics.has("deployments")) void pull();
    });
    return () => {
      alive = false;
      off();
    };
  }, [deploymentId, task.id]);

  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [text]);

  return (
    <div class="log">
      <div class="log-head">
        <span>Log</span>
        <span class="muted small" data-log-state={complete ? "complete" : "live"}>
          {complete ? "complete" : ["queued", "leased", "running"].includes(task.state) ? "● live" : "waiting for the agent's last lines"}
        </span>
      </div>
      <ErrorBox error={error} />
      <pre
        ref={box}
        class="log-body"
        tabIndex={0}
        aria-label={`log of ${task.target.name}`}
        aria-live="off"
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
        }}
      >
        {text || (task.logBytes === 0 ? "no output yet" : "")}
      </pre>
    </div>
  );
}
