import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";

import { logSink } from "../test-support/log-sink.js";
import { TaskSpool, spoolName, truncationMarker } from "./spool.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-spool-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
const freshDir = () => path.join(tmpRoot, `state-${++n}`, "spool");

async function collect(spool: TaskSpool, taskId: string, from: number, size?: number) {
  const out: { offset: number; data: string }[] = [];
  for await (const c of spool.chunks(taskId, from, size)) out.push({ offset: c.offset, data: c.data.toString("utf8") });
  return out;
}

describe("TaskSpool", () => {
  test("appends hand out contiguous offsets; files are 0600 in a 0700 directory", async () => {
    const dir = freshDir();
    const spool = await TaskSpool.open(dir);
    assert.deepEqual(await spool.append("t1", "hello "), { offset: 0, length: 6, dropped: 0 });
    assert.deepEqual(await spool.append("t1", Buffer.from("world\n")), { offset: 6, length: 6, dropped: 0 });
    assert.equal(spool.size("t1"), 12);
    assert.equal((await spool.readFrom("t1", 6, 100)).toString(), "world\n");
    assert.equal((await spool.readFrom("t1", 12, 100)).length, 0);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, "t1.log")).mode & 0o777, 0o600);
    await spool.close();
  });

  test("concurrent appends to one task are serialised in call order", async () => {
    const spool = await TaskSpool.open(freshDir());
    const parts = Array.from({ length: 50 }, (_, i) => `line ${i}\n`);
    const results = await Promise.all(parts.map((p) => spool.append("t", p)));
    let expected = 0;
    for (const [i, r] of results.entries()) {
      assert.equal(r.offset, expected);
      expected += parts[i]!.length;
    }
    assert.equal((await spool.readFrom("t", 0, 1 << 20)).toString(), parts.join(""));
    await spool.close();
  });

  test("chunks() yields the log from an offset in pieces of at most chunkSize", async () => {
    const spool = await TaskSpool.open(freshDir());
    await spool.append("t", "abcdefghij");
    assert.deepEqual(await collect(spool, "t", 3, 4), [
      { offset: 3, data: "defg" },
      { offset: 7, data: "hij" },
    ]);
    assert.deepEqual(await collect(spool, "t", 10), []);
    assert.deepEqual(await collect(spool, "unknown", 0), []);
    await spool.close();
  });

  test("acks are monotonic, clamped, persisted; unacked() and a reopen resume from them", async () => {
    const dir = freshDir();
    const spool = await TaskSpool.open(dir);
    await spool.append("a", "0123456789");
    await spool.append("b", "xyz");
    await spool.flush();
    await spool.ack("a", 4);
    await spool.ack("a", 2);
    assert.equal(spool.ackedOffset("a"), 4);
    await spool.ack("b", 1000);
    assert.equal(spool.ackedOffset("b"), 3);
    assert.deepEqual(spool.unacked(), [{ taskId: "a", ackedOffset: 4, size: 10 }]);
    await spool.close();

    const reopened = await TaskSpool.open(dir);
    assert.deepEqual(reopened.unacked(), [{ taskId: "a", ackedOffset: 4, size: 10 }]);
    assert.deepEqual(await collect(reopened, "a", reopened.ackedOffset("a")), [{ offset: 4, data: "456789" }]);
    // Appending after a restart continues at the end.
    assert.deepEqual(await reopened.append("a", "!"), { offset: 10, length: 1, dropped: 0 });
    await reopened.close();
  });

  test("a log is capped: one marker, then output is dropped (also after a reopen)", async () => {
    const dir = freshDir();
    const max = 200;
    const marker = truncationMarker(max);
    const sink = logSink();
    const spool = await TaskSpool.open(dir, { maxLogBytes: max, logger: sink.logger });
    const room = max - marker.length;
    const first = await spool.append("t", "a".repeat(room - 10));
    assert.equal(first.dropped, 0);
    const second = await spool.append("t", "b".repeat(50));
    assert.deepEqual(second, { offset: room - 10, length: 10 + marker.length, dropped: 40 });
    assert.equal(spool.size("t"), max);
    assert.ok(spool.isTruncated("t"));
    assert.deepEqual(await spool.append("t", "more"), { offset: max, length: 0, dropped: 4 });
    const text = (await spool.readFrom("t", 0, 1000)).toString();
    assert.equal(text, "a".repeat(room - 10) + "b".repeat(10) + marker);
    assert.equal(sink.lines().filter((l) => String(l.msg).includes("cap")).length, 1);
    await spool.close();

    const reopened = await TaskSpool.open(dir, { maxLogBytes: max });
    assert.ok(reopened.isTruncated("t"));
    assert.equal((await reopened.append("t", "x")).dropped, 1);
    assert.equal(reopened.size("t"), max);
    await reopened.close();
  });

  test("remove() deletes both files; a stray .ack and temp files are cleaned up at open", async () => {
    const dir = freshDir();
    const spool = await TaskSpool.open(dir);
    await spool.append("t", "data");
    await spool.flush("t");
    await spool.ack("t", 4);
    await spool.remove("t");
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.deepEqual(spool.unacked(), []);
    await spool.close();

    fs.writeFileSync(path.join(dir, "gone.ack"), "3\n");
    fs.writeFileSync(path.join(dir, ".x.ack.1.tmp"), "");
    const reopened = await TaskSpool.open(dir);
    assert.deepEqual(fs.readdirSync(dir), []);
    await reopened.close();
  });

  test("task ids that are not safe file names round-trip through the file name", async () => {
    const dir = freshDir();
    const spool = await TaskSpool.open(dir);
    const ids = ["../../etc/passwd", "a.b", "b64-looks-encoded", "ünïcode"];
    for (const id of ids) await spool.append(id, id);
    await spool.close();
    for (const f of fs.readdirSync(dir)) assert.match(f, /^b64-[A-Za-z0-9_-]+\.log$/);
    assert.equal(spoolName("0b6e3c2a-uuid_like-1"), "0b6e3c2a-uuid_like-1");
    const reopened = await TaskSpool.open(dir);
    assert.deepEqual(reopened.tasks().sort(), [...ids].sort());
    for (const id of ids) assert.equal((await reopened.readFrom(id, 0, 100)).toString(), id);
    await reopened.close();
  });

  test("an ack file beyond the log is clamped with a warning; a garbled one means resend everything", async () => {
    const dir = freshDir();
    const spool = await TaskSpool.open(dir);
    await spool.append("a", "abc");
    await spool.append("b", "abc");
    await spool.close();
    fs.writeFileSync(path.join(dir, "a.ack"), "99\n");
    fs.writeFileSync(path.join(dir, "b.ack"), "garbage");
    const sink = logSink();
    const reopened = await TaskSpool.open(dir, { logger: sink.logger });
    assert.equal(reopened.ackedOffset("a"), 3);
    assert.equal(reopened.ackedOffset("b"), 0);
    assert.equal(sink.lines().filter((l) => l.level === 40).length, 2);
    await reopened.close();
  });

  test("appends become durable by themselves after the sync interval", async () => {
    const spool = await TaskSpool.open(freshDir(), { syncIntervalMs: 5 });
    await spool.append("t", "abc");
    // ack() only accepts durable bytes, so a full ack shows the background fsync happened.
    const deadline = Date.now() + 5000;
    while (spool.ackedOffset("t") < 3 && Date.now() < deadline) {
      await spool.ack("t", 3);
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(spool.ackedOffset("t"), 3);
    await spool.close();
    await assert.rejects(spool.append("t", "x"), /closed/);
  });
});
