// Blue-green and canary rollouts on a compose target end to end: a `ferry server` on PostgreSQL running the rollout
// engine, a real `ferry-agent` whose compose driver (Debian's docker-compose 1.29) has a real HAProxy in front of the
// project's routed web service (configured with `ferry-agent router haproxy-config`), the real Docker Engine and a
// registry, all on loopback. web is routed (two slots); worker is not, so it is replaced in place at the switch.
// Clients are a plain node:http loop sharing no code with Ferry.
//
// Covered: a blue-green rollout (start beside, switch and drain as separate signed tasks) and a rollback, under
// continuous requests, lose none, and the worker moves only at the switch; a canary whose new web stops answering
// fails its analysis and is rolled back with weight 0 first: clients see no failure and the worker never moved.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker } from "../helpers/docker.js";
import { httpGet, httpLoad } from "../helpers/http-load.js";
import { freePort } from "../helpers/net.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { AGENT_BIN, run } from "../helpers/processes.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";

const exec = promisify(execFile);
const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));
const dbUrl = testDatabaseUrl();
const composeMissing = await exec("docker-compose", ["version", "--short"]).then(
  () => false,
  () => "docker-compose is not installed (scripts/test-env.sh installs it)",
);
const skip =
  (await dockerSkipReason("compose rollout end-to-end suite")) || registrySkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON) || composeMissing || (HAPROXY ? false : "haproxy is not installed (scripts/test-env.sh installs it)");
if (skip) console.warn(`\n*** rollout-compose suite skipped: ${skip} ***\n`);

interface Step { index: number; kind: string; phase: string; state: string; result: Record<string, unknown> }
interface Rollout { id: string; state: string; reason: Record<string, unknown> | null; steps: Step[] }

/** GET /version on a fresh connection: status and body, or the error. */
const get = (port: number) => httpGet(port, "/version");

/** Requests through the router, three at a time, until stopped (at most 150 s): counts by answer. */
const load = (port: number) => httpLoad(port, { workers: 3, maxMs: 150_000, pauseMs: 5 });

describe("blue-green and canary rollouts on a compose target through a real router", { skip, concurrency: false }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let db: { url: string; drop: () => Promise<void> };
  let socket: string;
  let haproxy: ChildProcess | undefined;
  const agent = new TestAgent("compose-rollouts-1");
  const project = `ferryrc${randomBytes(3).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "ferry-compose-rollouts-e2e-"));
  const routerDir = mkdtempSync(join(tmpdir(), "ferry-compose-rollouts-router-"));
  const adminSocket = join(routerDir, "haproxy.sock");
  const maintenanceMap = join(routerDir, "maintenance.map");
  let listen = 0;
  let workerPort = 0;

  const rolloutOf = (deploymentOutput: string): string => {
    const d = JSON.parse(deploymentOutput) as { rollout?: { id: string } };
    assert.ok(d.rollout, deploymentOutput);
    return d.rollout.id;
  };
  const waitRollout = (id: string, timeoutMs = 120_000) =>
    waitFor(`rollout ${id} to end`, async () => {
      const r = await cp.api<Rollout>("GET", `/api/v1/rollouts/${id}`);
      return ["succeeded", "rolled_back", "failed", "halted"].includes(r.body.state) ? r.body : undefined;
    }, { timeoutMs });
  const release = async (version: string, web: string, worker: string) => {
    const r = await cp.api("POST", "/api/v1/releases", { name: "shop", version, components: { web: `:${web}`, worker: `:${worker}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const workerVersion = async () => (await get(workerPort)).body;
  const workerId = async () => (await runDocker(socket, ["ps", "-q", "--no-trunc", "--filter", `label=com.docker.compose.project=${project}`, "--filter", "label=com.docker.compose.service=worker"])).trim();

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    db = await createDatabase(dbUrl!);
    reg = await startRegistry();
    const [blue, green] = [await freePort(), await freePort()];
    [listen, workerPort] = [await freePort(), await freePort()];
    // web's httpd listens on its slot's port ($PORT, set by the driver); its "bad" version stops answering 4 s after it
    // started (the compose file's command): healthy when checked, then every connection to it fails while the canary
    // bakes. It stops accepting connections (the answers under way finish) and exits a second later; killed outright,
    // an answer the router had begun to relay would be cut off mid-body, which no router can hide. worker serves its
    // version on its own port.
    for (const v of ["1", "2", "bad"]) await buildTestImage({ registry: reg.host, repository: `${project}/web`, tag: v, version: v, port: 1, socketPath: socket });
    for (const v of ["1", "2"]) await buildTestImage({ registry: reg.host, repository: `${project}/worker`, tag: v, version: v, port: workerPort, socketPath: socket });
    const web = `trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$$PORT -h /www & if grep -q bad /www/version; then sleep 4; kill $$!; sleep 1; exit 1; fi; wait`;
    writeFileSync(
      join(dir, "docker-compose.yml"),
      [
        `version: "3.8"`,
        "services:",
        "  web:",
        "    image: example/web:latest",
        "    network_mode: host",
        "    stop_grace_period: 2s",
        `    command: ["sh", "-c", ${JSON.stringify(web)}]`,
        "  worker:",
        "    image: example/worker:latest",
        "    network_mode: host",
        "    restart: unless-stopped",
        "    stop_grace_period: 2s",
        "",
      ].join("\n"),
    );
    const cfg = await run(AGENT_BIN, ["router", "haproxy-config", "--service", "web", "--listen", `127.0.0.1:${listen}`, "--blue", String(blue), "--green", String(green), "--socket", adminSocket, "--maintenance-map", maintenanceMap]);
    assert.equal(cfg.code, 0, cfg.stderr);
    writeFileSync(join(routerDir, "haproxy.cfg"), cfg.stdout);
    writeFileSync(maintenanceMap, "");
    haproxy = spawn(HAPROXY!, ["-db", "-f", join(routerDir, "haproxy.cfg")], { stdio: "ignore" });
    await waitFor("haproxy's admin socket", () => Promise.resolve(existsSync(adminSocket) || undefined));
    cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--task-ack-timeout", "3s", "--liveness-grace", "2s"] });
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    for (const c of ["web", "worker"]) assert.equal((await cp.cli(["component", "create", c, "--repository", `${reg.host}/${project}/${c}`])).code, 0);
    const e = await agent.enrol(await cp.createJoinString("dev"));
    assert.equal(e.code, 0, e.stderr);
    const drivers = ["compose.cli=v1", `compose.socket=${socket}`, "compose.settleSeconds=1", "compose.stopTimeoutSeconds=2", "compose.router=haproxy", `compose.routerSocket=${adminSocket}`, `compose.routerMaintenanceMap=${maintenanceMap}`];
    agent.start(["--docker-socket", socket, ...drivers.flatMap((d) => ["--driver", d])]);
    const online = await waitFor("the agent online with a routed compose driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { driverFacts?: { kind: string; capabilities: string[] }[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((a) => a.status === "online" && a.facts.driverFacts?.some((f) => f.kind === "compose" && f.capabilities.includes("router") && f.capabilities.includes("side-by-side")));
    });
    const t = await cp.api("POST", "/api/v1/environments/dev/targets", {
      name: "shop",
      kind: "compose",
      agentId: online.id,
      config: {
        project,
        directory: dir,
        services: { web: "web", worker: "worker" },
        healthCheck: { type: "http", url: `http://127.0.0.1:${listen}/health`, timeoutSeconds: 8, intervalSeconds: 1, settleSeconds: 1 },
        routes: [{ composeService: "web", service: "web", listen: `127.0.0.1:${listen}`, slots: { blue, green }, drainSeconds: 1 }],
      },
    });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    await release("1", "1", "1");
    await release("2", "2", "2");
    await release("bad", "bad", "2");
    const first = await cp.cli(["deploy", "shop@1", "--to", "dev", "--wait", "--timeout", "120", "--json"]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
    assert.equal(await workerVersion(), "1");
  });

  after(async () => {
    await agent.dispose();
    await cp?.stop();
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((r) => haproxy!.once("exit", r));
      haproxy.kill("SIGTERM");
      await exited;
    }
    await reg?.stop();
    if (socket) {
      const ids = (await runDocker(socket, ["ps", "-aq", "--filter", `label=com.docker.compose.project=${project}`]).catch(() => "")).split("\n").filter(Boolean);
      if (ids.length) await runDocker(socket, ["rm", "-f", ...ids]).catch(() => "");
    }
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(routerDir, { recursive: true, force: true });
  });

  it("a blue-green rollout moves the worker at the switch; it and a rollback lose no request", async () => {
    const worker = await workerId();
    const traffic = load(listen);
    const d = await cp.cli(["deploy", "shop@2", "--to", "dev", "--strategy", "blue-green", "--json"]);
    assert.equal(d.code, 0, d.stderr);
    const id = rolloutOf(d.stdout);
    // Between the start and the switch steps, web 2 runs beside web 1 and the worker has not moved.
    await waitFor("the start step done", async () => {
      const r = await cp.api<Rollout>("GET", `/api/v1/rollouts/${id}`);
      return r.body.steps[0]?.state === "succeeded" || r.body.state !== "running" ? true : undefined;
    }, { timeoutMs: 90_000 });
    const r = await waitRollout(id);
    assert.equal(r.state, "succeeded", JSON.stringify(r));
    assert.deepEqual(r.steps.map((s) => `${s.kind}:${s.state}`), ["wave:succeeded", "wave:succeeded"]);
    await waitFor("version 2 served", async () => ((await get(listen)).body === "2" ? true : undefined));
    assert.equal(await workerVersion(), "2");
    assert.notEqual(await workerId(), worker, "the worker was replaced (in place, at the switch)");
    const rb = await cp.cli(["rollback", "--env", "dev", "--wait", "--timeout", "120", "--json"]);
    assert.equal(rb.code, 0, rb.stderr);
    await waitFor("version 1 served again", async () => ((await get(listen)).body === "1" ? true : undefined));
    const seen = await traffic.stop();
    assert.equal(seen.failed, 0, seen.errors.join("; "));
    assert.ok(seen.ok > 50, `only ${seen.ok} requests`);
    assert.deepEqual([...seen.bodies].sort(), ["1", "2"]);
    assert.equal(await workerVersion(), "1");
  });

  it("a canary that stops answering fails its analysis and is rolled back with weight 0 first; the worker never moves", async () => {
    const worker = await workerId();
    const traffic = load(listen);
    const strategy = JSON.stringify({ kind: "canary", steps: [{ weight: 50, bakeSeconds: 8 }], analysis: { minRequests: 10, maxInconclusive: 0 }, drainSeconds: 1 });
    const d = await cp.cli(["deploy", "shop@bad", "--to", "dev", "--strategy", strategy, "--json"]);
    assert.equal(d.code, 0, d.stderr);
    const r = await waitRollout(rolloutOf(d.stdout));
    const seen = await traffic.stop();
    assert.equal(r.state, "rolled_back", JSON.stringify(r));
    assert.equal(r.reason?.["code"], "ROLLOUT_ANALYSIS_FAILED", JSON.stringify(r.reason));
    const analysis = r.steps.find((s) => s.kind === "analysis")!.result["analysis"] as { verdict: string; perTarget: { measurements: { name: string; verdict: string }[] }[] };
    assert.equal(analysis.verdict, "fail");
    assert.ok(analysis.perTarget[0]!.measurements.some((m) => m.name === "error-rate" && m.verdict === "fail"));
    assert.deepEqual(r.steps.filter((s) => s.phase === "rollback").map((s) => `${s.kind}:${s.state}`), ["weights:succeeded", "wave:succeeded"]);
    assert.deepEqual(await get(listen), { status: 200, body: "1" });
    // The router retried a request the canary could not take on the stable slot: clients saw no failure.
    assert.equal(seen.failed, 0, seen.errors.join("; "));
    assert.equal(await workerId(), worker, "the worker is replaced only at a switch, which never came");
    assert.equal(await workerVersion(), "1");
    const status = JSON.parse((await cp.cli(["status", "--env", "dev", "--json"])).stdout) as { targets: { deployed: { release: string } | null }[] };
    assert.equal(status.targets[0]!.deployed?.release, "shop@1", "the canary never became what the target runs");
  });
});
