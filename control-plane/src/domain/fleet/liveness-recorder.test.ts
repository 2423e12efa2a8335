import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import pino from "pino";
import { testBackends } from "../../adapters/store/test-backends.js";
import type { Store } from "../../ports/store.js";
import { LivenessRecorder } from "./liveness-recorder.js";
import type { LivenessPolicy } from "./liveness.js";

// interval 10 s, grace 10 s: offline after 40 s of silence; last-seen written at most every 30 s (the default for
// this interval), so the database's last heartbeat can be 30 s + 10 s + one tick old while the agent is healthy.
const policy: LivenessPolicy = { heartbeatIntervalMs: 10_000, graceMs: 10_000 };
const T0 = Date.parse("2026-11-22T10:00:00Z");

class Clock {
  t = T0;
  now(): number {
    return this.t;
  }
}

function recorder(store: Store, clock: Clock, replicaId: string): LivenessRecorder {
  return new LivenessRecorder({
    store,
    clock,
    policy,
    readyAt: () => T0 - 60_000,
    replicaId,
    log: pino({ level: "silent" }),
    lastSeenFlushMs: 30_000,
  });
}

async function agent(store: Store, id: string): Promise<void> {
  await store.query(`INSERT INTO agents (id, name, environment) VALUES ($1, $1, 'dev')`, [id]);
}

async function row(store: Store, id: string): Promise<{ status: string; connected: boolean; last: number | null }> {
  const r = await store.query<{ status: string; connected: boolean; last_heartbeat_at: Date | null }>(
    `SELECT status, connected, last_heartbeat_at FROM agents WHERE id = $1`,
    [id],
  );
  const x = r.rows[0];
  assert.ok(x, id);
  return { status: x.status, connected: x.connected, last: x.last_heartbeat_at?.getTime() ?? null };
}

/** Heartbeats every 10 s from now until `until` (clock left at the last one). */
function beat(rec: LivenessRecorder, clock: Clock, id: string, until: number): void {
  while (clock.t + 10_000 <= until) {
    clock.t += 10_000;
    rec.heartbeat(id, 0);
  }
}

for (const b of testBackends()) {
  describe(`LivenessRecorder (${b.name})`, () => {
    async function setup(t: TestContext): Promise<{ store: Store; clock: Clock }> {
      return { store: await b.open(t), clock: new Clock() };
    }

    it("keeps a healthy agent held here online however old the database's last heartbeat is", async (t) => {
      const { store, clock } = await setup(t);
      await agent(store, "agt_a");
      const rec = recorder(store, clock, "r1");
      rec.connected("agt_a", {}, "01", T0 + 86_400_000);
      await rec.flushAll();
      assert.deepEqual(await row(store, "agt_a"), { status: "online", connected: true, last: T0 });
      // 45 s of heartbeats, none written (no flush ran): the database says 45 s of silence, past the 40 s window.
      beat(rec, clock, "agt_a", T0 + 45_000);
      clock.t = T0 + 45_000;
      await rec.sweepNow();
      assert.equal((await row(store, "agt_a")).status, "online");
      // Silent in memory too: offline once the window has passed since the last heartbeat (at 40 s).
      clock.t = T0 + 40_000 + 40_000 - 1;
      await rec.sweepNow();
      assert.equal((await row(store, "agt_a")).status, "online");
      clock.t = T0 + 40_000 + 40_000 + 1;
      await rec.sweepNow();
      assert.equal((await row(store, "agt_a")).status, "offline");
    });

    it("leaves an agent held by another replica to it, until that replica's largest write lag has passed", async (t) => {
      const { store, clock } = await setup(t);
      await agent(store, "agt_b");
      const holder = recorder(store, clock, "r2");
      const other = recorder(store, clock, "r1");
      holder.connected("agt_b", {}, "01", T0 + 86_400_000);
      await holder.flushAll();
      const lag = other.heldElsewhereWindowMs();
      assert.equal(lag, 30_000 + 10_000 + 5_000 + 1000); // flush period + interval + tick + 1 s, over the 40 s window
      clock.t = T0 + 40_001;
      await other.sweepNow();
      assert.equal((await row(store, "agt_b")).status, "online", "inside the holder's write lag");
      clock.t = T0 + lag + 1;
      await other.sweepNow();
      assert.equal((await row(store, "agt_b")).status, "offline", "the holder wrote nothing for longer than it can lag");
    });

    it("writes the last heartbeat when a stream ends, and judges the agent from the database from then on", async (t) => {
      const { store, clock } = await setup(t);
      await agent(store, "agt_c");
      const rec = recorder(store, clock, "r1");
      rec.connected("agt_c", {}, "01", T0 + 86_400_000);
      await rec.flushAll();
      beat(rec, clock, "agt_c", T0 + 20_000);
      clock.t = T0 + 25_000;
      rec.disconnected("agt_c");
      await rec.flushAll();
      assert.deepEqual(await row(store, "agt_c"), { status: "online", connected: false, last: T0 + 20_000 });
      // A second replica that never held it agrees on the same instant.
      const other = recorder(store, clock, "r9");
      clock.t = T0 + 20_000 + 40_000 - 1;
      await other.sweepNow();
      await rec.sweepNow();
      assert.equal((await row(store, "agt_c")).status, "online");
      clock.t = T0 + 20_000 + 40_000 + 1;
      await other.sweepNow();
      assert.equal((await row(store, "agt_c")).status, "offline");
    });

    it("neither flaps a steady agent offline nor writes its last heartbeat more than once per flush period", async (t) => {
      const { store, clock } = await setup(t);
      await agent(store, "agt_d");
      let rows = 0;
      let flaps = 0;
      const rec = new LivenessRecorder({
        store, clock, policy, readyAt: () => T0 - 60_000, replicaId: "r1", log: pino({ level: "silent" }),
        lastSeenFlushMs: 30_000,
        onFlush: (kind, n) => {
          if (kind === "seen") rows += n;
          if (kind === "sweep") flaps += n;
        },
      });
      rec.connected("agt_d", {}, "01", T0 + 86_400_000);
      await rec.flushAll();
      // Five minutes. Heartbeats every 10 s, each just after a flush tick; the flush timer every 5 s, each tick a few
      // milliseconds early or late as real timers are; the sweeper every 10 s between them. Sometimes a flush finds
      // the agent a millisecond short of its period and it waits a whole tick more, so the database's last heartbeat
      // reaches 30 s + 10 s + 5 s of age: past the 40 s window.
      const events: Array<{ at: number; kind: "beat" | "flush" | "sweep" }> = [];
      for (let j = 1; j <= 30; j++) events.push({ at: T0 + j * 10_000 + 1, kind: "beat" });
      for (let k = 1; k <= 60; k++) events.push({ at: T0 + k * 5000 - (k % 7), kind: "flush" });
      for (let m = 0; m < 30; m++) events.push({ at: T0 + m * 10_000 + 2500, kind: "sweep" });
      events.sort((a, z) => a.at - z.at);
      for (const e of events) {
        clock.t = e.at;
        if (e.kind === "beat") rec.heartbeat("agt_d", 0);
        else if (e.kind === "flush") await rec.flushDueNow();
        else {
          await rec.sweepNow();
          assert.equal((await row(store, "agt_d")).status, "online", `at ${e.at - T0} ms`);
        }
      }
      assert.equal(flaps, 0);
      assert.ok(rows <= 10, `${rows} last-seen rows in 300 s`);
      assert.ok(rows >= 8, `${rows} last-seen rows in 300 s: the database must still be kept up to date`);
    });

    it("records an absurd clock skew and odd host facts clamped, without stopping other agents' writes", async (t) => {
      const { store, clock } = await setup(t);
      for (const id of ["agt_1970", "agt_nul", "agt_ok"]) await agent(store, id);
      const rec = recorder(store, clock, "r1");
      // An agent whose clock says 1970 (agent_time_ms = 1) is 56 years behind: past the integer skew column.
      rec.connected("agt_1970", {}, "01", T0 + 86_400_000);
      rec.connected("agt_nul", { hostname: "evil\u0000host", os: "linux\ud800", drivers: ["docker\u0000", "\u0000"], cpus: -3, memoryBytes: 1e300 }, "02", T0 + 86_400_000);
      rec.connected("agt_ok", { hostname: "web-1" }, "03", T0 + 86_400_000);
      await rec.flushAll();
      clock.t += 10_000;
      rec.heartbeat("agt_1970", 1 - clock.t);
      rec.heartbeat("agt_ok", 12);
      await rec.flushAll();
      const r = await store.query<{ id: string; clock_skew_ms: number | null; facts: Record<string, unknown>; last_heartbeat_at: Date | null }>(
        "SELECT id, clock_skew_ms, facts, last_heartbeat_at FROM agents ORDER BY id",
      );
      const by = new Map(r.rows.map((x) => [x.id, x]));
      assert.equal(by.get("agt_1970")?.clock_skew_ms, -2_147_483_647);
      assert.equal(by.get("agt_1970")?.last_heartbeat_at?.getTime(), T0 + 10_000);
      assert.deepEqual(by.get("agt_nul")?.facts, { hostname: "evilhost", os: "linux\ufffd", drivers: ["docker"], cpus: 0, memoryBytes: Number.MAX_SAFE_INTEGER });
      assert.equal(by.get("agt_ok")?.clock_skew_ms, 12);
      assert.equal(by.get("agt_ok")?.last_heartbeat_at?.getTime(), T0 + 10_000);
    });

    it("drops only the row the database refuses and keeps every other agent's liveness flowing", async (t) => {
      const { store, clock } = await setup(t);
      const ids = ["agt_a1", "agt_a2", "agt_poison", "agt_a3", "agt_a4"];
      for (const id of ids) await agent(store, id);
      // A row the database itself refuses, whatever the recorder sends for it.
      await store.query(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.id = 'agt_poison' THEN RAISE EXCEPTION 'refused row'; END IF; RETURN NEW; END $$`);
      await store.query("CREATE TRIGGER refuse_poison BEFORE UPDATE ON agents FOR EACH ROW EXECUTE FUNCTION refuse_poison()");
      const lines: Array<{ level: number; msg: string; agentId?: string }> = [];
      const log = pino({ level: "info" }, { write: (l: string) => lines.push(JSON.parse(l) as { level: number; msg: string }) });
      const rec = new LivenessRecorder({ store, clock, policy, readyAt: () => T0 - 60_000, replicaId: "r1", log, lastSeenFlushMs: 30_000 });
      for (const id of ids) rec.connected(id, { hostname: id }, "01", T0 + 86_400_000);
      await rec.flushAll();
      for (const id of ids.filter((i) => i !== "agt_poison")) assert.deepEqual(await row(store, id), { status: "online", connected: true, last: T0 });
      assert.deepEqual(await row(store, "agt_poison"), { status: "offline", connected: false, last: null });
      clock.t += 10_000;
      for (const id of ids) rec.heartbeat(id, 0);
      await rec.flushAll();
      for (const id of ids.filter((i) => i !== "agt_poison")) assert.equal((await row(store, id)).last, T0 + 10_000);
      assert.equal(rec.droppedRows, 2, "one connect row and one last-seen row");
      const errors = lines.filter((l) => l.level === 50);
      assert.deepEqual(errors.map((e) => e.agentId), ["agt_poison", "agt_poison"]);
      // Nothing is left to retry: another flush writes nothing and logs nothing.
      const before = lines.length;
      await rec.flushAll();
      assert.equal(lines.length, before);
    });

    it("keeps a batch while the database is unavailable and retries with a backoff, not every 20 ms", async (t) => {
      const { store, clock } = await setup(t);
      await agent(store, "agt_x");
      let down = true;
      let attempts = 0;
      const flaky: Store = Object.create(store) as Store;
      flaky.query = (async (sql: string, params?: readonly unknown[]) => {
        if (down) {
          attempts++;
          throw new Error("connection refused");
        }
        return store.query(sql, params);
      });
      const warnings: string[] = [];
      const log = pino({ level: "warn" }, { write: (l: string) => warnings.push(l) });
      const rec = new LivenessRecorder({ store: flaky, clock, policy, readyAt: () => T0 - 60_000, replicaId: "r1", log, lastSeenFlushMs: 30_000, stateBatchMs: 1 });
      rec.connected("agt_x", {}, "01", T0 + 86_400_000);
      await new Promise((r) => setTimeout(r, 700));
      // 20, 40, 80, 160, 320 ms: about six attempts (each a write and a probe) in 700 ms, where a fixed 20 ms
      // retry would have made thirty-five.
      assert.ok(attempts >= 4 && attempts <= 16, `${attempts} queries in 700 ms`);
      assert.ok(warnings.length <= 8, `${warnings.length} warnings in 700 ms`);
      down = false;
      await rec.stop();
      assert.equal((await row(store, "agt_x")).status, "online", "the batch was kept and written once the database was back");
    });
  });
}
