// Small building blocks shared by the pages: times (relative, absolute on hover), copyable ids and digests, state
// badges, error boxes and placeholders that keep the layout still while data loads.
import { useEffect, useState } from "preact/hooks";
import type { ComponentChildren } from "preact";
import type { ApiError } from "./api.js";

const tickers = new Set<() => void>();
window.setInterval(() => {
  for (const t of tickers) t();
}, 10_000);
function useTick(): void {
  const [, set] = useState(0);
  useEffect(() => {
    const t = () => set((n) => n + 1);
    tickers.add(t);
    return () => void tickers.delete(t);
  }, []);
}

export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const diff = (Date.parse(iso) - now) / 1000;
  const s = Math.abs(diff);
  const v = s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : s < 86400 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
  return diff <= 0 ? `${v} ago` : `in ${v}`;
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function Time({ at }: { at: string | null | undefined }) {
  useTick();
  if (!at) return <span class="muted">never</span>;
  return (
    <time dateTime={at} title={new Date(at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "long" })}>
      {relative(at)}
    </time>
  );
}

export function Copy({ value, label }: { value: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="copy"
      aria-label={`copy ${label ?? value}`}
      title={`copy ${value}`}
      onClick={() => {
        void navigator.clipboard?.writeText(value).then(() => {
          setDone(true);
          window.setTimeout(() => setDone(false), 1200);
        });
      }}
    >
      {done ? "copied" : "copy"}
    </button>
  );
}

/** An id or digest: shortened for reading, copied in full. */
export function Id({ value, short = 12 }: { value: string; short?: number }) {
  const shown = value.startsWith("sha256:") ? `sha256:${value.slice(7, 7 + short)}…` : value;
  return (
    <span class="id">
      <code title={value}>{shown}</code>
      <Copy value={value} />
    </span>
  );
}

export function Badge({ state, kind }: { state: string; kind?: string }) {
  return <span class={`badge s-${state.replace(/[^a-z-]/g, "-")}${kind ? ` k-${kind}` : ""}`}>{state.replace(/_/g, " ")}</span>;
}

export function ErrorBox({ error }: { error: ApiError | null }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      <code>{error.code}</code> {error.message}
    </p>
  );
}

/** Placeholder rows of the final table's height, so the page does not jump when data arrives. */
export function Placeholder({ rows = 3 }: { rows?: number }) {
  return (
    <div class="placeholder" aria-busy="true" aria-label="loading">
      {Array.from({ length: rows }, (_, i) => (
        <div key={i} class="placeholder-row" />
      ))}
    </div>
  );
}

export function Section({ title, children, actions, id }: { title: string; children: ComponentChildren; actions?: ComponentChildren; id?: string }) {
  return (
    <section class="card" aria-labelledby={id}>
      <div class="card-head">
        <h2 id={id}>{title}</h2>
        {actions ? <div class="card-actions">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}

/** Tables scroll sideways inside their card on narrow screens instead of pushing the page wider. */
export function Table({ children, label }: { children: ComponentChildren; label: string }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

export function Fields({ rows }: { rows: [string, ComponentChildren][] }) {
  return (
    <dl class="fields">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}
