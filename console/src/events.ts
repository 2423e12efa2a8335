// Real-time updates: the control plane's server-sent event stream, read through fetch so the token travels in the
// Authorization header. Each event names the topics that changed; pages subscribe to topics and fetch again.
// Where a proxy buffers or strips the stream (no "ready" within a few seconds) or the replica has no stream to spare
// (RATE_LIMITED), the console polls: every topic counts as changed every POLL_MS, and the stream is tried again later.
import { getToken, openStream } from "./api.js";

export type Topic = "fleet" | "deployments" | "logs" | "promotions" | "releases" | "estate" | "catalog" | "rollouts";
const ALL: Topic[] = ["fleet", "deployments", "logs", "promotions", "releases", "estate", "catalog", "rollouts"];
export type LiveMode = "connecting" | "live" | "polling" | "off";

const READY_TIMEOUT_MS = 4000;
const POLL_MS = 2000;
const RETRY_STREAM_MS = 30_000;

type Listener = (topics: ReadonlySet<Topic>) => void;
const listeners = new Set<Listener>();
const modeListeners = new Set<(m: LiveMode) => void>();
let mode: LiveMode = "off";
let abort: AbortController | null = null;
let pollTimer: number | undefined;
let retryTimer: number | undefined;

export function onChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function onMode(l: (m: LiveMode) => void): () => void {
  modeListeners.add(l);
  l(mode);
  return () => modeListeners.delete(l);
}

export function liveMode(): LiveMode {
  return mode;
}

function setMode(m: LiveMode): void {
  mode = m;
  document.documentElement.dataset["live"] = m;
  for (const l of modeListeners) l(m);
}

function emit(topics: Iterable<Topic>): void {
  const set = new Set(topics);
  for (const l of [...listeners]) l(set);
}

function startPolling(): void {
  setMode("polling");
  window.clearInterval(pollTimer);
  pollTimer = window.setInterval(() => emit(ALL), POLL_MS);
  window.clearTimeout(retryTimer);
  retryTimer = window.setTimeout(() => connect(), RETRY_STREAM_MS);
}

export function stopLive(): void {
  abort?.abort();
  abort = null;
  window.clearInterval(pollTimer);
  window.clearTimeout(retryTimer);
  setMode("off");
}

export function connect(): void {
  if (!getToken()) return;
  abort?.abort();
  const ctrl = new AbortController();
  abort = ctrl;
  if (mode !== "polling") setMode("connecting");
  const readyTimer = window.setTimeout(() => {
    if (mode !== "live") {
      ctrl.abort();
      startPolling();
    }
  }, READY_TIMEOUT_MS);
  void (async () => {
    let wasLive = false;
    try {
      const res = await openStream("/api/v1/console/events", ctrl.signal);
      if (!res.body) throw new Error("no stream body");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut: number;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (event === "ready") {
            window.clearTimeout(readyTimer);
            window.clearInterval(pollTimer);
            window.clearTimeout(retryTimer);
            wasLive = true;
            setMode("live");
            // Whatever changed while there was no stream.
            emit(ALL);
          } else if (event === "change" && data) {
            emit((JSON.parse(data) as { topics: Topic[] }).topics);
          }
        }
      }
    } catch {
      if (ctrl.signal.aborted && abort !== ctrl) return;
    } finally {
      window.clearTimeout(readyTimer);
    }
    if (abort !== ctrl) return;
    // The server ends streams after a while (so tokens are checked again) and on restart: reconnect at once when it
    // was live, else poll and try again later.
    if (wasLive) window.setTimeout(() => connect(), 200);
    else if (mode !== "polling") startPolling();
  })();
}
