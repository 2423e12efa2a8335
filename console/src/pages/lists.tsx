// The list pages: the approval queue (promotions), deployments, rollouts, releases. Each filters on the server where the API
// can (state, environment, name) and pages with "more" rather than loading everything.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import type { Topic } from "../events.js";
import { useResource } from "../resource.js";
import { navigate, useLocation } from "../router.js";
import { getMe } from "../session.js";
import type { Deployment, Promotion, Release } from "../types.js";
import { Badge, ErrorBox, Placeholder, Section, Table, Time } from "../ui.js";
import { DeploymentList } from "./overview.js";
import { currentStep, describeStrategy, type Rollout } from "../rollout-format.js";

const PROMOTION_STATES = ["", "awaiting_gates", "requested", "approved", "deploying", "succeeded", "failed", "rolled_back", "rejected", "cancelled", "expired"];

function setQuery(key: string, value: string): void {
  const q = new URLSearchParams(location.search);
  if (value) q.set(key, value);
  else q.delete(key);
  const s = q.toString();
  navigate(`${location.pathname}${s ? `?${s}` : ""}`, true);
}

/** A list the API pages with a cursor: the first page follows `topics`; "More" appends the next ones. */
function usePagedList<T, K extends string>(path: string, key: K, params: Record<string, string>, topics: Topic[]) {
  const qs = new URLSearchParams({ limit: "50", ...params });
  type Page = { [k in K]: T[] } & { nextCursor: string | null };
  const r = useResource<Page>(`${path}?${qs.toString()}`, topics);
  const [more, setMore] = useState<{ items: T[]; cursor: string | null } | null>(null);
  const items = [...(r.data?.[key] ?? []), ...(more?.items ?? [])];
  const cursor = more ? more.cursor : r.data?.nextCursor ?? null;
  const loadMore = (next: string) =>
    void api<Page>(`${path}?${new URLSearchParams({ ...Object.fromEntries(qs), cursor: next }).toString()}`).then((n) => setMore({ items: [...(more?.items ?? []), ...n[key]], cursor: n.nextCursor }));
  return { r, items, cursor, loadMore, reset: () => setMore(null) };
}

/** The "More" button of a paged list, while there is a next page. */
function MoreButton({ cursor, load }: { cursor: string | null; load: (cursor: string) => void }) {
  return cursor ? (
    <button type="button" onClick={() => load(cursor)}>
      More
    </button>
  ) : null;
}

/** A list's state filter: `?state=`, "any" for none; choosing one starts a paged list again from its first page (`reset`). */
function StateFilter({ state, states, reset }: { state: string; states: readonly string[]; reset?: () => void }) {
  return (
    <label class="inline">
      State{" "}
      <select value={state} onChange={(e) => { reset?.(); setQuery("state", (e.target as HTMLSelectElement).value); }}>
        {states.map((s) => (
          <option key={s} value={s}>{s ? s.replace(/_/g, " ") : "any"}</option>
        ))}
      </select>
    </label>
  );
}

export function PromotionsPage() {
  const { query } = useLocation();
  const state = query.get("state") ?? "";
  const env = query.get("environment") ?? "";
  const qs = new URLSearchParams({ limit: "100", ...(state ? { state } : {}), ...(env ? { environment: env } : {}) });
  const r = useResource<{ promotions: Promotion[] }>(`/api/v1/promotions?${qs.toString()}`, ["promotions"]);
  const me = getMe();
  return (
    <>
      <div class="page-head">
        <h1>Promotions</h1>
        <StateFilter state={state} states={PROMOTION_STATES} />
      </div>
      <p class="muted small">The approval queue: promotions waiting for gates come first. Requesting a promotion starts from a release's page.</p>
      <ErrorBox error={r.error} />
      {r.data ? (
        r.data.promotions.length === 0 ? (
          <p class="muted">No promotions{state ? ` in state ${state.replace(/_/g, " ")}` : ""}.</p>
        ) : (
          <Table label="promotions">
            <thead>
              <tr>
                <th>Promotion</th>
                <th>State</th>
                <th>Blocked by</th>
                <th>Requested</th>
              </tr>
            </thead>
            <tbody>
              {[...r.data.promotions]
                .sort((a, b) => Number(b.state === "awaiting_gates") - Number(a.state === "awaiting_gates"))
                .map((p) => {
                  const pending = p.gates.filter((g) => g.state !== "passed");
                  return (
                    <tr key={p.id}>
                      <td>
                        <a href={`/promotions/${p.id}`}>
                          {p.release.name}@{p.release.version} → {p.environment}
                        </a>
                      </td>
                      <td>
                        <Badge state={p.state} />
                      </td>
                      <td class="wrap">
                        {p.state === "awaiting_gates" || p.state === "requested"
                          ? pending.map((g) => (
                              <div key={g.name}>
                                <b>{g.name}</b>: {g.reason}
                                {g.gate === "approvals" && p.requestedBy === me?.subject ? <span class="muted"> (not you: you requested it)</span> : null}
                              </div>
                            ))
                          : p.reason ?? "—"}
                      </td>
                      <td>
                        <Time at={p.requestedAt} /> <span class="muted">by {p.requestedBy}</span>
                      </td>
                    </tr>
                  );
                })}
            </tbody>
          </Table>
        )
      ) : (
        <Placeholder rows={6} />
      )}
    </>
  );
}

const DEPLOYMENT_STATES = ["", "queued", "running", "succeeded", "failed", "cancelled"];

export function DeploymentsPage() {
  const { query } = useLocation();
  const state = query.get("state") ?? "";
  const { r, items, cursor, loadMore, reset } = usePagedList<Deployment, "deployments">("/api/v1/deployments", "deployments", state ? { state } : {}, ["deployments"]);
  return (
    <>
      <div class="page-head">
        <h1>Deployments</h1>
        <StateFilter state={state} states={DEPLOYMENT_STATES} reset={reset} />
      </div>
      <ErrorBox error={r.error} />
      {r.data ? <DeploymentList items={items} /> : <Placeholder rows={8} />}
      <MoreButton cursor={cursor} load={loadMore} />
    </>
  );
}

export function ReleasesPage() {
  const { query } = useLocation();
  const name = query.get("name") ?? "";
  const [draft, setDraft] = useState(name);
  const { r, items, cursor, loadMore, reset } = usePagedList<Release, "releases">("/api/v1/releases", "releases", name ? { name } : {}, ["releases"]);
  return (
    <>
      <div class="page-head">
        <h1>Releases</h1>
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            reset();
            setQuery("name", draft.trim());
          }}
        >
          <input type="search" aria-label="Release name" placeholder="release name (exact)" value={draft} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} />
          <button type="submit">Find</button>
        </form>
      </div>
      <ErrorBox error={r.error} />
      <Section title={name ? `Releases named ${name}` : "Newest releases"} id="releases">
        {r.data ? (
          items.length === 0 ? (
            <p class="muted">No releases{name ? ` named ${name}` : ""}. Cut one with <code>ferry release create</code>.</p>
          ) : (
            <Table label="releases">
              <thead>
                <tr>
                  <th>Release</th>
                  <th>Components</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {items.map((x) => (
                  <tr key={x.id}>
                    <td>
                      <a href={`/releases/${x.id}`}>{x.name}@{x.version}</a>
                    </td>
                    <td class="wrap">{x.pins.map((p) => p.component).join(", ")}</td>
                    <td>
                      <Time at={x.createdAt} /> <span class="muted">by {x.createdBy}</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </Table>
          )
        ) : (
          <Placeholder rows={8} />
        )}
      </Section>
      <MoreButton cursor={cursor} load={loadMore} />
    </>
  );
}

const ROLLOUT_STATES = ["", "running", "halted", "rolling_back", "succeeded", "failed", "rolled_back"];

export function RolloutsPage() {
  const { query } = useLocation();
  const state = query.get("state") ?? "";
  const { r, items, cursor, loadMore, reset } = usePagedList<Rollout, "rollouts">("/api/v1/rollouts", "rollouts", state ? { state } : {}, ["rollouts", "deployments"]);
  return (
    <>
      <div class="page-head">
        <h1>Rollouts</h1>
        <StateFilter state={state} states={ROLLOUT_STATES} reset={reset} />
      </div>
      <ErrorBox error={r.error} />
      <Section title={state ? `Rollouts ${state.replace(/_/g, " ")}` : "Newest rollouts"} id="rollouts">
        {r.data ? (
          items.length === 0 ? (
            <p class="muted">No rollouts{state ? " in this state" : " yet: a deployment with a strategy other than all-at-once starts one"}.</p>
          ) : (
            <Table label="rollouts">
              <thead>
                <tr>
                  <th>rollout</th>
                  <th>state</th>
                  <th>environment</th>
                  <th>step</th>
                  <th>strategy</th>
                  <th>requested</th>
                </tr>
              </thead>
              <tbody>
                {items.map((ro) => {
                  const cur = currentStep(ro);
                  return (
                    <tr key={ro.id} data-rollout={ro.id}>
                      <th>
                        <a href={`/rollouts/${ro.id}`}>{ro.id}</a>
                      </th>
                      <td>
                        <Badge state={ro.state} />
                        {ro.paused ? <> <Badge state="paused" /></> : null}
                      </td>
                      <td>{ro.environment}</td>
                      <td class="wrap">{cur ? `${cur.index + 1} of ${ro.steps.length}: ${cur.name}` : `${ro.steps.length} steps`}</td>
                      <td class="wrap">{describeStrategy(ro.strategy)}</td>
                      <td>
                        <Time at={ro.createdAt} /> by {ro.requestedBy}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </Table>
          )
        ) : (
          <Placeholder rows={8} />
        )}
      </Section>
      <MoreButton cursor={cursor} load={loadMore} />
    </>
  );
}
