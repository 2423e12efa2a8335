// A Compose project's phases as a rollout runs them: separate steps, each on a fresh driver (an agent restarted between
// steps) given only the earlier step's state through JSON, with `route` tasks in between, on the real Docker Engine,
// Debian's docker-compose 1.29, a real registry and a real HAProxy, all on loopback. web is routed (two slots, an A/B
// split key), worker is not (replaced in place at switch). Requests through the router count failures throughout.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import { composeLock, type ComposeTargetConfig, type ImagePin, type Phase, type RouteOperation } from "@ferry/contract";
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
import { DriverError, type PhaseContext, type PhaseState, type ProgressSink } from "../driver.js";
import { ComposeDriver, composeConfig } from "./compose-driver.js";
import { lockPath } from "./host-files.js";
import type { ComposePhaseState } from "./phase-state.js";
import { sumCounters } from "./slots.js";
import { EngineClient } from "../docker/engine/client.js";

const composeCli = spawnSync("docker-compose", ["version", "--short"], { encoding: "utf8" });
const skipReason: string | false =
  (await dockerSkipReason("Compose separate-step tests")) || registrySkipReason() || haproxySkipReason() || (composeCli.status === 0 ? false : "docker-compose is not installed (scripts/test-env.sh installs it)");
if (skipReason && process.env["CI"] === "true") throw new Error(skipReason);
const canRun = (t: TestContext): boolean => {
  if (skipReason) t.skip(skipReason);
  return !skipReason;
};

const RUN = `ferryst${randomBytes(3).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "ferry-compose-steps-"));
const socket = join(dir, "admin.sock");
const maintenanceMap = join(dir, "maintenance.map");
const splitMap = join(dir, "split.map");
let haproxy: TestHaproxy | undefined;
let registry: TestRegistry;
let docker: EngineClient;
let socketPath = "";
let router: HaproxyRouter;
let listen = 0;
let slots = { blue: 0, green: 0 };
let workerPort = 0;
const images: Record<string, TestImage> = {};

const SERVICES = { web: "web", worker: "worker" };
const SPLIT = { by: "cookie" as const, name: "user" };
const config = (extra: Partial<ComposeTargetConfig> = {}): Record<string, unknown> => ({
  project: RUN,
  directory: dir,
  services: SERVICES,
  healthCheck: { type: "http", url: `http://127.0.0.1:${listen}/health`, timeoutSeconds: 5, intervalSeconds: 1, settleSeconds: 1 },
  routes: [{ composeService: "web", service: "web", listen: `127.0.0.1:${listen}`, slots, drainSeconds: 1, split: SPLIT }],
  ...extra,
});

function composeFile(): string {
  return [
    `version: "3.8"`,
    "services:",
    "  web:",
    "    image: example/web:latest",
    "    network_mode: host",
    "    restart: unless-stopped",
    "    stop_grace_period: 2s",
    `    command: ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$$PORT -h /www & wait"]`,
    "  worker:",
    "    image: example/worker:latest",
    "    network_mode: host",
    "    restart: unless-stopped",
    "    stop_grace_period: 2s",
    "",
  ].join("\n");
}

class Lines implements ProgressSink {
  readonly lines: string[] = [];
  step(): void {}
  log(line: string): void {
    this.lines.push(line);
  }
}

const pin = (component: string, img: TestImage): ImagePin => ({ component, repository: img.repository, digest: img.digest, ref: img.pinned });
const pins = (web: string, worker: string) => [pin("web", images[web]!), pin("worker", images[worker]!)];

/** A driver as a freshly started agent has it: nothing remembered from an earlier step. */
const freshDriver = () => new ComposeDriver({ socketPath, cli: "v1", settleSeconds: 1, stopTimeoutSeconds: 2, router: new HaproxyRouter({ socket, maintenanceMap, splitMap }) });

function ctxFor(p: ImagePin[], progress = new Lines(), action: "deploy" | "rollback" = "deploy"): PhaseContext<ComposeTargetConfig> {
  const target = { id: `tgt-${RUN}`, name: RUN, kind: "compose", config: config() };
  return {
    taskId: `task-${randomBytes(4).toString("hex")}`,
    deploymentId: `dep-${randomBytes(4).toString("hex")}`,
    action,
    release: { id: "rel", name: "shop", version: "x" },
    target,
    config: composeConfig(target.config),
    images: p,
    credentials: () => undefined,
    signal: new AbortController().signal,
    progress,
  };
}

/** One step of a rollout: the phases on a fresh driver, the state in and out through JSON (as the payload carries it). */
async function step(p: ImagePin[], phases: Phase[], state?: string, progress = new Lines()): Promise<string> {
  const out = await runPhases(freshDriver(), ctxFor(p, progress), { logger: pino({ level: "silent" }), phases, ...(state ? { state: JSON.parse(state) as PhaseState } : {}) });
  return JSON.stringify(out.state);
}

/** A `route` task on a fresh driver, with the start step's state through JSON. */
async function routeTask(op: RouteOperation, state?: string): Promise<Record<string, unknown>> {
  const target = { id: `tgt-${RUN}`, name: RUN, kind: "compose", config: config() };
  const out = await freshDriver().route(
    { taskId: "route", target, config: composeConfig(target.config), signal: new AbortController().signal, progress: new Lines() },
    op,
    state ? (JSON.parse(state) as ComposePhaseState) : undefined,
  );
  // What the agent sends back must survive JSON too.
  return JSON.parse(JSON.stringify(out)) as Record<string, unknown>;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<DriverError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DriverError, `expected a DriverError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${code}, it succeeded`);
}

const get = (port: number, cookie?: string) => httpGet(port, "/version", { timeoutMs: 3000, ...(cookie ? { cookie } : {}) });

/** Requests through the router, three at a time, until stopped (at most 90 s). */
const load = () => httpLoad(listen, { workers: 3, maxMs: 90_000, pauseMs: 5, timeoutMs: 3000, maxErrors: 10 });

async function slotView(): Promise<Record<string, { id: string; state: string }>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${RUN}`, "ferry.slot"] } });
  return Object.fromEntries(list.map((c) => [c.Labels["ferry.slot"] ?? "", { id: c.Id, state: c.State }]));
}

async function workerId(): Promise<string | undefined> {
  const list = await docker.listContainers({ filters: { label: [`com.docker.compose.project=${RUN}`, "com.docker.compose.service=worker"] } });
  return list[0]?.Id;
}

const lockOf = (web: string, worker: string) => composeLock({ services: SERVICES }, pins(web, worker)).text;
const serving = async (): Promise<"blue" | "green"> => {
  const w = await router.weights("web");
  return w.blue >= w.green ? "blue" : "green";
};

describe("a Compose project's phases as separate steps, with route tasks between them", { concurrency: false }, () => {
  before(async () => {
    if (skipReason) return;
    socketPath = (await dockerEngine()).socketPath;
    docker = new EngineClient({ socketPath });
    registry = await startRegistry();
    [listen, slots.blue, slots.green, workerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    slots = { blue: slots.blue, green: slots.green };
    const build = (name: string, v: string, extra: { healthy?: boolean; crash?: { afterSeconds: number; exitCode: number } } = {}) =>
      buildTestImage({ registry: registry.host, repository: `${RUN}/${name}`, tag: `v${v}`, version: v, port: name === "worker" ? workerPort : 1, socketPath, ...extra });
    for (const v of ["1", "2", "3"]) images[`web${v}`] = await build("web", v);
    images["sick"] = await build("web", "sick", { healthy: false });
    images["worker1"] = await build("worker", "1");
    images["worker2"] = await build("worker", "2");
    images["workerCrash"] = await build("worker", "crash", { crash: { afterSeconds: 0, exitCode: 3 } });
    writeFileSync(join(dir, "docker-compose.yml"), composeFile());
    writeFileSync(maintenanceMap, "");
    writeFileSync(splitMap, "");
    router = new HaproxyRouter({ socket, maintenanceMap, splitMap });
    haproxy = await startHaproxy(
      dir,
      haproxyConfig({ socket, maintenanceMap, splitMap }, [{ name: "web", listen: `127.0.0.1:${listen}`, slots: { blue: { address: "127.0.0.1", port: slots.blue }, green: { address: "127.0.0.1", port: slots.green } }, split: SPLIT }]),
      () => router.info(),
    );
  });

  after(async () => {
    if (docker) {
      for (const c of await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${RUN}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      for (const img of await docker.listImages()) {
        if ((img.RepoDigests ?? []).some((d) => d.startsWith(`${registry.host}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    await haproxy?.stop();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("offers side-by-side and router only with a router, runs separate steps, and refuses route tasks without routes", async (t) => {
    if (!canRun(t)) return;
    const d = freshDriver();
    assert.equal(d.separateSteps, true);
    assert.deepEqual([...d.capabilities()].sort(), ["router", "several-images", "side-by-side"]);
    assert.deepEqual(new ComposeDriver({ socketPath, cli: "v1" }).capabilities(), ["several-images"]);
    const plain = { id: "t", name: RUN, kind: "compose", config: { project: RUN, directory: dir } };
    await expectCode(d.route({ taskId: "r", target: plain, config: composeConfig(plain.config), signal: new AbortController().signal, progress: new Lines() }, { op: "measure" }, undefined), "ROUTE_UNKNOWN");
    // The first deploy, all at once: web in a slot, worker in place.
    await step(pins("web1", "worker1"), ["prepare", "start", "health", "switch", "retire"]);
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
    assert.deepEqual(await get(workerPort), { status: 200, body: "1" });
  });

  it("blue-green as two steps on fresh drivers: the worker moves at switch, no request fails", async (t) => {
    if (!canRun(t)) return;
    const worker = await workerId();
    const before = await serving();
    const traffic = load();
    await waitFor("traffic through the router", async () => (await get(listen)).status === 200);
    const progress = new Lines();
    const started = await step(pins("web2", "worker2"), ["prepare", "start", "health"], undefined, progress);
    // Between the steps: web 2 runs in the idle slot at weight 0, nothing that serves has changed.
    assert.equal(await serving(), before);
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
    assert.equal(await workerId(), worker, "the worker is not replaced before switch");
    assert.deepEqual(await get(workerPort), { status: 200, body: "1" });
    assert.ok(progress.lines.some((l) => /worker is not routed: replaced in place at switch/.test(l)), progress.lines.join("\n"));
    const s = JSON.parse(started) as ComposePhaseState;
    assert.equal(s.routed?.["web"]?.slot.active, before);
    await step(pins("web2", "worker2"), ["switch", "retire"], started);
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join("; ")}`);
    assert.ok(r.ok > 20, `only ${r.ok} requests went through`);
    assert.deepEqual([...r.bodies].sort(), ["1", "2"]);
    assert.notEqual(await serving(), before);
    assert.deepEqual(await get(workerPort), { status: 200, body: "2" });
    assert.notEqual(await workerId(), worker);
    assert.equal((await slotView())[before]?.state, "exited", "the old slot is retained, stopped");
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockOf("web2", "worker2"));
    const seen = await freshDriver().inspect({ id: "t", name: RUN, kind: "compose", config: config() });
    assert.equal(seen.state, "running");
    assert.equal(seen.details["drift"], undefined, JSON.stringify(seen.details["drift"]));
    assert.equal(seen.details["interruptedDeploy"], undefined);
  });

  it("a canary's weights and measure route tasks, then a rollback from the weights step: weight 0, restore", async (t) => {
    if (!canRun(t)) return;
    const lockBefore = readFileSync(lockPath(dir), "utf8");
    const worker = await workerId();
    const before = await serving();
    const traffic = load();
    const started = await step(pins("web3", "worker2"), ["prepare", "start", "health"]);
    const w = await routeTask({ op: "weights", newWeight: 30 }, started);
    assert.equal(w["newSlot"], before === "blue" ? "green" : "blue");
    assert.deepEqual(w["weights"], { [before]: 70, [w["newSlot"] as string]: 30 });
    await waitFor("requests on the canary", async () => ((await get(listen)).body === "3" ? true : undefined));
    const m = await routeTask({ op: "measure" }, started);
    assert.equal(typeof m["epoch"], "string");
    assert.ok((m["new"] as { requests: number }).requests > 0 && (m["stable"] as { requests: number }).requests > 0, JSON.stringify(m));
    assert.deepEqual(Object.keys(m["services"] as object), ["web"]);
    // The rollback of a target that did not switch: all traffic off the new slot, then restore from the start state.
    await routeTask({ op: "weights", newWeight: 0 }, started);
    const restored = await runPhases(freshDriver(), ctxFor(pins("web3", "worker2"), new Lines(), "rollback"), { logger: pino({ level: "silent" }), phases: ["restore"], state: JSON.parse(started) as PhaseState });
    // The restore step reports the lock it was signed for (the control plane checks it) and the one it put back.
    assert.equal(restored.details?.["lockSha256"], (JSON.parse(started) as ComposePhaseState).lock.sha256);
    assert.equal(restored.details?.["previousLockSha256"], `sha256:${createHash("sha256").update(lockBefore).digest("hex")}`);
    assert.match(restored.message, /is back/);
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join("; ")}`);
    assert.ok(r.bodies.has("3"), "the canary got requests");
    assert.equal(await serving(), before);
    assert.equal((await slotView())[w["newSlot"] as string], undefined, "the canary's container is removed");
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore);
    assert.equal(await workerId(), worker, "the worker never moved");
    assert.deepEqual(await get(listen), { status: 200, body: "2" });
  });

  it("an A/B split through a route task (the split key is checked), lifted by switch", async (t) => {
    if (!canRun(t)) return;
    const started = await step(pins("web3", "worker2"), ["prepare", "start", "health"]);
    await expectCode(routeTask({ op: "weights", newWeight: 50, split: { by: "header", name: "X-User", allowlist: [] } }, started), "ROUTE_SPLIT_UNCONFIGURED");
    const w = await routeTask({ op: "weights", newWeight: 50, split: { by: "cookie", name: "user", allowlist: ["tester"] } }, started);
    assert.equal((w["split"] as { percent: number }).percent, 50);
    assert.deepEqual(await get(listen, "user=tester"), { status: 200, body: "3" }, "an allowlisted user is on B");
    assert.deepEqual(await get(listen), { status: 200, body: "2" }, "no cookie stays on A");
    const sticky = await get(listen, "user=u7");
    for (let i = 0; i < 5; i++) assert.equal((await get(listen, "user=u7")).body, sticky.body);
    const m = await routeTask({ op: "measure" }, started);
    assert.equal((m["split"] as { slot: string }).slot, w["newSlot"]);
    await step(pins("web3", "worker2"), ["switch", "retire"], started);
    assert.equal(await router.split("web"), null, "switch lifts the split");
    assert.deepEqual(await get(listen), { status: 200, body: "3" });
    assert.deepEqual(await get(listen, "user=u7"), { status: 200, body: "3" });
  });

  it("each phase as its own task; a failing health step restores from the carried state", async (t) => {
    if (!canRun(t)) return;
    const before = await serving();
    const lockBefore = readFileSync(lockPath(dir), "utf8");
    const traffic = load();
    const prepared = await step(pins("sick", "worker1"), ["prepare"]);
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore, "prepare changes nothing");
    const started = await step(pins("sick", "worker1"), ["start"], prepared);
    assert.ok((await slotView())[before === "blue" ? "green" : "blue"], "start began the new slot");
    const err = await expectCode(step(pins("sick", "worker1"), ["health"], started), "HEALTH_CHECK_FAILED");
    assert.equal(err.restored, true);
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join("; ")}`);
    assert.deepEqual([...r.bodies], ["3"]);
    assert.equal(await serving(), before);
    // The version retained in the idle slot was removed to make room (restore reports it lost); the new one is gone too.
    assert.equal((await slotView())[before === "blue" ? "green" : "blue"], undefined);
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore);
    assert.deepEqual(await get(workerPort), { status: 200, body: "2" }, "the worker never moved");
  });

  it("a worker that crashes at switch fails the switch step: weights stay, the worker and the lock are put back", async (t) => {
    if (!canRun(t)) return;
    const before = await serving();
    const lockBefore = readFileSync(lockPath(dir), "utf8");
    const traffic = load();
    const started = await step(pins("web1", "workerCrash"), ["prepare", "start", "health"]);
    await routeTask({ op: "weights", newWeight: 20 }, started);
    const err = await expectCode(step(pins("web1", "workerCrash"), ["switch", "retire"], started), "INSTANCE_CRASHED");
    assert.equal(err.restored, true);
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join("; ")}`);
    assert.equal(await serving(), before);
    assert.deepEqual(await router.weights("web"), before === "blue" ? { blue: 100, green: 0 } : { blue: 0, green: 100 });
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore);
    await waitFor("the worker back at version 2", async () => ((await get(workerPort).catch(() => undefined))?.body === "2" ? true : undefined));
    assert.equal((await slotView())[before === "blue" ? "green" : "blue"], undefined, "the new slot's container is removed");
  });

  it("after switch and retire, a rollback flips back to the retained slot in one task; maintenance covers the routed services", async (t) => {
    if (!canRun(t)) return;
    const before = await serving();
    const traffic = load();
    const started = await step(pins("web2", "worker1"), ["prepare", "start", "health"]);
    await step(pins("web2", "worker1"), ["switch", "retire"], started);
    assert.deepEqual(await get(listen), { status: 200, body: "2" });
    assert.deepEqual(await get(workerPort), { status: 200, body: "1" });
    const retained = (await slotView())[before];
    await step(pins("web3", "worker2"), ["prepare", "start", "health", "switch", "retire"], undefined, new Lines());
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join("; ")}`);
    assert.equal((await slotView())[before]?.id, retained?.id, "the retained container was started again");
    assert.deepEqual(await get(listen), { status: 200, body: "3" });
    assert.deepEqual(await get(workerPort), { status: 200, body: "2" });
    const on = await routeTask({ op: "maintenance", message: "back soon" });
    assert.deepEqual(on["services"], { web: { maintenance: "back soon" } });
    assert.deepEqual(await get(listen), { status: 503, body: "back soon" });
    await routeTask({ op: "maintenance", message: null });
    assert.deepEqual(await get(listen), { status: 200, body: "3" });
  });

  it("sums several services' counters per side, the response time weighted by requests", () => {
    const a = { requests: 30, errors5xx: 1, avgResponseMs: 10, connections: 2 };
    const b = { requests: 10, errors5xx: 2, avgResponseMs: 50, connections: 1 };
    assert.deepEqual(sumCounters([a, b]), { requests: 40, errors5xx: 3, avgResponseMs: 20, connections: 3 });
    assert.deepEqual(sumCounters([{ ...a, requests: 0 }, { ...b, requests: 0 }]), { requests: 0, errors5xx: 3, avgResponseMs: 30, connections: 3 });
  });
});
