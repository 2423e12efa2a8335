// What commands write where, run in-process against a stub of the API (fetch): logs asked for are output (stdout),
// promote --wait names its promotion before it waits, decisions read as words, and agent-supplied text reaches the
// terminal with its control characters escaped.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { terminal } from "./format.js";
import { buildProgram } from "./program.js";

type Route = (method: string, path: string, search: string) => { status?: number; body: unknown; text?: string } | undefined;

let timeline: string[] = [];
let stdout = "";
let stderr = "";
const realFetch = globalThis.fetch;
const realTerminal = { ...terminal };

function stubApi(route: Route): void {
  globalThis.fetch = (async (input: string | URL, init?: RequestInit) => {
    const url = new URL(input);
    const method = init?.method ?? "GET";
    timeline.push(`fetch ${method} ${url.pathname}`);
    const r = route(method, url.pathname, url.search);
    if (!r) return new Response(JSON.stringify({ error: { code: "NOT_FOUND", message: `${method} ${url.pathname}` } }), { status: 404 });
    return new Response(r.text ?? JSON.stringify(r.body), { status: r.status ?? 200, headers: r.text !== undefined ? { "x-ferry-log-next": String(r.text.length) } : {} });
  }) as typeof fetch;
}

async function ferry(...args: string[]): Promise<void> {
  await buildProgram().exitOverride().parseAsync(["node", "ferry", "--url", "http://127.0.0.1:9", "--token", "t", ...args]);
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
  globalThis.fetch = realFetch;
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
