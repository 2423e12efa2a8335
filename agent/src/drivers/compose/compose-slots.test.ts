// Routed Compose services through a real HAProxy, on the real Docker Engine with Debian's docker-compose 1.29 and a
// real registry, all on loopback: web is routed (two slots behind the router), worker is replaced in place. An update
// and a rollback under continuous requests lose none; a rollback starts the retained slot again; a version that
// never becomes healthy never gets traffic; routed services need a router and host networking.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import { composeLock, type ComposeTargetConfig, type ImagePin } from "@ferry/contract";
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
import { DriverError, type DeployOutcome, type PhaseContext, type ProgressSink } from "../driver.js";
import { ComposeDriver, composeConfig } from "./compose-driver.js";
import { lockPath } from "./host-files.js";
import { EngineClient } from "../docker/engine/client.js";

const composeCli = spawnSync("docker-compose", ["version", "--short"], { encoding: "utf8" });
const skipReason: string | false =
  (await dockerSkipReason("Compose routed-service tests")) || registrySkipReason() || haproxySkipReason() || (composeCli.status === 0 ? false : "docker-compose is not installed (scripts/test-env.sh installs it)");
if (skipReason && process.env["CI"] === "true") throw new Error(skipReason);
const canRun = (t: TestContext): boolean => {
  if (skipReason) t.skip(skipReason);
  return !skipReason;
};

const RUN = `ferryrt${randomBytes(3).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "ferry-compose-rt-"));
const socket = join(dir, "admin.sock");
const maintenanceMap = join(dir, "maintenance.map");
let haproxy: TestHaproxy | undefined;
let registry: TestRegistry;
let docker: EngineClient;
let driver: ComposeDriver;
let router: HaproxyRouter;
let listen = 0;
let slots = { blue: 0, green: 0 };
let workerPort = 0;
const images: Record<string, TestImage> = {};

const SERVICES = { web: "web", worker: "worker" };
const config = (extra: Partial<ComposeTargetConfig> = {}): Record<string, unknown> => ({
  project: RUN,
  directory: dir,
  services: SERVICES,
  healthCheck: { type: "http", url: `http://127.0.0.1:${listen}/health`, timeoutSeconds: 6, intervalSeconds: 1, settleSeconds: 1 },
  routes: [{ composeService: "web", service: "web", listen: `127.0.0.1:${listen}`, slots, drainSeconds: 2 }],
  ...extra,
});

/** web listens on the port its slot is told ($PORT); worker on its own. */
function composeFile(webNetwork = "host"): string {
  return [
    `version: "3.8"`,
    "services:",
    "  web:",
    "    image: example/web:latest",
    `    network_mode: ${webNetwork}`,
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
const pins = (web: string) => [pin("web", images[web]!), pin("worker", images["worker1"]!)];

function ctxFor(p: ImagePin[], opts: { action?: "deploy" | "rollback"; progress?: Lines; config?: Record<string, unknown> } = {}): PhaseContext<ComposeTargetConfig> {
  const target = { id: `tgt-${RUN}`, name: RUN, kind: "compose", config: opts.config ?? config() };
  return {
    taskId: `task-${randomBytes(4).toString("hex")}`,
    deploymentId: `dep-${randomBytes(4).toString("hex")}`,
    action: opts.action ?? "deploy",
    release: { id: "rel", name: "shop", version: "x" },
    target,
    config: composeConfig(target.config),
    images: p,
    credentials: () => undefined,
    signal: new AbortController().signal,
    progress: opts.progress ?? new Lines(),
  };
}

function deploy(p: ImagePin[], opts: { action?: "deploy" | "rollback"; progress?: Lines; config?: Record<string, unknown>; with?: ComposeDriver } = {}): Promise<DeployOutcome> {
  return runPhases(opts.with ?? driver, ctxFor(p, opts), { logger: pino({ level: "silent" }) });
}

async function expectCode(p: Promise<unknown>, code: string): Promise<DriverError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DriverError, `expected a DriverError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${code}, the deploy succeeded`);
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
const get = (port: number, path = "/version") => httpGet(port, path, { agent: keepAlive, timeoutMs: 3000 });

/** Requests through the router, four at a time, until stopped (and at most 60 s). */
const load = () => httpLoad(listen, { agent: keepAlive, workers: 4, maxMs: 60_000, timeoutMs: 3000 });

/** Per slot: its container's id, state and restart policy. */
async function slotView(): Promise<Record<string, { id: string; state: string; restart: string }>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${RUN}`, "ferry.slot"] } });
  const out: Record<string, { id: string; state: string; restart: string }> = {};
  for (const c of list) {
    const info = await docker.getContainer(c.Id).inspect();
    out[c.Labels["ferry.slot"] ?? ""] = { id: c.Id, state: c.State, restart: info.HostConfig.RestartPolicy?.Name ?? "" };
  }
  return out;
}

async function workerId(): Promise<string | undefined> {
  const list = await docker.listContainers({ filters: { label: [`com.docker.compose.project=${RUN}`, "com.docker.compose.service=worker"] } });
  return list[0]?.Id;
}

describe("routed Compose services through HAProxy", { concurrency: false }, () => {
  before(async () => {
    if (skipReason) return;
    const socketPath = (await dockerEngine()).socketPath;
    docker = new EngineClient({ socketPath });
    registry = await startRegistry();
    [listen, slots.blue, slots.green, workerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    slots = { blue: slots.blue, green: slots.green };
    const build = (name: string, v: string, healthy = true) => buildTestImage({ registry: registry.host, repository: `${RUN}/${name}`, tag: `v${v}`, version: v, port: name === "worker" ? workerPort : 1, socketPath, healthy });
    images["web1"] = await build("web", "1");
    images["web2"] = await build("web", "2");
    images["sick"] = await build("web", "3", false);
    images["worker1"] = await build("worker", "1");
    writeFileSync(join(dir, "docker-compose.yml"), composeFile());
    writeFileSync(maintenanceMap, "");
    router = new HaproxyRouter({ socket, maintenanceMap });
    haproxy = await startHaproxy(dir, haproxyConfig({ socket, maintenanceMap }, [{ name: "web", listen: `127.0.0.1:${listen}`, slots: { blue: { address: "127.0.0.1", port: slots.blue }, green: { address: "127.0.0.1", port: slots.green } } }]), () => router.info());
    driver = new ComposeDriver({ socketPath, cli: "v1", settleSeconds: 1, stopTimeoutSeconds: 2, router });
  });

  after(async () => {
    keepAlive.destroy();
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

  it("a first deploy runs web in a slot behind the router with its restart policy, worker in place", async (t) => {
    if (!canRun(t)) return;
    const out = await deploy(pins("web1"));
    assert.deepEqual([...(out.details?.["replaced"] as string[])].sort(), ["web", "worker"]);
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 });
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
    const s = await slotView();
    assert.equal(s["green"]?.state, "running");
    assert.equal(s["green"]?.restart, "unless-stopped", "the service's restart policy, which `run` leaves out");
    assert.equal(s["blue"], undefined);
    assert.deepEqual(await get(workerPort), { status: 200, body: "1" });
    assert.equal(readFileSync(lockPath(dir), "utf8"), composeLock({ services: SERVICES }, pins("web1")).text);
    const seen = await driver.inspect({ id: "t", name: RUN, kind: "compose", config: config() });
    assert.equal(seen.state, "running");
    assert.equal(seen.details["drift"], undefined, JSON.stringify(seen.details["drift"]));
  });

  it("an update under load loses no request; only web switches slots, the old slot is drained and retained", async (t) => {
    if (!canRun(t)) return;
    const worker = await workerId();
    const traffic = load();
    await waitFor("traffic through the router", async () => (await get(listen)).status === 200);
    const progress = new Lines();
    const out = await deploy(pins("web2"), { progress });
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.slice(0, 5).join("; ")}`);
    assert.ok(r.ok > 20, `only ${r.ok} requests went through`);
    assert.deepEqual([...r.bodies].sort(), ["1", "2"]);
    assert.deepEqual(out.details?.["replaced"], ["web"]);
    assert.equal(await workerId(), worker, "worker kept its container");
    assert.deepEqual(await router.weights("web"), { blue: 100, green: 0 });
    const s = await slotView();
    assert.equal(s["blue"]?.state, "running");
    assert.equal(s["green"]?.state, "exited", "the old slot's container is retained, stopped");
    assert.ok(progress.lines.some((l) => /retained it: a rollback starts it again/.test(l)), progress.lines.join("\n"));
    assert.equal(readFileSync(lockPath(dir), "utf8"), composeLock({ services: SERVICES }, pins("web2")).text);
  });

  it("a rollback starts the retained slot again (no create), losing no request, with the earlier lock exactly", async (t) => {
    if (!canRun(t)) return;
    const before = await slotView();
    const traffic = load();
    await deploy(pins("web1"), { action: "rollback" });
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.slice(0, 5).join("; ")}`);
    assert.equal((await slotView())["green"]?.id, before["green"]?.id, "the same container, started again");
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 });
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
    assert.equal(readFileSync(lockPath(dir), "utf8"), composeLock({ services: SERVICES }, pins("web1")).text);
  });

  it("a deploy that stopped before switch (new slot running at weight 0) is finished by the next deploy", async (t) => {
    if (!canRun(t)) return;
    // What an agent killed after health leaves: the lock written, web 2 running in the idle slot, no traffic on it.
    await runPhases(driver, ctxFor(pins("web2")), { logger: pino({ level: "silent" }), phases: ["prepare", "start", "health"] });
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 });
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
    const seen = await driver.inspect({ id: "t", name: RUN, kind: "compose", config: config() });
    assert.match((seen.details["drift"] as string[]).join("\n"), /web: runs .*the lock pins/, "the serving slot, not the new one, is what runs");
    const blue = (await slotView())["blue"]?.id;
    const traffic = load();
    const out = await deploy(pins("web2"));
    const r = await traffic.stop();
    assert.equal(r.failed, 0, `failed requests: ${r.errors.slice(0, 5).join("; ")}`);
    assert.deepEqual(out.details?.["replaced"], ["web"]);
    assert.equal((await slotView())["blue"]?.id, blue, "the slot container started before is the one switched to");
    assert.deepEqual(await router.weights("web"), { blue: 100, green: 0 });
    assert.deepEqual(await get(listen), { status: 200, body: "2" });
    // Back to web 1 for the next case.
    await deploy(pins("web1"), { action: "rollback" });
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
  });

  it("a version that never becomes healthy never gets traffic; the slot that served keeps serving", async (t) => {
    if (!canRun(t)) return;
    const lockBefore = readFileSync(lockPath(dir), "utf8");
    const before = await slotView();
    const traffic = load();
    const err = await expectCode(deploy(pins("sick"), { config: config({ healthCheck: { type: "http", url: `http://127.0.0.1:${listen}/health`, timeoutSeconds: 3, intervalSeconds: 1, settleSeconds: 1 } }) }), "HEALTH_CHECK_FAILED");
    const r = await traffic.stop();
    assert.equal(err.restored, true);
    assert.equal(r.failed, 0, `failed requests: ${r.errors.slice(0, 5).join("; ")}`);
    assert.deepEqual([...r.bodies], ["1"]);
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 });
    const s = await slotView();
    assert.equal(s["green"]?.id, before["green"]?.id);
    assert.equal(s["blue"], undefined, "the new slot's container is removed");
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore);
  });

  it("refuses a routed service without a router, or not on the host's network, before anything changes", async (t) => {
    if (!canRun(t)) return;
    const before = await slotView();
    await expectCode(deploy(pins("web2"), { with: new ComposeDriver({ socketPath: (await dockerEngine()).socketPath, cli: "v1" }) }), "ROUTER_UNAVAILABLE");
    writeFileSync(join(dir, "bridge.yml"), composeFile("bridge"));
    const e = await expectCode(deploy(pins("web2"), { config: config({ file: "bridge.yml" }) }), "COMPOSE_FILE_INVALID");
    assert.match(e.message, /web in bridge\.yml is routed .*network_mode: host/);
    // inspect answers the same, changing nothing.
    await expectCode(driver.inspect({ id: "t", name: RUN, kind: "compose", config: config({ file: "bridge.yml" }) }), "COMPOSE_FILE_INVALID");
    await expectCode(new ComposeDriver({ socketPath: (await dockerEngine()).socketPath, cli: "v1" }).inspect({ id: "t", name: RUN, kind: "compose", config: config() }), "ROUTER_UNAVAILABLE");
    assert.deepEqual(await slotView(), before);
  });
});
