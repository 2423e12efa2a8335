// The Docker driver against a real Docker Engine and a real registry on 127.0.0.1 (scripts/test-env.sh starts the
// engine; each run starts its own registry). Test images are busybox httpd images built with `docker import` and
// pushed to that registry (test/helpers/docker.ts); containers use host networking and listen on loopback ports.
//
// Without an engine the tests skip loudly; under CI=true a missing engine fails them.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it, type TestContext } from "node:test";

import {
  buildTestImage,
  dockerEngine,
  loudSkip,
  privateDockerdSkipReason,
  runDocker,
  startPrivateDockerd,
  type TestImage,
} from "../../../../test/helpers/docker.js";
import { freePort } from "../../../../test/helpers/net.js";
import { startRegistry, type TestRegistry } from "../../../../test/helpers/registry.js";
import { engineSuite } from "../../../../test/helpers/engine-suite.js";
import { waitFor } from "../../../../test/helpers/wait.js";
import { checkObject, ConfigError, type ImagePin } from "@ferry/contract";
import { pino } from "pino";

import { runPhases } from "../../core/phase-runner.js";
import { DriverError, type DeployOutcome, type PhaseContext, type ProgressSink, type RegistryAuth, type TargetRef } from "../driver.js";
import { DockerDriver, dockerConfig, resolveSocketPath } from "./docker-driver.js";
import { dockerRegistration, dockerSettings } from "./index.js";
import { pickImage } from "./prepare.js";
import { EngineClient } from "./engine/client.js";

const SUITE = "Docker driver integration tests";
const suite = await engineSuite(SUITE);
const canRun = (t: TestContext): boolean => suite.canRun(t);

const RUN = `ferry-dd-${randomBytes(3).toString("hex")}`;
let registry: TestRegistry;
let socketPath: string;
let docker: EngineClient;
let driver: DockerDriver;

const ALL_PHASES = ["prepare", "start", "health", "switch", "retire"];

class Recorder implements ProgressSink {
  readonly steps: string[] = [];
  readonly lines: string[] = [];
  onStep: ((step: string) => void) | undefined;
  step(step: string): void {
    this.steps.push(step);
    this.onStep?.(step);
  }
  log(line: string): void {
    this.lines.push(line);
  }
}

let seq = 0;
function containerName(label: string): string {
  return `${RUN}-${label}-${++seq}`;
}

function target(container: string, extra: Record<string, unknown> = {}): TargetRef {
  return { id: `tgt-${container}`, name: container, kind: "docker", config: { container, ...extra } };
}

type Pinnable = TestImage | { repository: string; digest: string; ref?: string };

/** What the agent core hands the driver for one task (the task's fields; the config is checked in `deploy`). */
interface Plan {
  taskId: string;
  deploymentId: string;
  action: "deploy" | "rollback";
  release: { id: string; name: string; version: string };
  target: TargetRef;
  images: ImagePin[];
  credentials(registry: string): RegistryAuth | undefined;
}

/** Runs one task's phases as the agent core does: config checked with the kind's schema, then runPhases. */
async function deploy(p: Plan, signal: AbortSignal, progress: ProgressSink, d: DockerDriver = driver): Promise<DeployOutcome> {
  let config;
  try {
    config = dockerConfig(p.target.config);
  } catch (err) {
    throw err instanceof DriverError ? new DriverError(err.code, err.message, err.details, true) : err;
  }
  const ctx: PhaseContext<ReturnType<typeof dockerConfig>> = { ...p, config, signal, progress };
  return runPhases(d, ctx, { logger: pino({ level: "silent" }) });
}

function plan(p: { container: string; image: Pinnable; taskId?: string; config?: Record<string, unknown>; version?: string }): Plan {
  // A TestImage's `ref` is its tag; the pin is repository@digest unless a test forges `ref` on purpose.
  const ref = "pinned" in p.image ? p.image.pinned : (p.image.ref ?? `${p.image.repository}@${p.image.digest}`);
  return {
    taskId: p.taskId ?? `task-${randomBytes(4).toString("hex")}`,
    deploymentId: `dep-${randomBytes(4).toString("hex")}`,
    action: "deploy",
    release: { id: `rel-${p.version ?? "x"}`, name: "shop", version: p.version ?? "0.0.0" },
    target: target(p.container, p.config ?? {}),
    images: [{ component: "web", repository: p.image.repository, digest: p.image.digest, ref }],
    credentials: () => undefined,
  };
}

async function image(port: number, version: string, opts: { healthy?: boolean; dockerHealthcheck?: boolean; repository?: string } = {}): Promise<TestImage> {
  return buildTestImage({
    registry: registry.host,
    repository: opts.repository ?? `${RUN}/web`,
    tag: `v${version}${opts.healthy === false ? "-sick" : ""}`,
    version,
    port,
    socketPath,
    ...(opts.healthy !== undefined ? { healthy: opts.healthy } : {}),
    ...(opts.dockerHealthcheck ? { dockerHealthcheck: true } : {}),
  });
}

function httpHealth(port: number, timeoutSeconds = 20): Record<string, unknown> {
  return { healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds, intervalSeconds: 1 } };
}

async function version(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(3000) });
  return (await res.text()).trim();
}

/** Names of the containers of a target: the container itself and any parked previous ones. */
async function containersOf(name: string): Promise<Array<{ id: string; name: string; state: string }>> {
  const list = await docker.listContainers({ all: true, filters: { name: [name] } });
  return list
    .map((c) => ({ id: c.Id, name: (c.Names[0] ?? "").replace(/^\//, ""), state: c.State }))
    .filter((c) => c.name === name || c.name.startsWith(`${name}.ferry-old-`));
}

async function expectDriverError(p: Promise<unknown>, code: string): Promise<DriverError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DriverError, `expected a DriverError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message} ${JSON.stringify(err.details)}`);
    return err;
  }
  assert.fail(`expected DriverError ${code}, the deploy succeeded`);
}

describe("DockerDriver without an engine", () => {
  const digest = (c: string) => `sha256:${c.repeat(64)}`;
  const pin = (component: string, d = digest("a")) => ({ component, repository: `127.0.0.1:5000/shop/${component}`, digest: d, ref: `127.0.0.1:5000/shop/${component}@${d}` });

  it("picks the one image, or the configured component, with the kind's descriptor", () => {
    assert.equal(pickImage({ container: "web" }, [pin("web")]).component, "web");
    assert.equal(pickImage({ container: "web", component: "api" }, [pin("web"), pin("api")]).component, "api");
  });

  it("refuses an ambiguous, missing or malformed pin", () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof DriverError, String(err));
        return err.code;
      }
      return "no error";
    };
    assert.equal(code(() => pickImage({ container: "web" }, [pin("web"), pin("api")])), "RELEASE_COMPONENT_AMBIGUOUS");
    assert.equal(code(() => pickImage({ container: "web", component: "db" }, [pin("web")])), "RELEASE_COMPONENT_MISSING");
    assert.equal(code(() => pickImage({ container: "web" }, [])), "RELEASE_COMPONENT_AMBIGUOUS");
    assert.equal(code(() => pickImage({ container: "web" }, [{ ...pin("web"), ref: "127.0.0.1:5000/shop/web:latest" }])), "DIGEST_MISMATCH");
    assert.equal(code(() => pickImage({ container: "web" }, [pin("web", "sha256:abc")])), "DIGEST_MISMATCH");
  });

  it("checks target config with the contract's one docker schema", () => {
    assert.deepEqual(dockerConfig({ container: "web", healthCheck: { type: "none", settleSeconds: 5 } }), { container: "web", healthCheck: { type: "none", settleSeconds: 5 } });
    for (const [raw, field] of [
      [{}, "config.container"],
      [{ container: "web", contianer: "x" }, "config.contianer"],
      [{ container: "web.ferry-old-abc" }, "config.container"],
      [{ container: "web", healthCheck: { type: "http" } }, "config.healthCheck.url"],
      [{ container: "web", healthCheck: { type: "none", settleSeconds: 601 } }, "config.healthCheck.settleSeconds"],
    ] as const) {
      assert.throws(() => dockerConfig(raw), (err: unknown) => err instanceof DriverError && err.code === "INVALID_TARGET_CONFIG" && err.details["field"] === field, JSON.stringify(raw));
    }
  });

  it("chooses the socket: target config, then driver option, then DOCKER_HOST, then the default", () => {
    assert.equal(resolveSocketPath({ socketPath: "/a.sock" }, "/b.sock", { DOCKER_HOST: "unix:///c.sock" }), "/a.sock");
    assert.equal(resolveSocketPath({}, "/b.sock", { DOCKER_HOST: "unix:///c.sock" }), "/b.sock");
    assert.equal(resolveSocketPath({}, undefined, { DOCKER_HOST: "unix:///c.sock" }), "/c.sock");
    assert.equal(resolveSocketPath({}, undefined, { DOCKER_HOST: "tcp://10.0.0.1:2375" }), "/var/run/docker.sock");
    assert.equal(resolveSocketPath({}, undefined, {}), "/var/run/docker.sock");
  });

  it("registers with the docker descriptor, a drivers.docker settings schema, and a factory that loads the driver", async () => {
    assert.equal(dockerRegistration.descriptor.kind, "docker");
    assert.equal(dockerRegistration.enabledByDefault, true);
    assert.deepEqual(checkObject({ socket: "/run/docker.sock", stopTimeoutSeconds: 5, settleSeconds: 0 }, dockerSettings, "drivers.docker"), {
      socket: "/run/docker.sock",
      stopTimeoutSeconds: 5,
      settleSeconds: 0,
    });
    for (const [raw, field] of [
      [{ socket: "run/docker.sock" }, "drivers.docker.socket"],
      [{ stopTimeoutSeconds: 0 }, "drivers.docker.stopTimeoutSeconds"],
      [{ settleSeconds: 601 }, "drivers.docker.settleSeconds"],
      [{ sokcet: "/x" }, "drivers.docker.sokcet"],
    ] as const) {
      assert.throws(() => checkObject(raw, dockerSettings, "drivers.docker"), (err: unknown) => err instanceof ConfigError && err.path === field, JSON.stringify(raw));
    }
    const created = await dockerRegistration.create({ logger: pino({ level: "silent" }), settings: { socket: "/nonexistent/docker.sock", settleSeconds: 1 } });
    assert.ok(created instanceof DockerDriver);
    assert.equal(created.descriptor.kind, "docker");
    assert.deepEqual(created.capabilities(), []);
    const up = await created.available();
    assert.equal(up.ok, false);
    assert.match(up.detail, /nonexistent/);
  });

  it("an unreachable engine is DOCKER_UNAVAILABLE, with nothing changed", async () => {
    const d = new DockerDriver({ socketPath: "/nonexistent/docker.sock" });
    await assert.rejects(d.inspect(target("web")), (err: unknown) => err instanceof DriverError && err.code === "DOCKER_UNAVAILABLE");
    const p = plan({ container: "web", image: { repository: "127.0.0.1:5000/shop/web", digest: digest("a") } });
    const progress = new Recorder();
    await assert.rejects(deploy(p, new AbortController().signal, progress, d), (err: unknown) => err instanceof DriverError && err.code === "DOCKER_UNAVAILABLE" && err.restored);
    assert.deepEqual(progress.steps, ["prepare"]);
  });
});

describe("DockerDriver against a real engine", { concurrency: false }, () => {
  before(async () => {
    if (!suite.runnable) return;
    socketPath = (await dockerEngine()).socketPath;
    docker = new EngineClient({ socketPath });
    driver = new DockerDriver({ socketPath, stopTimeoutSeconds: 2, settleSeconds: 1 });
    registry = await startRegistry();
  });

  after(async () => {
    if (!suite.runnable || !docker) return;
    for (const c of await docker.listContainers({ all: true, filters: { name: [RUN] } })) {
      await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    // Images pulled from this run's registry (its port is random, so they would pile up in the test engine).
    for (const img of await docker.listImages()) {
      if ((img.RepoDigests ?? []).some((d) => d.startsWith(`${registry.host}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
    }
    await registry?.stop();
  });

  it("reports the engine as available", async (t) => {
    if (!canRun(t)) return;
    const a = await driver.available();
    assert.equal(a.ok, true, a.detail);
    assert.match(a.detail, /Docker Engine/);
    const none = await new DockerDriver({ socketPath: "/nonexistent/docker.sock" }).available();
    assert.equal(none.ok, false);
  });

  it("first deploy: pulls by digest, verifies, creates, starts and health-checks the container", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const name = containerName("first");
    const progress = new Recorder();
    const p = plan({ container: name, image: v1, config: httpHealth(port), version: "1.0.0" });

    const before = await driver.inspect(p.target);
    assert.equal(before.state, "missing");

    const outcome = await deploy(p, new AbortController().signal, progress);
    assert.deepEqual(progress.steps, ALL_PHASES);
    assert.equal(outcome.running[0]?.digest, v1.digest);
    assert.equal(outcome.running[0]?.containerName, name);
    assert.equal(await version(port), "1.0.0");
    // Pull progress is summarised, not streamed event by event.
    assert.ok(progress.lines.length < 40, progress.lines.join("\n"));
    assert.ok(progress.lines.some((l) => l.includes(v1.digest)));

    const info = await docker.getContainer(name).inspect();
    assert.equal(info.HostConfig.NetworkMode, "host");
    assert.equal(info.HostConfig.RestartPolicy?.Name, "unless-stopped");
    assert.equal(info.Config.Image, v1.pinned);
    const labels = info.Config.Labels;
    assert.ok(labels, "the container has labels");
    assert.equal(labels["ferry.task"], p.taskId);
    assert.equal(labels["ferry.digest"], v1.digest);
    assert.equal(labels["ferry.deployment"], p.deploymentId);
    assert.equal(labels["ferry.release"], p.release.id);
    assert.equal(labels["ferry.release.name"], "shop");
    assert.equal(labels["ferry.release.version"], "1.0.0");
    assert.equal(labels["ferry.component"], "web");
    assert.equal(labels["ferry.target"], p.target.id);

    const seen = await driver.inspect(p.target);
    assert.equal(seen.state, "running");
    assert.equal(seen.running[0]?.digest, v1.digest);
    assert.equal(seen.running[0]?.repository, v1.repository);
    assert.equal(seen.labels["ferry.task"], p.taskId);
    assert.deepEqual(seen.details["leftovers"], []);
  });

  it("replaces the container with a new digest and removes the old one", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const [v1, v2] = [await image(port, "1.0.0"), await image(port, "2.0.0")];
    assert.notEqual(v1.digest, v2.digest);
    const name = containerName("replace");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    const oldId = first.running[0]?.containerId;

    const outcome = await deploy(plan({ container: name, image: v2, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    assert.equal(outcome.running[0]?.digest, v2.digest);
    assert.equal(outcome.details?.["replaced"], oldId);
    assert.equal(await version(port), "2.0.0");
    const left = await containersOf(name);
    assert.deepEqual(left.map((c) => c.name), [name]);
    assert.notEqual(left[0]?.id, oldId);
    const seen = await driver.inspect(target(name));
    assert.equal(seen.running[0]?.digest, v2.digest);
  });

  it("an image that never becomes healthy: the old container is restored and details carry the health output", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const sick = await image(port, "2.0.0", { healthy: false });
    const name = containerName("sick");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    const oldId = first.running[0]?.containerId;

    const progress = new Recorder();
    const err = await expectDriverError(deploy(plan({ container: name, image: sick, config: httpHealth(port, 3) }), new AbortController().signal, progress), "HEALTH_CHECK_FAILED");
    assert.equal(err.restored, true);
    const health = err.details["health"] as { type: string; observed: { status?: number; body?: string } };
    assert.equal(health.type, "http");
    assert.equal(health.observed.status, 404);
    assert.match(health.observed.body ?? "", /not found/i);
    assert.deepEqual(progress.steps.slice(-2), ["health", "restore"]);

    const left = await containersOf(name);
    assert.deepEqual(left, [{ id: oldId, name, state: "running" }]);
    assert.equal(await waitFor("the old container to serve again", async () => (await version(port).catch(() => "")) || undefined), "1.0.0");
  });

  it("uses the image's own HEALTHCHECK by default and reports its log when it turns unhealthy", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const good = await image(port, "1.0.0", { dockerHealthcheck: true });
    const bad = await image(port, "2.0.0", { dockerHealthcheck: true, healthy: false });
    const name = containerName("dockerhc");
    const progress = new Recorder();
    const ok = await deploy(plan({ container: name, image: good }), new AbortController().signal, progress);
    assert.equal((ok.details?.["health"] as { type: string }).type, "docker");

    const err = await expectDriverError(deploy(plan({ container: name, image: bad }), new AbortController().signal, new Recorder()), "HEALTH_CHECK_FAILED");
    assert.equal(err.restored, true);
    const health = err.details["health"] as { observed: { healthcheck: { status: string; log: Array<{ exitCode: number; output: string }> } } };
    assert.equal(health.observed.healthcheck.status, "unhealthy");
    assert.ok(health.observed.healthcheck.log.length > 0);
    assert.ok(health.observed.healthcheck.log.every((e) => e.exitCode !== 0));
    assert.equal((await containersOf(name))[0]?.id, ok.running[0]?.containerId);
  });

  it("a container that exits at once fails fast as INSTANCE_CRASHED, its exit code and output in the task log", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const name = containerName("exits");
    const started = Date.now();
    const progress = new Recorder();
    const err = await expectDriverError(
      deploy(plan({ container: name, image: v1, config: { command: ["sh", "-c", "echo boom >&2; exit 3"], ...httpHealth(port, 30) } }), new AbortController().signal, progress),
      "INSTANCE_CRASHED",
    );
    assert.ok(Date.now() - started < 15_000, "should not wait out the 30 s timeout");
    const observed = (err.details["health"] as { observed: { container: { exitCode: number; logs: string } } }).observed;
    assert.equal(observed.container.exitCode, 3);
    assert.match(observed.container.logs, /boom/);
    assert.ok(progress.lines.some((l) => /exit code 3/.test(l)), progress.lines.join("\n"));
    assert.ok(progress.lines.includes("health:   | boom"), progress.lines.join("\n"));
    // There was no previous container: the target is empty again.
    assert.equal(err.restored, true);
    assert.deepEqual(await containersOf(name), []);
  });

  it("a crash-looping image (exits 3 a second after it starts, Docker restarting it) fails; the previous version serves again and the next deploy succeeds", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const looping = await buildTestImage({ registry: registry.host, repository: `${RUN}/web`, tag: "v2-crash", version: "2.0.0", port, socketPath, crash: { afterSeconds: 1, exitCode: 3 } });
    const v3 = await image(port, "3.0.0");
    const name = containerName("crashloop");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());

    // The driver's own default settle window (3 s), the image's default check ("none"): running alone must not pass.
    const defaults = new DockerDriver({ socketPath, stopTimeoutSeconds: 2 });
    const progress = new Recorder();
    const err = await expectDriverError(deploy(plan({ container: name, image: looping }), new AbortController().signal, progress, defaults), "INSTANCE_CRASHED");
    assert.equal(err.restored, true);
    assert.deepEqual(progress.steps, ["prepare", "start", "health", "restore"]);
    assert.ok(progress.lines.some((l) => /exit code 3/.test(l)), progress.lines.join("\n"));
    assert.ok(progress.lines.some((l) => l.includes("v2.0.0 crashing with exit code 3")), progress.lines.join("\n"));
    assert.ok(progress.lines.some((l) => l.includes("host networking: old and new cannot run side by side; the switch has a short outage")), progress.lines.join("\n"));
    assert.deepEqual(await containersOf(name), [{ id: first.running[0]?.containerId, name, state: "running" }]);
    assert.equal(await version(port), "1.0.0");

    const next = await deploy(plan({ container: name, image: v3, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    assert.equal(next.running[0]?.digest, v3.digest);
    assert.equal(await version(port), "3.0.0");
  });

  it("a crash-looping (restarting) old container is replaced by a good deploy, and restore puts a crash loop back as it was", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const looping = await buildTestImage({ registry: registry.host, repository: `${RUN}/web`, tag: "v1-crash", version: "1.0.0", port, socketPath, crash: { afterSeconds: 0, exitCode: 3 } });
    const sick = await image(port, "2.0.0", { healthy: false });
    const v3 = await image(port, "3.0.0");
    const name = containerName("oldloop");
    // An old container stuck in a crash loop, as the engine runs it: created the way the driver creates containers.
    await runDocker(socketPath, ["pull", "--quiet", looping.pinned]);
    const old = await docker.createContainer({ name, Image: looping.pinned, Labels: { "ferry.task": "old-task", "ferry.digest": looping.digest }, HostConfig: { NetworkMode: "host", RestartPolicy: { Name: "unless-stopped" } } });
    await old.start();
    await waitFor("the old container to be restarting", async () => ((await old.inspect()).State.Restarting ? true : undefined), { timeoutMs: 20_000, intervalMs: 50 });

    // A failing deploy over it: restore puts the crash loop back and says so, rather than failing the restore.
    const failed = await expectDriverError(deploy(plan({ container: name, image: sick, config: httpHealth(port, 2) }), new AbortController().signal, new Recorder()), "HEALTH_CHECK_FAILED");
    assert.equal(failed.restored, true);
    assert.equal((failed.details["restore"] as { crashLooping?: boolean }).crashLooping, true);
    assert.deepEqual((await containersOf(name)).map((c) => c.id), [old.id]);
    const back = await old.inspect();
    assert.equal(back.HostConfig.RestartPolicy?.Name, "unless-stopped");
    assert.ok(back.State.Running || back.State.Restarting, back.State.Status);

    await waitFor("the old container to be restarting again", async () => ((await old.inspect()).State.Restarting ? true : undefined), { timeoutMs: 20_000, intervalMs: 50 });
    const progress = new Recorder();
    const ok = await deploy(plan({ container: name, image: v3, config: httpHealth(port) }), new AbortController().signal, progress);
    assert.equal(ok.running[0]?.digest, v3.digest);
    assert.equal(ok.details?.["replaced"], old.id);
    assert.equal(ok.details?.["replacedCrashLoop"], true);
    assert.ok(progress.lines.some((l) => /crash-loops/.test(l)), progress.lines.join("\n"));
    assert.equal(await version(port), "3.0.0");
    assert.deepEqual((await containersOf(name)).map((c) => c.name), [name]);
  });

  it("the image's HEALTHCHECK is honoured even when an http check is configured and passes", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    // /health answers 200 (the configured check passes) but the image's own HEALTHCHECK probes a path that is missing.
    const bad = await buildTestImage({ registry: registry.host, repository: `${RUN}/web`, tag: "v2-hc", version: "2.0.0", port, socketPath, dockerHealthcheck: true, healthcheckPath: "/missing" });
    const name = containerName("hcwins");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    const err = await expectDriverError(deploy(plan({ container: name, image: bad, config: httpHealth(port, 30) }), new AbortController().signal, new Recorder()), "HEALTH_CHECK_FAILED");
    assert.match(err.message, /HEALTHCHECK reports unhealthy/);
    assert.equal(err.restored, true);
    assert.deepEqual(await containersOf(name), [{ id: first.running[0]?.containerId, name, state: "running" }]);
    assert.equal(await waitFor("v1 to serve again", async () => (await version(port).catch(() => "")) || undefined), "1.0.0");
  });

  it("reads the sticker off the container's labels", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const name = containerName("sticker");
    assert.equal(await driver.readSticker(target(name)), undefined);
    const p = plan({ container: name, image: v1, config: httpHealth(port) });
    await deploy(p, new AbortController().signal, new Recorder());
    assert.deepEqual(await driver.readSticker(p.target), { deploymentId: p.deploymentId, taskId: p.taskId, releaseId: p.release.id, images: [{ component: "web", digest: v1.digest }] });
  });

  it("digest mismatch: a registry serving other content for the pinned digest never reaches a container", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const [v1, v2] = [await image(port, "1.0.0"), await image(port, "2.0.0")];
    const name = containerName("tamper");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());

    // A loopback proxy in front of the registry that answers v2's manifest when asked for a (never pushed) digest.
    const repo = `${RUN}/web`;
    const forged = `sha256:${randomBytes(32).toString("hex")}`;
    const proxy = await startTamperingProxy(registry.url, `/v2/${repo}/manifests/${forged}`, `/v2/${repo}/manifests/${v2.digest}`, forged);
    t.after(() => proxy.close());
    const progress = new Recorder();
    const err = await expectDriverError(
      deploy(plan({ container: name, image: { repository: `${proxy.host}/${repo}`, digest: forged } }), new AbortController().signal, progress),
      "DIGEST_MISMATCH",
    );
    assert.equal(err.restored, true);
    assert.deepEqual(progress.steps, ["prepare"]);
    assert.match(err.message, /does not hash to that digest/, err.message);
    assert.ok(proxy.tampered() > 0, "the proxy should have served the forged manifest");
    assert.deepEqual(await containersOf(name), [{ id: first.running[0]?.containerId, name, state: "running" }]);
  });

  it("digest mismatch: a pin whose ref is not repository@digest is refused before anything is pulled", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const [v1, v2] = [await image(port, "1.0.0"), await image(port, "2.0.0")];
    const name = containerName("badpin");
    const progress = new Recorder();
    const err = await expectDriverError(
      deploy(plan({ container: name, image: { repository: v1.repository, digest: v1.digest, ref: v2.pinned } }), new AbortController().signal, progress),
      "DIGEST_MISMATCH",
    );
    assert.equal(err.restored, true);
    // Refused in prepare, before the engine was asked for anything.
    assert.deepEqual(progress.steps, ["prepare"]);
    assert.deepEqual(progress.lines, []);
  });

  it("an unknown digest is IMAGE_PULL_FAILED and leaves the running container alone", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const name = containerName("unknown");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    const missing = `sha256:${randomBytes(32).toString("hex")}`;
    const err = await expectDriverError(deploy(plan({ container: name, image: { repository: v1.repository, digest: missing } }), new AbortController().signal, new Recorder()), "IMAGE_PULL_FAILED");
    assert.equal(err.restored, true);
    assert.equal((await containersOf(name))[0]?.id, first.running[0]?.containerId);
  });

  it("pulls from a registry with basic auth using the plan's credentials, and never logs them", async (t) => {
    if (!canRun(t)) return;
    const secured = await startRegistry({ auth: "basic" });
    t.after(() => secured.stop());
    const user = secured.users[0]!;
    const port = await freePort();
    const v1 = await buildTestImage({ registry: secured.host, repository: `${RUN}/private`, tag: "1", version: "1.0.0", port, socketPath, auth: user });
    const name = containerName("auth");
    const anonymous = plan({ container: name, image: v1, config: httpHealth(port) });
    const err = await expectDriverError(deploy(anonymous, new AbortController().signal, new Recorder()), "IMAGE_PULL_FAILED");
    assert.equal(err.details["credentials"], "none");

    const asked: string[] = [];
    const progress = new Recorder();
    const withCredentials: Plan = {
      ...anonymous,
      credentials: (registryHost) => {
        asked.push(registryHost);
        return registryHost === secured.host ? { registry: registryHost, username: user.username, password: user.password } : undefined;
      },
    };
    const outcome = await deploy(withCredentials, new AbortController().signal, progress);
    assert.equal(outcome.running[0]?.digest, v1.digest);
    assert.deepEqual(asked, [secured.host]);
    assert.ok(!progress.lines.some((l) => l.includes(user.password)), "the password must never reach the task log");
    assert.ok(!JSON.stringify(outcome).includes(user.password));
  });

  it("inspect after a crash mid-deploy, and the next deploys recover from it", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const [v1, v2] = [await image(port, "1.0.0"), await image(port, "2.0.0")];
    const sick = await image(port, "3.0.0", { healthy: false });
    const name = containerName("crash");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    const oldId = first.running[0]?.containerId ?? "";

    // What a deploy leaves when the agent dies after "stop-old": the old container parked and stopped, the new one
    // created but never started.
    const parked = `${name}.ferry-old-${oldId.slice(0, 12)}`;
    await docker.getContainer(oldId).rename({ name: parked });
    await docker.getContainer(oldId).stop({ t: 1 });
    await runDocker(socketPath, ["pull", "--quiet", v2.pinned]);
    await docker.createContainer({ name, Image: v2.pinned, Labels: { "ferry.task": "crashed-task", "ferry.digest": v2.digest }, HostConfig: { NetworkMode: "host" } });

    const seen = await driver.inspect(target(name));
    assert.equal(seen.state, "stopped");
    assert.deepEqual(seen.running, []);
    assert.equal(seen.labels["ferry.task"], "crashed-task");
    const leftovers = seen.details["leftovers"] as Array<{ name: string; status: string; digest: string }>;
    assert.deepEqual(leftovers.map((l) => [l.name, l.status, l.digest]), [[parked, "exited", v1.digest]]);
    assert.match(String(seen.details["interruptedDeploy"]), /interrupted/);

    // A failing deploy now restores the container that ran before the crash, not the unfinished one.
    const err = await expectDriverError(deploy(plan({ container: name, image: sick, config: httpHealth(port, 2) }), new AbortController().signal, new Recorder()), "HEALTH_CHECK_FAILED");
    assert.equal(err.restored, true);
    assert.deepEqual(await containersOf(name), [{ id: oldId, name, state: "running" }]);
    assert.equal(await waitFor("v1 to serve again", async () => (await version(port).catch(() => "")) || undefined), "1.0.0");

    // The same shape with the new container never created: the target's container is missing.
    await docker.getContainer(oldId).rename({ name: parked });
    await docker.getContainer(oldId).stop({ t: 1 });
    const missing = await driver.inspect(target(name));
    assert.equal(missing.state, "missing");
    assert.match(String(missing.details["interruptedDeploy"]), /missing/);

    const ok = await deploy(plan({ container: name, image: v2, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    assert.equal(ok.running[0]?.digest, v2.digest);
    assert.deepEqual((await containersOf(name)).map((c) => c.name), [name]);
    assert.equal(await version(port), "2.0.0");
  });

  it("redeploying the same task is a no-op that reports success", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const name = containerName("idem");
    const p = plan({ container: name, image: v1, config: httpHealth(port) });
    const first = await deploy(p, new AbortController().signal, new Recorder());
    const progress = new Recorder();
    const again = await deploy(p, new AbortController().signal, progress);
    assert.equal(again.details?.["alreadyDeployed"], true);
    assert.equal(again.running[0]?.containerId, first.running[0]?.containerId);
    assert.ok(progress.lines.some((l) => l.includes("redelivered")), progress.lines.join("\n"));
    assert.ok(!progress.lines.some((l) => l.startsWith("prepare: pull") || l.startsWith("start: created")), progress.lines.join("\n"));
    // A different task with the same digest does redeploy (it is a new decision, e.g. a rollback).
    const otherProgress = new Recorder();
    const other = await deploy({ ...p, taskId: "another-task" }, new AbortController().signal, otherProgress);
    assert.notEqual(other.running[0]?.containerId, first.running[0]?.containerId);
    // The engine holds the image under its digest: checked, not pulled again.
    assert.deepEqual(otherProgress.steps, ALL_PHASES);
    assert.ok(otherProgress.lines.some((l) => l.includes("not pulling it again")), otherProgress.lines.join("\n"));
    assert.ok(otherProgress.lines.some((l) => l.startsWith("prepare: verified:") && l.includes(v1.digest)), otherProgress.lines.join("\n"));
  });

  it("an abort during the health check restores the old container", async (t) => {
    if (!canRun(t)) return;
    const port = await freePort();
    const v1 = await image(port, "1.0.0");
    const sick = await image(port, "2.0.0", { healthy: false });
    const name = containerName("abort");
    const first = await deploy(plan({ container: name, image: v1, config: httpHealth(port) }), new AbortController().signal, new Recorder());
    const ac = new AbortController();
    const progress = new Recorder();
    progress.onStep = (step) => {
      if (step === "health") setTimeout(() => ac.abort(new Error("cancelled by operator")), 500);
    };
    const started = Date.now();
    const err = await expectDriverError(deploy(plan({ container: name, image: sick, config: httpHealth(port, 60) }), ac.signal, progress), "ABORTED");
    assert.ok(Date.now() - started < 20_000);
    assert.equal(err.restored, true);
    assert.equal(err.details["phase"], "health");
    assert.deepEqual(await containersOf(name), [{ id: first.running[0]?.containerId, name, state: "running" }]);
  });

  it("survives a Docker daemon restart between two deploys (private engine)", async (t) => {
    if (!canRun(t)) return;
    const why = privateDockerdSkipReason();
    if (why) {
      loudSkip("Docker daemon restart test", why);
      t.skip(why);
      return;
    }
    const engine = await startPrivateDockerd();
    t.after(() => engine.destroy());
    const port = await freePort();
    const [v1, v2] = [await image(port, "1.0.0"), await image(port, "2.0.0")];
    const name = containerName("restart");
    const config = { socketPath: engine.socketPath, ...httpHealth(port) };
    const first = await deploy(plan({ container: name, image: v1, config }), new AbortController().signal, new Recorder());
    assert.equal(await version(port), "1.0.0");

    await engine.stop();
    await expectDriverError(driver.inspect(target(name, { socketPath: engine.socketPath })), "DOCKER_UNAVAILABLE");
    await engine.start();
    // restart policy unless-stopped: the engine brings the container back by itself.
    const seen = await waitFor("the container to run again after the daemon restart", async () => {
      const s = await driver.inspect(target(name, { socketPath: engine.socketPath }));
      return s.state === "running" ? s : undefined;
    });
    assert.equal(seen.running[0]?.digest, v1.digest);
    assert.equal(seen.running[0]?.containerId, first.running[0]?.containerId);
    assert.equal(await waitFor("v1 to serve", async () => (await version(port).catch(() => "")) || undefined), "1.0.0");

    const second = await deploy(plan({ container: name, image: v2, config }), new AbortController().signal, new Recorder());
    assert.equal(second.running[0]?.digest, v2.digest);
    assert.equal(await version(port), "2.0.0");
  });
});

/** A registry proxy that answers `swapFrom` with the response to `swapTo` (claiming digest `claim`). */
async function startTamperingProxy(upstream: string, swapFrom: string, swapTo: string, claim: string): Promise<{ host: string; tampered(): number; close(): Promise<void> }> {
  let tampered = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      let path = req.url ?? "/";
      if (path === swapFrom) {
        path = swapTo;
        tampered++;
      }
      const headers: Record<string, string> = {};
      for (const h of ["accept", "authorization", "range"]) {
        const v = req.headers[h];
        if (typeof v === "string") headers[h] = v;
      }
      const up = await fetch(`${upstream}${path}`, { method: req.method ?? "GET", headers, redirect: "manual" });
      const body = Buffer.from(await up.arrayBuffer());
      const out: Record<string, string> = {};
      up.headers.forEach((v, k) => {
        if (!["content-encoding", "transfer-encoding", "connection"].includes(k)) out[k] = v;
      });
      if (path === swapTo && req.url === swapFrom) out["docker-content-digest"] = claim;
      out["content-length"] = String(body.length);
      res.writeHead(up.status, out);
      res.end(req.method === "HEAD" ? undefined : body);
    })().catch((err: unknown) => {
      res.writeHead(502).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    tampered: () => tampered,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
