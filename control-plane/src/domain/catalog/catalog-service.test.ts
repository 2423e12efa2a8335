// The estate model on both store backends. Releases are tested end to end against a real registry
// (test/e2e/releases.test.ts); these tests never reach a registry, and the one given here fails if called.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { testBackends } from "../../adapters/store/test-backends.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { Store } from "../../ports/store.js";
import { listAudit } from "../audit/audit-log.js";
import { FerryError } from "../errors.js";
import { CatalogService, expandReference } from "./catalog-service.js";
import { checkTargetConfig } from "./target-kinds.js";

const noRegistry: ImageRegistry = {
  resolve: () => Promise.reject(new Error("these tests must not reach a registry")),
};
const code = (c: string) => (e: unknown) => e instanceof FerryError && e.code === c;

function catalog(store: Store): CatalogService {
  return new CatalogService({ store, registry: noRegistry, credentials: { get: async () => null }, clock: { now: () => Date.now() } });
}

async function agent(store: Store, id: string, environment: string, status = "online"): Promise<void> {
  await store.query("INSERT INTO agents (id, name, environment, status) VALUES ($1, $1, $2, $3)", [id, environment, status]);
}

describe("target configs", () => {
  it("accepts a full docker config and refuses typos, wrong types and unknown kinds, naming the field", () => {
    checkTargetConfig("docker", {
      container: "web",
      ports: [{ container: 8080, host: 80 }],
      env: { LOG_LEVEL: "info" },
      healthCheck: { type: "http", url: "http://127.0.0.1:8080/health", timeoutSeconds: 30 },
    });
    assert.throws(() => checkTargetConfig("docker", { contianer: "web" }), /config.contianer: unknown field/);
    assert.throws(() => checkTargetConfig("docker", {}), /config.container: is required/);
    assert.throws(() => checkTargetConfig("docker", { container: "web", ports: [{ container: "80" }] }), /config.ports\[0\].container: must be a whole number/);
    assert.throws(() => checkTargetConfig("ecs", { region: "mars-1", cluster: "c", service: "s" }), /config.region: must be an AWS region/);
    assert.throws(() => checkTargetConfig("kubernetes", {}), code("UNKNOWN_TARGET_KIND"));
    checkTargetConfig("nomad", { address: "http://127.0.0.1:4646", job: "web" });
    checkTargetConfig("ssh", { host: "10.0.0.5", user: "deploy", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", docker: { container: "web" } });
    checkTargetConfig("winrm", { host: "win-1", transport: "https", script: { deploy: "Write-Output ok" } });
    checkTargetConfig("compose", { project: "shop", directory: "/srv/shop" });
  });

  it("expands release shorthands in the component's repository and refuses another repository", () => {
    assert.equal(expandReference("reg:5000/team/web", ":1.2", "web"), "reg:5000/team/web:1.2");
    assert.equal(expandReference("reg:5000/team/web", "1.2", "web"), "reg:5000/team/web:1.2");
    const d = `sha256:${"a".repeat(64)}`;
    assert.equal(expandReference("reg:5000/team/web", `@${d}`, "web"), `reg:5000/team/web@${d}`);
    assert.equal(expandReference("reg:5000/team/web", "reg:5000/team/web:1.2", "web"), "reg:5000/team/web:1.2");
    assert.throws(() => expandReference("reg:5000/team/web", "reg:5000/team/api:1.2", "web"), code("COMPONENT_REPOSITORY_MISMATCH"));
  });
});

for (const b of testBackends()) {
  describe(`CatalogService on ${b.name}`, () => {
    it("keeps environments in order and refuses duplicates", async (t) => {
      const store = await b.open(t);
      const c = catalog(store);
      await c.createEnvironment({ name: "dev" }, "alice");
      await c.createEnvironment({ name: "staging" }, "alice");
      await c.createEnvironment({ name: "prod", description: "customers" }, "alice");
      assert.deepEqual((await c.listEnvironments()).map((e) => [e.name, e.position]), [["dev", 1], ["staging", 2], ["prod", 3]]);
      await assert.rejects(c.createEnvironment({ name: "dev" }, "alice"), code("ENVIRONMENT_EXISTS"));
      await assert.rejects(c.createEnvironment({ name: "qa", position: 2 }, "alice"), code("ENVIRONMENT_EXISTS"));
      await assert.rejects(c.createEnvironment({ name: "Bad Name" }, "alice"), code("VALIDATION_FAILED"));
      await assert.rejects(c.getEnvironment("nope"), code("ENVIRONMENT_NOT_FOUND"));
      const audit = await listAudit(store);
      assert.deepEqual(audit.map((r) => `${r.action} ${r.object}`), ["environment.create dev", "environment.create staging", "environment.create prod"]);
    });

    it("creates targets with a valid config bound to an agent of the same environment", async (t) => {
      const store = await b.open(t);
      const c = catalog(store);
      await c.createEnvironment({ name: "staging" }, "a");
      await c.createEnvironment({ name: "prod" }, "a");
      await agent(store, "agt_stg", "staging");
      await agent(store, "agt_prod", "prod");
      await agent(store, "agt_gone", "staging", "revoked");
      const tgt = await c.createTarget({ environment: "staging", name: "web", kind: "docker", agentId: "agt_stg", config: { container: "web" } }, "a");
      assert.equal(tgt.kind, "docker");
      await assert.rejects(c.createTarget({ environment: "staging", name: "web", kind: "docker", config: { container: "w" } }, "a"), code("TARGET_EXISTS"));
      await assert.rejects(c.createTarget({ environment: "staging", name: "api", kind: "docker", agentId: "agt_prod", config: { container: "api" } }, "a"), code("TARGET_AGENT_MISMATCH"));
      await assert.rejects(c.createTarget({ environment: "staging", name: "api", kind: "docker", agentId: "agt_gone", config: { container: "api" } }, "a"), code("TARGET_AGENT_MISMATCH"));
      await assert.rejects(c.createTarget({ environment: "staging", name: "api", kind: "k8s", config: {} }, "a"), code("UNKNOWN_TARGET_KIND"));
      await assert.rejects(c.createTarget({ environment: "staging", name: "api", kind: "docker", config: { image: "x" } }, "a"), code("VALIDATION_FAILED"));
      await assert.rejects(c.createTarget({ environment: "nowhere", name: "api", kind: "docker", config: { container: "api" } }, "a"), code("ENVIRONMENT_NOT_FOUND"));
      await assert.rejects(c.updateTarget("staging", "web", { agentId: "agt_prod" }, "a"), code("TARGET_AGENT_MISMATCH"));
      const moved = await c.updateTarget("staging", "web", { config: { container: "web-2" } }, "a");
      assert.deepEqual(moved.config, { container: "web-2" });
      assert.equal((await c.listTargets({ environment: "staging" })).length, 1);
      await assert.rejects(c.deleteEnvironment("staging", "a"), code("ENVIRONMENT_IN_USE"));
      await c.deleteTarget("staging", "web", "a");
      await c.deleteEnvironment("staging", "a");
      // Nothing refused above was written: one target create, one update, one delete.
      const actions = (await listAudit(store)).map((r) => r.action).filter((x) => x.startsWith("target."));
      assert.deepEqual(actions, ["target.create", "target.update", "target.delete"]);
    });

    it("refuses a compose target that maps a service to an unregistered component, naming the service", async (t) => {
      const store = await b.open(t);
      const c = catalog(store);
      await c.createEnvironment({ name: "dev" }, "a");
      await c.createComponent({ name: "web", repository: "127.0.0.1:5000/shop/web" }, "a");
      const config = (services: Record<string, string>) => ({ project: "shop", directory: "/srv/shop", services });
      await assert.rejects(c.createTarget({ environment: "dev", name: "shop", kind: "compose", config: config({ web: "web", jobs: "worker" }) }, "a"), (err: FerryError) => {
        assert.equal(err.code, "UNKNOWN_COMPONENT");
        assert.match(err.message, /config\.services\.jobs: component worker is not registered/);
        return true;
      });
      await c.createTarget({ environment: "dev", name: "shop", kind: "compose", config: config({ web: "web" }) }, "a");
      await assert.rejects(c.updateTarget("dev", "shop", { config: config({ web: "api" }) }, "a"), code("UNKNOWN_COMPONENT"));
      assert.deepEqual((await c.getTarget("dev", "shop")).config, config({ web: "web" }));
    });

    it("registers components by repository, refusing tags, digests and duplicates", async (t) => {
      const store = await b.open(t);
      const c = catalog(store);
      await c.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web", credentialsRef: "ci-pull" }, "a");
      await assert.rejects(c.createComponent({ name: "web", repository: "r/x" }, "a"), code("COMPONENT_EXISTS"));
      await assert.rejects(c.createComponent({ name: "api", repository: "r/x:1.0" }, "a"), code("INVALID_REFERENCE"));
      await assert.rejects(c.createComponent({ name: "api", repository: `r/x@sha256:${"a".repeat(64)}` }, "a"), code("INVALID_REFERENCE"));
      assert.equal((await c.getComponent("web")).credentialsRef, "ci-pull");
    });

    it("refuses releases naming unknown components or malformed versions before touching the registry", async (t) => {
      const store = await b.open(t);
      const c = catalog(store);
      await c.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "a");
      await assert.rejects(c.createRelease({ name: "shop", version: "1.0", components: { api: ":1.0" } }, "a"), code("UNKNOWN_COMPONENT"));
      await assert.rejects(c.createRelease({ name: "shop", version: "1 0", components: { web: ":1.0" } }, "a"), code("VALIDATION_FAILED"));
      await assert.rejects(c.createRelease({ name: "shop", version: "1.0", components: {} }, "a"), code("VALIDATION_FAILED"));
      await assert.rejects(c.createRelease({ name: "shop", version: "1.0", components: { web: "127.0.0.1:5000/other/web:1.0" } }, "a"), code("COMPONENT_REPOSITORY_MISMATCH"));
      assert.equal((await store.query("SELECT 1 FROM releases")).rowCount, 0);
    });

    it("pages through releases created within one millisecond without skipping or repeating any", async (t) => {
      const store = await b.open(t);
      const c = catalog(store);
      await c.createComponent({ name: "web", repository: "127.0.0.1:5000/team/web" }, "a");
      // Five releases in the same millisecond, microseconds apart, ids out of time order; two more around them.
      const at = ["12:00:00.122999", "12:00:00.123001", "12:00:00.123400", "12:00:00.123456", "12:00:00.123457", "12:00:00.123999", "12:00:00.124"];
      const ids = ["rel_e", "rel_a", "rel_g", "rel_b", "rel_f", "rel_c", "rel_d"];
      for (const [i, id] of ids.entries()) {
        await store.query(`INSERT INTO releases (id, name, version, created_by, created_at) VALUES ($1, 'shop', $2, 'a', $3::timestamptz)`, [id, String(i), `2026-11-22T${at[i]}Z`]);
        await store.query(
          `INSERT INTO release_pins (release_id, component, repository, digest, media_type) VALUES ($1, 'web', '127.0.0.1:5000/team/web', $2, 'application/vnd.oci.image.manifest.v1+json')`,
          [id, `sha256:${String(i).repeat(64)}`],
        );
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 10; pages++) {
        const page = await c.listReleases({ limit: 2, ...(cursor ? { cursor } : {}) });
        seen.push(...page.items.map((r) => r.id));
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
      }
      assert.deepEqual(seen, [...ids].reverse());
      await assert.rejects(c.listReleases({ cursor: Buffer.from(JSON.stringify({ at: "yesterday", id: "rel_a" })).toString("base64url") }), code("VALIDATION_FAILED"));
    });
  });
}
