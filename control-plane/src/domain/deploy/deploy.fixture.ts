// The deploy services as their tests run them, on a test store (test-backends.ts): a catalog on a fake registry
// (digest = sha256 of the reference, so a new tag is a new digest and nothing reaches a network), the deployment
// service and the task queue on one fake clock starting at T0, and the task-signing keyring a test file signs with.
// Each test file adds its own estate (environments, agents, targets, releases) and its own agent stand-in.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext } from "node:test";
import { TaskSigningKeyring } from "@ferry/pki";
import type { TestBackend } from "../../adapters/store/test-backends.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { TaskSigner } from "../../ports/signer.js";
import type { Store } from "../../ports/store.js";
import { CatalogService } from "../catalog/catalog-service.js";
import { FerryError } from "../errors.js";
import { DeploymentService } from "./deployment-service.js";
import { TaskQueue } from "./task-queue.js";

export const T0 = Date.UTC(2030, 0, 1);
/** The task queue's timings in these tests: an unacknowledged task is released after 30 s, a running one after 60 s. */
export const ACK_TIMEOUT = 30_000;
export const LEASE = 60_000;

export const digestOf = (ref: string): string => `sha256:${createHash("sha256").update(ref).digest("hex")}`;

/** Resolves every reference to a digest derived from it: a new tag is a new digest, the same tag the same one. */
export const fakeRegistry: ImageRegistry = {
  resolve: (reference) =>
    Promise.resolve({ repository: reference.replace(/:[^:/@]+$/, ""), digest: digestOf(reference), mediaType: "application/vnd.oci.image.manifest.v1+json", sourceTag: reference.split(":").pop() ?? null, platforms: [] }),
};

/** For assert.rejects: the error is a FerryError with code `c`. */
export const code = (c: string) => (e: unknown): true => {
  assert.ok(e instanceof FerryError, `expected FerryError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  return true;
};

/**
 * The task-signing keyring of a test file (valid from before T0): created before its tests in a temporary directory
 * (`dir`, where a test may keep other keys), removed after them. Call it at the top of the file.
 */
export function fileKeyring(prefix: string): { readonly dir: string; readonly keyring: TaskSigningKeyring } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let ring: TaskSigningKeyring | undefined;
  before(async () => {
    ring = await TaskSigningKeyring.loadOrCreate(join(dir, "task-signing"), { now: T0 - 1000 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    get keyring(): TaskSigningKeyring {
      if (!ring) throw new Error("the keyring is made before the file's tests run");
      return ring;
    },
  };
}

export interface DeployFx {
  store: Store;
  /** The fake clock every service reads; a test moves it by setting `t`. */
  clock: { t: number };
  now: () => number;
  catalog: CatalogService;
  deployments: DeploymentService;
  queue: TaskQueue;
}

/** The services on a new test store (or on `store`, e.g. a second replica's connection to the same database). */
export async function deployFixture(b: TestBackend, t: TestContext, o: { signer: TaskSigner; taskTtlMs: number; store?: Store }): Promise<DeployFx> {
  const store = o.store ?? (await b.open(t));
  const clock = { t: T0 };
  const now = () => clock.t;
  const catalog = new CatalogService({ store, registry: fakeRegistry, credentials: { get: async () => null }, clock: { now } });
  const deployments = new DeploymentService({ store, catalog, signer: o.signer, clock: { now }, taskTtlMs: o.taskTtlMs });
  const queue = new TaskQueue({ store, clock: { now }, timings: { ackTimeoutMs: ACK_TIMEOUT, runningLeaseMs: LEASE } });
  return { store, clock, now, catalog, deployments, queue };
}
