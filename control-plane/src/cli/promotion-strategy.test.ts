// `ferry promote --strategy` and `ferry release create --not-rollback-safe`, run in-process against a loopback stub of
// the API: what is sent, and what the human output says (strategy and rollout of a promotion, the release flag).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { terminal } from "./format.js";
import { buildProgram } from "./program.js";

let stdout = "";
let stderr = "";
let sent: { method: string; path: string; body: unknown }[] = [];
/** The stub's answer per request. */
let answer: (method: string, path: string) => { status: number; body: unknown } = () => ({ status: 404, body: { error: { code: "NOT_FOUND", message: "no" } } });
let server: Server;
let apiUrl = "";
const realTerminal = { ...terminal };

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
      sent.push({ method: req.method ?? "GET", path, body: text ? (JSON.parse(text) as unknown) : undefined });
      const a = answer(req.method ?? "GET", path);
      res.writeHead(a.status, { "content-type": "application/json" });
      res.end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  stdout = "";
  stderr = "";
  sent = [];
  terminal.out = (c) => void (stdout += c);
  terminal.err = (c) => void (stderr += c);
});
afterEach(() => {
  Object.assign(terminal, realTerminal);
  process.exitCode = undefined;
});

async function ferry(...args: string[]): Promise<void> {
  await buildProgram().exitOverride().parseAsync(["node", "ferry", "--url", apiUrl, "--token", "t", ...args]);
}

const rolling = { kind: "rolling", batch: { percent: 25 }, soakSeconds: 300, rollback: "auto", failureThreshold: 0, approvalBetweenSteps: false };
const promotion = (state: string) => ({
  id: "prm_7", release: { id: "rel_1", name: "shop", version: "2" }, environment: "prod", state, digestSetHash: "h", requestedBy: "rita", requestedAt: "t", breakGlass: null,
  strategy: rolling, strategySource: "request", deploymentId: "dep_1", rolloutId: "rol_1", gates: [], approvals: [], reason: null, expiresAt: "t", decidedAt: "t", finishedAt: null,
});
const release = (flag: Record<string, unknown>) => ({ id: "rel_9", name: "shop", version: "3", notes: "", provenance: {}, pins: [{ component: "web", repository: "r/web", digest: "sha256:ab", image: "r/web@sha256:ab", sourceTag: "3", mediaType: "m", platforms: [] }], createdBy: "rita", createdAt: "t", ...flag });

describe("promote --strategy", () => {
  it("sends a kind or JSON as the request's strategy and shows the strategy and the rollout it deploys through", async () => {
    answer = (m, p) => (m === "POST" && p === "/api/v1/promotions" ? { status: 201, body: promotion("deploying") } : { status: 200, body: promotion("succeeded") });
    await ferry("promote", "shop@2", "--to", "prod", "--strategy", '{"kind":"rolling","batch":"25%","soakSeconds":300}');
    assert.deepEqual(sent[0], { method: "POST", path: "/api/v1/promotions", body: { release: "shop@2", environment: "prod", strategy: { kind: "rolling", batch: "25%", soakSeconds: 300 } } });
    assert.match(stdout, /deployment dep_1; rollout rol_1 \(ferry rollout show rol_1\)/);
    assert.match(stdout, /strategy: rolling \(requested\) \{"batch":\{"percent":25\},"soakSeconds":300,/);
    sent = [];
    stdout = "";
    await ferry("promote", "shop@2", "--to", "prod", "--strategy", "rolling", "--json");
    assert.equal((sent[0]!.body as { strategy: unknown }).strategy, "rolling");
    assert.equal((JSON.parse(stdout) as { rolloutId: string }).rolloutId, "rol_1");
    // Without --strategy nothing is sent: the environment's applies.
    sent = [];
    await ferry("promote", "shop@2", "--to", "prod", "--json");
    assert.deepEqual(sent[0]!.body, { release: "shop@2", environment: "prod" });
    await assert.rejects(ferry("promote", "shop@2", "--to", "prod", "--strategy", "{nope"), /--strategy: not valid JSON/);
  });

  it("--wait follows the promotion through its rollout and exits 0 when it succeeds", async () => {
    let polls = 0;
    answer = (m, p) => (m === "POST" && p === "/api/v1/promotions" ? { status: 201, body: promotion("deploying") } : { status: 200, body: promotion(++polls >= 2 ? "succeeded" : "deploying") });
    await ferry("promote", "shop@2", "--to", "prod", "--strategy", "rolling", "--wait");
    assert.match(stderr, /deploying: through rollout rol_1 \(rolling\); follow it with ferry rollout show rol_1/);
    assert.match(stdout, /— succeeded/);
    assert.equal(process.exitCode, undefined);
  });
});

describe("rollout show while a rollback waits for approval", () => {
  it("prints why the approval step waits, and who declined a rollback", async () => {
    const step = (index: number, kind: string, state: string, spec: Record<string, unknown>, result: Record<string, unknown>) => ({ index, phase: "rollback", kind, name: kind === "approval" ? "approve the rollback" : "roll back", state, attempts: 1, spec, startedAt: "t", finishedAt: null, deadlineAt: null, wakeAt: null, result });
    const view = (steps: unknown[]) => ({ id: "rol_1", deploymentId: "dep_1", environment: "dev", releaseId: "rel_1", strategy: { kind: "rolling" }, state: "rolling_back", currentStep: 0, paused: false, abortRequested: false, reason: null, requestedBy: "rita", targets: [], createdAt: "t", updatedAt: "t", finishedAt: null, steps });
    answer = () => ({ status: 200, body: view([step(0, "approval", "running", { reason: "release shop@3 is marked not safe to roll back automatically" }, {})]) });
    await ferry("rollout", "show", "rol_1");
    assert.match(stdout, /approve the rollback\s+running\s+1\s+waiting: release shop@3 is marked not safe to roll back automatically/);
    answer = () => ({ status: 200, body: view([step(0, "approval", "skipped", { reason: "r" }, { declinedBy: "erin" })]) });
    stdout = "";
    await ferry("rollout", "show", "rol_1");
    assert.match(stdout, /rollback declined by erin/);
  });
});

describe("release create --not-rollback-safe", () => {
  it("sends rollbackSafe false with the note, and release show says a failed rollout waits for an approval", async () => {
    answer = () => ({ status: 201, body: release({ rollbackSafe: false, rollbackNote: "drops a column" }) });
    await ferry("release", "create", "shop@3", "--component", "web=:3", "--not-rollback-safe", "--rollback-note", "drops a column");
    assert.deepEqual(sent[0]!.body, { name: "shop", version: "3", components: { web: ":3" }, rollbackSafe: false, rollbackNote: "drops a column" });
    assert.match(stdout, /not safe to roll back automatically: a failed rollout waits for an approval \(drops a column\)/);
    stdout = "";
    await ferry("release", "show", "shop@3");
    assert.match(stdout, /not safe to roll back automatically/);
    await assert.rejects(ferry("release", "create", "shop@4", "--component", "web=:4", "--rollback-note", "why"), /--rollback-note: goes with --not-rollback-safe/);
    // A safe release (and an older server that sends no flag) says nothing about it.
    answer = () => ({ status: 200, body: release({ rollbackSafe: true, rollbackNote: null }) });
    stdout = "";
    await ferry("release", "show", "shop@3");
    assert.doesNotMatch(stdout, /roll back/);
  });
});
