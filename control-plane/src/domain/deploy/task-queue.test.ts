// TaskQueue on both store backends: claiming (oldest first, never twice, within not-after), acks, results applied
// once (late ones too), contiguous logs, leases and the sweep. Time is an injected clock; nothing sleeps.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it, type TestContext } from "node:test";
import { testBackends, type TestBackend } from "../../adapters/store/test-backends.js";
import type { Store } from "../../ports/store.js";
import { listAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { ACK_TIMEOUT, deployFixture, fileKeyring, LEASE, T0, type DeployFx } from "./deploy.fixture.js";
import type { DeploymentView, TaskState } from "./deployment-service.js";
import { MAX_TASK_EVENTS, MAX_TASK_LOG_BYTES } from "./agent-input-limits.js";
import type { TaskResultInput } from "./task-queue.js";

const TTL = 600_000;
const keys = fileKeyring("ferry-queue-");

interface Fixture extends DeployFx {
  /** Deploys shop@1 to the named targets of dev. */
  deploy(...targets: string[]): Promise<DeploymentView>;
  state(taskId: string): Promise<{ state: TaskState; code: string | null; message: string | null; details: Record<string, unknown> | null; attempt: number; lease: number | null }>;
}

/** dev with agents a1 (targets t1..t{n}) and a2 (target u1); release shop@1 pinning one component. */
async function fixture(b: TestBackend, t: TestContext, store?: Store): Promise<Fixture> {
  const fx = await deployFixture(b, t, { signer: keys.keyring, taskTtlMs: TTL, ...(store ? { store } : {}) });
  const { deployments } = fx;
  return {
    ...fx,
    deploy: (...targets) => deployments.deploy({ release: "shop@1", environment: "dev", targets }, "bob"),
    async state(taskId) {
      const r = await fx.store.query<{ state: TaskState; code: string | null; message: string | null; details: Record<string, unknown> | null; attempt: number; lease_expires_at: Date | null }>(
        "SELECT state, code, message, details, attempt, lease_expires_at FROM tasks WHERE id = $1",
        [taskId],
      );
      const row = r.rows[0]!;
      return { state: row.state, code: row.code, message: row.message, details: row.details, attempt: row.attempt, lease: row.lease_expires_at ? new Date(row.lease_expires_at).getTime() : null };
    },
  };
}

async function estate(fx: Fixture, n = 3): Promise<void> {
  const { catalog } = fx;
  await catalog.createEnvironment({ name: "dev" }, "alice");
  await catalog.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "alice");
  for (const a of ["agt_a1", "agt_a2"]) {
    await fx.store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, 'dev', 'online', $2)", [a, JSON.stringify({ drivers: ["docker"] })]);
  }
  for (let i = 1; i <= n; i++) await catalog.createTarget({ environment: "dev", name: `t${i}`, kind: "docker", agentId: "agt_a1", config: { container: `t${i}` } }, "alice");
  await catalog.createTarget({ environment: "dev", name: "u1", kind: "docker", agentId: "agt_a2", config: { container: "u1" } }, "alice");
  await catalog.createRelease({ name: "shop", version: "1", components: { web: ":1" } }, "alice");
}

async function setup(b: TestBackend, t: TestContext, n = 3): Promise<Fixture> {
  const fx = await fixture(b, t);
  await estate(fx, n);
  return fx;
}

const result = (taskId: string, over: Partial<TaskResultInput> = {}): TaskResultInput => ({
  taskId,
  outcome: "succeeded",
  code: "",
  message: "done",
  details: {},
  sticker: null,
  startedAt: T0,
  finishedAt: T0 + 5000,
  logBytes: 0,
  attempt: 1,
  ...over,
});
const accept = (taskId: string) => ({ taskId, accepted: true, code: "", message: "" });

for (const b of testBackends()) {
  describe(`TaskQueue on ${b.name}`, () => {
    it("claims the agent's queued tasks oldest first, up to max, counting attempts", async (t) => {
      const fx = await setup(b, t);
      const ids: string[] = [];
      for (const target of ["t3", "t1", "t2"]) {
        fx.clock.t += 1000;
        ids.push((await fx.deploy(target)).tasks[0]!.id);
      }
      const other = (await fx.deploy("u1")).tasks[0]!.id;
      fx.clock.t += 1000;
      const first = await fx.queue.claim("agt_a1", 2);
      assert.deepEqual(first.map((c) => [c.id, c.attempt]), [[ids[0], 1], [ids[1], 1]]);
      assert.equal(first[0]!.keyId, keys.keyring.active.keyId);
      assert.ok(first[0]!.payload.length > 0 && first[0]!.signature.length === 64);
      assert.deepEqual(await fx.state(ids[0]!), { state: "leased", code: null, message: null, details: null, attempt: 1, lease: fx.clock.t + ACK_TIMEOUT });
      assert.deepEqual((await fx.queue.claim("agt_a1")).map((c) => c.id), [ids[2]]);
      assert.deepEqual(await fx.queue.claim("agt_a1"), []);
      // Only its own tasks.
      assert.deepEqual((await fx.queue.claim("agt_a2")).map((c) => c.id), [other]);
      assert.deepEqual(await fx.queue.claim("agt_nobody"), []);
    });

    it("never hands one task to two concurrent claimers", async (t) => {
      const n = 12;
      const fx = await setup(b, t, n);
      const targets = Array.from({ length: n }, (_, i) => `t${i + 1}`);
      const dep = await fx.deploy(...targets);
      // On PostgreSQL half the claimers use another pool, as another replica would.
      const replica = b.kind === "postgres" ? await fixture(b, t, await b.open(t, { shareWith: fx.store })) : fx;
      const claims = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? replica : fx).queue.claim("agt_a1", 3)));
      const got = claims.flat().map((c) => c.id);
      assert.equal(got.length, n);
      assert.equal(new Set(got).size, n);
      assert.deepEqual(new Set(got), new Set(dep.tasks.map((x) => x.id)));
      assert.ok(claims.flat().every((c) => c.attempt === 1));
    });

    it("does not offer a task past its signed not-after", async (t) => {
      const fx = await setup(b, t);
      const task = (await fx.deploy("t1")).tasks[0]!;
      fx.clock.t = T0 + TTL;
      assert.deepEqual(await fx.queue.claim("agt_a1"), []);
      fx.clock.t = T0 + TTL - 1;
      assert.deepEqual((await fx.queue.claim("agt_a1")).map((c) => c.id), [task.id]);
    });

    it("runs an accepted task and errors a refused one with the agent's code", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1", "t2");
      const [a, r] = dep.tasks.map((x) => x.id) as [string, string];
      await fx.queue.claim("agt_a1");
      fx.clock.t += 1000;
      assert.equal(await fx.queue.ack("agt_a1", accept(a)), true);
      const running = await fx.state(a);
      assert.equal(running.state, "running");
      assert.equal(running.lease, fx.clock.t + LEASE);
      assert.equal((await fx.deployments.get(dep.id)).tasks[0]!.startedAt, new Date(fx.clock.t).toISOString());
      assert.equal((await fx.deployments.get(dep.id)).state, "running");
      // A repeated ack (redelivery) changes nothing; another agent's ack is not heard.
      fx.clock.t += 1000;
      assert.equal(await fx.queue.ack("agt_a1", accept(a)), true);
      assert.equal((await fx.state(a)).lease, fx.clock.t - 1000 + LEASE);
      assert.equal(await fx.queue.ack("agt_a2", { taskId: r, accepted: false, code: "TASK_BAD_SIGNATURE", message: "nope" }), false);
      assert.equal((await fx.state(r)).state, "leased");

      assert.equal(await fx.queue.ack("agt_a1", { taskId: r, accepted: false, code: "TASK_BAD_SIGNATURE", message: "signature by k does not verify" }), true);
      assert.deepEqual(await fx.state(r), { state: "errored", code: "TASK_BAD_SIGNATURE", message: "signature by k does not verify", details: { refused: true }, attempt: 1, lease: null });
      const refusedAudit = (await listAudit(fx.store)).filter((x) => x.action === "task.refused");
      assert.deepEqual(refusedAudit.map((x) => [x.actor, x.object, x.outcome]), [["agent:agt_a1", r, "refused"]]);
      // A refusal without a code still says what happened.
      const other = (await fx.deploy("t3")).tasks[0]!.id;
      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", { taskId: other, accepted: false, code: "", message: "" });
      assert.equal((await fx.state(other)).code, "TASK_REFUSED");

      await fx.queue.result("agt_a1", result(a));
      assert.equal((await fx.deployments.get(dep.id)).state, "failed");
      // Refused then accepted again (a confused agent) does not bring the task back.
      assert.equal(await fx.queue.ack("agt_a1", accept(r)), true);
      assert.equal((await fx.state(r)).state, "errored");
    });

    it("applies a result once: success records the target's deployment, a second result is acknowledged and ignored", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const task = dep.tasks[0]!;
      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", accept(task.id));
      assert.equal(await fx.queue.result("agt_a2", result(task.id)), false);
      const sticker = { targetId: task.target.id, deploymentId: dep.id, images: [{ component: "web", digest: task.images[0]!.digest, runningDigest: task.images[0]!.digest }], observedState: "running" };
      fx.clock.t += 7000;
      assert.equal(await fx.queue.result("agt_a1", result(task.id, { details: { container: "abc" }, sticker, logBytes: 12 })), true);
      assert.equal(await fx.queue.result("agt_a1", result(task.id, { outcome: "failed", code: "LATE", message: "again" })), true);

      const shown = await fx.deployments.get(dep.id);
      assert.equal(shown.state, "succeeded");
      assert.equal(shown.finishedAt !== null, true);
      const tv = shown.tasks[0]!;
      assert.deepEqual([tv.state, tv.code, tv.message, tv.details], ["succeeded", null, "done", { container: "abc", outcome: "succeeded" }]);
      assert.equal(tv.finishedAt, new Date(T0 + 5000).toISOString());
      const td = await fx.store.query<{ deployment_id: string; task_id: string; images: unknown; finished_at: Date }>("SELECT deployment_id, task_id, images, finished_at FROM target_deployments");
      assert.equal(td.rowCount, 1);
      assert.deepEqual([td.rows[0]!.deployment_id, td.rows[0]!.task_id, td.rows[0]!.images], [dep.id, task.id, task.images]);
      const st = await fx.store.query<{ sticker: Record<string, unknown>; agent_id: string }>("SELECT sticker, agent_id FROM target_stickers");
      assert.deepEqual([st.rows[0]!.agent_id, st.rows[0]!.sticker], ["agt_a1", sticker]);
      assert.deepEqual((await listAudit(fx.store)).filter((x) => x.action === "task.result").map((x) => x.outcome), ["ok"]);
    });

    it("records failures without a target deployment, and an interrupted task as errored", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1", "t2");
      const [f, i] = dep.tasks.map((x) => x.id) as [string, string];
      await fx.queue.claim("agt_a1");
      for (const id of [f, i]) await fx.queue.ack("agt_a1", accept(id));
      await fx.queue.result("agt_a1", result(f, { outcome: "failed", code: "HEALTH_CHECK_FAILED", message: "unhealthy" }));
      await fx.queue.result("agt_a1", result(i, { outcome: "interrupted", message: "the agent stopped mid-task" }));
      assert.deepEqual([(await fx.state(f)).state, (await fx.state(f)).code], ["failed", "HEALTH_CHECK_FAILED"]);
      assert.deepEqual([(await fx.state(i)).state, (await fx.state(i)).code], ["errored", "TASK_INTERRUPTED"]);
      assert.equal((await fx.store.query("SELECT 1 FROM target_deployments")).rowCount, 0);
      assert.equal((await fx.deployments.get(dep.id)).state, "failed");
    });

    it("records a result that arrives after the task's lease expired, marked late", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", accept(id));
      fx.clock.t += LEASE + 1;
      assert.deepEqual(await fx.queue.sweep({ expireRunning: true }), { requeued: [], expired: 1 });
      const expired = await fx.state(id);
      assert.deepEqual([expired.state, expired.code], ["expired", "TASK_LEASE_EXPIRED"]);
      assert.equal((await fx.deployments.get(dep.id)).state, "failed");

      assert.equal(await fx.queue.result("agt_a1", result(id)), true);
      const late = await fx.state(id);
      assert.equal(late.state, "succeeded");
      assert.equal(late.code, null);
      assert.deepEqual(late.details, { outcome: "succeeded", lateResult: true });
      assert.equal((await fx.store.query("SELECT 1 FROM target_deployments WHERE task_id = $1", [id])).rowCount, 1);
      assert.equal((await fx.deployments.get(dep.id)).state, "succeeded");
    });

    it("keeps the log contiguous: a gap is refused, an overlap adds its tail, a replay changes nothing", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      const bytes = (s: string) => new Uint8Array(Buffer.from(s));
      assert.equal(((await fx.queue.appendLog("agt_a1", id, 0, bytes("hello ")))?.ackOffset ?? null), 6);
      assert.equal(((await fx.queue.appendLog("agt_a1", id, 10, bytes("gap")))?.ackOffset ?? null), 6); // past what is stored: resend from 6
      assert.equal(((await fx.queue.appendLog("agt_a1", id, 3, bytes("lo world\n")))?.ackOffset ?? null), 12);
      assert.equal(((await fx.queue.appendLog("agt_a1", id, 0, bytes("hello ")))?.ackOffset ?? null), 12); // replayed chunk
      assert.equal(((await fx.queue.appendLog("agt_a1", id, 12, new Uint8Array(0)))?.ackOffset ?? null), 12);
      const binary = new Uint8Array([0, 255, 254, 10, 0x80, 13]);
      assert.equal(((await fx.queue.appendLog("agt_a1", id, 12, binary))?.ackOffset ?? null), 18);
      assert.equal(((await fx.queue.appendLog("agt_a2", id, 18, bytes("x")))?.ackOffset ?? null), null);
      assert.equal(((await fx.queue.appendLog("agt_a1", "tsk_missing", 0, bytes("x")))?.ackOffset ?? null), null);
      const chunks = await fx.store.query<{ offset: string | number }>(`SELECT "offset" FROM task_logs WHERE task_id = $1 ORDER BY "offset"`, [id]);
      assert.deepEqual(chunks.rows.map((c) => Number(c.offset)), [0, 6, 12]);

      const whole = Buffer.concat([Buffer.from("hello world\n"), Buffer.from(binary)]);
      const all = await fx.deployments.taskLog(dep.id, id);
      assert.deepEqual(all.data, whole);
      assert.deepEqual([all.offset, all.next, all.complete], [0, 18, false]); // no result yet
      // Any window across chunk boundaries reads back the exact bytes.
      for (const [from, max] of [[4, 5], [5, 1], [6, 6], [11, 3], [13, 100], [18, 10]] as const) {
        const part = await fx.deployments.taskLog(dep.id, id, from, max);
        assert.deepEqual(part.data, whole.subarray(from, Math.min(18, from + max)), `offset ${from} max ${max}`);
        assert.equal(part.next, Math.min(18, from + max));
      }
      assert.equal((await fx.deployments.get(dep.id)).tasks[0]!.logBytes, 18);

      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", accept(id));
      await fx.queue.result("agt_a1", result(id, { logBytes: 20 }));
      assert.equal((await fx.deployments.taskLog(dep.id, id)).complete, false); // two bytes still to come
      assert.equal(((await fx.queue.appendLog("agt_a1", id, 18, bytes("!\n")))?.ackOffset ?? null), 20); // logs may trail the result
      const done = await fx.deployments.taskLog(dep.id, id);
      assert.deepEqual([done.data.toString("latin1").endsWith("!\n"), done.next, done.complete], [true, 20, true]);
      await assert.rejects(fx.deployments.taskLog(dep.id, "tsk_missing"), (e: unknown) => e instanceof FerryError && e.code === "TASK_NOT_FOUND");
    });

    it("caps a task's log at the agent's own cap, and acknowledges (without storing) what lies past it", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      const MiB = 1024 * 1024;
      const chunk = Buffer.alloc(MiB, 0x61);
      let offset = 0;
      const answers = [];
      for (let i = 0; i < 10; i++) {
        answers.push(await fx.queue.appendLog("agt_a1", id, offset, chunk));
        offset += MiB;
      }
      assert.equal(MAX_TASK_LOG_BYTES, 8 * MiB);
      assert.deepEqual(answers.slice(7), [
        { ackOffset: 8 * MiB, stored: 8 * MiB },
        { ackOffset: 9 * MiB, stored: 8 * MiB, dropped: "cap" },
        { ackOffset: 10 * MiB, stored: 8 * MiB, dropped: "cap" },
      ]);
      const stored = await fx.store.query<{ n: string | number }>("SELECT coalesce(sum(length(data)), 0) AS n FROM task_logs WHERE task_id = $1", [id]);
      assert.equal(Number(stored.rows[0]?.n), 8 * MiB);
      assert.equal((await fx.deployments.get(dep.id)).tasks[0]!.logBytes, 8 * MiB);
    });

    it("after a task is final, takes only the log its result declared and no progress", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      const bytes = (s: string) => new Uint8Array(Buffer.from(s));
      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", accept(id));
      assert.deepEqual(await fx.queue.appendLog("agt_a1", id, 0, bytes("0123456789")), { ackOffset: 10, stored: 10 });
      assert.equal(await fx.queue.progress("agt_a1", { taskId: id, step: "pull", detail: "", at: 0 }), true);
      await fx.queue.result("agt_a1", result(id, { logBytes: 14 }));
      // The declared tail still arrives after the result (a resend after a reconnect); anything past it does not.
      assert.deepEqual(await fx.queue.appendLog("agt_a1", id, 10, bytes("abcdefgh")), { ackOffset: 18, stored: 14, dropped: "final" });
      assert.deepEqual(await fx.queue.appendLog("agt_a1", id, 18, bytes("more")), { ackOffset: 22, stored: 14, dropped: "final" });
      assert.deepEqual(await fx.queue.appendLog("agt_a1", id, 0, bytes("0123")), { ackOffset: 14, stored: 14 });
      const log = await fx.deployments.taskLog(dep.id, id);
      assert.deepEqual([log.data.toString(), log.complete], ["0123456789abcd", true]);
      assert.equal(await fx.queue.progress("agt_a1", { taskId: id, step: "late", detail: "after the result", at: 0 }), false);
      const ev = await fx.store.query<{ step: string }>("SELECT step FROM task_events WHERE task_id = $1 ORDER BY seq", [id]);
      assert.deepEqual(ev.rows.map((e) => e.step), ["pull"]);
      // A task that was never delivered (cancelled while queued) takes no log at all.
      const other = await fx.deploy("t2");
      const cancelled = other.tasks[0]!.id;
      await fx.store.query("UPDATE tasks SET state = 'cancelled' WHERE id = $1", [cancelled]);
      assert.deepEqual(await fx.queue.appendLog("agt_a1", cancelled, 0, bytes("x")), { ackOffset: 1, stored: 0, dropped: "final" });
    });

    it("keeps at most MAX_TASK_EVENTS progress events per task, then one marker; the lease is still renewed", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", accept(id));
      // Fill up to the limit in one statement, then go past it through the queue.
      await fx.store.query(
        "INSERT INTO task_events (task_id, seq, at, step, detail) SELECT $1, g, now(), 'step', '' FROM generate_series(1, $2::int - 1) g",
        [id, MAX_TASK_EVENTS],
      );
      await fx.store.query("UPDATE tasks SET progress_seq = $2::int - 1 WHERE id = $1", [id, MAX_TASK_EVENTS]);
      assert.equal(await fx.queue.progress("agt_a1", { taskId: id, step: "last", detail: "", at: 0 }), true);
      fx.clock.t += 1000;
      for (let i = 0; i < 5; i++) assert.equal(await fx.queue.progress("agt_a1", { taskId: id, step: "extra", detail: "", at: 0 }), false);
      const ev = await fx.store.query<{ n: string | number; max: number }>("SELECT count(*) AS n, max(seq) AS max FROM task_events WHERE task_id = $1", [id]);
      assert.deepEqual([Number(ev.rows[0]?.n), ev.rows[0]?.max], [MAX_TASK_EVENTS + 1, MAX_TASK_EVENTS + 1]);
      const marker = await fx.store.query<{ step: string }>("SELECT step FROM task_events WHERE task_id = $1 AND seq = $2", [id, MAX_TASK_EVENTS + 1]);
      assert.equal(marker.rows[0]?.step, "events-truncated");
      assert.equal((await fx.state(id)).lease, fx.clock.t + LEASE);
    });

    it("reads a large log back exactly across many chunks", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      const whole = randomBytes(200_000);
      let at = 0;
      while (at < whole.length) {
        // Chunks of uneven size, each resent with some overlap, as after a reconnect.
        const start = Math.max(0, at - 500);
        const end = Math.min(whole.length, at + 7_000 + (at % 3_000));
        at = ((await fx.queue.appendLog("agt_a1", id, start, whole.subarray(start, end)))?.ackOffset ?? null)!;
        assert.equal(at, end);
      }
      const parts: Buffer[] = [];
      let offset = 0;
      for (;;) {
        const r = await fx.deployments.taskLog(dep.id, id, offset, 65_536);
        if (r.data.length === 0) break;
        parts.push(r.data);
        offset = r.next;
      }
      assert.ok(Buffer.concat(parts).equals(whole));
    });

    it("records progress events and renews the lease of a running task", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      await fx.queue.claim("agt_a1");
      await fx.queue.ack("agt_a1", accept(id));
      fx.clock.t += LEASE - 1000;
      await fx.queue.progress("agt_a1", { taskId: id, step: "x".repeat(100), detail: "d".repeat(5000), at: 0 });
      await fx.queue.progress("agt_a2", { taskId: id, step: "intruder", detail: "", at: 0 });
      assert.equal((await fx.state(id)).lease, fx.clock.t + LEASE);
      const ev = await fx.store.query<{ seq: number; step: string; detail: string }>("SELECT seq, step, detail FROM task_events WHERE task_id = $1", [id]);
      assert.deepEqual(ev.rows.map((e) => [e.seq, e.step.length, e.detail.length]), [[1, 64, 4096]]);
      // Heartbeats renew as well; only running tasks of this agent.
      fx.clock.t += LEASE - 1000;
      await fx.queue.renew("agt_a2", [id]);
      await fx.queue.renew("agt_a1", [id, "tsk_missing"]);
      assert.equal((await fx.state(id)).lease, fx.clock.t + LEASE);
      fx.clock.t += LEASE - 1000;
      assert.equal((await fx.queue.sweep({ expireRunning: true })).expired, 0);
      assert.equal((await fx.state(id)).state, "running");
    });

    it("sweeps: unanswered offers go back to the queue, vanished runners and undelivered tasks expire", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1", "t2", "u1");
      const [t1, t2, u1] = dep.tasks.map((x) => x.id) as [string, string, string];
      await fx.queue.claim("agt_a1"); // t1, t2 offered
      await fx.queue.ack("agt_a1", accept(t1)); // t1 running; t2 never answered; u1 never offered
      fx.clock.t += ACK_TIMEOUT - 1;
      assert.deepEqual(await fx.queue.sweep({ expireRunning: true }), { requeued: [], expired: 0 });
      fx.clock.t += 2;
      assert.deepEqual(await fx.queue.sweep({ expireRunning: true }), { requeued: ["agt_a1"], expired: 0 });
      assert.deepEqual([(await fx.state(t2)).state, (await fx.state(t2)).lease], ["queued", null]);
      assert.deepEqual((await fx.queue.agentsWithQueued()).sort(), ["agt_a1", "agt_a2"]);
      // Offered again: the attempt counts up, the task (and its signature) is the same.
      assert.deepEqual((await fx.queue.claim("agt_a1")).map((c) => [c.id, c.attempt]), [[t2, 2]]);
      assert.deepEqual(await fx.queue.agentsWithQueued(), ["agt_a2"]);

      // Past the running lease: expired only when the sweep may expire running tasks (not during the start-up freeze).
      fx.clock.t = T0 + LEASE + 1;
      await fx.queue.ack("agt_a1", accept(t2));
      assert.deepEqual(await fx.queue.sweep({ expireRunning: false }), { requeued: [], expired: 0 });
      assert.equal((await fx.state(t1)).state, "running");
      assert.deepEqual(await fx.queue.sweep({ expireRunning: true }), { requeued: [], expired: 1 });
      assert.deepEqual([(await fx.state(t1)).state, (await fx.state(t1)).code], ["expired", "TASK_LEASE_EXPIRED"]);
      assert.equal((await fx.state(t2)).state, "running");

      // Never delivered before its not-after: expired, whatever the start-up freeze.
      fx.clock.t = T0 + TTL;
      assert.deepEqual(await fx.queue.sweep({ expireRunning: false }), { requeued: [], expired: 1 });
      const u = await fx.state(u1);
      assert.deepEqual([u.state, u.code, u.message], ["expired", "TASK_NOT_DELIVERED", "the task was not delivered before its not-after"]);
      assert.equal((await fx.deployments.get(dep.id)).state, "running"); // t2 still runs
      await fx.queue.result("agt_a1", result(t2));
      const final = await fx.deployments.get(dep.id);
      assert.equal(final.state, "failed");
      assert.deepEqual(final.tasks.map((x) => [x.target.name, x.state]), [["t1", "expired"], ["t2", "succeeded"], ["u1", "expired"]]);
    });

    it("expires an offered task that went unanswered past its not-after instead of queueing it again", async (t) => {
      const fx = await setup(b, t);
      const dep = await fx.deploy("t1");
      const id = dep.tasks[0]!.id;
      fx.clock.t = T0 + TTL - 1000;
      await fx.queue.claim("agt_a1");
      fx.clock.t = T0 + TTL + ACK_TIMEOUT;
      assert.equal((await fx.queue.sweep({ expireRunning: false })).expired, 1);
      assert.deepEqual([(await fx.state(id)).state, (await fx.state(id)).code], ["expired", "TASK_NOT_DELIVERED"]);
      assert.equal((await fx.deployments.get(dep.id)).state, "failed");
      assert.deepEqual(await fx.queue.agentsWithQueued(), []);
    });

    it("records stickers only for targets the reporting agent serves", async (t) => {
      const fx = await setup(b, t);
      const ids = new Map((await fx.store.query<{ id: string; name: string }>("SELECT id, name FROM targets")).rows.map((r) => [r.name, r.id]));
      await fx.queue.recordStickers("agt_a1", [
        { targetId: ids.get("t1"), deploymentId: "dep_x", images: [] },
        { targetId: ids.get("u1"), deploymentId: "dep_spoof", images: [] }, // served by agt_a2
        { deploymentId: "dep_no_target" },
        { targetId: "tgt_missing" },
      ]);
      fx.clock.t += 1000;
      await fx.queue.recordStickers("agt_a1", [{ targetId: ids.get("t1"), deploymentId: "dep_y", images: [] }]);
      const rows = await fx.store.query<{ target_id: string; sticker: { deploymentId: string }; reported_at: Date }>("SELECT target_id, sticker, reported_at FROM target_stickers");
      assert.deepEqual(rows.rows.map((r) => [r.target_id, r.sticker.deploymentId, new Date(r.reported_at).getTime()]), [[ids.get("t1"), "dep_y", T0 + 1000]]);
    });
  });
}
