import { strict as assert } from "node:assert";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";

import {
  DEFAULT_RETRY_POLICY,
  InMemoryWebhookStore,
  WEBHOOK_EVENT_TYPES,
  HttpWebhookTransport,
  WebhookDispatcher,
  signWebhook,
  verifyWebhookSignature,
  webhookRetryDelayMs,
  type WebhookDelivery,
  type WebhookDispatcherOptions,
  type WebhookEvent,
} from "./webhooks.js";

// ---------------------------------------------------------------------------------------------------------------
// Helpers

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The test clock's time at arrival. */
  at: number;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

interface Receiver {
  url: string;
  requests: Received[];
  handler: Handler;
  close(): Promise<void>;
}

const receivers: Receiver[] = [];
after(async () => {
  await Promise.all(receivers.map((r) => r.close()));
});

/** A real HTTP receiver on 127.0.0.1; `handler` can be swapped while it runs. */
async function receiver(handler: Handler, now: () => number = Date.now): Promise<Receiver> {
  const r: Receiver = { url: "", requests: [], handler, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      r.requests.push({ headers: req.headers, body, at: now() });
      r.handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  let closed = false;
  r.close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  receivers.push(r);
  return r;
}

const ok: Handler = (_req, res) => res.end("ok");
const hang: Handler = () => {};
const status =
  (code: number, headers: Record<string, string> = {}): Handler =>
  (_req, res) => {
    res.writeHead(code, headers);
    res.end(`status ${code}`);
  };

/** Waits for a condition by polling it; fails with `what` after `timeoutMs`. */
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A clock that moves only when told to, and a sleep that follows it. */
class ManualClock {
  t = Date.parse("2026-03-01T12:00:00Z");
  readonly sleepers = new Set<{ at: number; resolve: () => void }>();
  now = (): number => this.t;
  sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      const s = { at: this.t + ms, resolve };
      this.sleepers.add(s);
      signal.addEventListener("abort", () => {
        this.sleepers.delete(s);
        resolve();
      });
    });
  advance(ms: number): void {
    this.t += ms;
    for (const s of [...this.sleepers]) {
      if (s.at <= this.t) {
        this.sleepers.delete(s);
        s.resolve();
      }
    }
  }
  /** The earliest time someone is sleeping until. */
  nextWake(): number | undefined {
    const ats = [...this.sleepers].map((s) => s.at);
    return ats.length === 0 ? undefined : Math.min(...ats);
  }
}

let eventCount = 0;
function event(over: Partial<WebhookEvent> = {}): WebhookEvent {
  return {
    type: "promotion.approved",
    id: `evt_${++eventCount}`,
    at: "2026-03-01T12:00:00.000Z",
    data: { promotionId: "prm_1", environment: "prod", release: { name: "shop", version: "1.4.0" } },
    ...over,
  };
}

function setup(opts: Partial<WebhookDispatcherOptions> = {}) {
  const store = new InMemoryWebhookStore();
  // The receivers here listen on loopback, which the default destination policy refuses: allow it, as an operator
  // would with --webhook-allow.
  const dispatcher = new WebhookDispatcher({ store, transport: new HttpWebhookTransport({ allow: ["127.0.0.1/32"] }), ...opts });
  after(() => dispatcher.stop({ timeoutMs: 100 }));
  return { store, dispatcher };
}

async function deliveriesOf(store: InMemoryWebhookStore, subscriptionId: string): Promise<WebhookDelivery[]> {
  return (await store.listDeliveries({ subscriptionId })).sort((a, b) => a.createdAt - b.createdAt || a.eventId.localeCompare(b.eventId, "en", { numeric: true }));
}

async function statusOf(store: InMemoryWebhookStore, eventId: string, subscriptionId: string): Promise<WebhookDelivery | undefined> {
  return (await store.listDeliveries({ eventId, subscriptionId }))[0];
}

// ---------------------------------------------------------------------------------------------------------------

describe("webhook signatures", () => {
  const secret = "whsec_test";
  const body = '{"id":"evt_1","type":"promotion.approved"}';
  const t = 1_772_366_400;

  test("sign then verify; the header has the documented form", () => {
    const header = signWebhook(secret, t, body);
    assert.match(header, /^t=1772366400,v1=[0-9a-f]{64}$/);
    assert.deepEqual(verifyWebhookSignature(secret, header, body, { now: t * 1000 }), { ok: true, timestampSec: t });
    assert.ok(verifyWebhookSignature(secret, header, Buffer.from(body), { now: t * 1000 }).ok);
  });

  test("another body, another secret or a shifted timestamp do not match", () => {
    const header = signWebhook(secret, t, body);
    assert.equal(verifyWebhookSignature(secret, header, body.replace("approved", "rejected"), { now: t * 1000 }).ok, false);
    const wrong = verifyWebhookSignature("whsec_other", header, body, { now: t * 1000 });
    assert.ok(!wrong.ok && wrong.reason === "mismatch");
    const moved = header.replace(`t=${t}`, `t=${t + 1}`);
    const r = verifyWebhookSignature(secret, moved, body, { now: t * 1000 });
    assert.ok(!r.ok && r.reason === "mismatch");
  });

  test("replays outside the tolerance are stale, either side of now", () => {
    const header = signWebhook(secret, t, body);
    assert.ok(verifyWebhookSignature(secret, header, body, { now: (t + 300) * 1000 }).ok);
    const late = verifyWebhookSignature(secret, header, body, { now: (t + 301) * 1000 });
    assert.ok(!late.ok && late.reason === "stale");
    const early = verifyWebhookSignature(secret, header, body, { now: new Date((t - 61) * 1000), toleranceSec: 60 });
    assert.ok(!early.ok && early.reason === "stale");
  });

  test("malformed headers; several v1 entries (secret rotation) accepted", () => {
    for (const h of [undefined, "", "v1=abc", `t=${t}`, `t=abc,v1=${"0".repeat(64)}`, `t=${t},t=${t},v1=${"0".repeat(64)}`, `t=${t},v1=XYZ`, "garbage"]) {
      const r = verifyWebhookSignature(secret, h, body, { now: t * 1000 });
      assert.ok(!r.ok && r.reason === "malformed", String(h));
    }
    const other = signWebhook("whsec_old", t, body).split(",")[1]!;
    const both = `${signWebhook(secret, t, body)},${other}`;
    assert.ok(verifyWebhookSignature(secret, both, body, { now: t * 1000 }).ok);
    assert.ok(verifyWebhookSignature("whsec_old", both, body, { now: t * 1000 }).ok);
    assert.ok(verifyWebhookSignature(secret, `${signWebhook(secret, t, body)},v2=future`, body, { now: t * 1000 }).ok);
  });
});

describe("webhookRetryDelayMs", () => {
  test("full jitter over min(cap, base × 2^(n-1)); Retry-After is a floor within the cap", () => {
    const p = DEFAULT_RETRY_POLICY;
    const top = () => 0.999999999;
    assert.deepEqual(
      [1, 2, 3, 4, 8, 9, 12].map((n) => webhookRetryDelayMs(n, p, top)),
      [999, 1999, 3999, 7999, 127_999, 255_999, 299_999],
    );
    assert.equal(webhookRetryDelayMs(3, p, () => 0), 0);
    assert.equal(webhookRetryDelayMs(3, p, () => 0.5), 2000);
    assert.equal(webhookRetryDelayMs(1, p, () => 0, 30_000), 30_000);
    assert.equal(webhookRetryDelayMs(1, p, () => 0, 3_600_000), 300_000);
  });
});

describe("WebhookDispatcher", () => {
  test("event types are the promotion lifecycle", () => {
    assert.deepEqual(
      [...WEBHOOK_EVENT_TYPES],
      ["promotion.requested", "promotion.approved", "promotion.rejected", "promotion.blocked", "promotion.deployed", "promotion.failed", "promotion.rolled_back"],
    );
  });

  test("POSTs signed JSON that the receiver verifies; status becomes delivered", async () => {
    const secret = "whsec_receiver";
    let verified: ReturnType<typeof verifyWebhookSignature> | undefined;
    const rx = await receiver((req, res, body) => {
      verified = verifyWebhookSignature(secret, req.headers["ferry-signature"] as string, body);
      res.writeHead(verified.ok ? 204 : 401);
      res.end();
    });
    const { store, dispatcher } = setup();
    store.addSubscription({ id: "sub_1", url: rx.url, secret, events: ["promotion.approved", "promotion.deployed"] });
    store.addSubscription({ id: "sub_other", url: rx.url, secret, events: ["promotion.failed"] });
    const ev = event();
    assert.equal(dispatcher.enqueue(ev), true);
    await waitFor("delivered", async () => (await statusOf(store, ev.id, "sub_1"))?.status === "delivered");

    assert.equal(rx.requests.length, 1, "only the subscribed subscription gets it");
    const got = rx.requests[0]!;
    assert.ok(verified?.ok, JSON.stringify(verified));
    assert.equal(got.headers["content-type"], "application/json");
    assert.equal(got.headers["ferry-event"], "promotion.approved");
    const d = (await statusOf(store, ev.id, "sub_1"))!;
    assert.equal(got.headers["ferry-delivery"], d.id);
    assert.deepEqual(JSON.parse(got.body), { id: ev.id, type: ev.type, at: ev.at, data: ev.data });
    assert.deepEqual(
      { status: d.status, attempts: d.attempts, lastError: d.lastError, lastStatusCode: d.lastStatusCode, nextAttemptAt: d.nextAttemptAt, event: d.event },
      { status: "delivered", attempts: 1, lastError: null, lastStatusCode: 204, nextAttemptAt: null, event: "promotion.approved" },
    );
    assert.deepEqual(await dispatcher.delivery(d.id), d);
    assert.deepEqual(await dispatcher.deliveries({ eventId: ev.id }), [d]);
  });

  test("retries after a 500, then delivers", async () => {
    let calls = 0;
    const rx = await receiver((req, res) => {
      calls++;
      (calls === 1 ? status(500) : ok)(req, res, "");
    });
    const { store, dispatcher } = setup({ retry: { baseDelayMs: 20 } });
    store.addSubscription({ id: "sub_1", url: rx.url, secret: "s", events: ["promotion.approved"] });
    const ev = event();
    dispatcher.enqueue(ev);
    await waitFor("delivered", async () => (await statusOf(store, ev.id, "sub_1"))?.status === "delivered");
    const d = (await statusOf(store, ev.id, "sub_1"))!;
    assert.equal(d.attempts, 2);
    assert.equal(rx.requests.length, 2);
    // Both attempts are the same delivery with the same body, each signed afresh.
    assert.equal(rx.requests[0]!.headers["ferry-delivery"], rx.requests[1]!.headers["ferry-delivery"]);
    assert.equal(rx.requests[0]!.body, rx.requests[1]!.body);
  });

  test("backoff follows the policy on the injected clock (no real waiting)", async () => {
    const clock = new ManualClock();
    let calls = 0;
    const rx = await receiver((req, res) => {
      calls++;
      (calls <= 3 ? status(503) : ok)(req, res, "");
    }, clock.now);
    const { store, dispatcher } = setup({ clock, sleep: clock.sleep, random: () => 0.5 });
    store.addSubscription({ id: "sub_1", url: rx.url, secret: "s", events: ["promotion.deployed"] });
    const t0 = clock.now();
    const ev = event({ type: "promotion.deployed" });
    dispatcher.enqueue(ev);
    const current = async () => (await statusOf(store, ev.id, "sub_1"))!;

    // random 0.5 with base 1 s: 500 ms, 1 s, 2 s.
    for (const [n, delay] of [[1, 500], [2, 1000], [3, 2000]] as const) {
      await waitFor(`attempt ${n} recorded`, async () => (await current())?.attempts === n && (await current()).nextAttemptAt !== null);
      const d = await current();
      assert.equal(d.status, "pending");
      assert.equal(d.lastError, "HTTP 503");
      assert.equal(d.lastResponse, "status 503", "the receiver's answer is kept apart from the error line");
      assert.equal(d.nextAttemptAt, clock.now() + delay);
      assert.equal(clock.nextWake(), clock.now() + delay, "the dispatcher sleeps exactly until the next attempt");
      clock.advance(delay - 1);
      assert.equal(rx.requests.length, n, "not a millisecond early");
      clock.advance(1);
      await waitFor(`attempt ${n + 1}`, () => rx.requests.length === n + 1);
    }
    await waitFor("delivered", async () => (await current()).status === "delivered");
    assert.deepEqual(
      rx.requests.map((r) => r.at - t0),
      [0, 500, 1500, 3500],
    );
    // Each attempt is signed with the time (in whole seconds) it was sent.
    assert.deepEqual(
      rx.requests.map((r) => Number(/^t=(\d+),/.exec(r.headers["ferry-signature"] as string)![1])),
      [0, 500, 1500, 3500].map((ms) => Math.floor((t0 + ms) / 1000)),
    );
  });

  test("Retry-After is honoured; attempts stop at maxAttempts with status failed", async () => {
    const clock = new ManualClock();
    const rx = await receiver(status(429, { "retry-after": "7" }), clock.now);
    const { store, dispatcher } = setup({ clock, sleep: clock.sleep, random: () => 0, retry: { maxAttempts: 2 } });
    store.addSubscription({ id: "sub_1", url: rx.url, secret: "s", events: ["promotion.failed"] });
    const ev = event({ type: "promotion.failed" });
    dispatcher.enqueue(ev);
    await waitFor("first attempt recorded", async () => (await statusOf(store, ev.id, "sub_1"))?.attempts === 1);
    await waitFor("retry scheduled", async () => (await statusOf(store, ev.id, "sub_1"))?.nextAttemptAt === clock.now() + 7000);
    clock.advance(7000);
    await waitFor("failed", async () => (await statusOf(store, ev.id, "sub_1"))?.status === "failed");
    const d = (await statusOf(store, ev.id, "sub_1"))!;
    assert.equal(d.attempts, 2);
    assert.equal(d.lastStatusCode, 429);
    assert.match(d.lastError!, /^HTTP 429/);
    assert.equal(d.nextAttemptAt, null);
    assert.equal(rx.requests.length, 2);
  });

  test("410 Gone disables the subscription; later events skip it", async () => {
    const gone = await receiver(status(410));
    const fine = await receiver(ok);
    const { store, dispatcher } = setup();
    store.addSubscription({ id: "sub_gone", url: gone.url, secret: "s", events: ["promotion.requested"] });
    store.addSubscription({ id: "sub_fine", url: fine.url, secret: "s", events: ["promotion.requested"] });
    const first = event({ type: "promotion.requested" });
    dispatcher.enqueue(first);
    await waitFor("410 recorded", async () => (await statusOf(store, first.id, "sub_gone"))?.status === "failed");
    const d = (await statusOf(store, first.id, "sub_gone"))!;
    assert.equal(d.attempts, 1, "410 is not retried");
    assert.equal(d.lastStatusCode, 410);
    await waitFor("subscription disabled", () => store.getSubscription("sub_gone")?.enabled === false);
    assert.match(store.getSubscription("sub_gone")!.disabledReason!, /410 Gone/);

    const second = event({ type: "promotion.requested" });
    dispatcher.enqueue(second);
    await waitFor("healthy one delivered", async () => (await statusOf(store, second.id, "sub_fine"))?.status === "delivered");
    assert.equal(await statusOf(store, second.id, "sub_gone"), undefined);
    assert.equal(gone.requests.length, 1);
  });

  test("enqueue returns at once even when the endpoint hangs", async () => {
    const rx = await receiver(hang);
    const { store, dispatcher } = setup({ requestTimeoutMs: 60_000 });
    store.addSubscription({ id: "sub_1", url: rx.url, secret: "s", events: ["promotion.blocked"] });
    dispatcher.enqueue(event({ type: "promotion.blocked" }));
    await waitFor("the endpoint holds a request", () => rx.requests.length >= 1);
    const start = performance.now();
    for (let i = 0; i < 500; i++) assert.equal(dispatcher.enqueue(event({ type: "promotion.blocked" })), true);
    const elapsed = performance.now() - start;
    assert.ok(elapsed < 250, `500 enqueues took ${elapsed.toFixed(1)} ms`);
    await waitFor("deliveries queued", () => dispatcher.stats().queued + dispatcher.stats().inFlight === 501);
    assert.ok(dispatcher.stats().inFlight <= 4, "per-endpoint concurrency holds");
  });

  test("circuit breaker: a hanging endpoint opens after 5 timeouts, others keep flowing, half-open probes one at a time", async () => {
    const clock = new ManualClock();
    const slow = await receiver(hang, clock.now);
    const fast = await receiver(ok, clock.now);
    const { store, dispatcher } = setup({
      clock,
      sleep: clock.sleep,
      requestTimeoutMs: 150,
      perEndpointConcurrency: 1,
      retry: { baseDelayMs: 0 },
    });
    store.addSubscription({ id: "sub_slow", url: slow.url, secret: "s", events: ["promotion.deployed"] });
    store.addSubscription({ id: "sub_fast", url: fast.url, secret: "s", events: ["promotion.deployed"] });

    const events = [event({ type: "promotion.deployed" }), event({ type: "promotion.deployed" }), event({ type: "promotion.deployed" })];
    for (const e of events) dispatcher.enqueue(e);
    await waitFor("fast endpoint served", () => fast.requests.length === 3);
    // Served before even the first of the slow endpoint's requests had timed out.
    assert.equal(dispatcher.endpoint(slow.url).consecutiveFailures, 0);
    assert.ok(slow.requests.length <= 1);

    await waitFor("breaker open", () => dispatcher.endpoint(slow.url).state === "open", 5_000);
    assert.equal(slow.requests.length, 5);
    assert.equal(dispatcher.endpoint(slow.url).openUntil, clock.now() + 60_000);
    const slowDeliveries = await deliveriesOf(store, "sub_slow");
    assert.ok(slowDeliveries.every((d) => d.status === "pending"));
    assert.match(slowDeliveries.find((d) => d.attempts > 0)!.lastError!, /no response within 150 ms/);

    // While open: nothing goes to the slow endpoint, new events still reach the fast one.
    const more = [event({ type: "promotion.deployed" }), event({ type: "promotion.deployed" })];
    for (const e of more) dispatcher.enqueue(e);
    await waitFor("fast endpoint served again", () => fast.requests.length === 5);
    await waitFor("new slow deliveries queued", async () => (await deliveriesOf(store, "sub_slow")).length === 5);
    assert.equal(slow.requests.length, 5);
    assert.equal(clock.nextWake(), clock.now() + 60_000);

    // After openMs: exactly one probe; it times out, so the breaker opens again.
    clock.advance(60_000);
    await waitFor("probe", () => slow.requests.length === 6);
    await waitFor("open again", () => dispatcher.endpoint(slow.url).state === "open" && dispatcher.stats().inFlight === 0);
    assert.equal(slow.requests.length, 6);

    // The endpoint recovers: the next probe succeeds, the breaker closes and the backlog drains.
    slow.handler = ok;
    clock.advance(60_000);
    await waitFor("backlog delivered", async () => (await deliveriesOf(store, "sub_slow")).every((d) => d.status === "delivered"));
    assert.equal(dispatcher.endpoint(slow.url).state, "closed");
    assert.equal(dispatcher.endpoint(slow.url).consecutiveFailures, 0);
    assert.equal(slow.requests.length, 6 + 5);
  });

  test("a full queue drops the oldest waiting delivery and records it as dropped", async () => {
    const rx = await receiver(hang);
    const { store, dispatcher } = setup({ queueLimit: 3, perEndpointConcurrency: 1, requestTimeoutMs: 60_000 });
    store.addSubscription({ id: "sub_1", url: rx.url, secret: "s", events: ["promotion.rolled_back"] });
    const evs = Array.from({ length: 6 }, () => event({ type: "promotion.rolled_back" }));
    dispatcher.enqueue(evs[0]!);
    await waitFor("first in flight", () => rx.requests.length === 1);
    for (const e of evs.slice(1)) dispatcher.enqueue(e);
    await waitFor("two dropped", async () => (await store.listDeliveries({ status: "dropped" })).length === 2);
    const byEvent = async (i: number) => (await statusOf(store, evs[i]!.id, "sub_1"))!;
    assert.deepEqual(
      await Promise.all([0, 1, 2, 3, 4, 5].map(async (i) => (await byEvent(i)).status)),
      ["pending", "dropped", "dropped", "pending", "pending", "pending"],
    );
    assert.match((await byEvent(1)).lastError!, /more than 3 deliveries were waiting/);
    assert.equal((await byEvent(1)).nextAttemptAt, null);
    assert.equal(dispatcher.stats().queued, 3);

    // Shutdown gives up on the hanging request after the deadline and leaves it pending, not counted as an attempt.
    const stopped = await dispatcher.stop({ timeoutMs: 50 });
    assert.deepEqual(stopped, { aborted: 1, pending: 3 });
    const first = await byEvent(0);
    assert.equal(first.status, "pending");
    assert.equal(first.attempts, 0);
    assert.equal(first.lastError, "interrupted by shutdown");
    assert.equal(dispatcher.state, "stopped");
  });

  test("stop() waits for requests in flight; nothing is accepted afterwards", async () => {
    let release: (() => void) | undefined;
    const rx = await receiver((_req, res) => {
      release = () => res.end("ok");
    });
    const { store, dispatcher } = setup();
    store.addSubscription({ id: "sub_1", url: rx.url, secret: "s", events: ["promotion.rejected"] });
    const ev = event({ type: "promotion.rejected" });
    dispatcher.enqueue(ev);
    await waitFor("in flight", () => release !== undefined);
    const stopping = dispatcher.stop({ timeoutMs: 5_000 });
    assert.equal(dispatcher.state, "draining");
    assert.equal(dispatcher.enqueue(event({ type: "promotion.rejected" })), false);
    release!();
    assert.deepEqual(await stopping, { aborted: 0, pending: 0 });
    assert.equal((await statusOf(store, ev.id, "sub_1"))?.status, "delivered");
  });

  test("malformed events are refused synchronously", () => {
    const { dispatcher } = setup();
    assert.throws(() => dispatcher.enqueue(event({ type: "promotion.exploded" as never })), TypeError);
    assert.throws(() => dispatcher.enqueue(event({ id: "" })), TypeError);
    assert.throws(() => dispatcher.enqueue(event({ at: "yesterday" })), TypeError);
    assert.throws(() => dispatcher.enqueue(event({ data: { n: 1n } })), TypeError);
  });
});
