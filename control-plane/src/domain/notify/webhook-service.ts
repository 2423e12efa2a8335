// Webhook subscriptions and their delivery history in the store, behind the dispatcher's WebhookStore port. The
// dispatcher runs deliveries in the background; nothing here waits for an endpoint.
import { randomBytes } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import { appendAudit, audit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import {
  WEBHOOK_EVENT_TYPES,
  type WebhookDelivery,
  type WebhookDeliveryStatus,
  type WebhookEventType,
  type WebhookStore,
  type WebhookSubscription,
} from "./webhooks.js";
import { WebhookTargetError, WebhookTargetPolicy } from "./webhook-targets.js";

/** A refused subscription is a decision worth keeping: someone tried to point Ferry at an internal address. */
function appendAuditRefusal(store: Store, actor: string, url: string, reason: string): Promise<unknown> {
  return audit(store, { actor, action: "webhook.create", object: url, outcome: "refused", code: "WEBHOOK_TARGET_FORBIDDEN", details: { reason } });
}

interface SubRow { id: string; url: string; events: string[]; secret: string; enabled: boolean; disabled_reason: string | null; created_by: string; created_at: Date }
interface DelRow { id: string; subscription_id: string; event_type: string; event_id: string; status: WebhookDeliveryStatus; attempts: number; last_status: number | null; last_error: string | null; last_response: string | null; next_attempt_at: Date | null; created_at: Date }

export interface SubscriptionView {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  disabledReason: string | null;
  createdBy: string;
  createdAt: string;
}

const subView = (r: SubRow): SubscriptionView => ({
  id: r.id, url: r.url, events: r.events, enabled: r.enabled, disabledReason: r.disabled_reason, createdBy: r.created_by, createdAt: new Date(r.created_at).toISOString(),
});

export class SqlWebhookStore implements WebhookStore {
  constructor(private readonly d: { store: Store; clock: Clock; policy?: WebhookTargetPolicy }) {}

  async listSubscriptions(eventType: WebhookEventType): Promise<WebhookSubscription[]> {
    const r = await this.d.store.query<SubRow>("SELECT * FROM webhook_subscriptions WHERE enabled AND $1 = ANY(events)", [eventType]);
    return r.rows.map((x) => ({ id: x.id, url: x.url, secret: x.secret, events: x.events as WebhookEventType[], enabled: x.enabled, disabledReason: x.disabled_reason }));
  }

  async disableSubscription(id: string, reason: string): Promise<void> {
    await this.d.store.query("UPDATE webhook_subscriptions SET enabled = false, disabled_reason = $2 WHERE id = $1", [id, reason]);
  }

  async recordDelivery(x: WebhookDelivery): Promise<void> {
    await this.d.store.query(
      `INSERT INTO webhook_deliveries (id, subscription_id, event_type, event_id, status, attempts, last_status, last_error, next_attempt_at, created_at, updated_at, last_response)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts, last_status = EXCLUDED.last_status,
         last_error = EXCLUDED.last_error, next_attempt_at = EXCLUDED.next_attempt_at, updated_at = EXCLUDED.updated_at, last_response = EXCLUDED.last_response`,
      [x.id, x.subscriptionId, x.event, x.eventId, x.status, x.attempts, x.lastStatusCode, x.lastError?.slice(0, 2000) ?? null, x.nextAttemptAt === null ? null : new Date(x.nextAttemptAt), new Date(x.createdAt), new Date(this.d.clock.now()), x.lastResponse?.slice(0, 2000) ?? null],
    );
  }

  async getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    const r = await this.d.store.query<DelRow>("SELECT * FROM webhook_deliveries WHERE id = $1", [id]);
    return r.rows[0] ? delivery(r.rows[0]) : undefined;
  }

  async listDeliveries(filter: { eventId?: string; subscriptionId?: string; status?: WebhookDeliveryStatus } = {}): Promise<WebhookDelivery[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (filter.eventId) where.push(`event_id = $${params.push(filter.eventId)}`);
    if (filter.subscriptionId) where.push(`subscription_id = $${params.push(filter.subscriptionId)}`);
    if (filter.status) where.push(`status = $${params.push(filter.status)}`);
    const r = await this.d.store.query<DelRow>(`SELECT * FROM webhook_deliveries ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC LIMIT 500`, params);
    return r.rows.map(delivery);
  }

  // ── management (API) ──────────────────────────────────────────────────────────────────────────────────────

  async create(input: { url: string; events?: string[]; secret?: string }, actor: string): Promise<SubscriptionView & { secret: string }> {
    let url: URL;
    try {
      url = new URL(input.url);
    } catch {
      throw new FerryError("VALIDATION_FAILED", `url: "${input.url}" is not a URL`, { field: "url" });
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new FerryError("VALIDATION_FAILED", "url: must be http(s)", { field: "url" });
    if (url.username || url.password) {
      throw new FerryError("VALIDATION_FAILED", "url: must not carry user:password@ — deliveries are authenticated by their HMAC signature (ferry-signature), and credentials in URLs end up in logs", { field: "url" });
    }
    try {
      await (this.d.policy ?? new WebhookTargetPolicy()).resolve(url);
    } catch (err) {
      if (err instanceof WebhookTargetError) {
        await appendAuditRefusal(this.d.store, actor, `${url.protocol}//${url.host}${url.pathname}`, err.message);
        throw new FerryError("WEBHOOK_TARGET_FORBIDDEN", `url: ${err.message}`, { field: "url" }, { cause: err });
      }
      throw err;
    }
    const events = input.events?.length ? input.events : [...WEBHOOK_EVENT_TYPES];
    for (const e of events) {
      if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e)) {
        throw new FerryError("VALIDATION_FAILED", `events: "${e}" is not one of ${WEBHOOK_EVENT_TYPES.join(", ")}`, { field: "events" });
      }
    }
    if (input.secret !== undefined && input.secret.length < 16) throw new FerryError("VALIDATION_FAILED", "secret: at least 16 characters", { field: "secret" });
    const secret = input.secret ?? randomBytes(32).toString("base64url");
    const id = `whk_${randomBytes(8).toString("hex")}`;
    const row = await this.d.store.transaction(async (tx) => {
      const r = await tx.query<SubRow>(
        "INSERT INTO webhook_subscriptions (id, url, events, secret, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        [id, url.toString(), events, secret, actor, new Date(this.d.clock.now())],
      );
      await appendAudit(tx, { actor, action: "webhook.create", object: id, outcome: "ok", details: { url: `${url.origin}${url.pathname}`, events } });
      return r.rows[0]!;
    });
    return { ...subView(row), secret };
  }

  async list(): Promise<SubscriptionView[]> {
    const r = await this.d.store.query<SubRow>("SELECT * FROM webhook_subscriptions ORDER BY created_at");
    return r.rows.map(subView);
  }

  async setEnabled(id: string, enabled: boolean, actor: string): Promise<SubscriptionView> {
    return this.d.store.transaction(async (tx) => {
      const r = await tx.query<SubRow>("UPDATE webhook_subscriptions SET enabled = $2, disabled_reason = CASE WHEN $2 THEN NULL ELSE $3 END WHERE id = $1 RETURNING *", [id, enabled, `disabled by ${actor}`]);
      if (!r.rows[0]) throw new FerryError("WEBHOOK_NOT_FOUND", `no webhook ${id}`);
      await appendAudit(tx, { actor, action: enabled ? "webhook.enable" : "webhook.disable", object: id, outcome: "ok", details: {} });
      return subView(r.rows[0]);
    });
  }
}

function delivery(x: DelRow): WebhookDelivery {
  return {
    id: x.id,
    subscriptionId: x.subscription_id,
    event: x.event_type as WebhookEventType,
    eventId: x.event_id,
    status: x.status,
    attempts: x.attempts,
    lastError: x.last_error,
    lastResponse: x.last_response,
    lastStatusCode: x.last_status,
    nextAttemptAt: x.next_attempt_at ? new Date(x.next_attempt_at).getTime() : null,
    createdAt: new Date(x.created_at).getTime(),
  };
}
