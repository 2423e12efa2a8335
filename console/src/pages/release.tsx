// A release: its digests, notes and provenance, where it runs, its promotions and deployments, its scan reports —
// and the two ways to move it: a promotion (gated environments) or a direct deploy (environments without gates).
import { Action } from "../actions.js";
import { useResource } from "../resource.js";
import { navigate } from "../router.js";
import { lacks } from "../session.js";
import type { Deployment, Environment, Promotion, Release } from "../types.js";
import { Badge, ErrorBox, Fields, Id, Placeholder, Section, Table, Time } from "../ui.js";

interface Activity {
  release: Release;
  runningOn: { environment: string; target: string; targetId: string; sync: string; since: string | null }[];
  promotions: { id: string; environment: string; state: string; requestedBy: string; requestedAt: string; finishedAt: string | null }[];
  deployments: { id: string; environment: string; action: string; state: string; requestedBy: string; createdAt: string; finishedAt: string | null }[];
  scans: { digest: string; scanner: string; counts: Record<string, number>; uploadedAt: string }[];
}

export function ReleasePage({ id }: { id: string }) {
  const r = useResource<Activity>(`/api/v1/console/releases/${encodeURIComponent(id)}/activity`, ["deployments", "promotions", "estate"]);
  const envs = useResource<{ environments: Environment[] }>("/api/v1/environments", ["catalog"]);
  const a = r.data;
  if (r.error && !a) return <ErrorBox error={r.error} />;
  if (!a) return <Placeholder rows={8} />;
  const rel = a.release;
  const all = envs.data?.environments ?? [];
  const ungated = all.filter((e) => !e.settings.gates || e.settings.gates.length === 0);
  const envOptions = all.map((e) => ({ value: e.name, label: `${e.name}${e.settings.gates?.length ? ` (${e.settings.gates.length} gates)` : " (no gates)"}` }));
  return (
    <>
      <div class="page-head">
        <h1>
          Release {rel.name}@{rel.version}
        </h1>
      </div>
      <ErrorBox error={r.error} />
      <Section title="Move this release" id="move">
        <div class="actions-row">
          <Action<Promotion>
            label="Request promotion"
            testId="promote"
            title={`Promote ${rel.name}@${rel.version}`}
            effect={<p>Asks to move this release into an environment. The environment's gates (approvals, prior environment, security, freeze windows…) are evaluated continuously; when all pass, Ferry deploys it. You can follow why it is blocked on the promotion's page.</p>}
            path="/api/v1/promotions"
            fields={[{ name: "environment", label: "Into environment", required: true, options: envOptions, initial: envOptions[0]?.value ?? "" }]}
            body={(v) => ({ release: rel.id, environment: v["environment"] })}
            disabledReason={lacks("deployer") ?? (all.length === 0 ? "there are no environments" : null)}
            outcome={(p) => (
              <p>
                Promotion requested: <a href={`/promotions/${p.id}`} onClick={(e) => { e.preventDefault(); e.currentTarget.closest<HTMLDialogElement>("dialog")?.close(); navigate(`/promotions/${p.id}`); }}>{p.id}</a> ({p.state.replace(/_/g, " ")}).
              </p>
            )}
          />
          <Action<Deployment>
            label="Deploy now"
            testId="deploy"
            title={`Deploy ${rel.name}@${rel.version}`}
            effect={<p>Deploys this release to every target of an environment without gates, at once: one signed task per target. Environments with gates take releases only through a promotion.</p>}
            path="/api/v1/deployments"
            fields={[{ name: "environment", label: "Into environment (no gates)", required: true, options: ungated.map((e) => ({ value: e.name, label: e.name })), initial: ungated[0]?.name ?? "" }]}
            body={(v) => ({ release: rel.id, environment: v["environment"] })}
            disabledReason={lacks("deployer") ?? (ungated.length === 0 ? "every environment has gates: request a promotion instead" : null)}
            outcome={(d) => (
              <p>
                Deployment <a href={`/deployments/${d.id}`} onClick={(e) => { e.preventDefault(); e.currentTarget.closest<HTMLDialogElement>("dialog")?.close(); navigate(`/deployments/${d.id}`); }}>{d.id}</a> started.
              </p>
            )}
          />
        </div>
      </Section>
      <Section title="Images" id="images">
        <Table label="images">
          <thead>
            <tr>
              <th>Component</th>
              <th>Digest</th>
              <th>Repository</th>
              <th>From tag</th>
              <th>Verification</th>
            </tr>
          </thead>
          <tbody>
            {rel.pins.map((p) => {
              const scans = a.scans.filter((s) => s.digest === p.digest);
              return (
                <tr key={p.component}>
                  <td>{p.component}</td>
                  <td>
                    <Id value={p.digest} />
                  </td>
                  <td class="wrap">{p.repository}</td>
                  <td>{p.sourceTag ?? "—"}</td>
                  <td class="wrap">
                    {scans.length === 0 ? <span class="muted">no scan report</span> : scans.map((s) => (
                      <div key={s.scanner}>
                        {s.scanner}: {Object.entries(s.counts).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(", ") || "no findings"} <span class="muted"><Time at={s.uploadedAt} /></span>
                      </div>
                    ))}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </Table>
      </Section>
      <div class="two">
        <Section title="Where it runs" id="where">
          {a.runningOn.length === 0 ? (
            <p class="muted">Not running anywhere (no target's last successful deployment is this release).</p>
          ) : (
            <ul class="plain">
              {a.runningOn.map((t) => (
                <li key={t.targetId}>
                  <a href={`/environments/${t.environment}`}>{t.environment}</a> / {t.target} <Badge state={t.sync} /> <span class="muted">since <Time at={t.since} /></span>
                </li>
              ))}
            </ul>
          )}
        </Section>
        <Section title="Details" id="details">
          <Fields
            rows={[
              ["Id", <Id value={rel.id} />],
              ["Created", <><Time at={rel.createdAt} /> by {rel.createdBy}</>],
              ["Notes", rel.notes ? <div class="notes">{rel.notes}</div> : <span class="muted">none</span>],
              ["Provenance", Object.keys(rel.provenance).length ? <pre class="json">{JSON.stringify(rel.provenance, null, 2)}</pre> : <span class="muted">none</span>],
            ]}
          />
        </Section>
      </div>
      <Section title="Promotions" id="promotions">
        {a.promotions.length === 0 ? <p class="muted">Never promoted.</p> : (
          <ul class="plain">
            {a.promotions.map((p) => (
              <li key={p.id}>
                <Badge state={p.state} /> <a href={`/promotions/${p.id}`}>→ {p.environment}</a> <span class="muted">by {p.requestedBy}, <Time at={p.requestedAt} /></span>
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Deployments" id="deployments">
        {a.deployments.length === 0 ? <p class="muted">Never deployed.</p> : (
          <ul class="plain">
            {a.deployments.map((d) => (
              <li key={d.id}>
                <Badge state={d.state} /> <a href={`/deployments/${d.id}`}>{d.id}</a> {d.action} to {d.environment} <span class="muted">by {d.requestedBy}, <Time at={d.createdAt} /></span>
              </li>
            ))}
          </ul>
        )}
      </Section>
    </>
  );
}
