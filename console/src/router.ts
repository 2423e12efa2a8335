// A small history router: pages have real paths (/releases/rel_…), so a URL can be shared and bookmarked; the server
// answers every page path with the same shell. Internal links are plain <a href> (middle-click and "copy link" work).
import { useEffect, useState } from "preact/hooks";

type Listener = () => void;
const listeners = new Set<Listener>();

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  for (const l of listeners) l();
  window.scrollTo(0, 0);
}

window.addEventListener("popstate", () => {
  for (const l of listeners) l();
});

document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const href = a.getAttribute("href");
  if (!href || !href.startsWith("/") || href.startsWith("//") || href.startsWith("/api/")) return;
  e.preventDefault();
  // A link in an action's outcome leads away from the dialog: close it, whichever page comes next.
  a.closest("dialog")?.close();
  navigate(href);
});

export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

export interface Route {
  pattern: RegExp;
  render: (m: string[]) => preact.ComponentChildren;
}

export function match(routes: Route[], path: string): preact.ComponentChildren | null {
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (m) return r.render(m.slice(1).map((s) => decodeURIComponent(s)));
  }
  return null;
}
