// Webhook destinations: internal addresses refused by default (at subscription and at delivery, on the addresses the
// connection is made to), an explicit allow-list, no credentials from URLs, and receivers' answers kept apart from
// the error line every viewer reads.
import { strict as assert } from "node:assert";
import type { lookup } from "node:dns";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { testBackends } from "../../adapters/store/test-backends.js";
import { listAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { SqlWebhookStore } from "./webhook-service.js";
import { WebhookTargetError, WebhookTargetPolicy } from "./webhook-targets.js";
import { HttpWebhookTransport, InMemoryWebhookStore, WebhookDispatcher, type WebhookDelivery } from "./webhooks.js";

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

async function receiver(answer: (res: http.ServerResponse) => void = (res) => res.end("ok")) {
  const requests: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.headers);
    req.resume();
    req.on("end", () => answer(res));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, requests };
}

async function deliverOnce(url: string, transport: HttpWebhookTransport): Promise<WebhookDelivery> {
  const store = new InMemoryWebhookStore();
  store.addSubscription({ id: "sub_1", url, secret: "s".repeat(32), events: ["promotion.approved"] });
  const dispatcher = new WebhookDispatcher({ store, transport, retry: { maxAttempts: 1 } });
  after(() => dispatcher.stop({ timeoutMs: 100 }));
  dispatcher.enqueue({ type: "promotion.approved", id: `evt_${Math.random()}`, at: new Date().toISOString(), data: {} });
  const deadline = Date.now() + 5000;
  for (;;) {
    const [d] = await store.listDeliveries({ subscriptionId: "sub_1" });
    if (d && d.status !== "pending") return d;
    if (Date.now() > deadline) throw new Error(`delivery still pending: ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("webhook destination policy", () => {
  const deny = new WebhookTargetPolicy();
  it("refuses loopback, private, link-local, metadata and mapped addresses; allows public ones", () => {
    for (const a of ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "64:ff9b::a9fe:a9fe"]) {
      assert.ok(deny.refusal(a), `${a} must be refused`);
    }
    for (const a of ["93.184.216.34", "8.8.8.8", "2606:4700::1111"]) assert.equal(deny.refusal(a), null, a);
    assert.throws(() => deny.checkUrl(new URL("http://127.0.0.1:9/x")), WebhookTargetError);
    assert.throws(() => deny.checkUrl(new URL("http://[::1]:9/x")), WebhookTargetError);
    assert.throws(() => deny.checkUrl(new URL("http://localhost:9/x")), WebhookTargetError);
    assert.throws(() => deny.checkUrl(new URL("http://user:pw@example.com/x")), /user:password/);
    deny.checkUrl(new URL("https://hooks.example.com/x"));
  });

  it("allows what the allow-list names: CIDRs, addresses and exact host names; refuses bad entries", () => {
    const allow = new WebhookTargetPolicy(["127.0.0.1/32", "10.0.0.0/8", "::1", "hooks.internal"]);
    assert.equal(allow.refusal("127.0.0.1"), null);
    assert.equal(allow.refusal("10.9.9.9"), null);
    assert.equal(allow.refusal("::1"), null);
    assert.ok(allow.refusal("127.0.0.2"), "only the /32 named");
    assert.ok(allow.refusal("169.254.169.254"));
    allow.checkUrl(new URL("http://hooks.internal/x"));
    assert.throws(() => new WebhookTargetPolicy(["10.0.0.0/33"]), RangeError);
    assert.throws(() => new WebhookTargetPolicy(["not a host!"]), RangeError);
  });

  it("checks the addresses a name resolves to at connect time", async () => {
    const err = await new Promise<Error | null>((resolve) => {
      const hook = deny.lookupFor("localhost") as unknown as (h: string, o: { all: boolean }, cb: (e: Error | null) => void) => void;
      hook("localhost", { all: false }, (e) => resolve(e));
    });
    assert.ok(err instanceof WebhookTargetError, String(err));
  });
});

describe("webhook deliveries under the policy", () => {
  it("refuses to deliver to loopback by default: the receiver is never contacted and the delivery fails at once", async () => {
    const rx = await receiver();
    const d = await deliverOnce(`http://127.0.0.1:${rx.port}/hooks`, new HttpWebhookTransport());
    assert.equal(d.status, "failed");
    assert.equal(d.attempts, 1);
    assert.match(d.lastError ?? "", /destination refused: 127\.0\.0\.1 is a loopback address/);
    assert.equal(rx.requests.length, 0);
  });

  it("checks the addresses a name resolves to when it connects, not only the name", async () => {
    const rx = await receiver();
    // A resolver that sends an innocent-looking public name to loopback, as a rebinding DNS server would.
    const resolver = ((_host: string, _o: unknown, cb: (e: null, a: { address: string; family: number }[]) => void) => cb(null, [{ address: "127.0.0.1", family: 4 }])) as unknown as typeof lookup;
    const refused = await deliverOnce(`http://hooks.example.test:${rx.port}/hooks`, new HttpWebhookTransport({ policy: new WebhookTargetPolicy([], { resolver }) }));
    assert.equal(refused.status, "failed");
    assert.match(refused.lastError ?? "", /destination refused: hooks\.example\.test resolves to 127\.0\.0\.1 is a loopback address/);
    assert.equal(rx.requests.length, 0);
    // The same name with loopback allowed connects through the same hook, to the address it checked.
    const delivered = await deliverOnce(`http://hooks.example.test:${rx.port}/hooks`, new HttpWebhookTransport({ policy: new WebhookTargetPolicy(["127.0.0.1/32"], { resolver }) }));
    assert.equal(delivered.status, "delivered");
    assert.equal(rx.requests.length, 1);
  });

  it("drops user:password@ from an old subscription's URL, and keeps the receiver's answer out of lastError", async () => {
    const rx = await receiver((res) => res.writeHead(500).end("internal detail: db password is hunter2"));
    const d = await deliverOnce(`http://user:secret@127.0.0.1:${rx.port}/hooks`, new HttpWebhookTransport({ allow: ["127.0.0.1/32"] }));
    assert.equal(rx.requests.length, 1);
    assert.equal(rx.requests[0]!.authorization, undefined, "no Basic auth from the URL");
    assert.equal(d.lastError, "HTTP 500");
    assert.match(d.lastResponse ?? "", /hunter2/);
  });
});

for (const b of testBackends()) {
  describe(`webhook subscriptions on ${b.name}`, () => {
    it("refuses internal destinations and credentials in the URL, audited; allows what the allow-list names", async (t) => {
      const store = await b.open(t);
      const clock = { now: () => Date.now() };
      const strict = new SqlWebhookStore({ store, clock, policy: new WebhookTargetPolicy() });
      for (const url of ["http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://localhost/x", "http://10.0.0.5/x"]) {
        await assert.rejects(strict.create({ url }, "admin"), (e: unknown) => e instanceof FerryError && e.code === "WEBHOOK_TARGET_FORBIDDEN", url);
      }
      await assert.rejects(strict.create({ url: "https://user:pw@hooks.example.com/x" }, "admin"), (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED");
      assert.equal((await strict.list()).length, 0);
      const refused = (await listAudit(store)).filter((r) => r.action === "webhook.create" && r.outcome === "refused");
      assert.equal(refused.length, 5);
      const allowing = new SqlWebhookStore({ store, clock, policy: new WebhookTargetPolicy(["127.0.0.1/32"]) });
      const ok = await allowing.create({ url: "http://127.0.0.1:8080/x" }, "admin");
      assert.equal(ok.url, "http://127.0.0.1:8080/x");
      // The receiver's answer is stored apart from the error line.
      await allowing.recordDelivery({ id: "whd_1", subscriptionId: ok.id, event: "promotion.approved", eventId: "evt_1", status: "failed", attempts: 1, lastError: "HTTP 500", lastResponse: "secret body", lastStatusCode: 500, nextAttemptAt: null, createdAt: Date.now() });
      const [d] = await allowing.listDeliveries({ subscriptionId: ok.id });
      assert.deepEqual([d?.lastError, d?.lastResponse], ["HTTP 500", "secret body"]);
    });
  });
}
