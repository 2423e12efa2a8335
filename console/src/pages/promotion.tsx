// A promotion: why it is blocked (every gate with its reason and remedy), who approved, its history and evidence
// chain, and the actions on it. Separation of duties is explained before the click: a requester sees why they cannot
// approve their own promotion.
import { useState } from "preact/hooks";
import { api, type ApiError } from "../api.js";
import { Action } from "../actions.js";
import { useResource } from "../resource.js";
import { getMe, lacks } from "../session.js";
import type { Gate, Promotion } from "../types.js";
import { Badge, ErrorBox, Fields, Id, Placeholder, Section, Table, Time } from "../ui.js";

const WAITING = new Set(["requested", "awaiting_gates"]);

export function PromotionPage({ id }: { id: string }) {
  const r = useResource<Promotion>(`/api/v1/promotions/${encodeURIComponent(id)}`, ["promotions", "deployments"]);
  const p = r.data;
  const why = useResource<{ blocked: boolean; gates: Gate[] }>(p && WAITING.has(p.state) ? `/api/v1/promotions/${encodeURIComponent(id)}/why-blocked` : null, ["promotions", "deployments", "catalog"]);
  if (r.error && !p) return <ErrorBox error={r.error} />;
  if (!p) return <Placeholder rows={8} />;
  const me = getMe();
  const waiting = WAITING.has(p.state);
  const gates = waiting && why.data ? why.data.gates : p.gates;
  const mine = me?.subject === p.requestedBy;
  const decided = p.approvals.some((a) => a.subject === me?.subject);
  const approveWhyNot = !waiting
    ? `the promotion is ${p.state.replace(/_/g, " ")}; only a waiting promotion takes approvals`
    : lacks("approver") ?? (mine ? `you (${me?.subject}) requested this promotion; separation of duties needs another approver` : decided ? `you (${me?.subject}) already decided on this promotion` : null);
  const title = `${p.release.name}@${p.release.version} → ${p.environment}`;
  return (
    <>
      <div class="page-head">
        <h1>
          Promotion {title}
        </h1>
        <Badge state={p.state} />
      </div>
      <ErrorBox error={r.error} />
      <Section title={waiting ? "Why blocked?" : "Gates"} id="gates">
        {waiting && why.data ? <p class={why.data.blocked ? "warn" : "ok"}>{why.data.blocked ? "Blocked: the gates below say what would unblock it." : "Every gate passes; the promotion moves on within a second."}</p> : null}
        {gates.length === 0 ? <p class="muted">{p.environment} has no gates.</p> : <GateList gates={gates} />}
        {p.reason ? <p class="failure">{p.reason}</p> : null}
        <div class="actions-row">
          <Action
            label="Approve"
            testId="approve"
            title={`Approve ${title}`}
            effect={<p>Records your approval as <b>{me?.subject}</b> for exactly these digests (digest set <code>{p.digestSetHash.slice(0, 16)}…</code>). When every gate passes, Ferry deploys to {p.environment}.</p>}
            path={`/api/v1/promotions/${p.id}/approve`}
            fields={[{ name: "comment", label: "Comment", multiline: true, placeholder: "what you checked" }]}
            body={(v) => ({ comment: v["comment"] ?? "" })}
            disabledReason={approveWhyNot}
            outcome={() => <p>Approved. The gates are evaluated again within a second.</p>}
            onDone={() => r.reload()}
          />
          <Action
            label="Reject"
            testId="reject"
            danger
            title={`Reject ${title}`}
            effect={<p>Ends the promotion as rejected, with your reason on record. The release can be promoted again later.</p>}
            path={`/api/v1/promotions/${p.id}/reject`}
            fields={[{ name: "reason", label: "Reason", multiline: true, required: true }]}
            body={(v) => ({ reason: v["reason"] ?? "" })}
            disabledReason={!waiting ? `the promotion is ${p.state.replace(/_/g, " ")}` : lacks("approver")}
            onDone={() => r.reload()}
          />
          <Action
            label="Break glass"
            testId="break-glass"
            danger
            title={`Break glass on ${title}`}
            effect={<p>Overrides the freeze windows of {p.environment} for this promotion only. Needs the environment's break-glass role (the server checks it) and a reason; it is audited and goes into the signed evidence. Other gates still apply.</p>}
            path={`/api/v1/promotions/${p.id}/break-glass`}
            fields={[{ name: "reason", label: "Reason", multiline: true, required: true, placeholder: "incident number, what cannot wait" }]}
            body={(v) => ({ reason: v["reason"] ?? "" })}
            disabledReason={!waiting ? `the promotion is ${p.state.replace(/_/g, " ")}` : p.breakGlass ? `${p.breakGlass.by} already broke the glass` : null}
            onDone={() => r.reload()}
          />
          <Action
            label="Cancel"
            testId="cancel-promotion"
            danger
            title={`Cancel ${title}`}
            effect={<p>Ends the promotion as cancelled. Nothing was deployed by it yet.</p>}
            path={`/api/v1/promotions/${p.id}/cancel`}
            fields={[{ name: "reason", label: "Reason", multiline: true }]}
            body={(v) => ({ reason: v["reason"] ?? "" })}
            disabledReason={!waiting ? `the promotion is ${p.state.replace(/_/g, " ")}` : lacks("deployer")}
            onDone={() => r.reload()}
          />
        </div>
      </Section>
      <Section title="Details" id="details">
        <Fields
          rows={[
            ["Promotion", <Id value={p.id} />],
            ["Release", <a href={`/releases/${p.release.id}`}>{p.release.name}@{p.release.version}</a>],
            ["Into", <a href={`/environments/${p.environment}`}>{p.environment}</a>],
            ["Requested", <><Time at={p.requestedAt} /> by {p.requestedBy}</>],
            ["Decided", p.decidedAt ? <Time at={p.decidedAt} /> : "not yet"],
            ["Expires", waiting ? <Time at={p.expiresAt} /> : "—"],
            ["Deployment", p.deploymentId ? <a href={`/deployments/${p.deploymentId}`}>{p.deploymentId}</a> : "none yet"],
            ["Break glass", p.breakGlass ? `${p.breakGlass.by}: ${p.breakGlass.reason}` : "no"],
            ["Digest set", <Id value={p.digestSetHash} short={16} />],
          ]}
        />
      </Section>
      <Section title="Approvals" id="approvals">
        {p.approvals.length === 0 ? (
          <p class="muted">No approvals yet.</p>
        ) : (
          <ul class="plain">
            {p.approvals.map((a) => (
              <li key={a.subject + a.at} data-approval={a.subject}>
                <Badge state={a.decision === "approve" ? "approved" : "rejected"} /> <b>{a.subject}</b> <Time at={a.at} />
                {a.comment ? <span class="muted"> — “{a.comment}”</span> : null}
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="History" id="history">
        <ol class="steps">
          {(p.transitions ?? []).map((t) => (
            <li key={t.seq}>
              <Time at={t.at} /> {t.from ? `${t.from.replace(/_/g, " ")} → ` : ""}
              <b>{t.to.replace(/_/g, " ")}</b> by {t.actor}
              {t.reason ? <span class="muted"> — {t.reason}</span> : null}
            </li>
          ))}
        </ol>
      </Section>
      <Section title="Evidence chain" id="evidence">
        <p class="muted small">Signed packets (DSSE); verify offline with <code>ferry evidence verify</code> or openssl.</p>
        {(p.evidence ?? []).length === 0 ? <p class="muted">No evidence yet: a packet is signed when the gates decide and another when the deployment ends.</p> : (p.evidence ?? []).map((e) => <Evidence key={e.id} e={e} />)}
      </Section>
    </>
  );
}

export function GateList({ gates }: { gates: Gate[] }) {
  return (
    <Table label="gates">
      <thead>
        <tr>
          <th>Gate</th>
          <th>State</th>
          <th>Reason</th>
          <th>What would unblock it</th>
        </tr>
      </thead>
      <tbody>
        {gates.map((g) => (
          <tr key={g.name} data-gate={g.gate} class={`gate-${g.state}`}>
            <td>
              <b>{g.name}</b> <span class="muted small">{g.gate}</span>
            </td>
            <td>
              <Badge state={g.state} />
            </td>
            <td class="wrap">{g.reason}</td>
            <td class="wrap">{g.state === "passed" ? "—" : g.remedy ?? "—"}</td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}

function Evidence({ e }: { e: { id: string; kind: string; hash: string; createdAt: string } }) {
  const [body, setBody] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  return (
    <details
      class="evidence"
      onToggle={(ev) => {
        if (ev.currentTarget.open && body === null) {
          api<unknown>(`/api/v1/evidence/${e.id}`)
            .then((x) => setBody(JSON.stringify(x, null, 2)))
            .catch((err: unknown) => setError(err as ApiError));
        }
      }}
    >
      <summary>
        <b>{e.kind}</b> <Time at={e.createdAt} /> <span class="muted">sha256 {e.hash.slice(0, 16)}…</span>
      </summary>
      <Fields rows={[["Packet", <Id value={e.id} />], ["Hash", <Id value={e.hash} short={32} />]]} />
      <ErrorBox error={error} />
      {body ? <pre class="json">{body}</pre> : error ? null : <Placeholder rows={1} />}
    </details>
  );
}
