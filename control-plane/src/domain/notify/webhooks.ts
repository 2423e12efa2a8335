// Outgoing webhooks: promotion events POSTed as signed JSON to subscribed endpoints (docs/webhooks.md).
//
// Terms:
//   event          something that happened to a promotion ({ type, id, at, data }); WEBHOOK_EVENT_TYPES lists them
//   subscription   an endpoint URL, a shared secret and the event types it wants
//   delivery       one event for one subscription; the unit that is retried, and whose status can be queried
//   attempt        one POST of a delivery
//   endpoint       a subscription URL; the circuit breaker keeps one state per endpoint
//   breaker        closed (requests flow) -> open (after N consecutive failures; nothing is sent for openMs) ->
//                  half-open (one probe; success closes, failure opens again)
//
// The caller (the promotion workflow) must never wait on a receiver, so enqueue() only validates and serialises
// the event, puts it on an in-memory intake and returns; subscriptions are looked up and deliveries made in the
// background. Memory is bounded: at most `queueLimit` deliveries wait at once, and when one more arrives the oldest
// waiting delivery is dropped and recorded as such — a lost notification is better than a control plane that runs
// out of memory because one receiver is down. A slow or failing endpoint cannot delay the others: each endpoint has
// its own concurrency limit and breaker, and every request has a timeout.
//
// The HTTP transport and the store sit behind small interfaces so this module holds the policy and tests can
// drive it with real local receivers and a manual clock. The SQL store lives with the other store adapters.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import * as http from "node:http";
import * as https from "node:https";
import { setTimeout as sleepReal } from "node:timers/promises";

import type { Clock } from "../../ports/clock.js";
import { WebhookTargetError, WebhookTargetPolicy } from "./webhook-targets.js";

export const WEBHOOK_EVENT_TYPES = [
  "promotion.requested",
  "promotion.approved",
  "promotion.rejected",
  "promotion.blocked",
  "promotion.deployed",
  "promotion.failed",
  "promotion.rolled_back",
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookEvent {
  type: WebhookEventType;
  /** The event's id: the same for every subscription it goes to, so receivers can de-duplicate on it. */
  id: string;
  /** ISO-8601 UTC time the event happened. */
  at: string;
  data: Record<string, unknown>;
}

export interface WebhookSubscription {
  id: string;
  url: string;
  /** Shared secret for the ferry-signature HMAC. Never logged. */
  secret: string;
  events: readonly WebhookEventType[];
  enabled: boolean;
  /** Why the subscription was disabled (e.g. the endpoint answered 410 Gone), or null. */
  disabledReason: string | null;
}

export type WebhookDeliveryStatus = "pending" | "delivered" | "failed" | "dropped";

export interface WebhookDelivery {
  id: string;
  subscriptionId: string;
  /** The event type. */
  event: WebhookEventType;
  eventId: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  /** What went wrong last: "HTTP 503", "no response within 5000 ms", … — never the receiver's response body. */
  lastError: string | null;
  /**
   * The start of the receiver's last error response (at most 512 bytes). It can carry whatever the receiver says, so
   * the API shows it to admins only (docs/webhooks.md).
   */
  lastResponse?: string | null;
  /** HTTP status of the last attempt, or null when it got no response (timeout, refused connection...). */
  lastStatusCode: number | null;
  /** ms since the epoch; null once the delivery is finished (delivered, failed or dropped). */
  nextAttemptAt: number | null;
  createdAt: number;
}

/** What the dispatcher needs to persist. Implementations must return copies, not live objects. */
export interface WebhookStore {
  /** Enabled subscriptions that want this event type. */
  listSubscriptions(eventType: WebhookEventType): Promise<WebhookSubscription[]>;
  disableSubscription(id: string, reason: string): Promise<void>;
  /** Insert or replace the delivery with this id. */
  recordDelivery(delivery: WebhookDelivery): Promise<void>;
  getDelivery(id: string): Promise<WebhookDelivery | undefined>;
  listDeliveries(filter?: { eventId?: string; subscriptionId?: string; status?: WebhookDeliveryStatus }): Promise<WebhookDelivery[]>;
}

/** A store in memory: for tests, and for a control plane that does not need delivery history across restarts. */
export class InMemoryWebhookStore implements WebhookStore {
  readonly #subscriptions = new Map<string, WebhookSubscription>();
  readonly #deliveries = new Map<string, WebhookDelivery>();

  addSubscription(s: Omit<WebhookSubscription, "enabled" | "disabledReason"> & Partial<WebhookSubscription>): WebhookSubscription {
    const sub: WebhookSubscription = { enabled: true, disabledReason: null, ...s, events: [...s.events] };
    this.#subscriptions.set(sub.id, sub);
    return { ...sub };
  }

  getSubscription(id: string): WebhookSubscription | undefined {
    const s = this.#subscriptions.get(id);
    return s === undefined ? undefined : { ...s };
  }

  async listSubscriptions(eventType: WebhookEventType): Promise<WebhookSubscription[]> {
    return [...this.#subscriptions.values()].filter((s) => s.enabled && s.events.includes(eventType)).map((s) => ({ ...s }));
  }

  async disableSubscription(id: string, reason: string): Promise<void> {
    const s = this.#subscriptions.get(id);
    if (s !== undefined) this.#subscriptions.set(id, { ...s, enabled: false, disabledReason: reason });
  }

  async recordDelivery(delivery: WebhookDelivery): Promise<void> {
    this.#deliveries.set(delivery.id, { ...delivery });
  }

  async getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    const d = this.#deliveries.get(id);
    return d === undefined ? undefined : { ...d };
  }

  async listDeliveries(filter: { eventId?: string; subscriptionId?: string; status?: WebhookDeliveryStatus } = {}): Promise<WebhookDelivery[]> {
    return [...this.#deliveries.values()]
      .filter(
        (d) =>
          (filter.eventId === undefined || d.eventId === filter.eventId) &&
          (filter.subscriptionId === undefined || d.subscriptionId === filter.subscriptionId) &&
          (filter.status === undefined || d.status === filter.status),
      )
      .map((d) => ({ ...d }));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Signature

/**
 * The ferry-signature header value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. The timestamp is
 * inside the MAC, so a receiver that checks its age refuses a captured request replayed later.
 */
export function signWebhook(secret: string, timestampSec: number, body: string | Uint8Array): string {
  if (!Number.isSafeInteger(timestampSec) || timestampSec < 0) throw new RangeError(`bad timestamp ${timestampSec}`);
  return `t=${timestampSec},v1=${mac(secret, timestampSec, body).toString("hex")}`;
}

function mac(secret: string, timestampSec: number, body: string | Uint8Array): Buffer {
  return createHmac("sha256", secret).update(`${timestampSec}.`).update(body).digest();
}

export type WebhookSignatureCheck =
  | { ok: true; timestampSec: number }
  | { ok: false; reason: "malformed" | "stale" | "mismatch"; message: string };

/**
 * For receivers: checks a ferry-signature header against the raw request body (the bytes received, not a
 * re-serialised parse). Several v1 entries are accepted (any may match), so a sender can sign with an old and a new
 * secret while they are rotated. The comparison is constant-time.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined | null,
  body: string | Uint8Array,
  opts: { toleranceSec?: number; now?: number | Date } = {},
): WebhookSignatureCheck {
  const toleranceSec = opts.toleranceSec ?? 300;
  const nowMs = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
  if (typeof header !== "string" || header === "") return { ok: false, reason: "malformed", message: "no ferry-signature header" };
  let t: number | undefined;
  const v1: Buffer[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (eq < 0) return { ok: false, reason: "malformed", message: `ferry-signature part ${JSON.stringify(part)} is not key=value` };
    if (k === "t") {
      if (t !== undefined || !/^\d{1,12}$/.test(v)) return { ok: false, reason: "malformed", message: "ferry-signature needs exactly one numeric t=" };
      t = Number(v);
    } else if (k === "v1") {
      if (!/^[0-9a-f]{64}$/.test(v)) return { ok: false, reason: "malformed", message: "ferry-signature v1 must be 64 lowercase hex" };
      v1.push(Buffer.from(v, "hex"));
    }
    // Other keys (future schemes) are ignored, so senders can add one before receivers know it.
  }
  if (t === undefined || v1.length === 0) return { ok: false, reason: "malformed", message: "ferry-signature needs t= and v1=" };
  if (Math.abs(nowMs / 1000 - t) > toleranceSec) {
    return { ok: false, reason: "stale", message: `ferry-signature timestamp ${t} is more than ${toleranceSec} s from now` };
  }
  const expected = mac(secret, t, body);
  // Every candidate is compared, so the time taken does not say which one matched.
  let match = false;
  for (const candidate of v1) match = timingSafeEqual(candidate, expected) || match;
  return match ? { ok: true, timestampSec: t } : { ok: false, reason: "mismatch", message: "ferry-signature does not match the body" };
}

// ---------------------------------------------------------------------------------------------------------------
// Transport

export interface WebhookRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
  /** Aborted on timeout and at shutdown; the transport must give up at once. */
  signal: AbortSignal;
}

export interface WebhookResponse {
  status: number;
  retryAfter: string | null;
  /** The start of the response body, for lastError. */
  bodySnippet: string;
}

export interface WebhookTransport {
  send(req: WebhookRequest): Promise<WebhookResponse>;
  close?(): void;
}

const SNIPPET_BYTES = 512;

/**
 * POSTs with node:http / node:https over keep-alive agents of its own, so close() can drop every socket. Every
 * request goes through the destination policy (webhook-targets.ts): the URL's credentials are dropped, an IP host is
 * checked, and a host name is checked on the addresses the connection is made to. The default policy allows no
 * internal destination at all.
 */
export class HttpWebhookTransport implements WebhookTransport {
  readonly #http = new http.Agent({ keepAlive: true });
  readonly #https = new https.Agent({ keepAlive: true });
  readonly #policy: WebhookTargetPolicy;

  constructor(opts: { policy?: WebhookTargetPolicy; allow?: readonly string[] } = {}) {
    this.#policy = opts.policy ?? new WebhookTargetPolicy(opts.allow ?? []);
  }

  send(req: WebhookRequest): Promise<WebhookResponse> {
    return new Promise<WebhookResponse>((resolve, reject) => {
      const url = new URL(req.url);
      // Node would send user:password@ as Basic auth to wherever the name resolves; subscriptions made before this
      // rule may still carry one.
      url.username = "";
      url.password = "";
      try {
        this.#policy.checkUrl(url);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      const secure = url.protocol === "https:";
      const request = (secure ? https : http).request(url, {
        method: "POST",
        headers: { ...req.headers, "content-length": String(Buffer.byteLength(req.body)) },
        agent: secure ? this.#https : this.#http,
        signal: req.signal,
        lookup: this.#policy.lookupFor(url.hostname),
      });
      request.on("error", reject);
      request.on("response", (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on("data", (c: Buffer) => {
          if (kept < SNIPPET_BYTES) {
            chunks.push(c.subarray(0, SNIPPET_BYTES - kept));
            kept += Math.min(c.length, SNIPPET_BYTES - kept);
          }
        });
        res.on("error", reject);
        res.on("close", () => {
          if (!res.complete) reject(new Error("connection closed before the response ended"));
        });
        res.on("end", () => {
          const retryAfter = res.headers["retry-after"];
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: typeof retryAfter === "string" ? retryAfter : null,
            bodySnippet: Buffer.concat(chunks).toString("utf8"),
          });
        });
      });
      request.end(req.body);
    });
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backoff

export interface WebhookRetryPolicy {
  /** Attempts per delivery, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: WebhookRetryPolicy = { maxAttempts: 8, baseDelayMs: 1_000, maxDelayMs: 300_000 };

/**
 * Delay before the next attempt after `attempts` failed ones: full jitter, random() × min(cap, base × 2^(attempts-1)).
 * The jitter is applied after the cap so that deliveries that failed together (an endpoint that was down) do not
 * come back together either. A Retry-After from the receiver is honoured as a floor, still within the cap.
 */
export function webhookRetryDelayMs(attempts: number, policy: WebhookRetryPolicy, random: () => number, retryAfterMs = 0): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempts - 1));
  return Math.min(policy.maxDelayMs, Math.max(Math.floor(random() * exp), retryAfterMs));
}

function parseRetryAfter(value: string | null, nowMs: number): number {
  if (value === null) return 0;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(0, at - nowMs);
}

// ---------------------------------------------------------------------------------------------------------------
// Dispatcher

export type BreakerState = "closed" | "open" | "half-open";

export interface WebhookBreakerPolicy {
  /** Consecutive failed attempts that open the breaker. */
  failureThreshold: number;
  /** How long an open breaker sends nothing before one probe is let through. */
  openMs: number;
}

export const DEFAULT_BREAKER_POLICY: WebhookBreakerPolicy = { failureThreshold: 5, openMs: 60_000 };

/** The subset of a pino logger the dispatcher uses. */
export interface WebhookLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info?(obj: Record<string, unknown>, msg: string): void;
}

export type WebhookDispatcherState = "running" | "draining" | "stopped";

export interface WebhookDispatcherOptions {
  store: WebhookStore;
  transport?: WebhookTransport;
  clock?: Clock;
  /** Waits ms (per `clock`) or until the signal aborts; resolving or rejecting on abort are both fine. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<unknown>;
  /** [0, 1); the jitter source. */
  random?: () => number;
  logger?: WebhookLogger;
  /** Per attempt, from sending the request to the end of the response body. Default 5 s. */
  requestTimeoutMs?: number;
  retry?: Partial<WebhookRetryPolicy>;
  breaker?: Partial<WebhookBreakerPolicy>;
  /** Deliveries waiting (not in flight) at most; beyond it the oldest waiting one is dropped. Default 10 000. */
  queueLimit?: number;
  /**
   * Events accepted but not yet turned into deliveries (subscriptions not looked up yet) at most. Default 10 000.
   * Beyond it the oldest such event is dropped; it has no delivery to record yet, so it is logged and counted in
   * stats().droppedEvents. The intake normally holds only the events of the last few milliseconds.
   */
  intakeLimit?: number;
  /** Requests in flight per endpoint at most. Default 4. */
  perEndpointConcurrency?: number;
  /** Sent as user-agent. */
  userAgent?: string;
}

interface Queued {
  seq: number;
  record: WebhookDelivery;
  url: string;
  secret: string;
  body: string;
}

interface Endpoint {
  state: BreakerState;
  consecutiveFailures: number;
  openUntil: number;
  inFlight: number;
  probing: boolean;
}

interface InFlight {
  abort: AbortController;
  done: Promise<void>;
  shutdown: boolean;
  /** The half-open breaker's single probe. */
  probe: boolean;
}

type Outcome =
  | { kind: "response"; status: number; retryAfter: string | null; snippet: string }
  | { kind: "error"; message: string; refused?: boolean };

const silent: WebhookLogger = { warn: () => {} };

export class WebhookDispatcher {
  readonly #store: WebhookStore;
  readonly #transport: WebhookTransport;
  readonly #clock: Clock;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<unknown>;
  readonly #random: () => number;
  readonly #log: WebhookLogger;
  readonly #timeoutMs: number;
  readonly #retry: WebhookRetryPolicy;
  readonly #breaker: WebhookBreakerPolicy;
  readonly #queueLimit: number;
  readonly #intakeLimit: number;
  readonly #perEndpoint: number;
  readonly #userAgent: string;

  #state: WebhookDispatcherState = "running";
  #seq = 0;
  readonly #intake: { event: WebhookEvent; body: string }[] = [];
  #intakeLoop: Promise<void> | null = null;
  /** Waiting deliveries, oldest (lowest seq) first. */
  #queue: Queued[] = [];
  readonly #inFlight = new Map<string, InFlight>();
  readonly #endpoints = new Map<string, Endpoint>();
  #wake: { at: number; abort: AbortController } | null = null;
  #droppedEvents = 0;

  constructor(opts: WebhookDispatcherOptions) {
    this.#store = opts.store;
    this.#transport = opts.transport ?? new HttpWebhookTransport();
    this.#clock = opts.clock ?? { now: () => Date.now() };
    this.#sleep = opts.sleep ?? ((ms, signal) => sleepReal(ms, undefined, { signal, ref: false }));
    this.#random = opts.random ?? Math.random;
    this.#log = opts.logger ?? silent;
    this.#timeoutMs = opts.requestTimeoutMs ?? 5_000;
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...opts.retry };
    this.#breaker = { ...DEFAULT_BREAKER_POLICY, ...opts.breaker };
    this.#queueLimit = opts.queueLimit ?? 10_000;
    this.#intakeLimit = opts.intakeLimit ?? 10_000;
    this.#perEndpoint = opts.perEndpointConcurrency ?? 4;
    this.#userAgent = opts.userAgent ?? "ferry-webhooks/1";
    if (this.#retry.maxAttempts < 1) throw new RangeError("retry.maxAttempts must be at least 1");
    if (this.#queueLimit < 1 || this.#intakeLimit < 1 || this.#perEndpoint < 1) {
      throw new RangeError("queueLimit, intakeLimit and perEndpointConcurrency must be at least 1");
    }
  }

  get state(): WebhookDispatcherState {
    return this.#state;
  }

  /**
   * Accepts an event for delivery to every subscription that wants it, and returns at once: nothing here waits on
   * the store or the network. Returns false (and logs) when the dispatcher is stopping. Throws a TypeError for an
   * event that is not well-formed (a programming error, found before anything is queued).
   */
  enqueue(event: WebhookEvent): boolean {
    if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(event.type)) throw new TypeError(`unknown webhook event type ${JSON.stringify(event.type)}`);
    if (typeof event.id !== "string" || event.id === "") throw new TypeError("webhook event id must be a non-empty string");
    if (typeof event.at !== "string" || Number.isNaN(Date.parse(event.at))) throw new TypeError("webhook event at must be an ISO-8601 time");
    if (typeof event.data !== "object" || event.data === null || Array.isArray(event.data)) throw new TypeError("webhook event data must be an object");
    // Serialised now: the caller may go on to mutate data, and a value JSON cannot carry should fail here, not later.
    const body = JSON.stringify({ id: event.id, type: event.type, at: event.at, data: event.data });
    if (this.#state !== "running") {
      this.#log.warn({ eventId: event.id, eventType: event.type }, "webhook event not accepted: dispatcher is stopping");
      return false;
    }
    this.#intake.push({ event, body });
    if (this.#intake.length > this.#intakeLimit) {
      const lost = this.#intake.shift()!;
      this.#droppedEvents++;
      this.#log.warn({ eventId: lost.event.id, eventType: lost.event.type }, "webhook intake full: oldest event dropped");
    }
    this.#intakeLoop ??= this.#drainIntake().finally(() => {
      this.#intakeLoop = null;
    });
    return true;
  }

  /** A delivery's status as last recorded. */
  delivery(id: string): Promise<WebhookDelivery | undefined> {
    return this.#store.getDelivery(id);
  }

  deliveries(filter?: { eventId?: string; subscriptionId?: string; status?: WebhookDeliveryStatus }): Promise<WebhookDelivery[]> {
    return this.#store.listDeliveries(filter);
  }

  /** The breaker of an endpoint (a subscription URL); "closed" for one never contacted. */
  endpoint(url: string): { state: BreakerState; consecutiveFailures: number; openUntil: number | null } {
    const ep = this.#endpoints.get(url);
    if (ep === undefined) return { state: "closed", consecutiveFailures: 0, openUntil: null };
    return { state: ep.state, consecutiveFailures: ep.consecutiveFailures, openUntil: ep.state === "open" ? ep.openUntil : null };
  }

  stats(): { intake: number; queued: number; inFlight: number; droppedEvents: number } {
    return { intake: this.#intake.length, queued: this.#queue.length, inFlight: this.#inFlight.size, droppedEvents: this.#droppedEvents };
  }

  /**
   * Stops taking events and starting attempts, and waits for requests in flight — and for events already accepted
   * to become deliveries — up to `timeoutMs` (default 10 s). Requests still running then are aborted and recorded as
   * pending ("interrupted by shutdown"), as are deliveries that were waiting: a durable store can resume them.
   */
  async stop(opts: { timeoutMs?: number } = {}): Promise<{ aborted: number; pending: number }> {
    // aborted: requests cut off at the deadline; pending: deliveries that were waiting. Both stay "pending".
    if (this.#state === "stopped") return { aborted: 0, pending: this.#queue.length };
    this.#state = "draining";
    this.#cancelWake();
    const deadline = AbortSignal.timeout(opts.timeoutMs ?? 10_000);
    const drained = Promise.allSettled([this.#intakeLoop, ...[...this.#inFlight.values()].map((f) => f.done)]);
    await Promise.race([drained, new Promise((resolve) => deadline.addEventListener("abort", resolve, { once: true }))]);
    const left = [...this.#inFlight.values()];
    for (const f of left) {
      f.shutdown = true;
      f.abort.abort(new Error("shutdown"));
    }
    await Promise.allSettled(left.map((f) => f.done));
    this.#state = "stopped";
    this.#transport.close?.();
    return { aborted: left.length, pending: this.#queue.length };
  }

  // -------------------------------------------------------------------------------------------------------------

  async #drainIntake(): Promise<void> {
    for (let item = this.#intake.shift(); item !== undefined; item = this.#intake.shift()) {
      const { event, body } = item;
      let subs: WebhookSubscription[];
      try {
        subs = await this.#store.listSubscriptions(event.type);
      } catch (err) {
        this.#log.warn({ eventId: event.id, eventType: event.type, err }, "webhook subscriptions could not be read: event not delivered");
        continue;
      }
      for (const sub of subs) {
        const now = this.#clock.now();
        const record: WebhookDelivery = {
          id: `whd_${randomBytes(12).toString("base64url")}`,
          subscriptionId: sub.id,
          event: event.type,
          eventId: event.id,
          status: "pending",
          attempts: 0,
          lastError: null,
          lastStatusCode: null,
          nextAttemptAt: now,
          createdAt: now,
        };
        await this.#save(record);
        this.#admit({ seq: ++this.#seq, record, url: sub.url, secret: sub.secret, body });
      }
      this.#pump();
    }
  }

  /** Puts a delivery in the waiting queue (in seq order), dropping the oldest waiting ones beyond the limit. */
  #admit(q: Queued): void {
    let i = this.#queue.length;
    while (i > 0 && this.#queue[i - 1]!.seq > q.seq) i--;
    this.#queue.splice(i, 0, q);
    while (this.#queue.length > this.#queueLimit) {
      const oldest = this.#queue.shift()!;
      this.#finish(oldest, "dropped", `dropped: more than ${this.#queueLimit} deliveries were waiting`);
      this.#log.warn({ deliveryId: oldest.record.id, subscriptionId: oldest.record.subscriptionId }, "webhook queue full: oldest delivery dropped");
    }
  }

  #endpointFor(url: string): Endpoint {
    let ep = this.#endpoints.get(url);
    if (ep === undefined) {
      ep = { state: "closed", consecutiveFailures: 0, openUntil: 0, inFlight: 0, probing: false };
      this.#endpoints.set(url, ep);
    }
    return ep;
  }

  /**
   * "go" or "probe" (a slot was taken), "busy" (a request finishing will pump again) or the time the breaker lets
   * a probe in.
   */
  #gate(ep: Endpoint, now: number): "go" | "probe" | "busy" | number {
    if (ep.state === "open") {
      if (now < ep.openUntil) return ep.openUntil;
      ep.state = "half-open";
    }
    if (ep.state === "half-open") {
      if (ep.probing) return "busy";
      ep.probing = true;
      ep.inFlight++;
      return "probe";
    }
    if (ep.inFlight >= this.#perEndpoint) return "busy";
    ep.inFlight++;
    return "go";
  }

  /** Starts every attempt that is due and allowed, then sleeps until the next one could be. */
  #pump(): void {
    if (this.#state !== "running") return;
    const now = this.#clock.now();
    let wakeAt = Number.POSITIVE_INFINITY;
    const waiting: Queued[] = [];
    for (const q of this.#queue) {
      const due = q.record.nextAttemptAt ?? now;
      if (due > now) {
        wakeAt = Math.min(wakeAt, due);
        waiting.push(q);
        continue;
      }
      const gate = this.#gate(this.#endpointFor(q.url), now);
      if (gate === "go" || gate === "probe") {
        this.#start(q, gate === "probe");
        continue;
      }
      if (gate !== "busy") wakeAt = Math.min(wakeAt, gate);
      waiting.push(q);
    }
    this.#queue = waiting;
    this.#armWake(wakeAt, now);
  }

  #armWake(at: number, now: number): void {
    if (this.#wake !== null && this.#wake.at === at) return;
    this.#cancelWake();
    if (at === Number.POSITIVE_INFINITY) return;
    const wake = { at, abort: new AbortController() };
    this.#wake = wake;
    const fire = () => {
      if (this.#wake !== wake || wake.abort.signal.aborted) return;
      this.#wake = null;
      this.#pump();
    };
    this.#sleep(Math.max(0, at - now), wake.abort.signal).then(fire, fire);
  }

  #cancelWake(): void {
    this.#wake?.abort.abort();
    this.#wake = null;
  }

  #start(q: Queued, probe: boolean): void {
    const abort = new AbortController();
    const flight: InFlight = { abort, shutdown: false, probe, done: Promise.resolve() };
    flight.done = this.#attempt(q, flight).catch((err: unknown) => {
      this.#log.warn({ deliveryId: q.record.id, err }, "webhook delivery bookkeeping failed");
    });
    this.#inFlight.set(q.record.id, flight);
  }

  async #attempt(q: Queued, flight: InFlight): Promise<void> {
    const ep = this.#endpointFor(q.url);
    const r = q.record;
    r.attempts++;
    r.nextAttemptAt = null;
    let outcome: Outcome;
    const timer = setTimeout(() => flight.abort.abort(new Error("timeout")), this.#timeoutMs);
    try {
      let url: URL;
      try {
        url = new URL(q.url);
      } catch {
        throw new Error(`${q.url} is not a URL`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`${url.protocol} URLs are not supported`);
      const headers = {
        "content-type": "application/json",
        "user-agent": this.#userAgent,
        "ferry-event": r.event,
        "ferry-delivery": r.id,
        "ferry-signature": signWebhook(q.secret, Math.floor(this.#clock.now() / 1000), q.body),
      };
      const res = await this.#transport.send({ url, headers, body: q.body, signal: flight.abort.signal });
      outcome = { kind: "response", status: res.status, retryAfter: res.retryAfter, snippet: res.bodySnippet };
    } catch (err) {
      const refused = err instanceof WebhookTargetError || (err as { code?: unknown }).code === "WEBHOOK_TARGET_FORBIDDEN";
      const message = refused
        ? `destination refused: ${(err as Error).message}`
        : flight.shutdown
          ? "interrupted by shutdown"
          : flight.abort.signal.aborted
            ? `no response within ${this.#timeoutMs} ms`
            : (err as Error).message || String(err);
      outcome = { kind: "error", message, refused };
    } finally {
      clearTimeout(timer);
      ep.inFlight--;
      if (flight.probe) ep.probing = false;
    }

    try {
      // A response that arrived before the shutdown abort still counts.
      await this.#settle(q, ep, outcome, flight.shutdown && outcome.kind === "error");
    } finally {
      this.#inFlight.delete(r.id);
      this.#pump();
    }
  }

  async #settle(q: Queued, ep: Endpoint, outcome: Outcome, shutdown: boolean): Promise<void> {
    const r = q.record;
    const now = this.#clock.now();
    r.lastStatusCode = outcome.kind === "response" ? outcome.status : null;

    if (shutdown) {
      // Not the endpoint's fault: no breaker change, and the attempt does not count against the delivery.
      r.attempts--;
      r.lastError = "interrupted by shutdown";
      r.nextAttemptAt = now;
      // Recorded, not queued again: this process is going away, and a durable store lets the next one resume it.
      await this.#save(r);
      return;
    }
    if (outcome.kind === "error" && outcome.refused) {
      // The destination policy said no: retrying cannot help, and it says nothing about the endpoint's health.
      r.lastResponse = null;
      this.#finish(q, "failed", outcome.message);
      return;
    }
    if (outcome.kind === "response" && outcome.status >= 200 && outcome.status < 300) {
      this.#breakerSuccess(ep);
      r.lastError = null;
      r.lastResponse = null;
      this.#finish(q, "delivered", null);
      return;
    }
    if (outcome.kind === "response" && outcome.status === 410) {
      // 410 Gone: the receiver says this subscription is over. The endpoint itself is healthy.
      this.#breakerSuccess(ep);
      const reason = `endpoint answered 410 Gone at ${new Date(now).toISOString()}`;
      this.#finish(q, "failed", "410 Gone: subscription disabled");
      await this.#disable(r.subscriptionId, reason);
      return;
    }

    // The receiver's words go to lastResponse (admins only), never into lastError, which every viewer reads.
    const error = outcome.kind === "error" ? outcome.message : `HTTP ${outcome.status}`;
    this.#breakerFailure(ep, q.url, now);
    r.lastError = error;
    r.lastResponse = outcome.kind === "response" && outcome.snippet ? outcome.snippet.slice(0, SNIPPET_BYTES) : null;
    if (r.attempts >= this.#retry.maxAttempts) {
      this.#finish(q, "failed", error);
      return;
    }
    const retryAfterMs = outcome.kind === "response" ? parseRetryAfter(outcome.retryAfter, now) : 0;
    r.nextAttemptAt = now + webhookRetryDelayMs(r.attempts, this.#retry, this.#random, retryAfterMs);
    // Saved before it is queued again: once queued it may be dropped, and "dropped" must be the last word.
    await this.#save(r);
    this.#admit(q);
  }

  #breakerSuccess(ep: Endpoint): void {
    ep.state = "closed";
    ep.consecutiveFailures = 0;
  }

  #breakerFailure(ep: Endpoint, url: string, now: number): void {
    ep.consecutiveFailures++;
    const reopen = ep.state === "half-open";
    if (reopen || (ep.state === "closed" && ep.consecutiveFailures >= this.#breaker.failureThreshold)) {
      ep.state = "open";
      ep.openUntil = now + this.#breaker.openMs;
      this.#log.warn(
        { endpoint: redactUrl(url), consecutiveFailures: ep.consecutiveFailures, openMs: this.#breaker.openMs },
        reopen ? "webhook endpoint probe failed: circuit open again" : "webhook endpoint failing: circuit open",
      );
    }
  }

  async #disable(subscriptionId: string, reason: string): Promise<void> {
    const gone = this.#queue.filter((x) => x.record.subscriptionId === subscriptionId);
    this.#queue = this.#queue.filter((x) => x.record.subscriptionId !== subscriptionId);
    for (const x of gone) this.#finish(x, "failed", "subscription disabled (410 Gone)");
    try {
      await this.#store.disableSubscription(subscriptionId, reason);
    } catch (err) {
      this.#log.warn({ subscriptionId, err }, "webhook subscription could not be disabled");
    }
    this.#log.info?.({ subscriptionId }, "webhook subscription disabled: endpoint answered 410 Gone");
  }

  /** Records a final status. Not awaited by #admit's drop path, so it must never throw. */
  #finish(q: Queued, status: Exclude<WebhookDeliveryStatus, "pending">, error: string | null): void {
    const r = q.record;
    r.status = status;
    r.nextAttemptAt = null;
    if (error !== null) r.lastError = error;
    void this.#save(r);
  }

  async #save(r: WebhookDelivery): Promise<void> {
    try {
      await this.#store.recordDelivery({ ...r });
    } catch (err) {
      this.#log.warn({ deliveryId: r.id, err }, "webhook delivery status could not be recorded");
    }
  }
}

/** Subscription URLs may carry credentials in their userinfo or query; logs get scheme, host and path only. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(unparseable url)";
  }
}
