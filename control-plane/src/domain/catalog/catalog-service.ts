// Terms (estate):
//   environment — an ordered stage (dev → staging → prod): position 1 comes first
//   target      — one place a component runs, in one environment, of one kind, served by one agent
//   component   — a deployable service: a name and an image repository
//   release     — an immutable set of component → repository@sha256 pins, resolved from tags once, at creation
//
// Every change is written with its audit record in one transaction. Release creation resolves every reference
// against the registry before anything is written, so a registry failure leaves nothing behind.
//
// Caches (catalog-caches.ts): releases by id and by name@version (immutable, so never stale; bounded LRU) and a
// snapshot of the components table (invalidated by this process's changes; at most componentTtlMs old for changes
// made by other replicas, and never trusted for what a release pins — see createRelease).
import { randomBytes } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import type { CredentialStore, ImageRegistry, ResolvedImage } from "../../ports/registry.js";
import type { Queryable, Store } from "../../ports/store.js";
import { appendAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { checkName } from "../fleet/names.js";
import { ReleaseCache, SnapshotCache } from "./catalog-caches.js";
import { ReleaseIndex, type IndexedRelease } from "./release-index.js";
import { checkLimit, cursorTime, cursorTimeSql, decodeCursor, encodeCursor, type Page } from "./pagination.js";
import { checkTargetConfig, targetKind, type TargetKind } from "./target-kinds.js";
import { forgetTargetChecks } from "../deploy/target-check-records.js";

const iso = (d: Date): string => d.toISOString();
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const REPOSITORY = /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "23505";
}

export interface EnvironmentView {
  name: string;
  position: number;
  description: string;
  settings: Record<string, unknown>;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}
export interface ComponentView {
  name: string;
  repository: string;
  credentialsRef: string | null;
  description: string;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}
export interface TargetView {
  id: string;
  environment: string;
  name: string;
  kind: TargetKind;
  agentId: string | null;
  config: Record<string, unknown>;
  description: string;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}
export interface ReleasePin {
  component: string;
  repository: string;
  digest: string;
  image: string; // repository@digest — what deploys use
  sourceTag: string | null;
  mediaType: string;
  platforms: ResolvedImage["platforms"];
}
export interface ReleaseView {
  id: string;
  name: string;
  version: string;
  notes: string;
  provenance: Record<string, unknown>;
  pins: ReleasePin[];
  /**
   * False when rolling this release back unattended is not safe (an irreversible migration, say): a failed rollout
   * of it waits for an operator's approval before rolling back (docs/rollouts.md). Default true.
   */
  rollbackSafe: boolean;
  /** Why the release is not safe to roll back, shown to whoever approves the rollback (only when rollbackSafe is false). */
  rollbackNote: string | null;
  createdBy: string;
  createdAt: string;
}

interface EnvRow { name: string; position: number; description: string; settings: Record<string, unknown>; created_by: string; created_at: Date; updated_at: Date }
interface CompRow { name: string; repository: string; credentials_ref: string | null; description: string; created_by: string; created_at: Date; updated_at: Date }
interface TargetRow { id: string; environment: string; name: string; kind: TargetKind; agent_id: string | null; config: Record<string, unknown>; description: string; created_by: string; created_at: Date; updated_at: Date }
interface ReleaseRow { id: string; name: string; version: string; notes: string; provenance: Record<string, unknown>; rollback_safe: boolean; rollback_note: string | null; created_by: string; created_at: Date }
interface PinRow { release_id: string; component: string; repository: string; digest: string; source_tag: string | null; media_type: string; platforms: ResolvedImage["platforms"] }
/** A release row with its pins, ordered by component, as one json array (json_agg). */
interface ReleaseWithPinsRow extends ReleaseRow { pins: PinRow[] }

/**
 * One release with its pins in one round trip. The pins come back as json, which both adapters parse; json_agg of
 * the row keeps the column names, so each element is a PinRow.
 */
const RELEASE_WITH_PINS = `SELECT r.*, COALESCE((SELECT json_agg(p ORDER BY p.component) FROM release_pins p WHERE p.release_id = r.id), '[]') AS pins
  FROM releases r`;

const envView = (r: EnvRow): EnvironmentView => ({
  name: r.name, position: r.position, description: r.description, settings: r.settings,
  createdBy: r.created_by, createdAt: iso(r.created_at), updatedAt: iso(r.updated_at),
});
const compView = (r: CompRow): ComponentView => ({
  name: r.name, repository: r.repository, credentialsRef: r.credentials_ref, description: r.description,
  createdBy: r.created_by, createdAt: iso(r.created_at), updatedAt: iso(r.updated_at),
});
const targetView = (r: TargetRow): TargetView => ({
  id: r.id, environment: r.environment, name: r.name, kind: r.kind, agentId: r.agent_id, config: r.config,
  description: r.description, createdBy: r.created_by, createdAt: iso(r.created_at), updatedAt: iso(r.updated_at),
});
const pinView = (p: PinRow): ReleasePin => ({
  component: p.component, repository: p.repository, digest: p.digest, image: `${p.repository}@${p.digest}`,
  sourceTag: p.source_tag, mediaType: p.media_type, platforms: p.platforms,
});

export interface CatalogDeps {
  store: Store;
  /** Validates an environment's settings (its gates); throws VALIDATION_FAILED naming the field. */
  checkSettings?: (settings: Record<string, unknown>) => void;
  registry: ImageRegistry;
  credentials: CredentialStore;
  clock: Clock;
  cache?: {
    /** Releases kept in memory, by id and by name@version (default 10,000; 0 turns the cache off). */
    releases?: number;
    /** How long a snapshot of the components table is used before it is read again (default 5,000 ms; 0: always read). */
    componentTtlMs?: number;
    /** Newest releases whose order is kept in memory on an exclusive store (release-index.ts; default 50,000; 0: none). */
    releaseIndex?: number;
  };
}

export class CatalogService {
  private readonly releases: ReleaseCache<ReleaseView>;
  private readonly components: SnapshotCache<Map<string, CompRow>>;
  /** On an exclusive store only: list pages without a query. */
  private readonly index: ReleaseIndex | null;

  constructor(private readonly d: CatalogDeps) {
    this.releases = new ReleaseCache(d.cache?.releases ?? 10_000);
    const indexed = d.cache?.releaseIndex ?? 50_000;
    const load = async (limit: number) =>
      (
        await d.store.query<IndexedRelease>(
          `SELECT r.id, r.name, ${cursorTimeSql("r.created_at")} AS at,
                  COALESCE((SELECT array_agg(p.component ORDER BY p.component) FROM release_pins p WHERE p.release_id = r.id), '{}') AS components
             FROM releases r ORDER BY r.created_at DESC, r.id DESC LIMIT $1`,
          [limit],
        )
      ).rows;
    this.index = d.store.exclusive && indexed > 0 ? ReleaseIndex.of(d.store, () => new ReleaseIndex(load, indexed)) : null;
    this.components = new SnapshotCache(
      async () => new Map((await d.store.query<CompRow>("SELECT * FROM components")).rows.map((r) => [r.name, r])),
      d.cache?.componentTtlMs ?? 5_000,
      () => d.clock.now(),
    );
  }

  /** Hit and miss counts of the caches, for tests and diagnostics. */
  cacheStats(): { releases: { hits: number; misses: number; byId: number; byNameVersion: number }; components: { hits: number; loads: number } } {
    return { releases: { ...this.releases.stats, ...this.releases.size }, components: { ...this.components.stats } };
  }

  // ---- environments ------------------------------------------------------------------------------------------

  async createEnvironment(input: { name: string; position?: number; description?: string; settings?: Record<string, unknown> }, actor: string): Promise<EnvironmentView> {
    checkName(input.name, "name");
    if (input.settings) this.d.checkSettings?.(input.settings);
    if (input.position !== undefined && (!Number.isInteger(input.position) || input.position < 1)) {
      throw new FerryError("VALIDATION_FAILED", "position: must be a whole number from 1", { field: "position" });
    }
    return this.d.store.transaction(async (tx) => {
      await tx.query("LOCK TABLE environments IN SHARE ROW EXCLUSIVE MODE");
      const max = await tx.query<{ m: number | null }>("SELECT max(position) AS m FROM environments");
      const position = input.position ?? (max.rows[0]?.m ?? 0) + 1;
      try {
        const r = await tx.query<EnvRow>(
          `INSERT INTO environments (name, position, description, settings, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *`,
          [input.name, position, input.description ?? "", input.settings ?? {}, actor],
        );
        await appendAudit(tx, { actor, action: "environment.create", object: input.name, outcome: "ok", details: { position } });
        return envView(r.rows[0] as EnvRow);
      } catch (err) {
        if (isUniqueViolation(err)) {
          // Name the position only when the caller chose it; an appended environment can only clash by name.
          const clash = input.position === undefined ? "" : ` or at position ${position}`;
          throw new FerryError("ENVIRONMENT_EXISTS", `an environment named ${input.name}${clash} already exists`);
        }
        throw err;
      }
    });
  }

  async listEnvironments(): Promise<EnvironmentView[]> {
    return (await this.d.store.query<EnvRow>("SELECT * FROM environments ORDER BY position")).rows.map(envView);
  }

  async getEnvironment(name: string, db: Queryable = this.d.store): Promise<EnvironmentView> {
    const r = await db.query<EnvRow>("SELECT * FROM environments WHERE name = $1", [name]);
    if (!r.rows[0]) throw new FerryError("ENVIRONMENT_NOT_FOUND", `no environment ${name}`);
    return envView(r.rows[0]);
  }

  async updateEnvironment(name: string, patch: { description?: string; position?: number; settings?: Record<string, unknown> }, actor: string): Promise<EnvironmentView> {
    if (patch.settings) this.d.checkSettings?.(patch.settings);
    return this.d.store.transaction(async (tx) => {
      const cur = await this.getEnvironment(name, tx);
      try {
        const r = await tx.query<EnvRow>(
          "UPDATE environments SET description = $2, position = $3, settings = $4, updated_at = now() WHERE name = $1 RETURNING *",
          [name, patch.description ?? cur.description, patch.position ?? cur.position, patch.settings ?? cur.settings],
        );
        await appendAudit(tx, { actor, action: "environment.update", object: name, outcome: "ok", details: { changed: Object.keys(patch) } });
        return envView(r.rows[0] as EnvRow);
      } catch (err) {
        if (isUniqueViolation(err)) throw new FerryError("ENVIRONMENT_EXISTS", `another environment is at position ${patch.position}`);
        throw err;
      }
    });
  }

  async deleteEnvironment(name: string, actor: string): Promise<void> {
    await this.d.store.transaction(async (tx) => {
      await this.getEnvironment(name, tx);
      const used = await tx.query<{ n: string }>("SELECT count(*)::text AS n FROM targets WHERE environment = $1", [name]);
      if (used.rows[0]?.n !== "0") throw new FerryError("ENVIRONMENT_IN_USE", `environment ${name} still has ${used.rows[0]?.n} target(s)`);
      await tx.query("DELETE FROM environments WHERE name = $1", [name]);
      await appendAudit(tx, { actor, action: "environment.delete", object: name, outcome: "ok" });
    });
  }

  // ---- components --------------------------------------------------------------------------------------------

  async createComponent(input: { name: string; repository: string; credentialsRef?: string | null; description?: string }, actor: string): Promise<ComponentView> {
    checkName(input.name, "name");
    checkRepository(input.repository);
    if (input.credentialsRef) checkName(input.credentialsRef, "credentialsRef");
    return this.changingComponents(() => this.d.store.transaction(async (tx) => {
      try {
        const r = await tx.query<CompRow>(
          "INSERT INTO components (name, repository, credentials_ref, description, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *",
          [input.name, input.repository, input.credentialsRef ?? null, input.description ?? "", actor],
        );
        await appendAudit(tx, { actor, action: "component.create", object: input.name, outcome: "ok", details: { repository: input.repository } });
        return compView(r.rows[0] as CompRow);
      } catch (err) {
        if (isUniqueViolation(err)) throw new FerryError("COMPONENT_EXISTS", `a component named ${input.name} already exists`);
        throw err;
      }
    }));
  }

  /** Runs a change to the components table; the snapshot is dropped once it has committed (or failed). */
  private async changingComponents<T>(change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } finally {
      this.components.invalidate();
    }
  }

  async listComponents(): Promise<ComponentView[]> {
    return (await this.d.store.query<CompRow>("SELECT * FROM components ORDER BY name")).rows.map(compView);
  }

  async getComponent(name: string, db: Queryable = this.d.store): Promise<ComponentView> {
    const r = await db.query<CompRow>("SELECT * FROM components WHERE name = $1", [name]);
    if (!r.rows[0]) throw new FerryError("COMPONENT_NOT_FOUND", `no component ${name}`);
    return compView(r.rows[0]);
  }

  async updateComponent(name: string, patch: { repository?: string; credentialsRef?: string | null; description?: string }, actor: string): Promise<ComponentView> {
    if (patch.repository !== undefined) checkRepository(patch.repository);
    if (patch.credentialsRef) checkName(patch.credentialsRef, "credentialsRef");
    return this.changingComponents(() => this.d.store.transaction(async (tx) => {
      const cur = await this.getComponent(name, tx);
      const r = await tx.query<CompRow>(
        "UPDATE components SET repository = $2, credentials_ref = $3, description = $4, updated_at = now() WHERE name = $1 RETURNING *",
        [name, patch.repository ?? cur.repository, patch.credentialsRef === undefined ? cur.credentialsRef : patch.credentialsRef, patch.description ?? cur.description],
      );
      await appendAudit(tx, { actor, action: "component.update", object: name, outcome: "ok", details: { changed: Object.keys(patch) } });
      return compView(r.rows[0] as CompRow);
    }));
  }

  async deleteComponent(name: string, actor: string): Promise<void> {
    await this.changingComponents(() => this.d.store.transaction(async (tx) => {
      await this.getComponent(name, tx);
      const used = await tx.query("SELECT 1 FROM release_pins WHERE component = $1 LIMIT 1", [name]);
      if (used.rowCount > 0) throw new FerryError("COMPONENT_IN_USE", `releases pin component ${name}; it cannot be deleted`);
      await tx.query("DELETE FROM components WHERE name = $1", [name]);
      await appendAudit(tx, { actor, action: "component.delete", object: name, outcome: "ok" });
    }));
  }

  // ---- targets -----------------------------------------------------------------------------------------------

  private async checkAgent(tx: Queryable, agentId: string | null | undefined, environment: string): Promise<void> {
    if (!agentId) return;
    const r = await tx.query<{ environment: string; status: string }>("SELECT environment, status FROM agents WHERE id = $1", [agentId]);
    const a = r.rows[0];
    if (!a) throw new FerryError("TARGET_AGENT_MISMATCH", `agent ${agentId} does not exist`, { field: "agentId" });
    if (a.status === "revoked") throw new FerryError("TARGET_AGENT_MISMATCH", `agent ${agentId} is revoked`, { field: "agentId" });
    if (a.environment !== environment) {
      throw new FerryError("TARGET_AGENT_MISMATCH", `agent ${agentId} belongs to environment ${a.environment}, not ${environment}`, { field: "agentId" });
    }
  }

  /** Every component a target's config names (a compose target's service map) must be registered. */
  private async checkNamedComponents(tx: Queryable, kind: string, config: Record<string, unknown>): Promise<void> {
    const descriptor = targetKind(kind);
    const named = descriptor.componentsNamed?.(descriptor.typed(config)) ?? [];
    if (named.length === 0) return;
    const r = await tx.query<{ name: string }>("SELECT name FROM components WHERE name = ANY($1::text[])", [named.map((n) => n.component)]);
    const known = new Set(r.rows.map((row) => row.name));
    const unknown = named.find((n) => !known.has(n.component));
    if (unknown) {
      throw new FerryError("UNKNOWN_COMPONENT", `${unknown.field}: component ${unknown.component} is not registered (ferry component create ${unknown.component} --repository …)`, { field: unknown.field });
    }
  }

  async createTarget(input: { environment: string; name: string; kind: string; agentId?: string | null; config?: unknown; description?: string }, actor: string): Promise<TargetView> {
    checkName(input.name, "name");
    const config = checkTargetConfig(input.kind, input.config);
    return this.d.store.transaction(async (tx) => {
      await this.getEnvironment(input.environment, tx);
      await this.checkNamedComponents(tx, input.kind, config);
      await this.checkAgent(tx, input.agentId, input.environment);
      const id = `tgt_${randomBytes(8).toString("hex")}`;
      try {
        const r = await tx.query<TargetRow>(
          `INSERT INTO targets (id, environment, name, kind, agent_id, config, description, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
          [id, input.environment, input.name, input.kind, input.agentId ?? null, config, input.description ?? "", actor],
        );
        await appendAudit(tx, { actor, action: "target.create", object: `${input.environment}/${input.name}`, outcome: "ok", details: { kind: input.kind, agentId: input.agentId ?? null } });
        return targetView(r.rows[0] as TargetRow);
      } catch (err) {
        if (isUniqueViolation(err)) throw new FerryError("TARGET_EXISTS", `environment ${input.environment} already has a target named ${input.name}`);
        throw err;
      }
    });
  }

  async listTargets(filter: { environment?: string; kind?: string; agentId?: string } = {}): Promise<TargetView[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    for (const [col, v] of [["environment", filter.environment], ["kind", filter.kind], ["agent_id", filter.agentId]] as const) {
      if (v) {
        params.push(v);
        where.push(`${col} = $${params.length}`);
      }
    }
    const r = await this.d.store.query<TargetRow>(
      `SELECT t.* FROM targets t JOIN environments e ON e.name = t.environment
        ${where.length ? `WHERE ${where.map((w) => `t.${w}`).join(" AND ")}` : ""} ORDER BY e.position, t.name`,
      params,
    );
    return r.rows.map(targetView);
  }

  async getTarget(environment: string, name: string, db: Queryable = this.d.store): Promise<TargetView> {
    const r = await db.query<TargetRow>("SELECT * FROM targets WHERE environment = $1 AND name = $2", [environment, name]);
    if (!r.rows[0]) throw new FerryError("TARGET_NOT_FOUND", `no target ${name} in environment ${environment}`);
    return targetView(r.rows[0]);
  }

  async updateTarget(environment: string, name: string, patch: { agentId?: string | null; config?: unknown; description?: string }, actor: string): Promise<TargetView> {
    return this.d.store.transaction(async (tx) => {
      const cur = await this.getTarget(environment, name, tx);
      const config = patch.config === undefined ? cur.config : checkTargetConfig(cur.kind, patch.config);
      if (patch.config !== undefined) await this.checkNamedComponents(tx, cur.kind, config);
      const agentId = patch.agentId === undefined ? cur.agentId : patch.agentId;
      await this.checkAgent(tx, agentId, environment);
      const r = await tx.query<TargetRow>(
        "UPDATE targets SET agent_id = $2, config = $3, description = $4, updated_at = now() WHERE id = $1 RETURNING *",
        [cur.id, agentId, config, patch.description ?? cur.description],
      );
      await appendAudit(tx, { actor, action: "target.update", object: `${environment}/${name}`, outcome: "ok", details: { changed: Object.keys(patch) } });
      return targetView(r.rows[0] as TargetRow);
    });
  }

  async deleteTarget(environment: string, name: string, actor: string): Promise<void> {
    await this.d.store.transaction(async (tx) => {
      const cur = await this.getTarget(environment, name, tx);
      await forgetTargetChecks(tx, cur.id);
      await tx.query("DELETE FROM targets WHERE id = $1", [cur.id]);
      await appendAudit(tx, { actor, action: "target.delete", object: `${environment}/${name}`, outcome: "ok" });
    });
  }

  // ---- releases ----------------------------------------------------------------------------------------------

  /**
   * Creates a release from component references (tags or digests). Every reference is resolved first, in parallel,
   * and only then is anything written: a failing registry leaves no partial release.
   *
   * The components come from the snapshot (catalog-caches.ts), which another replica's change can leave behind for
   * up to componentTtlMs. It is never trusted for what gets written: the pins are inserted joined to the components
   * table on name, repository and credentials, so a pin planned from a stale row inserts nothing, the count differs,
   * the transaction rolls back, and the release is planned again from a fresh read. A component the snapshot lacks
   * is looked up again before UNKNOWN_COMPONENT. A name@version that exists already is refused by the unique
   * constraint when the release row is inserted (RELEASE_EXISTS), after resolution.
   */
  async createRelease(
    input: { name: string; version: string; components: Record<string, string>; notes?: string; provenance?: Record<string, unknown>; rollbackSafe?: boolean; rollbackNote?: string },
    actor: string,
    signal?: AbortSignal,
  ): Promise<ReleaseView> {
    checkName(input.name, "name");
    checkRollbackFlag(input);
    if (!VERSION.test(input.version)) {
      throw new FerryError("VALIDATION_FAILED", `version: "${input.version}" is not a version (letters, digits, '.', '_', '+', '-'; at most 64)`, { field: "version" });
    }
    const entries = Object.entries(input.components);
    if (entries.length === 0) throw new FerryError("VALIDATION_FAILED", "components: a release pins at least one component", { field: "components" });
    if (entries.length > 200) throw new FerryError("VALIDATION_FAILED", "components: at most 200 per release", { field: "components" });
    // Two attempts from a fresh read are plenty: a third miss means the components changed under every attempt.
    for (let attempt = 1; ; attempt++) {
      const r = await this.tryCreateRelease(input, entries, actor, attempt > 1, signal);
      if (r) return r;
      this.components.invalidate();
      if (attempt === 3) throw new Error(`the components of release ${input.name}@${input.version} changed during each of ${attempt} attempts to create it; retry`);
    }
  }

  /** One attempt; null when a component changed after it was planned (nothing was written). */
  private async tryCreateRelease(
    input: { name: string; version: string; notes?: string; provenance?: Record<string, unknown>; rollbackSafe?: boolean; rollbackNote?: string },
    entries: Array<[string, string]>,
    actor: string,
    fresh: boolean,
    signal: AbortSignal | undefined,
  ): Promise<ReleaseView | null> {
    let comps = await this.components.get(fresh);
    if (!fresh && entries.some(([c]) => !comps.has(c))) comps = await this.components.get(true);
    const plan = entries.map(([component, ref]) => {
      const comp = comps.get(component);
      if (!comp) throw new FerryError("UNKNOWN_COMPONENT", `component ${component} is not registered (ferry component create ${component} --repository …)`, { field: `components.${component}` });
      return { component, comp, reference: expandReference(comp.repository, ref, component) };
    });
    const resolved = await Promise.all(
      plan.map(async (p) => {
        let credentials = null;
        if (p.comp.credentials_ref) {
          try {
            credentials = await this.d.credentials.get(p.comp.credentials_ref);
          } catch (err) {
            if (err instanceof FerryError) throw err;
            throw new FerryError("REGISTRY_CREDENTIALS_INVALID", `registry credentials "${p.comp.credentials_ref}" cannot be read: ${(err as Error).message}`, {}, { cause: err });
          }
          if (!credentials) {
            throw new FerryError("REGISTRY_CREDENTIALS_NOT_FOUND", `component ${p.component} uses registry credentials "${p.comp.credentials_ref}", which the secret store does not hold`);
          }
        }
        const image = await this.d.registry.resolve(p.reference, { credentials, ...(signal ? { signal } : {}) });
        return { ...p, image };
      }),
    );
    const provenance = { ...(input.provenance ?? {}), resolvedAt: new Date(this.d.clock.now()).toISOString(), resolvedBy: "ferry" };
    const id = `rel_${randomBytes(8).toString("hex")}`;
    const pins: PinRow[] = resolved.map((x) => ({
      release_id: id,
      component: x.component,
      repository: x.comp.repository,
      digest: x.image.digest,
      source_tag: x.image.sourceTag,
      media_type: x.image.mediaType,
      platforms: x.image.platforms,
    }));
    const planned = resolved.map((x) => ({ component: x.component, repository: x.comp.repository, credentials_ref: x.comp.credentials_ref }));
    try {
      const created = await this.d.store.transaction(async (tx) => {
        let row: ReleaseRow & { pinned: number; cursor_at: string };
        try {
          // The release and its pins in one statement. The FK from release_pins to releases is checked at the end
          // of the statement, when the release row of the first CTE is there.
          const r = await tx.query<ReleaseRow & { pinned: number }>(
            `WITH rel AS (
               INSERT INTO releases (id, name, version, notes, provenance, created_by, rollback_safe, rollback_note) VALUES ($1, $2, $3, $4, $5, $6, $9, $10) RETURNING *
             ), pinned AS (
               INSERT INTO release_pins (release_id, component, repository, digest, source_tag, media_type, platforms)
               SELECT p.release_id, p.component, p.repository, p.digest, p.source_tag, p.media_type, p.platforms
                 FROM jsonb_to_recordset($7::jsonb) AS p(release_id text, component text, repository text, digest text, source_tag text, media_type text, platforms jsonb)
                 JOIN jsonb_to_recordset($8::jsonb) AS w(component text, repository text, credentials_ref text) ON w.component = p.component
                 JOIN components c ON c.name = w.component AND c.repository = w.repository AND c.credentials_ref IS NOT DISTINCT FROM w.credentials_ref
               RETURNING 1
             )
             SELECT rel.*, (SELECT count(*)::int FROM pinned) AS pinned, ${cursorTimeSql("rel.created_at")} AS cursor_at FROM rel`,
            [id, input.name, input.version, input.notes ?? "", provenance, actor, JSON.stringify(pins), JSON.stringify(planned), input.rollbackSafe ?? true, input.rollbackNote?.trim() || null],
          );
          row = r.rows[0] as ReleaseRow & { pinned: number; cursor_at: string };
        } catch (err) {
          if (isUniqueViolation(err)) throw releaseExists(input.name, input.version);
          throw err;
        }
        if (row.pinned !== pins.length) throw new StaleComponents();
        const { pinned: _, cursor_at: at, ...release } = row;
        await appendAudit(tx, {
          actor,
          action: "release.create",
          object: `${input.name}@${input.version}`,
          outcome: "ok",
          details: { id, pins: Object.fromEntries(pins.map((p) => [p.component, `${p.repository}@${p.digest}`])), ...(input.rollbackSafe === false ? { rollbackSafe: false } : {}) },
        });
        return { view: releaseView(release, pins), at };
      });
      // Committed: from now on a query would find it.
      this.index?.add({ at: created.at, id: created.view.id, name: created.view.name, components: pins.map((p) => p.component).sort() });
      return created.view;
    } catch (err) {
      if (err instanceof StaleComponents) return null;
      throw err;
    }
  }

  /**
   * By id (rel_…) or name@version. Served from the release cache when it holds the release, whatever `db` is: a
   * release there was committed, and a committed release never changes. Only a read outside a transaction (db is
   * the store) fills the cache.
   */
  async getRelease(ref: string, db: Queryable = this.d.store): Promise<ReleaseView> {
    const at = ref.lastIndexOf("@");
    const byId = ref.startsWith("rel_");
    if (!byId && at <= 0) throw releaseNotFound(ref);
    const name = ref.slice(0, at);
    const version = ref.slice(at + 1);
    const cached = byId ? this.releases.getById(ref) : this.releases.getByNameVersion(name, version);
    if (cached) return cached;
    const r = byId
      ? await db.query<ReleaseWithPinsRow>(`${RELEASE_WITH_PINS} WHERE r.id = $1`, [ref])
      : await db.query<ReleaseWithPinsRow>(`${RELEASE_WITH_PINS} WHERE r.name = $1 AND r.version = $2`, [name, version]);
    const row = r.rows[0];
    if (!row) throw releaseNotFound(ref);
    const view = releaseView(row, row.pins);
    return db === this.d.store ? this.releases.add(view) : view;
  }

  /**
   * Newest first, keyset-paginated. The page's ids come from the release index on an exclusive store (no query,
   * when the page lies within the newest releases it keeps) or else from one query on releases_created_idx; releases
   * the cache lacks are then read with their pins in one query and cached (a read outside a transaction, so
   * committed).
   */
  async listReleases(q: { name?: string; component?: string; limit?: number; cursor?: string }): Promise<Page<ReleaseView>> {
    const limit = checkLimit(q.limit);
    let before: { at: string; id: string } | undefined;
    if (q.cursor) {
      const c = decodeCursor(q.cursor, ["at", "id"]);
      before = { at: cursorTime(c["at"] as string), id: c["id"] as string };
    }
    let page: Array<{ id: string; at: string }>;
    let more: boolean;
    const indexed = this.index ? (await this.index.ready(), this.index.page({ name: q.name || undefined, component: q.component || undefined, limit, before })) : null;
    if (indexed) {
      page = indexed.items;
      more = indexed.more;
    } else {
      const rows = await this.queryReleasePage(q, limit, before);
      page = rows.slice(0, limit);
      more = rows.length > limit;
    }
    const views = new Map<string, ReleaseView>();
    const missing: string[] = [];
    for (const { id } of page) {
      const v = this.releases.getById(id);
      if (v) views.set(id, v);
      else missing.push(id);
    }
    if (missing.length) {
      const fetched = await this.d.store.query<ReleaseWithPinsRow>(`${RELEASE_WITH_PINS} WHERE r.id = ANY($1)`, [missing]);
      for (const row of fetched.rows) views.set(row.id, this.releases.add(releaseView(row, row.pins)));
    }
    const last = page.at(-1);
    return {
      // Releases are never deleted, so every id of the page was found.
      items: page.map((r) => views.get(r.id) as ReleaseView),
      nextCursor: more && last ? encodeCursor({ at: last.at, id: last.id }) : null,
    };
  }

  /** Up to limit + 1 releases of a page, newest first (the one past the page says whether there is a next page). */
  private async queryReleasePage(
    q: { name?: string; component?: string },
    limit: number,
    before: { at: string; id: string } | undefined,
  ): Promise<Array<{ id: string; at: string }>> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (q.name) {
      params.push(q.name);
      where.push(`r.name = $${params.length}`);
    }
    if (q.component) {
      params.push(q.component);
      where.push(`EXISTS (SELECT 1 FROM release_pins p WHERE p.release_id = r.id AND p.component = $${params.length})`);
    }
    if (before) {
      params.push(before.at, before.id);
      where.push(`(r.created_at, r.id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    params.push(limit + 1);
    return (
      await this.d.store.query<{ id: string; at: string }>(
        `SELECT r.id, ${cursorTimeSql("r.created_at")} AS at FROM releases r ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY r.created_at DESC, r.id DESC LIMIT $${params.length}`,
        params,
      )
    ).rows;
  }
}

function releaseView(r: ReleaseRow, pins: PinRow[]): ReleaseView {
  return {
    id: r.id, name: r.name, version: r.version, notes: r.notes, provenance: r.provenance,
    pins: pins.map(pinView), rollbackSafe: r.rollback_safe ?? true, rollbackNote: r.rollback_note ?? null,
    createdBy: r.created_by, createdAt: iso(r.created_at),
  };
}

/** True when `text` holds a control character other than tab and newline. */
function hasControlCharacter(text: string): boolean {
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if ((c < 0x20 && ch !== "\t" && ch !== "\n") || c === 0x7f) return true;
  }
  return false;
}

/** rollbackSafe is a boolean; a note (why it is not safe, at most 500 characters) goes only with rollbackSafe false. */
function checkRollbackFlag(input: { rollbackSafe?: unknown; rollbackNote?: unknown }): void {
  if (input.rollbackSafe !== undefined && typeof input.rollbackSafe !== "boolean") {
    throw new FerryError("VALIDATION_FAILED", "rollbackSafe: must be true or false", { field: "rollbackSafe" });
  }
  if (input.rollbackNote === undefined) return;
  if (typeof input.rollbackNote !== "string" || input.rollbackNote.trim().length === 0 || input.rollbackNote.length > 500 || hasControlCharacter(input.rollbackNote)) {
    throw new FerryError("VALIDATION_FAILED", "rollbackNote: 1 to 500 characters of text, no control characters", { field: "rollbackNote" });
  }
  if (input.rollbackSafe !== false) {
    throw new FerryError("VALIDATION_FAILED", "rollbackNote: says why a release is not safe to roll back; give it only with rollbackSafe false", { field: "rollbackNote" });
  }
}

/** Rolls back a release whose planned components no longer match the table; never leaves CatalogService. */
class StaleComponents extends Error {}

function releaseNotFound(ref: string): FerryError {
  return new FerryError("RELEASE_NOT_FOUND", `no release ${ref} (give an id rel_… or name@version)`);
}

function releaseExists(name: string, version: string): FerryError {
  return new FerryError("RELEASE_EXISTS", `release ${name}@${version} already exists; releases are immutable, so cut a new version`);
}

function checkRepository(repo: string): void {
  if (!REPOSITORY.test(repo) || repo.length > 255) {
    throw new FerryError("INVALID_REFERENCE", `repository: "${repo}" is not an image repository (registry/path, no tag or digest)`, { field: "repository" });
  }
}

/**
 * A release names each component's image as a full reference (which must be in the component's repository) or as a
 * shorthand: ":tag", "@sha256:…" or a bare tag, taken in the component's repository.
 */
export function expandReference(repository: string, ref: string, component: string): string {
  const r = ref.trim();
  if (r.startsWith(":") || r.startsWith("@")) return `${repository}${r}`;
  if (!r.includes("/") && !r.includes(":") && !r.includes("@")) return `${repository}:${r}`;
  const repoPart = r.split("@")[0]?.replace(/:[^/:]+$/, "") ?? "";
  if (repoPart !== repository) {
    throw new FerryError("COMPONENT_REPOSITORY_MISMATCH", `component ${component} is in ${repository}, but the release names ${repoPart}`, { field: `components.${component}` });
  }
  return r;
}
