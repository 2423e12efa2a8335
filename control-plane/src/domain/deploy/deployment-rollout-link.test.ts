// A deployment names the rollout it is a wave of (`rolloutId`), found through the rollout's steps, on both store
// backends: the first wave, a later wave, a rollback wave; never a rollout of another environment or one that had
// ended before the deployment was made; null for a plain deployment.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TaskSigningKeyring } from "@ferry/pki";
import { testBackends } from "../../adapters/store/test-backends.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { Store } from "../../ports/store.js";
import { CatalogService } from "../catalog/catalog-service.js";
import { DeploymentService } from "./deployment-service.js";

const T0 = Date.UTC(2030, 0, 1);
let keyring: TaskSigningKeyring;
const dir = mkdtempSync(join(tmpdir(), "ferry-rollout-link-"));
before(async () => {
  keyring = await TaskSigningKeyring.loadOrCreate(join(dir, "task-signing"), { now: T0 - 1000 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const registry: ImageRegistry = { resolve: () => Promise.reject(new Error("no registry in this test")) };

async function seed(store: Store): Promise<void> {
  for (const env of ["dev", "prod"]) await store.query("INSERT INTO environments (name, position, created_by) VALUES ($1, $2, 't')", [env, env === "dev" ? 1 : 2]);
  await store.query("INSERT INTO releases (id, name, version, created_by) VALUES ('rel_1', 'shop', '1', 't')");
  const dep = (id: string, env: string, at: string) =>
    store.query("INSERT INTO deployments (id, environment, release_id, action, state, requested_by, created_at, updated_at) VALUES ($1, $2, 'rel_1', 'deploy', 'succeeded', 't', $3, $3)", [id, env, at]);
  await dep("dep_first", "dev", "2030-01-01T10:00:00Z");
  await dep("dep_second", "dev", "2030-01-01T10:05:00Z");
  await dep("dep_back", "dev", "2030-01-01T10:09:00Z");
  await dep("dep_plain", "dev", "2030-01-01T12:00:00Z");
  await dep("dep_prod", "prod", "2030-01-01T10:05:00Z");
  await store.query(
    `INSERT INTO rollouts (id, deployment_id, environment, release_id, strategy, targets, previous, state, requested_by, created_at, updated_at, finished_at)
     VALUES ('rol_1', 'dep_first', 'dev', 'rel_1', '{"kind":"rolling"}', '[]', '{}', 'rolled_back', 't', '2030-01-01T10:00:00Z', '2030-01-01T10:10:00Z', '2030-01-01T10:10:00Z')`,
  );
  const step = (idx: number, phase: string, kind: string, result: unknown) =>
    store.query("INSERT INTO rollout_steps (rollout_id, idx, phase, kind, name, spec, state, result) VALUES ('rol_1', $1, $2, $3, $4, '{}', 'succeeded', $5)", [idx, phase, kind, `step ${idx}`, JSON.stringify(result)]);
  await step(0, "forward", "wave", { deployments: ["dep_first"] });
  await step(1, "forward", "wait", { endedBy: "promote" });
  await step(2, "forward", "wave", { deployments: ["dep_other", "dep_second"] });
  await step(3, "rollback", "wave", { deployments: ["dep_back"] });
}

for (const b of testBackends()) {
  describe(`a deployment's rollout (${b.name})`, () => {
    it("is found for each of its waves and for nothing else", async (t) => {
      const store = await b.open(t);
      await seed(store);
      const now = () => T0;
      const catalog = new CatalogService({ store, registry, credentials: { get: async () => null }, clock: { now } });
      const deployments = new DeploymentService({ store, catalog, signer: keyring, clock: { now }, taskTtlMs: 60_000 });
      for (const id of ["dep_first", "dep_second", "dep_back"]) assert.equal((await deployments.get(id)).rolloutId, "rol_1", id);
      assert.equal((await deployments.get("dep_plain")).rolloutId, null, "made after the rollout ended");
      assert.equal((await deployments.get("dep_prod")).rolloutId, null, "another environment");
    });
  });
}
