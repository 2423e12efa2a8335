#!/usr/bin/env node
// An outside HTTP load client for bench:rollout. It shares no code with Ferry: plain node:http, nothing imported
// from the project. It sends GET <path> to 127.0.0.1:<port> at a fixed rate (a new request every 1/rate s, never
// more than `maxInFlight` at once), bounded by a request count and a duration, and on SIGTERM or at the bound
// prints one JSON line: totals, failures, the longest gap between two successful responses, and when each body
// (a version) was first and last seen.
//
//   node load-client.mjs --port 8080 --rate 250 --max-seconds 120 --max-requests 50000 [--path /version]
import http from "node:http";
import { clearInterval, setInterval } from "node:timers";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const port = Number(args.port);
const rate = Number(args.rate ?? 250);
const maxSeconds = Math.min(Number(args["max-seconds"] ?? 120), 600);
const maxRequests = Math.min(Number(args["max-requests"] ?? 50_000), 200_000);
const path = args.path ?? "/version";
const maxInFlight = 64;
if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error("--port is required");

const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
const started = Date.now();
let sent = 0;
let ok = 0;
let failed = 0;
let inFlight = 0;
let lastOk = started;
let longestGapMs = 0;
const errors = new Map();
const versions = new Map();

function fail(why) {
  failed++;
  errors.set(why, (errors.get(why) ?? 0) + 1);
}

function one() {
  sent++;
  inFlight++;
  // Each request counts once, however many of "end" and "error" (on the request or the response) it emits.
  let settled = false;
  const settle = () => {
    if (settled) return false;
    settled = true;
    inFlight--;
    return true;
  };
  const req = http.get({ host: "127.0.0.1", port, path, agent, timeout: 5000 }, (res) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (c) => (body += c));
    // An answer cut off mid-body emits no "end"; node:http reports it as an error on the response (only to a listener).
    res.on("error", (err) => {
      if (settle()) fail(`answer cut off: ${err.message}`);
    });
    res.on("end", () => {
      if (!settle()) return;
      const now = Date.now();
      if (res.statusCode !== 200) return fail(`status ${res.statusCode}`);
      ok++;
      longestGapMs = Math.max(longestGapMs, now - lastOk);
      lastOk = now;
      const v = body.trim().slice(0, 64);
      const seen = versions.get(v);
      if (seen) seen.last = now;
      else versions.set(v, { first: now, last: now });
    });
  });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", (err) => {
    if (settle()) fail(err.code ?? err.message);
  });
}

function report() {
  clearInterval(timer);
  const out = {
    startedAt: started,
    endedAt: Date.now(),
    sent,
    ok,
    failed,
    longestGapMs: Math.max(longestGapMs, ok > 0 ? 0 : Date.now() - started),
    achievedRate: Math.round((sent / ((Date.now() - started) / 1000)) * 10) / 10,
    errors: Object.fromEntries(errors),
    versions: Object.fromEntries(versions),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  agent.destroy();
  process.exit(0);
}

const intervalMs = 1000 / rate;
let due = Date.now();
// A tick every few ms sends what is due, so the rate holds even when the timer is late.
const timer = setInterval(() => {
  const now = Date.now();
  if (now - started > maxSeconds * 1000 || sent >= maxRequests) return report();
  while (due <= now && inFlight < maxInFlight && sent < maxRequests) {
    one();
    due += intervalMs;
  }
  if (due < now - 1000) due = now;
}, 2);
process.on("SIGTERM", report);
process.on("SIGINT", report);
