// A task's log as it arrives: fetched from the last offset whenever the control plane says logs (or the given topics)
// moved, until the API says it is complete. Deployment tasks and target check tasks are read the same way
// (text from a byte offset; X-Ferry-Log-Next, X-Ferry-Log-Complete).
import { useEffect, useRef, useState } from "preact/hooks";
import { apiText, ApiError } from "./api.js";
import { onChange, type Topic } from "./events.js";
import { ErrorBox } from "./ui.js";

const MAX_SHOWN = 512 * 1024;
const PAGE = 262144;

export interface LiveLogProps {
  /** The log's URL without offset and limit (it may carry other parameters). */
  url: string;
  /** Names the log for assistive technology: "log of …". */
  label: string;
  /** Whether the task is still running (the log may grow). */
  running: boolean;
  /** Shown while there is no text and the task has logged nothing. */
  empty: string;
  /** Change topics besides "logs" after which to read again. */
  topics: readonly Topic[];
}

export function LiveLog({ url, label, running, empty, topics }: LiveLogProps) {
  const [text, setText] = useState("");
  const [complete, setComplete] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const offset = useRef(0);
  const busy = useRef(false);
  const box = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  const topicKey = topics.join(",");

  useEffect(() => {
    let alive = true;
    offset.current = 0;
    setText("");
    setComplete(false);
    const pull = async () => {
      if (busy.current || !alive) return;
      busy.current = true;
      try {
        for (;;) {
          const r = await apiText(`${url}${url.includes("?") ? "&" : "?"}offset=${offset.current}&limit=${PAGE}`);
          if (!alive) return;
          const next = Number(r.headers.get("x-ferry-log-next") ?? offset.current);
          const got = next - offset.current;
          offset.current = next;
          if (r.text) setText((s) => (s + r.text).slice(-MAX_SHOWN));
          setComplete(r.headers.get("x-ferry-log-complete") === "true");
          setError(null);
          if (got < PAGE) break;
        }
      } catch (err) {
        if (alive) setError(err instanceof ApiError ? err : new ApiError(0, "CLIENT", (err as Error).message));
      } finally {
        busy.current = false;
      }
    };
    void pull();
    const also = topicKey.split(",") as Topic[];
    const off = onChange((changed) => {
      if (changed.has("logs") || also.some((t) => changed.has(t))) void pull();
    });
    return () => {
      alive = false;
      off();
    };
  }, [url, topicKey]);

  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [text]);

  return (
    <div class="log">
      <div class="log-head">
        <span>Log</span>
        <span class="muted small" data-log-state={complete ? "complete" : "live"}>
          {complete ? "complete" : running ? "● live" : "waiting for the agent's last lines"}
        </span>
      </div>
      <ErrorBox error={error} />
      <pre
        ref={box}
        class="log-body"
        tabIndex={0}
        aria-label={`log of ${label}`}
        aria-live="off"
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
        }}
      >
        {text || empty}
      </pre>
    </div>
  );
}
