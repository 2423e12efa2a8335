// The agent core against the in-memory fake driver: verification and refusals, the phase run with restore, the
// journal's crash recovery, cancellation. No Docker Engine, no network: the session is an in-memory stand-in that
// records what the runner sends, and the tasks are signed with a real task-signing keyring.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { dockerKind, TARGET_CONFIG_CASES, type Phase, type TaskPayload } from "@ferry/contract";
import { newTaskNonce, TaskSigningKeyring } from "@ferry/pki";
import { SignedTaskSchema, TaskOfferSchema, TaskSigningKeySchema, type ConnectRequest, type TaskAck, type TaskResult } from "@ferry/proto/wire";
import { pino } from "pino";

import { FakeDriver } from "../drivers/fake/index.js";
import { DriverRegistry } from "../drivers/registry.js";
import { waitUntil } from "../test-support/wait.js";
import type { SessionEvents } from "./session.js";

const waitFor = <T>(condition: () => T | undefined | false, opts: { timeoutMs: number }): Promise<T> => waitUntil(condition, "the runner reports", opts.timeoutMs);
import { TaskRunner, type TaskSession } from "./task-runner.js";

const AGENT = "agt_test";
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const image = (c: string, d: string) => ({ component: "web", repository: "127.0.0.1:5000/shop/web", digest: digest(d), ref: `127.0.0.1:5000/shop/web@${digest(d)}` });

class MemorySession extends EventEmitter<SessionEvents> implements TaskSession {
  readonly sent: NonNullable<ConnectRequest["body"]>[] = [];
  readonly agentId = AGENT;
  streamReady = true;
  send(body: ConnectRequest["body"]): boolean {
    if (body) this.sent.push(body);
    return true;
  }
  async pullTasks(): Promise<never[]> {
    return [];
  }
  acks(): TaskAck[] {
    return this.sent.filter((b) => b.case === "taskAck").map((b) => b.value);
  }
  results(): TaskResult[] {
    return this.sent.filter((b) => b.case === "taskResult").map((b) => b.value);
  }
  steps(taskId: string): string[] {
    return this.sent.filter((b) => b.case === "taskProgress" && b.value.taskId === taskId).map((b) => (b.value as { step: string }).step);
  }
}

let dir: string;
let keyring: TaskSigningKeyring;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ferry-task-runner-"));
  keyring = await TaskSigningKeyring.loadOrCreate(join(dir, "keys"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function payload(over: Partial<TaskPayload> = {}): TaskPayload {
  n += 1;
  const now = Date.now();
  return {
    v: 1,
    taskId: `tsk_${n}`,
    deploymentId: `dep_${n}`,
    agentId: AGENT,
    issuedAt: now,
    notAfter: now + 600_000,
    nonce: newTaskNonce(),
    action: "deploy",
    target: { id: "tgt_web", name: "web", kind: "fake", config: { slot: "web" } },
    release: { id: "rel_1", name: "shop", version: "1" },
    images: [image("web", "b")],
    ...over,
  };
}

interface Agent {
  session: MemorySession;
  runner: TaskRunner;
  driver: FakeDriver;
  offer(p: TaskPayload, opts?: { signature?: Uint8Array }): void;
  resultOf(taskId: string): Promise<TaskResult>;
  ackOf(taskId: string): Promise<TaskAck>;
}

async function agent(stateDir: string, driver = new FakeDriver(), extra: FakeDriver[] = []): Promise<Agent> {
  const drivers = new DriverRegistry().register(driver, "fake");
  for (const d of extra) drivers.register(d, "extra");
  const session = new MemorySession();
  const runner = await new TaskRunner({ stateDir, session, drivers, logger: pino({ level: "silent" }), observeEveryMs: 3_600_000 }).start();
  session.emit("welcome", {
    agentId: AGENT,
    heartbeatIntervalMs: 1000,
    serverTimeMs: Date.now(),
    taskSigningKeys: keyring.publicKeys().map((k) => create(TaskSigningKeySchema, { keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: BigInt(k.notAfterMs) })),
  });
  return {
    session,
    runner,
    driver,
    offer(p, opts = {}) {
      const env = keyring.sign(p);
      const task = create(SignedTaskSchema, { payload: env.payload, payloadType: env.payloadType, keyId: env.keyId, signature: opts.signature ?? env.signature });
      session.emit("taskOffer", create(TaskOfferSchema, { task, attempt: 1 }));
    },
    resultOf: (taskId) => waitFor(() => session.results().find((r) => r.taskId === taskId), { timeoutMs: 10_000 }),
    ackOf: (taskId) => waitFor(() => session.acks().find((a) => a.taskId === taskId), { timeoutMs: 10_000 }),
  };
}

const stateDir = (name: string) => join(dir, name);

describe("TaskRunner with the fake driver", () => {
  it("runs every phase in order, writes the sticker and reports what runs", async () => {
    const a = await agent(stateDir("ok"));
    const p = payload();
    a.offer(p);
    const r = await a.resultOf(p.taskId);
    assert.equal(r.outcome, "succeeded", r.message);
    assert.deepEqual(a.session.steps(p.taskId), ["start", "prepare", "start", "health", "switch", "retire", "sticker"]);
    assert.deepEqual(a.driver.calls.filter((c) => c.endsWith(p.taskId)).map((c) => c.split(":")[0]), ["prepare", "start", "health", "switch", "retire"]);
    assert.deepEqual(a.driver.slot("web").serving.map((i) => i.digest), [digest("b")]);
    assert.equal(r.sticker?.deploymentId, p.deploymentId);
    assert.equal((await a.ackOf(p.taskId)).accepted, true);
    await a.runner.stop();
  });

  it("runs a v2 task with the all-at-once phases, and refuses phases on their own for a driver that cannot", async () => {
    const a = await agent(stateDir("v2"), new FakeDriver({ separateSteps: false }));
    const whole = payload({ v: 2, phases: ["prepare", "start", "health", "switch", "retire"] });
    a.offer(whole);
    assert.equal((await a.resultOf(whole.taskId)).outcome, "succeeded");
    const part = payload({ v: 2, phases: ["prepare"] as Phase[] });
    a.offer(part);
    const ack = await a.ackOf(part.taskId);
    assert.equal(ack.accepted, false);
    assert.equal(ack.refusalCode, "TASK_PHASES_UNSUPPORTED");
    assert.ok(!a.driver.calls.some((c) => c.endsWith(part.taskId)));
    await a.runner.stop();
  });

  it("runs a rollout's phases as separate tasks: the state one step returns is what the next step picks up", async () => {
    const a = await agent(stateDir("steps"));
    a.driver.slot("web").serving = [image("web", "a")];
    const first = payload({ v: 2, phases: ["prepare", "start", "health"] });
    a.offer(first);
    const r1 = await a.resultOf(first.taskId);
    assert.equal(r1.outcome, "succeeded", r1.message);
    const state = (JSON.parse(r1.detailsJson) as { state: Record<string, unknown> }).state;
    assert.deepEqual(state["previous"], [image("web", "a")], "start recorded what served before");
    assert.equal(r1.sticker, undefined, "no sticker before traffic moves");
    assert.deepEqual(a.driver.slot("web").serving.map((i) => i.digest), [digest("a")], "the old version still serves");

    // A step that picks up from an earlier one needs its state.
    const orphan = payload({ v: 2, phases: ["switch", "retire"] });
    a.offer(orphan);
    const refused = await a.ackOf(orphan.taskId);
    assert.equal(refused.refusalCode, "TASK_PHASES_UNSUPPORTED");
    assert.match(refused.refusalMessage, /carries no state/);

    const weights = payload({ v: 2, action: "route", images: [], route: { op: "weights", newWeight: 25 }, state });
    a.offer(weights);
    const rw = await a.resultOf(weights.taskId);
    assert.equal(rw.outcome, "succeeded", rw.message);
    assert.deepEqual(JSON.parse(rw.detailsJson), { weights: { new: 25, stable: 75 } });
    const measure = payload({ v: 2, action: "route", images: [], route: { op: "measure" } });
    a.offer(measure);
    assert.equal((JSON.parse((await a.resultOf(measure.taskId)).detailsJson) as { epoch: string }).epoch, "fake");

    const second = payload({ v: 2, phases: ["switch", "retire"], state });
    a.offer(second);
    const r2 = await a.resultOf(second.taskId);
    assert.equal(r2.outcome, "succeeded", r2.message);
    assert.deepEqual(a.driver.slot("web").serving.map((i) => i.digest), [digest("b")]);
    assert.equal(r2.sticker?.deploymentId, second.deploymentId, "the switching step writes the sticker");
    await a.runner.stop();
  });

  it("a later step that fails restores from the carried state", async () => {
    const a = await agent(stateDir("steps-restore"));
    a.driver.slot("web").serving = [image("web", "a")];
    const first = payload({ v: 2, phases: ["prepare", "start", "health"] });
    a.offer(first);
    const state = (JSON.parse((await a.resultOf(first.taskId)).detailsJson) as { state: Record<string, unknown> }).state;
    a.driver.script = { failIn: "switch" };
    const second = payload({ v: 2, phases: ["switch", "retire"], state });
    a.offer(second);
    const r = await a.resultOf(second.taskId);
    assert.equal(r.outcome, "failed");
    assert.equal((JSON.parse(r.detailsJson) as { restored: boolean }).restored, true);
    assert.ok(a.driver.calls.includes(`restore:${second.taskId}`));
    assert.deepEqual(a.driver.slot("web").serving.map((i) => i.digest), [digest("a")]);
    await a.runner.stop();
  });

  it("refuses a route task when the driver has no router", async () => {
    const a = await agent(stateDir("no-router"), new FakeDriver({ router: false }));
    const p = payload({ v: 2, action: "route", images: [], route: { op: "maintenance", message: "back soon" } });
    a.offer(p);
    const ack = await a.ackOf(p.taskId);
    assert.equal(ack.refusalCode, "TASK_ROUTE_UNSUPPORTED");
    await a.runner.stop();
  });

  it("refuses, touching nothing: no driver for the kind, a bad config, a component the task lacks, a bad signature, a replay", async () => {
    const a = await agent(stateDir("refusals"));
    const cases: [TaskPayload, string, RegExp, Uint8Array?][] = [
      [payload({ target: { id: "t1", name: "x", kind: "compose", config: {} } }), "TASK_NO_DRIVER", /no compose driver \(it has: fake\)/],
      [payload({ target: { id: "t2", name: "x", kind: "fake", config: { slot: "Bad Slot" } } }), "INVALID_TARGET_CONFIG", /config\.slot/],
      [payload({ target: { id: "t3", name: "x", kind: "fake", config: { slot: "s", component: "db" } } }), "RELEASE_COMPONENT_MISSING", /"db" is not among/],
      [payload(), "TASK_BAD_SIGNATURE", /does not verify/, new Uint8Array(64)],
    ];
    for (const [p, code, message, signature] of cases) {
      a.offer(p, signature ? { signature } : {});
      const ack = await a.ackOf(p.taskId);
      assert.equal(ack.accepted, false, code);
      assert.equal(ack.refusalCode, code);
      assert.match(ack.refusalMessage, message);
    }
    // The same nonce under another task id is a replay.
    const first = payload();
    a.offer(first);
    await a.resultOf(first.taskId);
    const replay = { ...payload(), nonce: first.nonce };
    a.offer(replay);
    assert.equal((await a.ackOf(replay.taskId)).refusalCode, "TASK_REPLAYED");
    assert.deepEqual(a.driver.calls.filter((c) => !c.startsWith("inspect") && !c.endsWith(first.taskId)), []);
    await a.runner.stop();
  });

  it("judges every docker case of the shared config table as the control plane does", async () => {
    const docker = new FakeDriver({ descriptor: dockerKind });
    const a = await agent(stateDir("table"), new FakeDriver(), [docker]);
    for (const c of TARGET_CONFIG_CASES.filter((x) => x.kind === "docker")) {
      const p = payload({ target: { id: `t_${n}`, name: "x", kind: "docker", config: c.config as Record<string, unknown> } });
      // A config that is not an object cannot even be signed as a task: the payload's shape refuses it first.
      if (!(typeof c.config === "object" && c.config !== null && !Array.isArray(c.config))) {
        assert.throws(() => keyring.sign(p), /target\.config must be an object/);
        continue;
      }
      a.offer(p);
      const ack = await a.ackOf(p.taskId);
      if (c.field === undefined) assert.equal(ack.accepted, true, `${c.name}: ${ack.refusalMessage}`);
      else {
        assert.equal(ack.refusalCode, "INVALID_TARGET_CONFIG", c.name);
        assert.ok(ack.refusalMessage.startsWith(`${c.field}: `), `${c.name}: ${ack.refusalMessage}`);
      }
    }
    await a.runner.stop();
  });

  it("a failed health check restores what served before and reports failed, restored", async () => {
    const a = await agent(stateDir("unhealthy"));
    const good = payload();
    a.offer(good);
    await a.resultOf(good.taskId);
    for (const [verdict, code] of [["unhealthy", "HEALTH_CHECK_FAILED"], ["crashed", "INSTANCE_CRASHED"]] as const) {
      a.driver.script = { health: verdict };
      const bad = payload({ images: [image("web", "c")] });
      a.offer(bad);
      const r = await a.resultOf(bad.taskId);
      assert.equal(r.outcome, "failed");
      assert.equal(r.code, code);
      assert.equal((JSON.parse(r.detailsJson) as { restored: boolean }).restored, true);
      assert.deepEqual(a.driver.slot("web").serving.map((i) => i.digest), [digest("b")], "the previous images serve again");
      assert.ok(a.session.steps(bad.taskId).includes("restore"));
    }
    await a.runner.stop();
  });

  it("a failure before start touches nothing; a failed restore is errored RESTORE_FAILED; a failed retire is a warning", async () => {
    const a = await agent(stateDir("failures"));
    a.driver.unknownDigests.add(digest("e"));
    const unknown = payload({ images: [image("web", "e")] });
    a.offer(unknown);
    const r1 = await a.resultOf(unknown.taskId);
    assert.deepEqual([r1.outcome, r1.code], ["failed", "IMAGE_PULL_FAILED"]);
    assert.ok(!a.driver.calls.includes(`restore:${unknown.taskId}`), "nothing to restore before start");

    a.driver.script = { failIn: "switch", restoreFails: true };
    const broken = payload();
    a.offer(broken);
    const r2 = await a.resultOf(broken.taskId);
    assert.deepEqual([r2.outcome, r2.code], ["errored", "RESTORE_FAILED"]);
    assert.match(r2.message, /putting back what ran before failed too/);

    a.driver.script = { retireFails: true };
    const untidy = payload();
    a.offer(untidy);
    const r3 = await a.resultOf(untidy.taskId);
    assert.equal(r3.outcome, "succeeded");
    assert.match(r3.detailsJson, /retire: scripted retire failure/);
    await a.runner.stop();
  });

  it("stopping the agent mid-task aborts it and restores; a task the agent died in is reported interrupted, never re-run", async () => {
    const sd = stateDir("crash");
    const a = await agent(sd);
    a.driver.script = { hangIn: "health" };
    const hung = payload();
    a.offer(hung);
    await waitFor(() => a.driver.calls.includes(`health:${hung.taskId}`) || undefined, { timeoutMs: 10_000 });
    await a.runner.stop();
    const r = await a.resultOf(hung.taskId);
    assert.deepEqual([r.outcome, r.code], ["failed", "ABORTED"]);
    assert.ok(a.driver.calls.includes(`restore:${hung.taskId}`));

    // Now a task the agent "dies" in: the journal holds it as accepted, then a new runner starts on the same state.
    const b = await agent(sd);
    b.driver.script = { onPhase: (phase) => (phase === "start" ? new Promise<void>(() => undefined) : undefined) };
    const cut = payload();
    b.offer(cut);
    await waitFor(() => b.driver.calls.includes(`start:${cut.taskId}`) || undefined, { timeoutMs: 10_000 });
    const c = await agent(sd);
    const result = await c.resultOf(cut.taskId);
    assert.deepEqual([result.outcome, result.code], ["interrupted", "TASK_INTERRUPTED"]);
    assert.ok(c.driver.calls.some((x) => x.startsWith("inspect:")), "what is on the target is looked at, not changed");
    assert.ok(!c.driver.calls.some((x) => x.endsWith(cut.taskId)), "never run again");
    // Offered again, it is acknowledged as already taken and not run.
    c.offer(cut);
    await waitFor(() => c.session.acks().filter((x) => x.taskId === cut.taskId).length >= 1 || undefined, { timeoutMs: 10_000 });
    assert.ok(!c.driver.calls.some((x) => x.endsWith(cut.taskId)));
    await c.runner.stop();
  });

  it("an inspect task reports what the driver sees and changes nothing", async () => {
    const a = await agent(stateDir("inspect"));
    const p = payload({ action: "inspect", images: [] });
    a.offer(p);
    const r = await a.resultOf(p.taskId);
    assert.equal(r.outcome, "succeeded");
    assert.match(r.message, /web is missing/);
    assert.deepEqual(a.driver.calls, ["inspect:tgt_web"]);
    await a.runner.stop();
  });
});
