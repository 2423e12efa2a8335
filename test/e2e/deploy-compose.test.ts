// Compose targets end to end: a `ferry server` on PostgreSQL, a real agent process, the real Docker Engine with
// Debian's docker-compose 1.29, a real OCI registry and a real HAProxy on loopback. The project has three services
// (web, worker, sidecar), each a busybox httpd with host networking; web is routed (config.routes): the agent's
// router sends its traffic to one of two slots, so it is reached through the router's listen port.
//
// Covered here: deploy (the lock on the host is the one the control plane stored, read through the API and the CLI),
// an update that replaces only the changed service, a broken update restored to the previous lock byte for byte, a
// rollback to exactly the earlier lock, drift after a service is changed by hand (status and API) repaired by a
// redeploy, and the agent killed (SIGKILL, by PID) mid-deploy: the task is reported TASK_INTERRUPTED with the
// driver's inspection, as for the docker driver, and a retry repairs the project.
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker, type TestImage } from "../helpers/docker.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";
import { freePort, httpGet } from "../helpers/net.js";
import { haproxyConfig } from "../../agent/src/routing/haproxy/haproxy-config.js";

const exec = promisify(execFile);
const dbUrl = testDatabaseUrl();
const composeMissing = await exec("docker-compose", ["version", "--short"]).then(
  () => false,
  () => "docker-compose is not installed (scripts/test-env.sh installs it)",
);
const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));
const skip =
  (await dockerSkipReason("compose end-to-end suite")) || registrySkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON) || composeMissing || (HAPROXY ? false : "haproxy is not installed (scripts/test-env.sh installs it)");
if (skip) console.warn(`\n*** compose deploy suite skipped: ${skip} ***\n`);

interface TaskView {
  id: string;
  state: string;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  lockSha256: string | null;
  target: { name: string };
  events?: { step: string; detail: string }[];
}
interface DeploymentView {
  id: string;
  state: string;
  action: string;
  tasks: TaskView[];
}
interface LockView {
  taskId: string;
  fileName: string;
  sha256: string;
  text: string;
}
interface StatusTarget {
  target: string;
  sync: string;
  drift: string[];
}

const SERVICES = ["web", "worker", "sidecar"] as const;
type Service = (typeof SERVICES)[number];
const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

describe("compose targets against the real Docker Engine and docker-compose 1.29", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let db: { url: string; drop: () => Promise<void> };
  let socket: string;
  const agent = new TestAgent("compose-1");
  const project = `ferrye2e${randomBytes(3).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "ferry-compose-e2e-"));
  const routerDir = mkdtempSync(join(tmpdir(), "ferry-compose-e2e-router-"));
  const routerFiles = { socket: join(routerDir, "admin.sock"), maintenanceMap: join(routerDir, "maintenance.map") };
  const route = { listen: 0, blue: 0, green: 0 };
  let haproxy: ChildProcess | undefined;
  const ports = {} as Record<Service, number>;
  const images: Record<string, TestImage> = {};
  let config: Record<string, unknown> = {};
  let first = ""; // the first deployment, whose lock the rollback must put back

  const agentArgs = () => [
    "--docker-socket", socket,
    ...["compose.cli=v1", `compose.socket=${socket}`, "compose.settleSeconds=1", "compose.stopTimeoutSeconds=2", "compose.router=haproxy", `compose.routerSocket=${routerFiles.socket}`, `compose.routerMaintenanceMap=${routerFiles.maintenanceMap}`].flatMap((d) => ["--driver", d]),
    "--observe-interval", "1",
  ];
  const compose = (args: string[], files = ["docker-compose.yml"]) =>
    exec("docker-compose", ["-p", project, ...files.flatMap((f) => ["-f", join(dir, f)]), ...args], { cwd: dir, env: { ...process.env, DOCKER_HOST: `unix://${socket}` } });
  const deploy = async (release: string) => {
    const r = await cp.cli(["deploy", release, "--to", "dev", "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry deploy printed no JSON: ${r.stderr}`);
    return JSON.parse(r.stdout) as DeploymentView;
  };
  const release = async (version: string, web: string, worker = "1") => {
    const r = await cp.api("POST", "/api/v1/releases", { name: "shop", version, components: { web: `:${web}`, worker: `:${worker}`, sidecar: ":1" } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const lockOf = async (d: DeploymentView) => {
    const r = await cp.api<LockView>("GET", `/api/v1/deployments/${d.id}/tasks/${d.tasks[0]!.id}/lock`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const hostLock = () => readFileSync(join(dir, "ferry.lock.json"), "utf8");
  /** service → id of its running container. */
  const containerIds = async (): Promise<Record<string, string>> => {
    const out = await runDocker(socket, ["ps", "--filter", `label=com.docker.compose.project=${project}`, "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}']);
    return Object.fromEntries(out.split("\n").filter(Boolean).map((l) => l.split(" ").reverse() as [string, string]));
  };
  /** What a service answers: web through the router, the others on their own port. */
  const version = async (s: Service) => (await httpGet(s === "web" ? route.listen : ports[s], "/version"))?.body.trim();
  const target = async () => (await cp.api<{ targets: StatusTarget[] }>("GET", "/api/v1/status?environment=dev")).body.targets.find((t) => t.target === "shop")!;
  const deployment = (id: string, pred: (d: DeploymentView) => boolean, what: string) =>
    waitFor(what, async () => {
      const r = await cp.api<DeploymentView>("GET", `/api/v1/deployments/${id}`);
      return pred(r.body) ? r.body : undefined;
    }, { timeoutMs: 60_000 });

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    db = await createDatabase(dbUrl!);
    reg = await startRegistry();
    for (const s of SERVICES) ports[s] = await freePort();
    [route.listen, route.blue, route.green] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(routerFiles.maintenanceMap, "");
    const cfg = join(routerDir, "haproxy.cfg");
    writeFileSync(cfg, haproxyConfig(routerFiles, [{ name: "web", listen: `127.0.0.1:${route.listen}`, slots: { blue: { address: "127.0.0.1", port: route.blue }, green: { address: "127.0.0.1", port: route.green } } }]));
    const check = spawnSync(HAPROXY!, ["-c", "-q", "-f", cfg], { encoding: "utf8" });
    assert.equal(check.status, 0, check.stderr);
    haproxy = spawn(HAPROXY!, ["-db", "-f", cfg], { stdio: "ignore" });
    // web 3 serves no /health: it never passes its check (its command is the compose file's, so it cannot crash-loop).
    const build = (s: Service, v: string, healthy = true) => buildTestImage({ registry: reg.host, repository: `${project}/${s}`, tag: v, version: v, port: ports[s], socketPath: socket, healthy });
    const built = await Promise.all([build("web", "1"), build("web", "2"), build("web", "3", false), build("worker", "1"), build("worker", "2"), build("sidecar", "1")]);
    Object.assign(images, { web1: built[0], web2: built[1], web3: built[2], worker1: built[3], worker2: built[4], sidecar1: built[5] });
    // web listens on the port its slot is told ($PORT).
    const command = (s: Service) => (s === "web" ? `    command: ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$$PORT -h /www & wait"]\n` : "");
    const svc = (s: Service) => `  ${s}:\n    image: example/${s}:latest\n    network_mode: host\n    restart: unless-stopped\n    stop_grace_period: 2s\n${command(s)}`;
    writeFileSync(join(dir, "docker-compose.yml"), `version: "3.8"\nservices:\n${SERVICES.map(svc).join("")}`);

    cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--task-ack-timeout", "3s", "--liveness-grace", "2s"] });
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    for (const s of SERVICES) assert.equal((await cp.cli(["component", "create", s, "--repository", `${reg.host}/${project}/${s}`])).code, 0);
    const e = await agent.enrol(await cp.createJoinString("dev"));
    assert.equal(e.code, 0, e.stderr);
    agent.start(agentArgs());
    const agentId = await waitFor("the agent online with the compose driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((a) => a.status === "online" && a.facts.drivers?.includes("compose"))?.id;
    });
    config = {
      project,
      directory: dir,
      services: { web: "web", worker: "worker", sidecar: "sidecar" },
      // With a route, the http check is pointed at web's new slot before any traffic goes there.
      healthCheck: { type: "http", url: `http://127.0.0.1:${route.listen}/health`, timeoutSeconds: 5, intervalSeconds: 1 },
      routes: [{ composeService: "web", service: "web", listen: `127.0.0.1:${route.listen}`, slots: { blue: route.blue, green: route.green }, drainSeconds: 1 }],
    };
    const t = await cp.api("POST", "/api/v1/environments/dev/targets", { name: "shop", kind: "compose", agentId, config });
    assert.equal(t.status, 201, JSON.stringify(t.body));
  });

  after(async () => {
    await agent.dispose();
    await cp?.stop();
    if (socket) {
      await compose(["down", "--remove-orphans", "-t", "1"]).catch(() => undefined);
      const ids = (await runDocker(socket, ["ps", "-aq", "--filter", `label=com.docker.compose.project=${project}`]).catch(() => "")).split("\n").filter(Boolean);
      if (ids.length) await runDocker(socket, ["rm", "-f", ...ids]).catch(() => "");
    }
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((r) => haproxy!.once("exit", r));
      haproxy.kill("SIGTERM");
      await exited;
    }
    await reg?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(routerDir, { recursive: true, force: true });
  });

  it("deploys the project: the lock on the host is the one stored with the deployment", async () => {
    await release("1", "1");
    const d = await deploy("shop@1");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    first = d.id;
    const task = d.tasks[0]!;
    const lock = await lockOf(d);
    assert.equal(lock.fileName, "ferry.lock.json");
    assert.equal(hostLock(), lock.text);
    assert.equal(sha(lock.text), lock.sha256);
    assert.equal(task.lockSha256, lock.sha256);
    assert.equal(task.details?.["lockSha256"], lock.sha256);
    for (const s of SERVICES) assert.match(lock.text, new RegExp(`"image": "${images[`${s}1`]!.pinned.replace(/[.]/g, "\\.")}"`));
    const cli = await cp.cli(["deployment", "lock", d.id]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, lock.text, "ferry deployment lock prints the file exactly");
    for (const s of SERVICES) assert.equal(await version(s), "1");
    await waitFor("status in sync", async () => ((await target()).sync === "in-sync" ? true : undefined), { timeoutMs: 30_000 });
  });

  it("updates only the service whose digest changed", async () => {
    const before = await containerIds();
    await release("2", "2");
    const d = await deploy("shop@2");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.deepEqual(d.tasks[0]!.details?.["replaced"], ["web"]);
    const now = await containerIds();
    assert.notEqual(now["web"], before["web"], "web was recreated");
    assert.equal(now["worker"], before["worker"], "worker kept its container");
    assert.equal(now["sidecar"], before["sidecar"], "sidecar kept its container");
    assert.equal(await version("web"), "2");
    assert.equal(hostLock(), (await lockOf(d)).text);
  });

  it("restores a broken update: the previous lock byte for byte, and the previous web serving throughout", async () => {
    const previous = hostLock();
    await release("3", "3");
    const d = await deploy("shop@3");
    assert.equal(d.state, "failed", JSON.stringify(d));
    const task = d.tasks[0]!;
    assert.equal(task.code, "HEALTH_CHECK_FAILED", `${task.code}: ${task.message}`);
    assert.equal(hostLock(), previous, "the previous lock is back on the host");
    assert.equal(await version("web"), "2", "the broken web never got traffic");
  });

  it("rolls back to exactly the earlier deployment's lock, read through the API", async () => {
    const r = await cp.cli(["rollback", "--env", "dev", "--wait", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const rb = JSON.parse(r.stdout) as DeploymentView;
    assert.equal(rb.action, "rollback");
    assert.equal(rb.state, "succeeded", JSON.stringify(rb));
    const earlier = (await cp.api<DeploymentView>("GET", `/api/v1/deployments/${first}`)).body;
    const want = await lockOf(earlier);
    const got = await lockOf(rb);
    assert.equal(got.text, want.text, "the rollback's stored lock is the first deployment's, byte for byte");
    assert.equal(got.sha256, want.sha256);
    assert.equal(hostLock(), want.text, "and it is the file on the host");
    assert.equal(await version("web"), "1");
  });

  it("shows drift after a service is changed by hand, and a redeploy repairs only that service", async () => {
    writeFileSync(join(dir, "by-hand.yml"), `version: "3.8"\nservices:\n  worker:\n    image: ${images["worker2"]!.pinned}\n`);
    await compose(["up", "-d", "--no-deps", "worker"], ["docker-compose.yml", "by-hand.yml"]);
    const drifted = await waitFor("status to show drift", async () => {
      const t = await target();
      return t.sync === "drift" ? t : undefined;
    }, { timeoutMs: 30_000 });
    assert.ok(drifted.drift.some((x) => /worker/.test(x)), drifted.drift.join("; "));
    const shown = await cp.cli(["status", "--env", "dev"]);
    assert.match(shown.stdout, /DRIFT/);
    const before = await containerIds();
    const d = await deploy("shop@1");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.deepEqual(d.tasks[0]!.details?.["replaced"], ["worker"]);
    const now = await containerIds();
    assert.equal(now["web"], before["web"]);
    assert.equal(now["sidecar"], before["sidecar"]);
    assert.equal(await version("worker"), "1");
    await waitFor("status back in sync", async () => ((await target()).sync === "in-sync" ? true : undefined), { timeoutMs: 30_000 });
  });

  it("reports a deploy interrupted by kill -9 of the agent with what it found, and a retry repairs the project", async () => {
    // A long settle window holds the deploy in its health phase, after the lock was written and web replaced.
    const patched = await cp.api("PATCH", "/api/v1/environments/dev/targets/shop", { config: { ...config, healthCheck: { type: "none", settleSeconds: 8 } } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const r = await cp.api<DeploymentView>("POST", "/api/v1/deployments", { release: "shop@2", environment: "dev" });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await deployment(r.body.id, (x) => (x.tasks[0]?.events ?? []).some((e) => e.step === "health"), "the deploy to reach its health phase");
    const pid = agent.proc!.child.pid!;
    process.kill(pid, "SIGKILL");
    await agent.proc!.exited;
    const stored = await lockOf(r.body);
    assert.equal(hostLock(), stored.text, "start wrote the new lock before the kill");
    agent.start(agentArgs());
    const d = await deployment(r.body.id, (x) => x.state === "failed" || x.state === "succeeded", "the interrupted task to be reported");
    const t = d.tasks[0]!;
    assert.equal(t.state, "errored", JSON.stringify(t));
    assert.equal(t.code, "TASK_INTERRUPTED");
    const found = t.details?.["found"] as { details?: Record<string, unknown> } | undefined;
    assert.ok(found?.details?.["interruptedDeploy"], `the inspection names the unfinished deploy: ${JSON.stringify(t.details)}`);

    const retry = await cp.cli(["deployment", "retry", d.id, "--wait", "--json"]);
    assert.equal(retry.code, 0, retry.stderr);
    const rd = JSON.parse(retry.stdout) as DeploymentView;
    assert.equal(rd.state, "succeeded", JSON.stringify(rd));
    assert.equal(hostLock(), (await lockOf(rd)).text);
    const sticker = JSON.parse(readFileSync(join(dir, "ferry.lock.sticker.json"), "utf8")) as { deploymentId: string; lockSha256: string };
    assert.equal(sticker.deploymentId, rd.id);
    assert.equal(sticker.lockSha256, sha(hostLock()));
    assert.equal(await version("web"), "2");
    await waitFor("status in sync after the retry", async () => ((await target()).sync === "in-sync" ? true : undefined), { timeoutMs: 30_000 });
  });
});
