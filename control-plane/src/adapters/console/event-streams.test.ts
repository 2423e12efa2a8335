import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TOPICS } from "./change-feed.js";
import { TopicBuffer, type StreamSink } from "./event-streams.js";

class SlowSink implements StreamSink {
  writableNeedDrain = true;
  destroyed = false;
  readonly written: string[] = [];
  write(chunk: string): boolean {
    this.written.push(chunk);
    return true;
  }
}

describe("an event stream's buffer", () => {
  it("holds at most one entry per topic for a reader that does not drain, then sends them in one event", () => {
    const sink = new SlowSink();
    let id = 0;
    const buf = new TopicBuffer(sink, () => ++id);
    for (let i = 0; i < 100_000; i++) buf.add([TOPICS[i % TOPICS.length]!]);
    assert.equal(sink.written.length, 0, "nothing is written while the socket has not drained");
    assert.equal(buf.size, TOPICS.length, "memory stays at one entry per topic");
    sink.writableNeedDrain = false;
    buf.flush();
    assert.equal(sink.written.length, 1);
    assert.equal(sink.written[0], `id: 1\nevent: change\ndata: ${JSON.stringify({ topics: [...TOPICS] })}\n\n`);
    assert.equal(buf.size, 0);
    buf.flush();
    assert.equal(sink.written.length, 1, "an empty buffer writes nothing");
  });

  it("writes at once when the socket keeps up, and nothing to a destroyed socket", () => {
    const sink = new SlowSink();
    sink.writableNeedDrain = false;
    const buf = new TopicBuffer(sink, () => 7);
    buf.add(["logs"]);
    assert.deepEqual(sink.written, [`id: 7\nevent: change\ndata: {"topics":["logs"]}\n\n`]);
    sink.destroyed = true;
    buf.add(["fleet"]);
    assert.equal(sink.written.length, 1);
  });
});
