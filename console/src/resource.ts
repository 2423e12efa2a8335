// Data for a page: fetched once, fetched again when one of its topics changes (coalesced: at most one request in
// flight, one more queued), and kept on screen while it reloads, so nothing jumps.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError } from "./api.js";
import { onChange, type Topic } from "./events.js";

export interface Resource<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

export function useResource<T>(path: string | null, topics: Topic[], fetcher?: () => Promise<T>): Resource<T> {
  const [state, setState] = useState<{ data: T | null; error: ApiError | null; loading: boolean; path: string | null }>({ data: null, error: null, loading: true, path });
  const inflight = useRef(false);
  const again = useRef(false);
  const alive = useRef(true);
  const current = useRef(path);
  current.current = path;

  const load = () => {
    if (!path) return;
    if (inflight.current) {
      again.current = true;
      return;
    }
    inflight.current = true;
    const p = path;
    (fetcher ? fetcher() : api<T>(p))
      .then((data) => {
        if (alive.current && current.current === p) setState({ data, error: null, loading: false, path: p });
      })
      .catch((err: unknown) => {
        const e = err instanceof ApiError ? err : new ApiError(0, "CLIENT", (err as Error).message);
        if (alive.current && current.current === p) setState((s) => ({ data: s.path === p ? s.data : null, error: e, loading: false, path: p }));
      })
      .finally(() => {
        inflight.current = false;
        if (again.current) {
          again.current = false;
          load();
        }
      });
  };

  useEffect(() => {
    alive.current = true;
    setState((s) => (s.path === path ? s : { data: null, error: null, loading: true, path }));
    load();
    const off = onChange((changed) => {
      if (topics.some((t) => changed.has(t))) load();
    });
    return () => {
      alive.current = false;
      off();
    };
  }, [path]);

  return { data: state.path === path ? state.data : null, error: state.error, loading: state.loading, reload: load };
}
