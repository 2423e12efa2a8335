// Fleet use cases: join tokens, enrolment, agents, certificate renewal and revocation.
//
// Every change is written together with its audit record in one transaction, so a refused or failed operation
// leaves nothing half-written.
import type { Capability } from "@ferry/contract";
import { randomBytes } from "node:crypto";
import { PkiError, hashSecret, generateSecret, type FleetCa, type IssuedCertificate } from "@ferry/pki";
import type { Clock } from "../../ports/clock.js";
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { isSilent, type LivenessPolicy } from "./liveness.js";
import { checkLabels, checkName } from "./names.js";
import { checkFreshKey, defaultRenewalLimit, checkRenewalRate, publicKeySha256, type RenewalLimit } from "./renewal-policy.js";

export const REVOCATION_CHANNEL = "ferry_revocations";
const TOKEN_SECRET = /^[A-Za-z0-9_-]{43}$/;

export interface HostFactsRecord {
  hostname: string;
  os: string;
  osRelease: string;
  arch: string;
  agentVersion: string;
  drivers: string[];
  cpus: number;
  memoryBytes: number;
  /** Per driver: the capabilities it offers on that host, and its status line. */
  driverFacts: { kind: string; capabilities: Capability[]; detail: string }[];
  /** Task payload versions the agent reads; empty for an agent from before versions were advertised (v1 only). */
  taskPayloadVersions: number[];
}

export type AgentStatus = "online" | "offline" | "revoked";

export interface AgentView {
  id: string;
  name: string;
  environment: string;
  labels: Record<string, string>;
  facts: Partial<HostFactsRecord>;
  status: AgentStatus;
  connected: boolean;
  lastHeartbeatAt: string | null;
  clockSkewMs: number | null;
  heartbeatIntervalMs: number;
  certificate: { serial: string | null; notAfter: string | null };
  enrolledAt: string;
  statusChangedAt: string;
  revokedAt: string | null;
  revokeReason: string | null;
}

export interface JoinTokenView {
  id: string;
  environment: string;
  labels: Record<string, string>;
  usesAllowed: number;
  usesCount: number;
  expiresAt: string;
  createdBy: string;
  createdAt: string;
  revokedAt: string | null;
}

interface AgentRow {
  id: string;
  name: string;
  environment: string;
  labels: Record<string, string>;
  facts: Partial<HostFactsRecord>;
  status: AgentStatus;
  connected: boolean;
  last_heartbeat_at: Date | null;
  clock_skew_ms: number | null;
  heartbeat_interval_ms: number;
  cert_serial: string | null;
  cert_not_after: Date | null;
  enrolled_at: Date;
  status_changed_at: Date;
  revoked_at: Date | null;
  revoke_reason: string | null;
}

interface JoinTokenRow {
  id: string;
  environment: string;
  labels: Record<string, string>;
  uses_allowed: number;
  uses_count: number;
  expires_at: Date;
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export interface FleetServiceDeps {
  store: Store;
  ca: FleetCa;
  clock: Clock;
  liveness: LivenessPolicy;
  certLifetimeMs: number;
  /** When this replica began accepting agents; liveness decisions are frozen for a grace period after it. */
  readyAt: () => number;
  /**
   * Heartbeats this replica has received but not yet written (they are coalesced; see liveness-recorder.ts), so that
   * reads served by the replica holding an agent's stream are as fresh as its last heartbeat.
   */
  recentHeartbeat?: (agentId: string) => { at: number; skewMs: number | null } | undefined;
  /** Certificate renewals allowed per agent and window (renewal-policy.ts); default defaultRenewalLimit(certLifetimeMs). */
  renewalLimit?: RenewalLimit;
}

export interface EnrolInput {
  tokenSecret: string;
  csrPem: string;
  name: string;
  facts: Partial<HostFactsRecord>;
  peer: string;
  /**
   * How a refusal is recorded. Enrolment is unauthenticated — whoever connects drives it — so the gRPC adapter passes
   * its capped refusal recorder here (adapters/grpc/refusals.ts); without it each refusal is audited directly.
   */
  onRefused?: (action: string, code: string, details: Record<string, unknown>) => void;
}

export interface EnrolResult {
  agent: AgentView;
  certificate: IssuedCertificate;
}

export class FleetService {
  constructor(private readonly deps: FleetServiceDeps) {}

  // ---- join tokens -------------------------------------------------------------------------------------------

  async createJoinToken(input: {
    environment: string;
    ttlMs: number;
    uses: number;
    labels: Record<string, string>;
    createdBy: string;
  }): Promise<{ token: JoinTokenView; secret: string }> {
    checkName(input.environment, "environment");
    checkLabels(input.labels);
    if (!Number.isInteger(input.uses) || input.uses < 1 || input.uses > 10_000) {
      throw new FerryError("VALIDATION_FAILED", "uses: must be a whole number from 1 to 10000", { field: "uses" });
    }
    if (!(input.ttlMs >= 1000 && input.ttlMs <= 30 * 86_400_000)) {
      throw new FerryError("VALIDATION_FAILED", "ttl: must be between 1 second and 30 days", { field: "ttl" });
    }
    const id = `jt_${randomBytes(8).toString("hex")}`;
    const secret = generateSecret();
    const expiresAt = new Date(this.deps.clock.now() + input.ttlMs);
    const row = await this.deps.store.transaction(async (tx) => {
      // An agent enrolled with a token for an environment that does not exist would belong nowhere: no target of
      // any environment could name it, and nothing would warn. Environments are created first (ferry env create).
      const env = await tx.query("SELECT 1 FROM environments WHERE name = $1 FOR SHARE", [input.environment]);
      if (env.rowCount === 0) {
        throw new FerryError("ENVIRONMENT_NOT_FOUND", `no environment ${input.environment}; create it first (ferry env create ${input.environment})`, { environment: input.environment });
      }
      const res = await tx.query<JoinTokenRow>(
        `INSERT INTO join_tokens (id, token_hash, environment, labels, uses_allowed, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
        [id, hashSecret(secret), input.environment, input.labels, input.uses, expiresAt.toISOString(), input.createdBy],
      );
      await appendAudit(tx, {
        actor: input.createdBy,
        action: "join-token.create",
        object: id,
        outcome: "ok",
        details: { environment: input.environment, uses: input.uses, expiresAt: expiresAt.toISOString(), labels: input.labels },
      });
      return res.rows[0] as JoinTokenRow;
    });
    return { token: joinTokenView(row), secret };
  }

  async listJoinTokens(): Promise<JoinTokenView[]> {
    const res = await this.deps.store.query<JoinTokenRow>("SELECT * FROM join_tokens ORDER BY created_at DESC LIMIT 1000");
    return res.rows.map(joinTokenView);
  }

  async revokeJoinToken(id: string, by: string): Promise<JoinTokenView> {
    return this.deps.store.transaction(async (tx) => {
      const res = await tx.query<JoinTokenRow>(
        "UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING *",
        [id],
      );
      const row = res.rows[0];
      if (!row) throw new FerryError("JOIN_TOKEN_NOT_FOUND", `no join token ${id}`);
      await appendAudit(tx, { actor: by, action: "join-token.revoke", object: id, outcome: "ok" });
      return joinTokenView(row);
    });
  }

  // ---- enrolment ---------------------------------------------------------------------------------------------

  /**
   * Consumes one use of the join token and issues the agent's first certificate, atomically: the conditional
   * UPDATE only succeeds while uses remain, so two agents racing with a single-use token cannot both win, and a
   * CSR that fails to issue rolls the use back.
   */
  async enrol(input: EnrolInput): Promise<EnrolResult> {
    const refused = async (action: string, code: string, details: Record<string, unknown>) => {
      if (input.onRefused) input.onRefused(action, code, details);
      else await this.refuse(action, "-", code, details);
    };
    if (!TOKEN_SECRET.test(input.tokenSecret)) {
      await refused("enrol", "JOIN_TOKEN_MALFORMED", { peer: input.peer });
      throw new FerryError("JOIN_TOKEN_MALFORMED", "the join token is not of the right form (43 base64url characters)");
    }
    const name = input.name.trim() || input.facts.hostname || "agent";
    const tokenHash = hashSecret(input.tokenSecret);
    const now = new Date(this.deps.clock.now());
    try {
      return await this.deps.store.transaction(async (tx) => {
        const claimed = await tx.query<JoinTokenRow>(
          `UPDATE join_tokens SET uses_count = uses_count + 1
            WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND uses_count < uses_allowed
            RETURNING *`,
          [tokenHash, now.toISOString()],
        );
        const token = claimed.rows[0];
        if (!token) throw await this.diagnoseToken(tx, tokenHash, now);
        const agentId = `agt_${randomBytes(10).toString("hex")}`;
        const certificate = await this.issue(input.csrPem, agentId);
        const res = await tx.query<AgentRow>(
          `INSERT INTO agents (id, name, environment, labels, facts, join_token_id, status, cert_serial, cert_not_after,
                               heartbeat_interval_ms)
           VALUES ($1, $2, $3, $4, $5, $6, 'offline', $7, $8, $9) RETURNING *`,
          [
            agentId,
            name.slice(0, 128),
            token.environment,
            token.labels,
            input.facts,
            token.id,
            certificate.serial,
            certificate.notAfter.toISOString(),
            this.deps.liveness.heartbeatIntervalMs,
          ],
        );
        await tx.query(
          `INSERT INTO agent_certificates (serial, agent_id, not_before, not_after, reason, public_key_sha256) VALUES ($1, $2, $3, $4, 'enrol', $5)`,
          [certificate.serial, agentId, certificate.notBefore.toISOString(), certificate.notAfter.toISOString(), publicKeySha256(certificate.certPem)],
        );
        await appendAudit(tx, {
          actor: `join-token:${token.id}`,
          action: "agent.enrol",
          object: agentId,
          outcome: "ok",
          details: { name, environment: token.environment, serial: certificate.serial, peer: input.peer },
        });
        return { agent: this.view(res.rows[0] as AgentRow), certificate };
      });
    } catch (err) {
      if (err instanceof FerryError) await refused("agent.enrol", err.code, { peer: input.peer, reason: err.message });
      throw err;
    }
  }

  private async diagnoseToken(tx: Queryable, tokenHash: Buffer, now: Date): Promise<FerryError> {
    const res = await tx.query<JoinTokenRow>("SELECT * FROM join_tokens WHERE token_hash = $1", [tokenHash]);
    const t = res.rows[0];
    if (!t) return new FerryError("JOIN_TOKEN_INVALID", "the join token is not known to this control plane");
    if (t.revoked_at) return new FerryError("JOIN_TOKEN_INVALID", `join token ${t.id} was revoked`);
    if (t.expires_at.getTime() <= now.getTime()) {
      return new FerryError("JOIN_TOKEN_EXPIRED", `join token ${t.id} expired at ${t.expires_at.toISOString()}; create a new one`);
    }
    return new FerryError("JOIN_TOKEN_USED", `join token ${t.id} has been used ${t.uses_count} of ${t.uses_allowed} time(s)`);
  }

  private async issue(csrPem: string, agentId: string): Promise<IssuedCertificate> {
    try {
      return await this.deps.ca.issueAgentCertificate(csrPem, {
        agentId,
        lifetimeMs: this.deps.certLifetimeMs,
        now: new Date(this.deps.clock.now()),
      });
    } catch (err) {
      if (err instanceof PkiError && (err.code === "CSR_INVALID" || err.code === "CSR_KEY_NOT_ALLOWED")) {
        throw new FerryError(err.code, err.message, {}, { cause: err });
      }
      throw err;
    }
  }

  /** Records a refusal in its own transaction (the refused operation's transaction is rolled back). */
  async refuse(action: string, object: string, code: string, details: Record<string, unknown>): Promise<void> {
    await this.deps.store.transaction((tx) =>
      appendAudit(tx, { actor: [details["actor"], details["peer"]].find((v): v is string => typeof v === "string") ?? "unknown", action, object, outcome: "refused", code, details }),
    );
  }

  // ---- certificates ------------------------------------------------------------------------------------------

  async renewCertificate(agentId: string, csrPem: string): Promise<IssuedCertificate> {
    return this.deps.store.transaction(async (tx) => {
      const res = await tx.query<{ status: AgentStatus }>("SELECT status FROM agents WHERE id = $1 FOR UPDATE", [agentId]);
      const row = res.rows[0];
      if (!row) throw new FerryError("AGENT_NOT_FOUND", `no agent ${agentId}`);
      if (row.status === "revoked") throw new FerryError("AGENT_REVOKED", `agent ${agentId} is revoked`);
      await checkRenewalRate(tx, agentId, this.deps.renewalLimit ?? defaultRenewalLimit(this.deps.certLifetimeMs));
      const cert = await this.issue(csrPem, agentId);
      const keySha256 = publicKeySha256(cert.certPem);
      await checkFreshKey(tx, agentId, keySha256);
      await tx.query(
        `INSERT INTO agent_certificates (serial, agent_id, not_before, not_after, reason, public_key_sha256) VALUES ($1, $2, $3, $4, 'renew', $5)`,
        [cert.serial, agentId, cert.notBefore.toISOString(), cert.notAfter.toISOString(), keySha256],
      );
      await tx.query("UPDATE agents SET cert_serial = $2, cert_not_after = $3, updated_at = now() WHERE id = $1", [
        agentId,
        cert.serial,
        cert.notAfter.toISOString(),
      ]);
      await appendAudit(tx, {
        actor: `agent:${agentId}`,
        action: "agent.certificate.renew",
        object: agentId,
        outcome: "ok",
        details: { serial: cert.serial, notAfter: cert.notAfter.toISOString() },
      });
      return cert;
    });
  }

  // ---- agents ------------------------------------------------------------------------------------------------

  /** Whether this agent id was ever enrolled here (revoked agents included: revocation has its own refusal). */
  async isEnrolled(agentId: string): Promise<boolean> {
    const r = await this.deps.store.query("SELECT 1 FROM agents WHERE id = $1", [agentId]);
    return r.rowCount > 0;
  }

  async listAgents(filter: { environment?: string; status?: AgentStatus } = {}): Promise<AgentView[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.environment) {
      params.push(filter.environment);
      where.push(`environment = $${params.length}`);
    }
    const res = await this.deps.store.query<AgentRow>(
      `SELECT * FROM agents ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY environment, name, id`,
      params,
    );
    const views = res.rows.map((r) => this.view(r));
    return filter.status ? views.filter((v) => v.status === filter.status) : views;
  }

  async getAgent(id: string): Promise<AgentView> {
    const res = await this.deps.store.query<AgentRow>("SELECT * FROM agents WHERE id = $1", [id]);
    const row = res.rows[0];
    if (!row) throw new FerryError("AGENT_NOT_FOUND", `no agent ${id}`);
    return this.view(row);
  }

  /**
   * Revokes the agent and every certificate it was ever issued, then tells every replica (NOTIFY) so the live
   * stream, wherever it is, closes at once.
   */
  async revokeAgent(id: string, by: string, reason: string): Promise<AgentView> {
    const view = await this.deps.store.transaction(async (tx) => {
      const res = await tx.query<AgentRow>("SELECT * FROM agents WHERE id = $1 FOR UPDATE", [id]);
      const row = res.rows[0];
      if (!row) throw new FerryError("AGENT_NOT_FOUND", `no agent ${id}`);
      if (row.status === "revoked") throw new FerryError("AGENT_ALREADY_REVOKED", `agent ${id} was revoked at ${iso(row.revoked_at)}`);
      const updated = await tx.query<AgentRow>(
        `UPDATE agents SET status = 'revoked', connected = false, revoked_at = now(), revoked_by = $2, revoke_reason = $3,
                status_changed_at = now(), updated_at = now()
          WHERE id = $1 RETURNING *`,
        [id, by, reason],
      );
      await tx.query(
        `INSERT INTO revoked_certificates (serial, agent_id, not_after, revoked_by, reason)
         SELECT serial, agent_id, not_after, $2, $3 FROM agent_certificates WHERE agent_id = $1
         ON CONFLICT (serial) DO NOTHING`,
        [id, by, reason],
      );
      await appendAudit(tx, { actor: by, action: "agent.revoke", object: id, outcome: "ok", details: { reason } });
      return this.view(updated.rows[0] as AgentRow);
    });
    await this.deps.store.notify(REVOCATION_CHANNEL, JSON.stringify({ agentId: id }));
    return view;
  }

  /** Revokes a single certificate serial (e.g. a leaked key) without revoking the agent. */
  async revokeSerial(serial: string, by: string, reason: string): Promise<void> {
    const s = serial.toLowerCase().replace(/:/g, "");
    await this.deps.store.transaction(async (tx) => {
      const res = await tx.query<{ agent_id: string; not_after: Date }>(
        "SELECT agent_id, not_after FROM agent_certificates WHERE serial = $1",
        [s],
      );
      const cert = res.rows[0];
      if (!cert) throw new FerryError("NOT_FOUND", `no certificate with serial ${s}`);
      await tx.query(
        `INSERT INTO revoked_certificates (serial, agent_id, not_after, revoked_by, reason) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (serial) DO NOTHING`,
        [s, cert.agent_id, cert.not_after.toISOString(), by, reason],
      );
      await appendAudit(tx, { actor: by, action: "certificate.revoke", object: s, outcome: "ok", details: { agentId: cert.agent_id, reason } });
    });
    await this.deps.store.notify(REVOCATION_CHANNEL, JSON.stringify({ serial: s }));
  }

  /** Every revoked serial and agent, for the in-memory sets each replica checks on every new call. */
  async loadRevocations(): Promise<{ serials: Set<string>; agents: Set<string> }> {
    const serials = await this.deps.store.query<{ serial: string }>(
      "SELECT serial FROM revoked_certificates WHERE not_after IS NULL OR not_after > now() - interval '1 day'",
    );
    const agents = await this.deps.store.query<{ id: string }>("SELECT id FROM agents WHERE status = 'revoked'");
    return { serials: new Set(serials.rows.map((r) => r.serial)), agents: new Set(agents.rows.map((r) => r.id)) };
  }

  /** The status shown to operators: the stored one, corrected for silence not yet swept. */
  private view(r: AgentRow): AgentView {
    let status = r.status;
    let lastHeartbeat = r.last_heartbeat_at?.getTime() ?? null;
    let skew = r.clock_skew_ms;
    const recent = status === "revoked" ? undefined : this.deps.recentHeartbeat?.(r.id);
    if (recent && recent.at > (lastHeartbeat ?? 0)) {
      lastHeartbeat = recent.at;
      if (recent.skewMs !== null) skew = recent.skewMs;
      if (status === "offline") status = "online";
    }
    if (status === "online" && isSilent(this.deps.liveness, this.deps.readyAt(), this.deps.clock.now(), lastHeartbeat)) {
      status = "offline";
    }
    return {
      id: r.id,
      name: r.name,
      environment: r.environment,
      labels: r.labels,
      facts: r.facts,
      status,
      connected: r.connected && status !== "revoked",
      lastHeartbeatAt: lastHeartbeat === null ? null : new Date(lastHeartbeat).toISOString(),
      clockSkewMs: skew,
      heartbeatIntervalMs: r.heartbeat_interval_ms,
      certificate: { serial: r.cert_serial, notAfter: iso(r.cert_not_after) },
      enrolledAt: r.enrolled_at.toISOString(),
      statusChangedAt: r.status_changed_at.toISOString(),
      revokedAt: iso(r.revoked_at),
      revokeReason: r.revoke_reason,
    };
  }
}

function joinTokenView(r: JoinTokenRow): JoinTokenView {
  return {
    id: r.id,
    environment: r.environment,
    labels: r.labels,
    usesAllowed: r.uses_allowed,
    usesCount: r.uses_count,
    expiresAt: r.expires_at.toISOString(),
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    revokedAt: iso(r.revoked_at),
  };
}
