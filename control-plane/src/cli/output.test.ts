// What commands write where, run in-process against a stub of the API (a loopback HTTP server answering through a
// fetch-style handler): logs asked for are output (stdout),
// promote --wait names its promotion before it waits, decisions read as words, and agent-supplied text reaches the
// terminal with its control characters escaped.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { terminal } from "./format.js";
import { buildProgram } from "./program.js";

type Route = (method: string, path: string, search: string) => { status?: number; body: unknown; text?: string; headers?: Record<string, string> } | undefined;

let timeline: string[] = [];
let stdout = "";
let stderr = "";
/** How the stub API answers: a fetch-style handler, set per test. */
let api: (input: string, init: RequestInit) => Promise<Response> = async () => new Response("{}", { status: 404 });
let server: Server;
let apiUrl = "";

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = chunks.length > 0 ? Buffer.concat(chunks).toString("utf8") : undefined;
      void api(`http://127.0.0.1${req.url ?? "/"}`, { method: req.method ?? "GET", ...(body !== undefined ? { body } : {}) })
        .then(async (r) => {
          res.writeHead(r.status, Object.fromEntries(r.headers));
          res.end(Buffer.from(await r.arrayBuffer()));
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));
const realTerminal = { ...terminal };

function stubApi(route: Route): void {
  api = (async (input: string | URL, init?: RequestInit) => {
    const url = new URL(input);
    const method = init?.method ?? "GET";
    timeline.push(`fetch ${method} ${url.pathname}`);
    const r = route(method, url.pathname, url.search);
    if (!r) return new Response(JSON.stringify({ error: { code: "NOT_FOUND", message: `${method} ${url.pathname}` } }), { status: 404 });
    return new Response(r.text ?? JSON.stringify(r.body), { status: r.status ?? 200, headers: { ...(r.text !== undefined ? { "x-ferry-log-next": String(r.text.length) } : {}), ...r.headers } });
  });
}

async function ferry(...args: string[]): Promise<void> {
  await buildProgram().exitOverride().parseAsync(["node", "ferry", "--url", apiUrl, "--token", "t", ...args]);
}

beforeEach(() => {
  timeline = [];
  stdout = "";
  stderr = "";
  terminal.out = (c) => {
    stdout += c;
    timeline.push(`stdout ${c}`);
  };
  terminal.err = (c) => {
    stderr += c;
    timeline.push(`stderr ${c}`);
  };
});
afterEach(() => {
  Object.assign(terminal, realTerminal);
  process.exitCode = undefined;
});

const task = { id: "tsk_1", target: { id: "tg_1", name: "web-1", kind: "docker" }, agentId: "agt_1", releaseId: "rel_1", action: "deploy", state: "failed", images: [], attempt: 1, keyId: "k", notAfter: "", queuedAt: "", startedAt: null, finishedAt: null, code: "X", message: "m", details: null, logBytes: 10, events: [{ seq: 1, at: "t", step: "pull", detail: "evil\x1b[2Jdetail" }] };
const deployment = { id: "dep_1", environment: "dev", releaseId: "rel_1", release: { id: "rel_1", name: "shop", version: "1" }, action: "deploy", state: "failed", retryOf: null, requestedBy: "dana", override: null, createdAt: "", updatedAt: "", finishedAt: null, tasks: [task] };
const promotion = (state: string, approvals: unknown[] = []) => ({ id: "prm_7", release: { id: "rel_1", name: "shop", version: "1" }, environment: "prod", state, digestSetHash: "h", requestedBy: "rita", requestedAt: "t", breakGlass: null, deploymentId: null, gates: [{ gate: "approvals", name: "prod approvers", state: "pending", reason: "0 of 1", remedy: null, details: {} }], approvals, reason: null, expiresAt: "t", decidedAt: null, finishedAt: null });

describe("CLI output streams", () => {
  it("deployment show --logs writes the logs to stdout, escaped", async () => {
    stubApi((m, p) => (p === "/api/v1/deployments/dep_1" ? { body: deployment } : p.endsWith("/log") ? { body: null, text: "line one\n\x1b]0;pwned\x07red\n" } : undefined));
    await ferry("deployment", "show", "dep_1", "--logs");
    assert.match(stdout, /--- web-1 log ---\nline one\n\\x1b\]0;pwned\\x07red\n/);
    assert.match(stdout, /evil\\x1b\[2Jdetail/);
    assert.equal(stderr, "");
    assert.ok(!stdout.includes("\x1b"));
  });

  it("target check-log and check --logs write the check task's log to stdout, escaped, from the latest or a named task", async () => {
    const check = { state: "ok", code: null, message: "web is running", details: null, taskId: "tsk_9", configAt: "t", requestedAt: "t", checkedAt: "2030-01-01T00:00:00.000Z" };
    const target = { id: "tg_1", environment: "dev", name: "web", kind: "docker", agentId: "agt_1", config: {}, description: "", createdAt: "t", updatedAt: "t", check };
    const asked: string[] = [];
    stubApi((m, p, q) => {
      if (p === "/api/v1/environments/dev/targets/web/check/log") {
        asked.push(q);
        const task = new URLSearchParams(q).get("task") ?? "tsk_9";
        return { body: null, text: `inspecting web (${task})\n\x1b[2Jcontainer running`, headers: { "x-ferry-task-id": task, "x-ferry-log-complete": "true" } };
      }
      if (m === "POST" && p === "/api/v1/environments/dev/targets/web/check") return { status: 202, body: target };
      return undefined;
    });
    await ferry("target", "check-log", "web", "--env", "dev");
    assert.equal(stdout, "--- dev/web check log (tsk_9) ---\ninspecting web (tsk_9)\n\\x1b[2Jcontainer running\n");
    assert.equal(stderr, "");
    stdout = "";
    await ferry("target", "check-log", "web", "--env", "dev", "--task", "tsk_1", "--json");
    assert.deepEqual(JSON.parse(stdout), { environment: "dev", target: "web", taskId: "tsk_1", complete: true, log: "inspecting web (tsk_1)\n\x1b[2Jcontainer running" });
    assert.deepEqual(asked, ["?limit=8388608", "?limit=8388608&task=tsk_1"], "the whole log (a task's log is at most 8 MiB) in one read");
    stdout = "";
    await ferry("target", "check", "web", "--env", "dev", "--logs");
    assert.match(stdout, /^dev\/web: check: ok \(2030-01-01T00:00:00.000Z\)\n--- dev\/web check log \(tsk_9\) ---\ninspecting web \(tsk_9\)\n/);
    assert.equal(asked.at(-1), "?limit=8388608&task=tsk_9", "the log of the check just answered, not whichever is newest when it is read");
    assert.ok(!stdout.includes("\x1b"));
    // A target never checked: the API's answer, as an error.
    stubApi((m, p) => (p.endsWith("/check/log") ? { status: 404, body: { error: { code: "TASK_NOT_FOUND", message: "target tg_1 was never checked" } } } : undefined));
    await assert.rejects(ferry("target", "check-log", "web", "--env", "dev"), /never checked/);
  });

  it("promote --wait prints the promotion id before it waits (stderr for people, first JSON progress line with --json)", async () => {
    let polls = 0;
    stubApi((m, p) => {
      if (m === "POST" && p === "/api/v1/promotions") return { status: 201, body: promotion("awaiting_gates") };
      if (p === "/api/v1/promotions/prm_7") return { body: promotion(++polls >= 1 ? "succeeded" : "awaiting_gates") };
      return undefined;
    });
    await ferry("promote", "shop@1", "--to", "prod", "--wait");
    const firstPoll = timeline.indexOf("fetch GET /api/v1/promotions/prm_7");
    const named = timeline.findIndex((l) => l.startsWith("stderr") && l.includes("prm_7"));
    assert.ok(named >= 0 && named < firstPoll, timeline.join("\n"));
    timeline = [];
    stderr = "";
    stdout = "";
    polls = 0;
    await ferry("promote", "shop@1", "--to", "prod", "--wait", "--json");
    const first = JSON.parse(stderr.split("\n")[0]!) as { event: string; promotion: string };
    assert.deepEqual([first.event, first.promotion], ["requested", "prm_7"]);
    assert.equal((JSON.parse(stdout) as { state: string }).state, "succeeded");
  });

  it("says rejected, not rejectd", async () => {
    stubApi((m, p) => (p === "/api/v1/promotions/prm_7/reject" ? { body: { ...promotion("rejected"), approvals: [{ subject: "bob", decision: "reject", comment: "no", at: "t" }] } } : undefined));
    await ferry("reject", "prm_7", "--reason", "no");
    assert.match(stdout, /bob rejected \("no"\)/);
    assert.doesNotMatch(stdout, /rejectd/);
  });

  it("escapes agent names and facts in the agents table", async () => {
    const agent = { id: "agt_1", name: "web\x1b[31m\u009b2J", environment: "dev", status: "online", facts: { hostname: "h\x07", agentVersion: "1" }, lastHeartbeatAt: null, clockSkewMs: null, certificate: { notAfter: null } };
    stubApi((m, p) => (p === "/api/v1/agents" ? { body: { agents: [agent] } } : undefined));
    await ferry("agents");
    assert.match(stdout, /web\\x1b\[31m\\x9b2J/);
    assert.match(stdout, /h\\x07/);
    assert.ok(!["\x07", "\x1b", "\u009b"].some((c) => stdout.includes(c)));
  });

  it("audit verify --anchor remembers the verified head and sends it next time", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-anchor-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "head.json");
    const seen: string[] = [];
    stubApi((m, p, q) => {
      if (p !== "/api/v1/audit/verify") return undefined;
      seen.push(q);
      return { body: { ok: true, records: 12, head: "b".repeat(64), anchors: { checkpoints: 1, evidence: 0, latest: null } } };
    });
    await ferry("audit", "verify", "--anchor", file);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), { seq: 12, hash: "b".repeat(64) });
    await ferry("audit", "verify", "--anchor", file);
    assert.deepEqual(seen, ["", `?anchorSeq=12&anchorHash=${"b".repeat(64)}`]);
    assert.match(stdout, /and the head seen before \(record 12\)/);
    // A broken chain leaves the old witness in place and exits 1.
    stubApi(() => ({ body: { ok: false, records: 3, brokenAt: 4, reason: "the chain is truncated" } }));
    await ferry("audit", "verify", "--anchor", file);
    assert.equal(process.exitCode, 1);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), { seq: 12, hash: "b".repeat(64) });
  });
});

const rolloutView = (state: string, paused = false) => ({
  id: "rol_1", deploymentId: "dep_1", environment: "dev", releaseId: "rel_1", strategy: { kind: "rolling" }, state, currentStep: 1, paused, abortRequested: false,
  reason: state === "rolled_back" ? { code: "ROLLOUT_WAVE_FAILED", message: "1 of 1 targets failed" } : null, requestedBy: "dana", targets: [], createdAt: "t", updatedAt: "t", finishedAt: null,
  steps: [
    { index: 0, phase: "forward", kind: "wave", name: "batch 1 of 2", state: "succeeded", attempts: 1, spec: {}, startedAt: "t", finishedAt: "t", deadlineAt: null, wakeAt: null, result: { targets: { tg_1: { name: "web-1", state: "succeeded", code: null } } } },
    { index: 1, phase: "forward", kind: "wait", name: "soak after batch 1", state: "running", attempts: 1, spec: {}, startedAt: "t", finishedAt: null, deadlineAt: null, wakeAt: "2030-01-01T00:01:00.000Z", result: {} },
  ],
});

describe("rollout commands", () => {
  it("deploy --strategy sends the parsed strategy and names the rollout; rollout show, pause and abort print steps or JSON", async () => {
    let sent: unknown;
    const calls: string[] = [];
    api = (async (input: string | URL, init?: RequestInit) => {
      const url = new URL(input);
      calls.push(`${init?.method ?? "GET"} ${url.pathname}`);
      if (url.pathname === "/api/v1/deployments") {
        sent = JSON.parse(init?.body as string) as unknown;
        return new Response(JSON.stringify({ ...deployment, state: "queued", rollout: rolloutView("running") }), { status: 201 });
      }
      if (url.pathname === "/api/v1/rollouts/rol_1/pause") return new Response(JSON.stringify(rolloutView("running", true)));
      if (url.pathname === "/api/v1/rollouts/rol_1/abort") return new Response(JSON.stringify({ ...rolloutView("running"), abortRequested: true, echoed: JSON.parse(init?.body as string) as unknown }));
      return new Response(JSON.stringify(rolloutView("rolled_back")));
    });
    await ferry("deploy", "shop@2", "--to", "dev", "--strategy", '{"kind":"rolling","batch":1,"soakSeconds":60}');
    assert.deepEqual((sent as { strategy: unknown }).strategy, { kind: "rolling", batch: 1, soakSeconds: 60 });
    assert.match(stderr, /rollout rol_1 started \(rolling, 2 steps\); first wave: deployment dep_1/);
    assert.match(stdout, /Rollout rol_1: rolling to dev — running/);
    assert.match(stdout, /soak after batch 1\s+running\s+1\s+until 2030-01-01T00:01:00.000Z/);
    await assert.rejects(ferry("deploy", "shop@2", "--to", "dev", "--strategy", "{oops"), /--strategy: not valid JSON/);
    stdout = "";
    await ferry("rollout", "show", "rol_1");
    assert.match(stdout, /rolled_back\n {2}reason: ROLLOUT_WAVE_FAILED 1 of 1 targets failed/);
    assert.match(stdout, /batch 1 of 2\s+succeeded\s+1\s+web-1 succeeded/);
    stdout = "";
    await ferry("rollout", "pause", "rol_1", "--json");
    assert.equal((JSON.parse(stdout) as { paused: boolean }).paused, true);
    stdout = "";
    await ferry("rollout", "abort", "rol_1", "--reason", "wrong build", "--json");
    assert.deepEqual((JSON.parse(stdout) as { echoed: unknown }).echoed, { reason: "wrong build" });
    stdout = "";
    await ferry("rollouts", "--env", "dev", "--json");
    assert.ok(calls.includes("GET /api/v1/rollouts"), calls.join("\n"));
  });
});
