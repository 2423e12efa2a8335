// Every change the console makes goes through one dialog: it says what will happen and which API call does it,
// collects what the call needs (a comment, a reason), sends it once (with an Idempotency-Key, so a double click or a
// retry cannot act twice), and shows the outcome — or the API's error code and message, word for word.
import { useRef, useState } from "preact/hooks";
import type { ComponentChildren } from "preact";
import { api, ApiError } from "./api.js";

export interface Field {
  name: string;
  label: string;
  required?: boolean;
  multiline?: boolean;
  placeholder?: string;
  initial?: string;
  maxLength?: number;
  options?: { value: string; label: string }[];
}

export interface ActionProps<T> {
  label: string;
  title: string;
  /** What the action will do, in plain words. */
  effect: ComponentChildren;
  method?: "POST" | "PATCH" | "DELETE";
  path: string;
  body?: (values: Record<string, string>) => unknown;
  fields?: Field[];
  /** When set, the action cannot be taken and this says why (shown next to the disabled button). */
  disabledReason?: string | null;
  danger?: boolean;
  confirmLabel?: string;
  outcome?: (result: T) => ComponentChildren;
  onDone?: (result: T) => void;
  testId?: string;
}

export function Action<T>(p: ActionProps<T>) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [values, setValues] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [result, setResult] = useState<{ value: T } | null>(null);
  const key = useRef("");

  const open = () => {
    const init: Record<string, string> = {};
    for (const f of p.fields ?? []) init[f.name] = f.initial ?? "";
    setValues(init);
    setError(null);
    setResult(null);
    key.current = crypto.randomUUID();
    dialog.current?.showModal();
  };
  const close = () => dialog.current?.close();
  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      const r = await api<T>(p.path, { method: p.method ?? "POST", body: p.body ? p.body(values) : {}, idempotencyKey: key.current });
      setResult({ value: r });
      p.onDone?.(r);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, "CLIENT", (err as Error).message));
      // A refused request may be corrected and sent again: that is a new request, with a new key.
      key.current = crypto.randomUUID();
    } finally {
      setBusy(false);
    }
  };
  const disabled = !!p.disabledReason;
  const reasonId = `why-${p.testId ?? p.label.replace(/\W+/g, "-").toLowerCase()}`;
  return (
    <span class="action">
      <button type="button" class={p.danger ? "danger" : "primary"} onClick={open} disabled={disabled} aria-describedby={disabled ? reasonId : undefined} data-action={p.testId}>
        {p.label}
      </button>
      {disabled ? (
        <span class="why-not" id={reasonId}>
          {p.disabledReason}
        </span>
      ) : null}
      <dialog ref={dialog} aria-labelledby={`${reasonId}-title`} onClose={() => setBusy(false)}>
        <form method="dialog" onSubmit={(e) => void submit(e)}>
          <h2 id={`${reasonId}-title`}>{p.title}</h2>
          <div class="effect">{p.effect}</div>
          <p class="request">
            <code>
              {p.method ?? "POST"} {p.path}
            </code>
          </p>
          {result ? null : (p.fields ?? []).map((f) => (
            <label key={f.name} class="field">
              <span>
                {f.label}
                {f.required ? " (required)" : ""}
              </span>
              {f.options ? (
                <select name={f.name} required={f.required} value={values[f.name] ?? ""} onChange={(e) => setValues({ ...values, [f.name]: (e.target as HTMLSelectElement).value })}>
                  {f.options.map((o) => (
                    <option key={o.value} value={o.value}>
                      {o.label}
                    </option>
                  ))}
                </select>
              ) : f.multiline ? (
                <textarea name={f.name} required={f.required} maxLength={f.maxLength ?? 2000} placeholder={f.placeholder} value={values[f.name] ?? ""} onInput={(e) => setValues({ ...values, [f.name]: (e.target as HTMLTextAreaElement).value })} />
              ) : (
                <input name={f.name} required={f.required} maxLength={f.maxLength ?? 200} placeholder={f.placeholder} value={values[f.name] ?? ""} onInput={(e) => setValues({ ...values, [f.name]: (e.target as HTMLInputElement).value })} />
              )}
            </label>
          ))}
          {error ? (
            <p class="error" role="alert" data-error-code={error.code}>
              <code>{error.code}</code> {error.message}
            </p>
          ) : null}
          {result ? (
            <div class="outcome" role="status">
              {p.outcome ? p.outcome(result.value) : "Done."}
            </div>
          ) : null}
          <div class="dialog-buttons">
            {result ? (
              <button type="button" class="primary" onClick={close} autoFocus>
                Close
              </button>
            ) : (
              <>
                <button type="button" onClick={close}>
                  Cancel
                </button>
                <button type="submit" class={p.danger ? "danger" : "primary"} disabled={busy} data-confirm={p.testId}>
                  {busy ? "Working…" : p.confirmLabel ?? p.label}
                </button>
              </>
            )}
          </div>
        </form>
      </dialog>
    </span>
  );
}
