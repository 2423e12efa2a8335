// The console's change feed and event stream on both store backends: a write by anyone is announced as its topic,
// nothing is announced when nothing changed, streams are bounded in number and in age.
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import Fastify from "fastify";
import { testBackends } from "../store/test-backends.js";
import type { Store } from "../../ports/store.js";
import { sendError } from "../http/errors.js";
import { ChangeFeed, type Topic } from "./change-feed.js";
import { eventStreamRoutes } from "./event-streams.js";

async function seed(store: Store): Promise<void> {
  await store.query("INSERT INTO environments (name, position, created_by) VALUES ('dev', 1, 't')");
  await store.query("INSERT INTO agents (id, name, environment, status) VALUES ('agt_1', 'one', 'dev', 'online')");
}

/** Reads server-sent events from a fetch body until `until` says stop. */
async function readEvents(res: Response, until: (events: { event: string; data: string }[]) => boolean, timeoutMs = 5000) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; data: string }[] = [];
  let buf = "";
  const deadline = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut: number;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const ev = { event: "message", data: "" };
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) ev.event = line.slice(6).trim();
          if (line.startsWith("data:")) ev.data += line.slice(5).trim();
        }
        if (!block.startsWith(":")) events.push(ev);
      }
      if (until(events)) break;
    }
  } finally {
    clearTimeout(deadline);
    await reader.cancel().catch(() => undefined);
  }
  return events;
}

async function streamServer(t: TestContext, feed: ChangeFeed, opts: { maxStreams?: number; maxAgeMs?: number } = {}) {
  const app = Fastify();
  app.setErrorHandler((err, req, reply) => sendError(req, reply, err));
  await app.register(eventStreamRoutes({ feed, ...opts }), { prefix: "/api/v1" });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  t.after(() => app.close());
  return `${url}/api/v1/console/events`;
}

for (const b of testBackends()) {
  describe(`console change feed (${b.name})`, () => {
    it("announces the topic of each change and nothing when nothing changed", async (t) => {
      const store = await b.open(t);
      await seed(store);
      // Polled by hand only: a timer poll between a write and the poll below would take the change first.
      const feed = new ChangeFeed({ store, intervalMs: 3_600_000 });
      t.after(() => feed.stop());
      const seen: Topic[][] = [];
      const off = feed.subscribe((topics) => seen.push([...topics].sort()));
      await feed.poll(); // the baseline
      assert.deepEqual([...(await feed.poll())], []);
      await store.query("UPDATE agents SET status = 'offline', status_changed_at = now() WHERE id = 'agt_1'");
      assert.deepEqual([...(await feed.poll())], ["fleet"]);
      await store.query("INSERT INTO components (name, repository, created_by) VALUES ('web', 'r/web', 't')");
      await store.query("INSERT INTO releases (id, name, version, created_by) VALUES ('rel_1', 'shop', '1', 't')");
      assert.deepEqual([...(await feed.poll())], ["releases"]);
      await store.query("INSERT INTO deployments (id, environment, release_id, action, state, requested_by) VALUES ('dep_1', 'dev', 'rel_1', 'deploy', 'queued', 't')");
      assert.deepEqual([...(await feed.poll())], ["deployments"]);
      await store.query("UPDATE environments SET updated_at = now() + interval '1 second' WHERE name = 'dev'");
      assert.deepEqual([...(await feed.poll())], ["catalog"]);
      await store.query(
        `INSERT INTO rollouts (id, deployment_id, environment, release_id, strategy, targets, previous, state, requested_by)
         VALUES ('rol_1', 'dep_1', 'dev', 'rel_1', '{"kind":"rolling"}', '[]', '{}', 'running', 't')`,
      );
      assert.deepEqual([...(await feed.poll())], ["rollouts"]);
      await store.query("UPDATE rollouts SET paused = true, updated_at = now() + interval '1 second' WHERE id = 'rol_1'");
      assert.deepEqual([...(await feed.poll())], ["rollouts"]);
      await store.query("UPDATE rollouts SET state = 'succeeded', finished_at = now() WHERE id = 'rol_1'");
      assert.deepEqual([...(await feed.poll())], ["rollouts"], "a rollout that ends leaves the active set");
      assert.ok(seen.some((x) => x.includes("fleet")) && seen.some((x) => x.includes("deployments")));
      off();
      assert.equal(feed.subscribers, 0);
      await feed.stop();
    });

    it("streams a ready event, then the topics that changed, to a subscriber over HTTP", async (t) => {
      const store = await b.open(t);
      await seed(store);
      const feed = new ChangeFeed({ store, intervalMs: 20 });
      t.after(() => feed.stop());
      const url = await streamServer(t, feed);
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
      // Once subscribed (the feed has a baseline after its first read), an agent going offline is announced.
      setTimeout(() => void store.query("UPDATE agents SET status = 'offline', status_changed_at = now() WHERE id = 'agt_1'"), 150);
      const events = await readEvents(res, (ev) => ev.some((e) => e.event === "change"));
      assert.equal(events[0]!.event, "ready");
      const change = events.find((e) => e.event === "change")!;
      assert.deepEqual(JSON.parse(change.data), { topics: ["fleet"] });
    });

    it("refuses streams beyond the limit with RATE_LIMITED and Retry-After, and ends streams at their age limit", async (t) => {
      const store = await b.open(t);
      const feed = new ChangeFeed({ store, intervalMs: 50 });
      t.after(() => feed.stop());
      const url = await streamServer(t, feed, { maxStreams: 1, maxAgeMs: 300 });
      const first = await fetch(url);
      assert.equal(first.status, 200);
      const second = await fetch(url);
      assert.equal(second.status, 429);
      assert.equal(second.headers.get("retry-after"), "30");
      const body = (await second.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "RATE_LIMITED");
      assert.match(body.error.message, /already serves 1 console event streams; poll instead/);
      // The first stream ends by itself after maxAgeMs (the console reconnects and authenticates again).
      const started = Date.now();
      await readEvents(first, () => false, 5000);
      assert.ok(Date.now() - started < 3000, "the stream ended at its age limit");
      assert.equal(feed.subscribers, 0, "an ended stream unsubscribes");
      assert.equal((await fetch(url).then(async (r) => { await r.body?.cancel(); return r.status; })), 200);
    });
  });
}
