// A rollout: its strategy, state and why it stopped, its steps as a list (waves with their targets and deployments,
// soaks counting down, approvals, router weights, canary analysis), and pause, resume, promote and abort. The same
// view sits on the page of each of its waves' deployments. It follows the rollout's changes (the `rollouts` topic)
// and its waves' progress (`deployments`).
import { useEffect, useState } from "preact/hooks";
import { Action } from "../actions.js";
import { useResource } from "../resource.js";
import { lacks } from "../session.js";
import type { Deployment, Release } from "../types.js";
import { Badge, ErrorBox, Fields, Id, Placeholder, Section, Table, Time } from "../ui.js";
import {
  ACTIVE,
  currentStep,
  describeStrategy,
  promotable,
  reasonParts,
  spanText,
  stepAnalysis,
  stepTargetNames,
  stepWeights,
  targetOutcomes,
  targetsToRollBack,
  waitLeft,
  waveDeployments,
  weightBar,
  type Analysis,
  type Measurement,
  type Reason,
  type Rollout,
  type RolloutStep,
} from "../rollout-format.js";

const rolloutPath = (id: string) => `/api/v1/rollouts/${encodeURIComponent(id)}`;

export function RolloutPage({ id }: { id: string }) {
  const r = useResource<Rollout>(rolloutPath(id), ["rollouts", "deployments"]);
  const ro = r.data;
  if (r.error && !ro) return <ErrorBox error={r.error} />;
  if (!ro) return <Placeholder rows={10} />;
  return (
    <>
      <div class="page-head">
        <h1>
          Rollout <Id value={ro.id} />
        </h1>
        <StateBadges ro={ro} />
      </div>
      <ErrorBox error={r.error} />
      <RolloutDetails ro={ro} reload={r.reload} />
    </>
  );
}

/** The rollout a deployment is a wave of, on that deployment's page. */
export function RolloutOfDeployment({ id, deploymentId }: { id: string; deploymentId: string }) {
  const r = useResource<Rollout>(rolloutPath(id), ["rollouts", "deployments"]);
  const ro = r.data;
  if (!ro) {
    return (
      <Section title="Rollout" id="rollout">
        {r.error ? <ErrorBox error={r.error} /> : <Placeholder rows={6} />}
      </Section>
    );
  }
  const wave = ro.steps.find((s) => waveDeployments(s).includes(deploymentId));
  return (
    <>
      <ErrorBox error={r.error} />
      <RolloutDetails ro={ro} reload={r.reload} from={wave ? `This deployment is step ${wave.index + 1} (${wave.name}) of rollout` : "This deployment belongs to rollout"} />
    </>
  );
}

function StateBadges({ ro }: { ro: Rollout }) {
  return (
    <span class="inline" data-rollout-state={ro.state}>
      <Badge state={ro.state} />
      {ro.paused ? <Badge state="paused" /> : null}
      {ro.abortRequested && ro.state !== "rolled_back" ? <Badge state="aborting" /> : null}
    </span>
  );
}

function RolloutDetails({ ro, reload, from }: { ro: Rollout; reload: () => void; from?: string }) {
  const cur = currentStep(ro);
  const forward = ro.steps.filter((s) => s.phase === "forward").length;
  return (
    <>
      <Section title={from ? "Rollout" : "Summary"} id="rollout">
        {from ? (
          <p class="small">
            {from} <a href={`/rollouts/${ro.id}`}>{ro.id}</a> <StateBadges ro={ro} />
          </p>
        ) : null}
        <ReasonBox reason={reasonParts(ro)} />
        <Fields
          rows={[
            ["Strategy", describeStrategy(ro.strategy)],
            ["Environment", <a href={`/environments/${ro.environment}`}>{ro.environment}</a>],
            ["Release", <ReleaseLink id={ro.releaseId} />],
            ["Requested", <><Time at={ro.createdAt} /> by {ro.requestedBy}</>],
            ["Finished", ro.finishedAt ? <Time at={ro.finishedAt} /> : "not yet"],
            ["Current step", cur && ACTIVE.includes(ro.state) ? `${cur.index + 1} of ${ro.steps.length}: ${cur.name}${ro.paused ? " (paused: no new step starts)" : ""}` : `${ro.steps.length} steps (${forward} planned${ro.steps.length > forward ? `, ${ro.steps.length - forward} to roll back` : ""})`],
            ["Targets", ro.targets.map((t) => t.name).join(", ") || "—"],
          ]}
        />
        <RolloutActions ro={ro} reload={reload} />
      </Section>
      <Section title="Steps" id="rollout-steps">
        <ol class="rsteps" aria-labelledby="rollout-steps">
          {ro.steps.map((s) => (
            <StepItem key={s.index} ro={ro} s={s} reload={reload} />
          ))}
        </ol>
      </Section>
    </>
  );
}

/** A release by name and version (its id until that is known; a release never changes, so it is fetched once). */
function ReleaseLink({ id }: { id: string }) {
  const r = useResource<Release>(`/api/v1/releases/${encodeURIComponent(id)}`, []);
  return <a href={`/releases/${id}`}>{r.data ? `${r.data.name}@${r.data.version}` : id}</a>;
}

function ReasonBox({ reason }: { reason: Reason | null }) {
  if (!reason) return null;
  return (
    <div class="failure rollout-reason" data-rollout-reason={reason.code ?? ""}>
      {reason.step ? <b>{reason.step}: </b> : null}
      {reason.code ? <code>{reason.code}</code> : null} {reason.message}
      {reason.by ? <span class="muted"> — by {reason.by}</span> : null}
      {reason.abortedBy ? <span class="muted"> — aborted by {reason.abortedBy}</span> : null}
      {reason.rollbackFailed ? (
        <div>
          Rolling back failed too: <ReasonBox reason={reason.rollbackFailed} />
        </div>
      ) : null}
    </div>
  );
}

function RolloutActions({ ro, reload }: { ro: Rollout; reload: () => void }) {
  const base = `/api/v1/rollouts/${ro.id}`;
  const next = ro.steps.find((s) => s.index > ro.currentStep && s.state === "pending");
  const back = targetsToRollBack(ro);
  return (
    <div class="actions-row">
      <Action<Rollout>
        label="Pause"
        testId="rollout-pause"
        title={`Pause rollout ${ro.id}`}
        effect={<p>Starts no new step. A wave already queued runs to its end and a soak keeps counting; an approval can still be given. Resume continues from where it stopped.</p>}
        path={`${base}/pause`}
        disabledReason={ro.state !== "running" ? `the rollout is ${ro.state.replace(/_/g, " ")}` : ro.paused ? "the rollout is paused" : lacks("deployer")}
        outcome={() => <p>Paused: no new step starts until it is resumed.</p>}
        onDone={reload}
      />
      <Action<Rollout>
        label="Resume"
        testId="rollout-resume"
        title={`Resume rollout ${ro.id}`}
        effect={<p>Continues the rollout{next ? <> with step {next.index + 1}, <b>{next.name}</b>, once the current one is done</> : null}.</p>}
        path={`${base}/resume`}
        disabledReason={!ro.paused || ro.state !== "running" ? "the rollout is not paused" : lacks("deployer")}
        outcome={() => <p>Resumed.</p>}
        onDone={reload}
      />
      <Action<Rollout>
        label="Abort"
        testId="rollout-abort"
        danger
        title={`Abort rollout ${ro.id}`}
        effect={
          <p>
            Stops the rollout: tasks of the running wave that no agent has picked up are cancelled, and once the delivered ones have finished,{" "}
            {back.length ? <>every target it updated — <b>{back.join(", ")}</b> — is rolled back to what it ran before the rollout.</> : "nothing needs rolling back: no target has been updated yet."}
          </p>
        }
        path={`${base}/abort`}
        fields={[{ name: "reason", label: "Reason", multiline: true, maxLength: 1024, placeholder: "why this rollout stops (kept in the audit log)" }]}
        body={(v) => (v["reason"]?.trim() ? { reason: v["reason"].trim() } : {})}
        confirmLabel="Abort and roll back"
        disabledReason={ro.state !== "running" && ro.state !== "halted" ? `the rollout is ${ro.state.replace(/_/g, " ")}` : ro.abortRequested ? "an abort is under way" : lacks("deployer")}
        outcome={() => <p>Aborted: the rollback steps appear below as they are planned.</p>}
        onDone={reload}
      />
    </div>
  );
}

function StepItem({ ro, s, reload }: { ro: Rollout; s: RolloutStep; reload: () => void }) {
  const current = s.index === ro.currentStep && ACTIVE.includes(ro.state);
  return (
    <li class={`rstep${current ? " current" : ""}${s.phase === "rollback" ? " rollback" : ""}`} data-step={s.index} data-kind={s.kind} data-phase={s.phase} data-step-state={s.state} aria-current={current ? "step" : undefined}>
      <div class="rstep-head">
        <span class="rstep-no">{s.index + 1}</span>
        <b class="rstep-name">{s.name}</b>
        <span class="tag">{s.kind}</span>
        {s.phase === "rollback" ? <span class="tag tag-rollback">rollback</span> : null}
        <Badge state={s.state} />
        <span class="muted small rstep-times">
          {s.attempts > 1 ? `attempt ${s.attempts} · ` : null}
          {s.startedAt ? <>started <Time at={s.startedAt} /></> : "not started"}
          {s.finishedAt ? <>, finished <Time at={s.finishedAt} /></> : null}
        </span>
      </div>
      <StepError s={s} />
      {s.kind === "wave" ? <WaveBody ro={ro} s={s} /> : null}
      {s.kind === "wait" ? <WaitBody ro={ro} s={s} reload={reload} /> : null}
      {s.kind === "approval" ? <ApprovalBody ro={ro} s={s} reload={reload} /> : null}
      {s.kind === "weights" ? <WeightsBody ro={ro} s={s} /> : null}
      {s.kind === "analysis" ? <AnalysisBody s={s} /> : null}
    </li>
  );
}

function StepError({ s }: { s: RolloutStep }) {
  const e = s.result["error"];
  if (typeof e !== "object" || e === null) return null;
  const { code, message } = e as { code?: unknown; message?: unknown };
  return (
    <div class="failure" data-step-error={typeof code === "string" ? code : ""}>
      {typeof code === "string" ? <code>{code}</code> : null} {typeof message === "string" ? message : null}
    </div>
  );
}

function WaveBody({ ro, s }: { ro: Rollout; s: RolloutStep }) {
  const deployments = waveDeployments(s);
  const outcomes = targetOutcomes(s, ro.targets);
  const restore = Array.isArray(s.result["nothingToRestore"]) ? (s.result["nothingToRestore"] as unknown[]).filter((x) => typeof x === "string") : [];
  return (
    <div class="rstep-body">
      <p class="small">
        {s.phase === "rollback" ? "Puts back what each target ran before the rollout on " : "Deploys the release to "}
        {stepTargetNames(s, ro.targets).join(", ") || "no target"}
        {deployments.length ? (
          <>
            {" "}— {deployments.length > 1 ? "deployments" : "deployment"}{" "}
            {deployments.map((d, i) => (
              <span key={d}>
                {i ? ", " : ""}
                <a href={`/deployments/${d}`}>{d}</a>
                {i ? " (retry)" : ""}
              </span>
            ))}
          </>
        ) : null}
      </p>
      {outcomes.length ? (
        <Table label={`targets of step ${s.index + 1}`}>
          <thead>
            <tr>
              <th>target</th>
              <th>state</th>
              <th>result</th>
            </tr>
          </thead>
          <tbody>
            {outcomes.map((o) => (
              <tr key={o.targetId} data-wave-target={o.name}>
                <th>{o.deployment ? <a href={`/deployments/${o.deployment}`}>{o.name}</a> : o.name}</th>
                <td>
                  <Badge state={o.state} />
                </td>
                <td class="wrap">{o.code || o.message ? <span class={o.state === "succeeded" ? "" : "failure"}>{o.code ? <code>{o.code}</code> : null} {o.message}</span> : "—"}</td>
              </tr>
            ))}
          </tbody>
        </Table>
      ) : s.state === "running" && deployments.length ? (
        <LiveWave deployments={deployments} label={`targets of step ${s.index + 1}`} />
      ) : null}
      {restore.length ? <p class="small muted">Nothing to put back on {restore.join(", ")}: no release ran there before the rollout.</p> : null}
      {s.result["aborted"] === true ? <p class="small muted">Stopped by the abort.</p> : null}
    </div>
  );
}

/** A running wave's targets, from its deployments as they progress (the step records outcomes when it finishes). */
function LiveWave({ deployments, label }: { deployments: string[]; label: string }) {
  return (
    <Table label={label}>
      <thead>
        <tr>
          <th>target</th>
          <th>state</th>
          <th>result</th>
        </tr>
      </thead>
      <tbody>
        {deployments.slice(-4).map((d) => (
          <LiveWaveRows key={d} id={d} />
        ))}
      </tbody>
    </Table>
  );
}

function LiveWaveRows({ id }: { id: string }) {
  const r = useResource<Deployment>(`/api/v1/deployments/${encodeURIComponent(id)}`, ["deployments"]);
  if (!r.data) {
    return (
      <tr>
        <td colSpan={3} class="muted">
          {r.error ? `${r.error.code}: ${r.error.message}` : "loading…"}
        </td>
      </tr>
    );
  }
  return (
    <>
      {r.data.tasks.map((t) => (
        <tr key={t.id} data-wave-target={t.target.name}>
          <th>
            <a href={`/deployments/${id}`}>{t.target.name}</a>
          </th>
          <td>
            <Badge state={t.state} />
          </td>
          <td class="wrap">{t.code || t.message ? <span class="failure">{t.code ? <code>{t.code}</code> : null} {t.message}</span> : "—"}</td>
        </tr>
      ))}
    </>
  );
}

/** The current time, rendered again every second while `on` (a countdown); read at each render, never stale. */
function useNow(on: boolean): number {
  const [, tick] = useState(0);
  useEffect(() => {
    if (!on) return;
    const t = window.setInterval(() => tick((n) => n + 1), 1000);
    return () => window.clearInterval(t);
  }, [on]);
  return Date.now();
}

function PromoteAction({ ro, s, reload }: { ro: Rollout; s: RolloutStep; reload: () => void }) {
  if (promotable(ro)?.index !== s.index) return null;
  const approval = s.kind === "approval";
  const next = ro.steps.find((x) => x.index === s.index + 1);
  return (
    <div class="actions-row">
      <Action<Rollout>
        label={approval ? "Approve" : "Promote: end now"}
        testId="rollout-promote"
        title={approval ? `Approve step ${s.index + 1} of ${ro.id}` : `End "${s.name}" now`}
        effect={
          <p>
            {approval ? <>Gives the approval this step waits for ({typeof s.spec["reason"] === "string" ? s.spec["reason"] : s.name}), recorded under your name.</> : <>Ends the wait <b>{s.name}</b> now instead of at its end.</>}{" "}
            {next ? <>The rollout goes on with step {next.index + 1}, <b>{next.name}</b>{ro.paused ? " once it is resumed" : ""}.</> : "That was the last step: the rollout succeeds."}
          </p>
        }
        path={`/api/v1/rollouts/${ro.id}/promote`}
        confirmLabel={approval ? "Approve" : "End now"}
        disabledReason={lacks("deployer")}
        outcome={() => <p>{approval ? "Approved." : "Promoted: the wait ends now."}</p>}
        onDone={reload}
      />
    </div>
  );
}

function WaitBody({ ro, s, reload }: { ro: Rollout; s: RolloutStep; reload: () => void }) {
  const now = useNow(s.state === "running");
  const left = waitLeft(s, now);
  const seconds = typeof s.spec["seconds"] === "number" ? s.spec["seconds"] : null;
  const promotedBy = typeof s.result["promotedBy"] === "string" ? s.result["promotedBy"] : null;
  return (
    <div class="rstep-body">
      <p class="small">
        {seconds !== null ? `Waits ${spanText(seconds)}` : "Waits"}
        {s.spec["promotable"] === true ? "; a deployer can end it early (promote)." : "."}{" "}
        {left !== null ? (
          <span class="countdown" data-countdown={left} role="timer">
            {promotedBy ? `ending now (promoted by ${promotedBy})` : left > 0 ? <time dateTime={s.wakeAt ?? undefined} title={`ends ${new Date(s.wakeAt ?? 0).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "long" })}`}>{spanText(left)} left</time> : "due now"}
          </span>
        ) : null}
        {s.state === "succeeded" ? (s.result["endedBy"] === "promote" ? `Ended early by ${promotedBy ?? "a promote"}.` : "Ran its full time.") : null}
      </p>
      <PromoteAction ro={ro} s={s} reload={reload} />
    </div>
  );
}

function ApprovalBody({ ro, s, reload }: { ro: Rollout; s: RolloutStep; reload: () => void }) {
  const by = typeof s.result["approvedBy"] === "string" ? s.result["approvedBy"] : typeof s.result["promotedBy"] === "string" ? s.result["promotedBy"] : null;
  const at = typeof s.result["promotedAt"] === "string" ? s.result["promotedAt"] : s.finishedAt;
  return (
    <div class="rstep-body">
      <p class="small">
        {typeof s.spec["reason"] === "string" ? `${s.spec["reason"]}. ` : null}
        {by ? (
          <span data-approved-by={by}>
            Approved by <b>{by}</b> <Time at={at} />.
          </span>
        ) : s.state === "running" ? (
          <>Waiting for a deployer's approval{s.deadlineAt ? <>; fails <Time at={s.deadlineAt} /> without one</> : null}.</>
        ) : null}
      </p>
      <PromoteAction ro={ro} s={s} reload={reload} />
    </div>
  );
}

function WeightsBody({ ro, s }: { ro: Rollout; s: RolloutStep }) {
  const weights = stepWeights(s, ro.targets);
  const wanted = typeof s.spec["newWeight"] === "number" ? s.spec["newWeight"] : null;
  return (
    <div class="rstep-body">
      <p class="small">
        {wanted !== null ? `The new slot gets ${wanted}% of requests, the stable slot the rest` : "Router weights"} on {stepTargetNames(s, ro.targets).join(", ") || "its targets"}.
      </p>
      {weights.length ? (
        <ul class="plain weights">
          {weights.map((w) => {
            const bar = weightBar(w);
            return (
              <li key={w.targetId} data-weights={w.name}>
                <span class="weights-name">{w.name}</span>
                <span class="wbar" role="img" aria-label={`${w.name}: stable ${w.stable}, new ${w.new}`}>
                  <span class="wbar-stable" style={{ width: `${bar.stable}%` }} />
                  <span class="wbar-new" style={{ width: `${bar.new}%` }} />
                </span>
                <span class="small">
                  stable {w.stable} · new {w.new}
                </span>
              </li>
            );
          })}
        </ul>
      ) : null}
    </div>
  );
}

function MeasurementRows({ rows }: { rows: Measurement[] }) {
  return (
    <>
      {rows.map((m, i) => (
        <tr key={`${m.name}-${i}`} data-measurement={m.name}>
          <th>{m.name}</th>
          <td>
            <Badge state={m.verdict} />
          </td>
          <td class="num">{m.value}</td>
          <td class="num">{m.threshold}</td>
          <td class="wrap">{m.detail}</td>
        </tr>
      ))}
    </>
  );
}

function MeasurementTable({ label, rows }: { label: string; rows: Measurement[] }) {
  return (
    <Table label={label}>
      <thead>
        <tr>
          <th>measurement</th>
          <th>verdict</th>
          <th>value</th>
          <th>threshold</th>
          <th>detail</th>
        </tr>
      </thead>
      <tbody>
        <MeasurementRows rows={rows} />
      </tbody>
    </Table>
  );
}

function AnalysisBody({ s }: { s: RolloutStep }) {
  const a: Analysis | null = stepAnalysis(s);
  if (!a) return <p class="small muted rstep-body">{s.state === "pending" ? "Compares the new slot with the stable one when it runs." : "No analysis result yet."}</p>;
  return (
    <div class="rstep-body" data-analysis={a.verdict}>
      <p class="small">
        Verdict <Badge state={a.verdict} />
        {a.attempt !== null ? ` (attempt ${a.attempt})` : null}
      </p>
      {a.perTarget.map((t) => (
        <div key={t.target} class="analysis-target">
          <p class="small">
            <b>{t.target}</b> <Badge state={t.verdict} />
          </p>
          <MeasurementTable label={`analysis of ${t.target}`} rows={t.measurements} />
          {t.deltas.length ? (
            <p class="small muted">
              {t.deltas.map(([k, v]) => `${k} ${v}`).join(" · ")}
            </p>
          ) : null}
        </div>
      ))}
      {a.external.length ? <MeasurementTable label="external checks" rows={a.external} /> : null}
    </div>
  );
}
