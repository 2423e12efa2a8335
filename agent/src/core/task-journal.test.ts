import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";

import { newTaskNonce, type TaskPayload } from "@ferry/pki";

import { logSink } from "../test-support/log-sink.js";
import { JOURNAL_RETENTION_MS, TaskJournal, TaskJournalError, journalFileName } from "./task-journal.js";

const HOUR = 3600_000;
const T0 = Date.parse("2026-03-01T12:00:00Z");
const DIGEST = `sha256:${"cd".repeat(32)}`;

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-task-journal-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
const freshDir = () => path.join(tmpRoot, `state-${++n}`, "tasks");

function payload(taskId: string, over: Partial<TaskPayload> = {}): TaskPayload {
  return {
    v: 1,
    taskId,
    deploymentId: "dep-1",
    agentId: "agent-1",
    issuedAt: T0,
    notAfter: T0 + HOUR,
    nonce: newTaskNonce(),
    action: "deploy",
    target: { id: "tgt-1", name: "web-1", kind: "docker", config: {} },
    release: { id: "rel-1", name: "shop", version: "1.0.0" },
    images: [{ component: "web", repository: "r/web", digest: DIGEST, ref: `r/web@${DIGEST}` }],
    ...over,
  };
}

const result = { outcome: "succeeded" as const, code: "OK", message: "deployed", detailsJson: "{}", sticker: { targetId: "tgt-1" } };

describe("TaskJournal", () => {
  test("records survive a reopen, with 0600 files in a 0700 directory", async () => {
    const dir = freshDir();
    let clock = T0;
    const j = await TaskJournal.open(dir, { now: () => clock });
    const p = payload("task-1");
    await j.accept(p, 2);
    clock += 1000;
    await j.markRunning("task-1");
    clock += 1000;
    await j.finish("task-1", result);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, "task-1.json")).mode & 0o777, 0o600);

    const again = await TaskJournal.open(dir);
    const r = await again.get("task-1");
    assert.ok(r);
    assert.deepEqual(
      { state: r.state, attempt: r.attempt, startedAt: r.startedAt, runningAt: r.runningAt, finishedAt: r.finishedAt, acked: r.resultAcked },
      { state: "finished", attempt: 2, startedAt: T0, runningAt: T0 + 1000, finishedAt: T0 + 2000, acked: false },
    );
    assert.deepEqual(r.payload, p);
    assert.deepEqual(r.result, result);
    assert.deepEqual(again.pendingResults().map((x) => x.taskId), ["task-1"]);
    await again.markResultAcked("task-1");
    assert.deepEqual((await TaskJournal.open(dir)).pendingResults(), []);
  });

  test("a version 2 payload (with phases) survives a reopen, so an interrupted v2 task is still reported", async () => {
    const dir = freshDir();
    const j = await TaskJournal.open(dir);
    const p = payload("task-v2", { v: 2, phases: ["prepare", "start", "health", "switch", "retire"] });
    await j.accept(p, 1);
    await j.markRunning("task-v2");
    const again = await TaskJournal.open(dir);
    assert.deepEqual((await again.get("task-v2"))?.payload, p);
    assert.deepEqual(again.interrupted().map((r) => r.taskId), ["task-v2"]);
  });

  test("checkReplay: new, redelivery, replay", async () => {
    const j = await TaskJournal.open(freshDir());
    const a = payload("task-a");
    assert.equal(j.checkReplay(a), "new");
    await j.accept(a, 1);

    // Same id and nonce: redelivery, whatever the state.
    const same = j.checkReplay(a);
    assert.ok(same !== "new" && same.kind === "redelivery" && same.record.state === "accepted");
    // Same id re-signed with another nonce while in hand: still a redelivery, never a second run.
    const resigned = j.checkReplay({ taskId: "task-a", nonce: newTaskNonce() });
    assert.ok(resigned !== "new" && resigned.kind === "redelivery");
    // Another task with a used nonce: replay.
    const stolen = j.checkReplay({ taskId: "task-b", nonce: a.nonce });
    assert.ok(stolen !== "new" && stolen.kind === "replay" && stolen.record.taskId === "task-a");

    await j.finish("task-a", result);
    const again = j.checkReplay(a);
    assert.ok(again !== "new" && again.kind === "redelivery" && again.record.state === "finished");
    assert.equal((await j.get(again.record.taskId))?.result?.outcome, "succeeded");
    // Same id, other nonce, already finished: replay.
    const rerun = j.checkReplay({ taskId: "task-a", nonce: newTaskNonce() });
    assert.ok(rerun !== "new" && rerun.kind === "replay");

    assert.equal(j.seen("task-x", a.nonce)?.taskId, "task-a");
    assert.equal(j.seen("task-a", "other")?.taskId, "task-a");
    assert.equal(j.seen("task-x", "other"), undefined);

    // The nonce index survives a reopen.
    const reopened = await TaskJournal.open(j.dir);
    const r = reopened.checkReplay({ taskId: "task-c", nonce: a.nonce });
    assert.ok(r !== "new" && r.kind === "replay");
  });

  test("accept refuses a known task id or a used nonce; transitions are checked", async () => {
    const j = await TaskJournal.open(freshDir());
    const a = payload("task-a");
    await j.accept(a, 1);
    const conflict = (err: unknown) => err instanceof TaskJournalError && err.code === "TASK_JOURNAL_CONFLICT";
    await assert.rejects(j.accept(a, 2), conflict);
    await assert.rejects(j.accept(payload("task-b", { nonce: a.nonce }), 1), conflict);
    await assert.rejects(
      j.markRunning("nope"),
      (err: unknown) => err instanceof TaskJournalError && err.code === "TASK_JOURNAL_UNKNOWN_TASK",
    );
    await j.finish("task-a", result);
    await assert.rejects(
      j.finish("task-a", result),
      (err: unknown) => err instanceof TaskJournalError && err.code === "TASK_JOURNAL_BAD_STATE",
    );
    await assert.rejects(j.markRunning("task-a"), /is finished/);
    assert.equal(await j.markResultAcked("pruned-long-ago"), undefined);
  });

  test("refused tasks are recorded for redelivery but never take a nonce from its owner", async () => {
    const j = await TaskJournal.open(freshDir());
    const a = payload("task-a");
    await j.accept(a, 1);
    const b = payload("task-b", { nonce: a.nonce });
    await j.refuse(b, 1, { code: "TASK_REPLAYED", message: "nonce used by task-a" });
    const reopened = await TaskJournal.open(j.dir);
    const r = reopened.checkReplay(b);
    assert.ok(r !== "new" && r.kind === "redelivery" && r.record.state === "refused");
    assert.equal((await reopened.get(r.record.taskId))?.refusal?.code, "TASK_REPLAYED");
    assert.equal(reopened.seen("task-z", a.nonce)?.taskId, "task-a");
  });

  test("interrupted(): tasks accepted or running when the agent died, until finished", async () => {
    const dir = freshDir();
    const j = await TaskJournal.open(dir);
    await j.accept(payload("t-accepted"), 1);
    await j.accept(payload("t-running"), 1);
    await j.markRunning("t-running");
    await j.accept(payload("t-done"), 1);
    await j.finish("t-done", result);
    assert.deepEqual(j.interrupted(), []);

    const after = await TaskJournal.open(dir);
    assert.deepEqual(after.interrupted().map((r) => [r.taskId, r.state]).sort(), [
      ["t-accepted", "accepted"],
      ["t-running", "running"],
    ]);
    await after.finish("t-running", { outcome: "interrupted", code: "AGENT_RESTARTED", message: "agent restarted", detailsJson: "{}" });
    assert.deepEqual(after.interrupted().map((r) => r.taskId), ["t-accepted"]);
    assert.deepEqual(after.pendingResults().map((r) => r.taskId).sort(), ["t-done", "t-running"]);
  });

  test("a corrupt file is quarantined with a warning; leftover temp files are removed", async () => {
    const dir = freshDir();
    const j = await TaskJournal.open(dir);
    await j.accept(payload("good"), 1);
    fs.writeFileSync(path.join(dir, "bad.json"), "{ torn");
    fs.writeFileSync(path.join(dir, ".good.json.123.abc.tmp"), "{");
    const sink = logSink();
    const reopened = await TaskJournal.open(dir, { logger: sink.logger });
    assert.ok(await reopened.get("good"));
    assert.deepEqual(fs.readdirSync(dir).sort(), ["good.json", "quarantine"]);
    assert.equal(fs.readdirSync(path.join(dir, "quarantine")).length, 1);
    const warn = sink.lines().find((l) => l.level === 40);
    assert.ok(warn);
    assert.match(String(warn.msg), /quarantine/);
    assert.equal(warn.file, path.join(dir, "bad.json"));
  });

  test("task ids that are not safe file names are stored under a hash", async () => {
    const dir = freshDir();
    const j = await TaskJournal.open(dir);
    // Task ids are at most 128 characters (the payload bounds them); these are unsafe for other reasons.
    for (const id of ["../escape", "a/b", ".hidden", "x y"]) {
      await j.accept(payload(id), 1);
      assert.match(journalFileName(id), /^sha256-[0-9a-f]{64}\.json$/);
    }
    assert.equal(fs.readdirSync(path.dirname(dir)).length, 1);
    const reopened = await TaskJournal.open(dir);
    assert.equal(reopened.all().length, 4);
    assert.ok(await reopened.get("../escape"));
  });

  test("prune keeps every nonce until 7 days past notAfter, and unacked or unfinished tasks forever", async () => {
    const dir = freshDir();
    const j = await TaskJournal.open(dir);
    const acked = payload("acked");
    await j.accept(acked, 1);
    await j.finish("acked", result);
    await j.markResultAcked("acked");
    await j.accept(payload("unacked"), 1);
    await j.finish("unacked", result);
    await j.accept(payload("running"), 1);
    await j.markRunning("running");
    await j.refuse(payload("refused"), 1, { code: "TASK_REPLAYED", message: "x" });

    const edge = T0 + HOUR + JOURNAL_RETENTION_MS;
    assert.deepEqual(await j.prune(edge), []);
    assert.deepEqual((await j.prune(edge + 1)).sort(), ["acked", "refused"]);
    assert.equal(fs.existsSync(path.join(dir, "acked.json")), false);
    assert.equal(j.checkReplay(acked), "new");
    const reopened = await TaskJournal.open(dir);
    assert.deepEqual(reopened.all().map((r) => r.taskId).sort(), ["running", "unacked"]);
  });

  test("concurrent updates of one task reach the disk in call order", async () => {
    const dir = freshDir();
    const j = await TaskJournal.open(dir);
    await j.accept(payload("t"), 1);
    const ops = [j.markRunning("t"), j.finish("t", result), j.markResultAcked("t")];
    await Promise.all(ops);
    await j.settled();
    const onDisk = await (await TaskJournal.open(dir)).get("t");
    assert.equal(onDisk?.state, "finished");
    assert.equal(onDisk?.resultAcked, true);
  });

  test("a settled record is held as its summary: its payload and result are read back from its file", async () => {
    const dir = freshDir();
    const j = await TaskJournal.open(dir, { now: () => T0 });
    const p = payload("settled");
    await j.accept(p, 1);
    await j.finish("settled", result);
    // In play (result not acknowledged): held whole, reported from memory.
    assert.deepEqual(j.pendingResults().map((r) => r.result), [result]);
    await j.markResultAcked("settled");
    await j.refuse(payload("no"), 1, { code: "TASK_NO_DRIVER", message: "none" });
    // Settled: what the file says is what get() answers, so nothing but the summary stayed in memory.
    for (const [id, edit] of [
      ["settled", (r: Record<string, unknown>) => ((r["result"] as Record<string, unknown>)["message"] = "from disk")],
      ["no", (r: Record<string, unknown>) => ((r["refusal"] as Record<string, unknown>)["message"] = "from disk")],
    ] as const) {
      const file = path.join(dir, journalFileName(id));
      const rec = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
      edit(rec);
      fs.writeFileSync(file, JSON.stringify(rec));
    }
    assert.equal((await j.get("settled"))?.result?.message, "from disk");
    assert.deepEqual((await j.get("settled"))?.payload, p);
    assert.equal((await j.get("no"))?.refusal?.message, "from disk");
    assert.deepEqual(j.summary("settled"), { taskId: "settled", nonce: p.nonce, notAfter: p.notAfter, attempt: 1, state: "finished", startedAt: T0, finishedAt: T0, resultAcked: true });
    // The replay checks need nothing more than the summary.
    const again = j.checkReplay(p);
    assert.ok(again !== "new" && again.kind === "redelivery" && again.record.state === "finished");
    assert.ok(j.checkReplay({ taskId: "other", nonce: p.nonce }) !== "new");
    // A record pruned meanwhile is simply gone.
    await j.prune(T0 + HOUR + JOURNAL_RETENTION_MS + 1);
    assert.equal(await j.get("settled"), undefined);
    assert.equal(j.summary("settled"), undefined);
  });
});
