// Blue-green on a routed Docker target, against a real Docker Engine, a real registry and a real HAProxy, all on
// loopback: a deploy and a rollback under continuous requests lose none, a rollback flips back to the retained
// container without creating one, and a version that never becomes healthy is never given traffic.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import { pino } from "pino";

import { buildTestImage, dockerEngine, dockerSkipReason, type TestImage } from "../../../../test/helpers/docker.js";
import { haproxySkipReason, startHaproxy, type TestHaproxy } from "../../../../test/helpers/haproxy.js";
import { httpGet, httpLoad } from "../../../../test/helpers/http-load.js";
import { freePort } from "../../../../test/helpers/net.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../../../../test/helpers/registry.js";
import { waitFor } from "../../../../test/helpers/wait.js";
import { runPhases } from "../../core/phase-runner.js";
import { haproxyConfig } from "../../routing/haproxy/haproxy-config.js";
import { HaproxyRouter } from "../../routing/haproxy/haproxy-router.js";
import type { Phase } from "@ferry/contract";

import { DriverError, type DeployOutcome, type PhaseContext, type ProgressSink, type RouteContext } from "../driver.js";
import { DockerDriver, dockerConfig } from "./docker-driver.js";
import { EngineClient } from "./engine/client.js";

const skipReason: string | false = (await dockerSkipReason("Docker blue-green tests")) || registrySkipReason() || haproxySkipReason();
if (skipReason && process.env["CI"] === "true") throw new Error(skipReason);
const canRun = (t: TestContext): boolean => {
  if (skipReason) t.skip(skipReason);
  return !skipReason;
};

const RUN = `ferry-bg-${randomBytes(3).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "ferry-bg-"));
const socket = join(dir, "admin.sock");
const maintenanceMap = join(dir, "maintenance.map");
let haproxy: TestHaproxy | undefined;
let registry: TestRegistry;
let docker: EngineClient;
let driver: DockerDriver;
let router: HaproxyRouter;
let listen = 0;
let slots = { blue: 0, green: 0 };
let v1: TestImage;
let v2: TestImage;
let sick: TestImage;

// The slot's port comes from $PORT, as a routed container is told (route.portEnv).
const COMMAND = ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$PORT -h /www & wait"];
const config = (): Record<string, unknown> => ({
  container: `${RUN}-web`,
  command: COMMAND,
  healthCheck: { type: "http", url: "http://127.0.0.1:1/health", timeoutSeconds: 6, intervalSeconds: 1, settleSeconds: 1 },
  route: { service: "web", listen: `127.0.0.1:${listen}`, slots, drainSeconds: 2 },
});

class Lines implements ProgressSink {
  readonly lines: string[] = [];
  step(): void {}
  log(line: string): void {
    this.lines.push(line);
  }
}

async function run(
  image: TestImage,
  action: "deploy" | "rollback" = "deploy",
  progress = new Lines(),
  step?: { phases: Phase[]; state?: Record<string, unknown> },
): Promise<DeployOutcome & { state: Record<string, unknown> }> {
  const target = { id: "tgt-web", name: "web", kind: "docker", config: config() };
  const ctx: PhaseContext<ReturnType<typeof dockerConfig>> = {
    taskId: `task-${randomBytes(4).toString("hex")}`,
    deploymentId: `dep-${randomBytes(4).toString("hex")}`,
    action,
    release: { id: "rel", name: "shop", version: "x" },
    target,
    config: dockerConfig(target.config),
    images: [{ component: "web", repository: image.repository, digest: image.digest, ref: image.pinned }],
    credentials: () => undefined,
    signal: new AbortController().signal,
    progress,
  };
  return runPhases(driver, ctx, { logger: pino({ level: "silent" }), ...(step ? { phases: step.phases, ...(step.state ? { state: step.state } : {}) } : {}) });
}

function routeCtx(): RouteContext<ReturnType<typeof dockerConfig>> {
  const target = { id: "tgt-web", name: "web", kind: "docker", config: config() };
  return { taskId: `task-${randomBytes(4).toString("hex")}`, target, config: dockerConfig(target.config), signal: new AbortController().signal, progress: new Lines() };
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
/** GET /version through the router. */
const version = () => httpGet(listen, "/version", { agent: keepAlive, timeoutMs: 3000 });

/** Requests through the router, four at a time, until stopped (and at most 60 s): what failed, and what answered. */
const load = () => httpLoad(listen, { agent: keepAlive, workers: 4, maxMs: 60_000, timeoutMs: 3000 });

async function slotContainers(): Promise<Record<string, { id: string; state: string }>> {
  const list = await docker.listContainers({ all: true, filters: { name: [`${RUN}-web-`] } });
  return Object.fromEntries(list.map((c) => [(c.Names[0] ?? "").replace(`/${RUN}-web-`, ""), { id: c.Id, state: c.State }]));
}

describe("Docker blue-green through HAProxy", { concurrency: false }, () => {
  before(async () => {
    if (skipReason) return;
    const socketPath = (await dockerEngine()).socketPath;
    docker = new EngineClient({ socketPath });
    registry = await startRegistry();
    [listen, slots.blue, slots.green] = [await freePort(), await freePort(), await freePort()];
    slots = { blue: slots.blue, green: slots.green };
    const build = (v: string, healthy = true) => buildTestImage({ registry: registry.host, repository: `${RUN}/web`, tag: `v${v}`, version: v, port: 1, socketPath, healthy });
    v1 = await build("1");
    v2 = await build("2");
    sick = await build("3", false);
    writeFileSync(maintenanceMap, "");
    router = new HaproxyRouter({ socket, maintenanceMap });
    haproxy = await startHaproxy(dir, haproxyConfig({ socket, maintenanceMap }, [{ name: "web", listen: `127.0.0.1:${listen}`, slots: { blue: { address: "127.0.0.1", port: slots.blue }, green: { address: "127.0.0.1", port: slots.green } } }]), () => router.info());
    driver = new DockerDriver({ socketPath, stopTimeoutSeconds: 2, settleSeconds: 1, router });
  });

  after(async () => {
    keepAlive.destroy();
    if (docker) {
      for (const c of await docker.listContainers({ all: true, filters: { name: [RUN] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      for (const img of await docker.listImages()) {
        if ((img.RepoDigests ?? []).some((d) => d.startsWith(`${registry.host}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    await haproxy?.stop();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("offers side-by-side and router with a router, and reports the router with the engine", async (t) => {
    if (!canRun(t)) return;
    assert.deepEqual(driver.capabilities(), ["side-by-side", "router"]);
    const a = await driver.available();
    assert.match(a.detail, /router haproxy 2\.\d+/);
  });

  it("a first deploy starts the idle slot and switches to it", async (t) => {
    if (!canRun(t)) return;
    const out = await run(v1);
    assert.equal(out.running[0]?.digest, v1.digest);
    assert.equal(out.running[0]?.containerName, `${RUN}-web-green`);
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 });
    assert.deepEqual(await version(), { status: 200, body: "1" });
  });

  it("a deploy under load loses no request; the old slot is drained, stopped and retained", async (t) => {
    if (!canRun(t)) return;
    const traffic = load();
    await waitFor("traffic through the router", async () => (await version()).status === 200);
    const progress = new Lines();
    const out = await run(v2, "deploy", progress);
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.slice(0, 5).join("; ")}`);
    assert.ok(r.ok > 20, `only ${r.ok} requests went through`);
    assert.deepEqual([...r.bodies].sort(), ["1", "2"]);
    assert.equal(out.running[0]?.containerName, `${RUN}-web-blue`);
    assert.deepEqual(await router.weights("web"), { blue: 100, green: 0 });
    assert.deepEqual(await version(), { status: 200, body: "2" });
    const c = await slotContainers();
    assert.equal(c["green"]?.state, "exited", "the old slot's container is retained, stopped");
    assert.equal(c["blue"]?.state, "running");
    assert.ok(progress.lines.some((l) => /retained it: a rollback flips back to it/.test(l)), progress.lines.join("\n"));
  });

  it("a rollback flips back to the retained container (no create) within 5 s, losing no request", async (t) => {
    if (!canRun(t)) return;
    const before = await slotContainers();
    const traffic = load();
    const started = Date.now();
    const out = await run(v1, "rollback");
    const ms = Date.now() - started;
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.slice(0, 5).join("; ")}`);
    assert.equal((out.details?.["slot"] as { reused: boolean }).reused, true);
    assert.equal((await slotContainers())["green"]?.id, before["green"]?.id, "the same container, started again");
    assert.deepEqual(await version(), { status: 200, body: "1" });
    // The sticker's digest is what serves: the running slot container carries the previous digest.
    const sticker = await driver.readSticker({ id: "tgt-web", name: "web", kind: "docker", config: config() });
    assert.equal(sticker?.images[0]?.digest, v1.digest);
    // Drain is bounded by drainSeconds (2 s); the rest is start, settle (1 s) and the check.
    assert.ok(ms < 5000, `rollback took ${ms} ms`);
  });

  it("a version that never becomes healthy never gets traffic, and the slot that served keeps serving", async (t) => {
    if (!canRun(t)) return;
    const traffic = load();
    await assert.rejects(run(sick), (e: unknown) => e instanceof DriverError && e.code === "HEALTH_CHECK_FAILED" && e.restored);
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.slice(0, 5).join("; ")}`);
    assert.deepEqual([...r.bodies], ["1"]);
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 });
    assert.equal((await slotContainers())["blue"], undefined, "the unhealthy container was removed");
  });

  it("a canary as separate steps: start beside, weights, measure, maintenance, then switch from the carried state", async (t) => {
    if (!canRun(t)) return;
    // What serves now is v1 (green); the canary is v2 in the blue slot.
    const first = await run(v2, "deploy", new Lines(), { phases: ["prepare", "start", "health"] });
    // The state travels through the control plane as JSON: nothing in it may depend on memory.
    const state = JSON.parse(JSON.stringify(first.state)) as Record<string, unknown>;
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 }, "starting beside gives the new slot no traffic");
    assert.deepEqual(await version(), { status: 200, body: "1" });

    const set = await driver.route(routeCtx(), { op: "weights", newWeight: 50 }, state as never);
    assert.deepEqual(set["weights"], { blue: 50, green: 50 });
    const before = await driver.route(routeCtx(), { op: "measure" }, state as never);
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add((await version()).body);
    assert.deepEqual([...seen].sort(), ["1", "2"]);
    const after = await driver.route(routeCtx(), { op: "measure" }, state as never);
    type Counters = { requests: number; errors5xx: number };
    const delta = (k: "new" | "stable") => (after[k] as Counters).requests - (before[k] as Counters).requests;
    assert.equal(after["epoch"], before["epoch"]);
    assert.equal(after["newSlot"], "blue");
    assert.equal(delta("new") + delta("stable"), 40);
    assert.ok(delta("new") >= 10 && delta("stable") >= 10, `new ${delta("new")}, stable ${delta("stable")}`);

    await driver.route(routeCtx(), { op: "maintenance", message: "upgrading; back at 10:00" }, undefined);
    assert.deepEqual(await version(), { status: 503, body: "upgrading; back at 10:00" });
    assert.deepEqual(await driver.route(routeCtx(), { op: "maintenance", message: null }, undefined), { maintenance: null });
    assert.equal((await version()).status, 200);

    const second = await run(v2, "deploy", new Lines(), { phases: ["switch", "retire"], state });
    assert.equal(second.running[0]?.containerName, `${RUN}-web-blue`);
    assert.deepEqual(await router.weights("web"), { blue: 100, green: 0 });
    assert.deepEqual(await version(), { status: 200, body: "2" });
    assert.equal((await slotContainers())["green"]?.state, "exited", "v1 is retained for a rollback");
  });

  it("a canary rolled back at weight 0: traffic back on the stable slot, the canary container removed", async (t) => {
    if (!canRun(t)) return;
    const first = await run(v1, "deploy", new Lines(), { phases: ["prepare", "start", "health"] });
    const state = JSON.parse(JSON.stringify(first.state)) as Record<string, unknown>;
    assert.equal((state["slot"] as { reused: boolean }).reused, true, "v1 was retained in the green slot");
    await driver.route(routeCtx(), { op: "weights", newWeight: 25 }, state as never);
    // The rollback of a canary: weight 0 at once, then the restore phase from the carried state.
    await driver.route(routeCtx(), { op: "weights", newWeight: 0 }, state as never);
    assert.deepEqual(await router.weights("web"), { blue: 100, green: 0 });
    await run(v1, "rollback", new Lines(), { phases: ["restore"], state });
    assert.deepEqual(await version(), { status: 200, body: "2" });
    assert.equal((await slotContainers())["green"]?.state, "exited", "the retained container is stopped again, not removed");
  });
});
