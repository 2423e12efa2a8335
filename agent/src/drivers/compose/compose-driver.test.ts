// The Compose driver against the real Docker Engine, the real Compose CLI (Debian's docker-compose 1.29, installed by
// scripts/test-env.sh) and a real registry on 127.0.0.1. A three-service project (web, worker, sidecar: busybox
// httpd images on loopback ports, host networking) is deployed, updated one service at a time, broken and restored,
// rolled back to the exact previous lock, changed by hand (drift), and given bad input.
//
// Without an engine the tests skip loudly; under CI=true a missing engine fails them.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it, type TestContext } from "node:test";

import { composeLock, type ComposeTargetConfig, type ImagePin } from "@ferry/contract";
import { pino } from "pino";

import { buildTestImage, dockerEngine, type TestImage } from "../../../../test/helpers/docker.js";
import { freePort } from "../../../../test/helpers/net.js";
import { startRegistry, type TestRegistry } from "../../../../test/helpers/registry.js";
import { engineSuite } from "../../../../test/helpers/engine-suite.js";
import { runPhases } from "../../core/phase-runner.js";
import { DriverError, type DeployOutcome, type PhaseContext, type ProgressSink, type TargetRef } from "../driver.js";
import { checkProject, servicesOf } from "./compose-file.js";
import { ComposeDriver, composeConfig } from "./compose-driver.js";
import { lockPath } from "./host-files.js";
import { EngineClient } from "../docker/engine/client.js";

const SUITE = "Compose driver integration tests";
const suite = await engineSuite(SUITE, async () =>
  promisify(execFile)("docker-compose", ["version", "--short"]).then(
    () => false as const,
    () => "docker-compose is not installed (scripts/test-env.sh installs it)",
  ),
);
const canRun = (t: TestContext): boolean => suite.canRun(t);

const RUN = `ferrycmp${randomBytes(3).toString("hex")}`;
let registry: TestRegistry;
let socketPath: string;
let docker: EngineClient;
let driver: ComposeDriver;
let dir: string;
const ports = { web: 0, worker: 0, sidecar: 0 };
const images: Record<string, TestImage> = {};

class Recorder implements ProgressSink {
  readonly lines: string[] = [];
  step(): void {}
  log(line: string): void {
    this.lines.push(line);
  }
}

const SERVICES = { web: "web", worker: "worker", sidecar: "sidecar" };

function target(config: Partial<ComposeTargetConfig> = {}): TargetRef {
  return { id: `tgt-${RUN}`, name: RUN, kind: "compose", config: { project: RUN, directory: dir, services: SERVICES, ...config } };
}

function pin(component: string, img: TestImage): ImagePin {
  return { component, repository: img.repository, digest: img.digest, ref: img.pinned };
}

async function deploy(pins: ImagePin[], opts: { config?: Partial<ComposeTargetConfig>; progress?: Recorder; action?: "deploy" | "rollback" } = {}): Promise<DeployOutcome> {
  const t = target(opts.config);
  const config = composeConfig(t.config);
  const ctx: PhaseContext<ComposeTargetConfig> = {
    taskId: `task-${randomBytes(4).toString("hex")}`,
    deploymentId: `dep-${randomBytes(4).toString("hex")}`,
    action: opts.action ?? "deploy",
    release: { id: `rel-${randomBytes(2).toString("hex")}`, name: "shop", version: "x" },
    target: t,
    config,
    images: pins,
    credentials: () => undefined,
    signal: new AbortController().signal,
    progress: opts.progress ?? new Recorder(),
  };
  return runPhases(driver, ctx, { logger: pino({ level: "silent" }) });
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

/** service → id of its running container. */
async function ids(): Promise<Record<string, string>> {
  const list = await docker.listContainers({ filters: { label: [`com.docker.compose.project=${RUN}`] } });
  return Object.fromEntries(list.map((c) => [c.Labels["com.docker.compose.service"] ?? "", c.Id]));
}

async function version(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(3000) });
  return (await res.text()).trim();
}

function composeFile(extra = ""): string {
  const svc = (name: keyof typeof ports) => `  ${name}:\n    image: example/${name}:latest\n    network_mode: host\n    restart: unless-stopped\n    stop_grace_period: 2s\n`;
  return `version: "3.8"\nservices:\n${svc("web")}${svc("worker")}${svc("sidecar")}${extra}`;
}

describe("compose-file reader (no engine)", () => {
  it("reads services and their keys from the CLI's normalised output", () => {
    const out = "services:\n  a:\n    build:\n      context: /x\n    network_mode: host\n  b:\n    image: r@sha256:1\nversion: '3.8'\n";
    assert.equal(checkProject(out, ["a", "b"], "f.yml").length, 2, "a mapped service gets its image from the lock");
    assert.deepEqual(servicesOf(out).map((s) => [s.name, [...s.keys].sort()]), [["a", ["build", "network_mode"]], ["b", ["image"]]]);
    assert.throws(() => checkProject(out, ["b"], "f.yml"), (e: DriverError) => e.code === "COMPOSE_FILE_INVALID" && /a in f.yml has build: and no image/.test(e.message));
    assert.throws(() => checkProject(out, ["c"], "f.yml"), (e: DriverError) => e.code === "COMPOSE_FILE_INVALID" && /maps c/.test(e.message));
  });

  it("derives the same lock bytes from the same pins, whatever their order", () => {
    const p = (c: string, h: string) => ({ component: c, repository: `r/${c}`, digest: `sha256:${h.repeat(64)}` });
    const a = composeLock({ services: { web: "web", jobs: "worker" } }, [p("web", "a"), p("worker", "b")]);
    const b = composeLock({ services: { jobs: "worker", web: "web" } }, [p("worker", "b"), p("web", "a")]);
    assert.equal(a.text, b.text);
    assert.deepEqual(a.services.map((s) => s.service), ["jobs", "web"]);
  });
});

describe("ComposeDriver on a real engine", () => {
  before(async () => {
    if (!suite.runnable) return;
    socketPath = (await dockerEngine()).socketPath;
    docker = new EngineClient({ socketPath });
    driver = new ComposeDriver({ socketPath, cli: "v1", settleSeconds: 1 });
    registry = await startRegistry();
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
    const build = (name: keyof typeof ports, v: string, extra: { crash?: { afterSeconds: number; exitCode: number } } = {}) =>
      buildTestImage({ registry: registry.host, repository: `${RUN}/${name}`, tag: `v${v}${extra.crash ? "-crash" : ""}`, version: v, port: ports[name], socketPath, ...extra });
    for (const name of Object.keys(ports) as (keyof typeof ports)[]) images[`${name}1`] = await build(name, "1");
    images["worker2"] = await build("worker", "2");
    images["web2"] = await build("web", "2");
    images["webCrash"] = await build("web", "3", { crash: { afterSeconds: 0, exitCode: 3 } });
    dir = mkdtempSync(join(tmpdir(), "ferry-compose-test-"));
    writeFileSync(join(dir, "docker-compose.yml"), composeFile());
  });

  after(async () => {
    if (!suite.runnable || !docker) return;
    for (const c of await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${RUN}`] } })) {
      await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    for (const img of await docker.listImages()) {
      if ((img.RepoDigests ?? []).some((d) => d.startsWith(`${registry.host}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
    }
    await registry?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const v1 = () => [pin("web", images["web1"]!), pin("worker", images["worker1"]!), pin("sidecar", images["sidecar1"]!)];

  it("reports which Compose CLI the host has", async (t) => {
    if (!canRun(t)) return;
    const a = await driver.available();
    assert.equal(a.ok, true, a.detail);
    assert.match(a.detail, /^docker-compose 1\.29\.\d+ \(Compose v1\)/);
    const none = await new ComposeDriver({ socketPath, cli: "v2" }).available();
    // Debian's docker CLI here has no compose plugin: asking for v2 only finds none.
    assert.equal(none.ok, false);
    assert.match(none.detail, /COMPOSE_CLI_MISSING/);
  });

  it("deploys the three services from a digest-pinned lock, pulled and verified first", async (t) => {
    if (!canRun(t)) return;
    const progress = new Recorder();
    const out = await deploy(v1(), { progress });
    assert.deepEqual(out.running.map((r) => [r.containerName, r.digest]).sort(), [["sidecar", images["sidecar1"]!.digest], ["web", images["web1"]!.digest], ["worker", images["worker1"]!.digest]]);
    assert.equal(readFileSync(lockPath(dir), "utf8"), composeLock({ services: SERVICES }, v1()).text);
    assert.equal(await version(ports.web), "1");
    assert.equal(await version(ports.worker), "1");
    // Every pull and verification comes before the first thing that changes the project.
    const lastVerify = progress.lines.findLastIndex((l) => l.startsWith("prepare: verified"));
    const firstStart = progress.lines.findIndex((l) => l.startsWith("start:"));
    assert.ok(lastVerify >= 0 && lastVerify < firstStart, progress.lines.join("\n"));
    const sticker = await driver.readSticker(target());
    assert.deepEqual(sticker?.images.map((i) => i.digest).sort(), v1().map((p) => p.digest).sort());
    const seen = await driver.inspect(target());
    assert.equal(seen.state, "running");
    assert.equal(seen.details["drift"], undefined);
  });

  it("an update replaces only the service whose digest changed", async (t) => {
    if (!canRun(t)) return;
    const before = await ids();
    const out = await deploy([pin("web", images["web1"]!), pin("worker", images["worker2"]!), pin("sidecar", images["sidecar1"]!)]);
    const now = await ids();
    assert.deepEqual(out.details?.["replaced"], ["worker"]);
    assert.equal(now["web"], before["web"]);
    assert.equal(now["sidecar"], before["sidecar"]);
    assert.notEqual(now["worker"], before["worker"]);
    assert.equal(await version(ports.worker), "2");
  });

  it("a broken update (a crash loop) puts every service back on the previous lock, byte for byte", async (t) => {
    if (!canRun(t)) return;
    const lockBefore = readFileSync(lockPath(dir), "utf8");
    const before = await ids();
    const err = await expectCode(deploy([pin("web", images["webCrash"]!), pin("worker", images["worker2"]!), pin("sidecar", images["sidecar1"]!)]), "INSTANCE_CRASHED");
    assert.equal(err.restored, true);
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore);
    const now = await ids();
    assert.equal(now["worker"], before["worker"]);
    assert.equal(now["sidecar"], before["sidecar"]);
    assert.equal(await version(ports.web), "1");
    assert.equal((await driver.inspect(target())).details["drift"], undefined);
  });

  it("a rollback re-applies the previous lock exactly", async (t) => {
    if (!canRun(t)) return;
    const previous = composeLock({ services: SERVICES }, v1()).text;
    const out = await deploy(v1(), { action: "rollback" });
    assert.equal(readFileSync(lockPath(dir), "utf8"), previous);
    assert.deepEqual(out.details?.["replaced"], ["worker"]);
    assert.equal(await version(ports.worker), "1");
  });

  it("sees drift: a service changed by hand, a service missing, a service not in the lock", async (t) => {
    if (!canRun(t)) return;
    const run = promisify(execFile);
    const env = { ...process.env, DOCKER_HOST: `unix://${socketPath}` };
    // worker changed by hand to another image, outside Ferry's lock
    writeFileSync(join(dir, "by-hand.yml"), `version: "3.8"\nservices:\n  worker:\n    image: ${images["worker2"]!.pinned}\n`);
    await run("docker-compose", ["-p", RUN, "-f", join(dir, "docker-compose.yml"), "-f", join(dir, "by-hand.yml"), "up", "-d", "--no-deps", "worker"], { env, cwd: dir });
    await run("docker-compose", ["-p", RUN, "-f", join(dir, "docker-compose.yml"), "-f", lockPath(dir), "stop", "sidecar"], { env, cwd: dir });
    writeFileSync(join(dir, "extra.yml"), `version: "3.8"\nservices:\n  extra:\n    image: ${images["sidecar1"]!.pinned}\n    network_mode: host\n    command: ["sleep", "600"]\n`);
    await run("docker-compose", ["-p", RUN, "-f", join(dir, "extra.yml"), "up", "-d", "--no-deps", "extra"], { env, cwd: dir });
    const seen = await driver.inspect(target());
    const drift = (seen.details["drift"] as string[]).join("\n");
    assert.match(drift, /worker: runs .*worker@sha256.*the lock pins/);
    assert.match(drift, /sidecar: not running/);
    assert.match(drift, /extra: runs in the project but is not in the lock/);
    assert.equal(seen.state, "unknown");
    // A deploy of the same lock puts the drifted services back (the extra one is the operator's to remove).
    const out = await deploy(v1());
    assert.deepEqual((out.details?.["replaced"] as string[]).sort(), ["sidecar", "worker"]);
    await run("docker-compose", ["-p", RUN, "-f", join(dir, "extra.yml"), "rm", "-s", "-f", "extra"], { env, cwd: dir });
    assert.equal((await driver.inspect(target())).details["drift"], undefined);
  });

  it("an interrupted deploy (lock written, sticker not) is described by inspect, and the next deploy repairs it", async (t) => {
    if (!canRun(t)) return;
    const good = readFileSync(lockPath(dir), "utf8");
    // What start leaves when the agent is killed right after writing the lock: the new lock, the old containers.
    writeFileSync(lockPath(dir), composeLock({ services: SERVICES }, [pin("web", images["web2"]!), pin("worker", images["worker1"]!), pin("sidecar", images["sidecar1"]!)]).text);
    const seen = await driver.inspect(target());
    assert.match(String(seen.details["interruptedDeploy"]), /did not finish/);
    assert.match((seen.details["drift"] as string[]).join("\n"), /web: runs .*the lock pins/);
    assert.equal(await driver.readSticker(target()), undefined);
    const out = await deploy(v1());
    assert.deepEqual(out.details?.["replaced"], []);
    assert.equal(readFileSync(lockPath(dir), "utf8"), good);
    const after = await driver.inspect(target());
    assert.equal(after.details["interruptedDeploy"], undefined);
    assert.equal(after.details["drift"], undefined);
  });

  it("refuses bad input before anything changes", async (t) => {
    if (!canRun(t)) return;
    const lockBefore = readFileSync(lockPath(dir), "utf8");
    const idsBefore = await ids();
    const bad = join(dir, "bad");
    mkdirSync(bad);
    writeFileSync(join(bad, "docker-compose.yml"), "services: [\n");
    await expectCode(deploy(v1(), { config: { directory: bad } }), "COMPOSE_FILE_INVALID");
    writeFileSync(join(bad, "build.yml"), `${composeFile("  builder:\n    build: .\n    network_mode: host\n")}`);
    const e = await expectCode(deploy(v1(), { config: { directory: bad, file: "build.yml", project: `${RUN}bad` } }), "COMPOSE_FILE_INVALID");
    assert.match(e.message, /builder .*build: and no image/);
    await expectCode(deploy(v1(), { config: { services: { ...SERVICES, api: "web" } } }), "COMPOSE_FILE_INVALID");
    await expectCode(deploy(v1(), { config: { directory: join(dir, "nowhere") } }), "COMPOSE_PROJECT_INVALID");
    await expectCode(deploy(v1(), { config: { file: "absent.yml" } }), "COMPOSE_PROJECT_INVALID");
    await expectCode(deploy(v1(), { config: { services: { ...SERVICES, api: "billing" } } }), "RELEASE_COMPONENT_MISSING");
    const forged = { ...pin("web", images["web1"]!), digest: images["worker2"]!.digest, ref: `${images["web1"]!.repository}@${images["worker2"]!.digest}` };
    await expectCode(deploy([forged, pin("worker", images["worker1"]!), pin("sidecar", images["sidecar1"]!)]), "IMAGE_PULL_FAILED");
    const missingCli = new ComposeDriver({ socketPath, cli: "v2" });
    const ctxDriver = driver;
    driver = missingCli;
    try {
      await expectCode(deploy(v1()), "COMPOSE_CLI_MISSING");
    } finally {
      driver = ctxDriver;
    }
    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore);
    assert.deepEqual(await ids(), idsBefore);
  });

  it("inspect runs prepare's host checks with their codes, changing nothing", async (t) => {
    if (!canRun(t)) return;
    const lockBefore = readFileSync(lockPath(dir), "utf8");
    const idsBefore = await ids();
    const inspectCode = async (config: Partial<ComposeTargetConfig>, code: string, d: ComposeDriver = driver) => expectCode(d.inspect(target(config)), code);

    // A new project (nothing deployed yet) that passes every check: missing, no lock, nothing written.
    const fresh = join(dir, "fresh");
    mkdirSync(fresh);
    writeFileSync(join(fresh, "docker-compose.yml"), composeFile());
    const seen = await driver.inspect(target({ directory: fresh, project: `${RUN}fresh` }));
    assert.equal(seen.state, "missing");
    assert.equal(seen.details["lock"], "none");
    assert.deepEqual(readdirSync(fresh), ["docker-compose.yml"]);

    await inspectCode({ directory: join(dir, "nowhere") }, "COMPOSE_PROJECT_INVALID");
    await inspectCode({ file: "absent.yml" }, "COMPOSE_PROJECT_INVALID");
    await inspectCode({ services: { ...SERVICES, api: "web" } }, "COMPOSE_FILE_INVALID");
    writeFileSync(join(fresh, "build.yml"), composeFile("  builder:\n    build: .\n    network_mode: host\n"));
    const built = await inspectCode({ directory: fresh, file: "build.yml", project: `${RUN}fresh` }, "COMPOSE_FILE_INVALID");
    assert.match(built.message, /builder .*build: and no image/);
    // Without a map every service may be a component's: a build-only service is then not refused here.
    const unmapped = target({ directory: fresh, file: "build.yml", project: `${RUN}fresh` });
    delete unmapped.config["services"];
    assert.equal((await driver.inspect(unmapped)).state, "missing");
    await inspectCode({}, "COMPOSE_CLI_MISSING", new ComposeDriver({ socketPath, cli: "v2" }));

    // The deployed project's file broken by hand: the CLI's words and code, with what runs in details.found; fixed
    // again, the next inspection sees it (the remembered verdict follows the file).
    const good = readFileSync(join(dir, "docker-compose.yml"), "utf8");
    writeFileSync(join(dir, "docker-compose.yml"), "services: [\n");
    try {
      const broken = await inspectCode({}, "COMPOSE_FILE_INVALID");
      assert.equal((broken.details["found"] as { state?: string } | undefined)?.state, "running");
      await inspectCode({}, "COMPOSE_FILE_INVALID");
    } finally {
      writeFileSync(join(dir, "docker-compose.yml"), good);
    }
    assert.equal((await driver.inspect(target())).state, "running");

    assert.equal(readFileSync(lockPath(dir), "utf8"), lockBefore);
    assert.deepEqual(await ids(), idsBefore);
  });

  it("remembers the CLI's `config` output while the project's files are unchanged, and no longer", async (t) => {
    if (!canRun(t)) return;
    // A docker-compose first on PATH that notes each `config` run, then runs the real one.
    const real = (await promisify(execFile)("sh", ["-c", "command -v docker-compose"])).stdout.trim();
    const bin = mkdtempSync(join(tmpdir(), "ferry-compose-bin-"));
    const runs = join(bin, "config-runs");
    writeFileSync(join(bin, "docker-compose"), `#!/bin/sh\nfor a in "$@"; do [ "$a" = config ] && echo run >> ${runs}; done\nexec ${real} "$@"\n`, { mode: 0o755 });
    const path = process.env["PATH"];
    process.env["PATH"] = `${bin}:${path ?? ""}`;
    const configRuns = () => { try { return readFileSync(runs, "utf8").split("\n").filter(Boolean).length; } catch { return 0; } };
    try {
      const d = new ComposeDriver({ socketPath, cli: "v1" });
      assert.equal((await d.inspect(target())).state, "running");
      assert.equal(configRuns(), 1);
      assert.equal((await d.inspect(target())).state, "running");
      assert.equal(configRuns(), 1, "unchanged files: the remembered output is used");
      // Ferry's own files (the lock, the sticker, their temporary files) do not count as a change.
      writeFileSync(join(dir, "ferry.lock.json.0000.tmp"), "{}");
      rmSync(join(dir, "ferry.lock.json.0000.tmp"));
      await d.inspect(target());
      assert.equal(configRuns(), 1);
      // Any other file of the project does: an env file the compose file may name, a new file.
      writeFileSync(join(dir, "extra.env"), "A=1\n");
      await d.inspect(target());
      assert.equal(configRuns(), 2);
      writeFileSync(join(dir, "extra.env"), "A=22\n");
      await d.inspect(target());
      assert.equal(configRuns(), 3);
      rmSync(join(dir, "extra.env"));
      await d.inspect(target());
      assert.equal(configRuns(), 4);
    } finally {
      process.env["PATH"] = path;
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
