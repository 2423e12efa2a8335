// Deployments end to end against the real systems: a `ferry server` on PostgreSQL, a real agent process, the real
// Docker Engine (scripts/test-env.sh) and a real OCI registry on loopback. Containers use host networking and
// serve busybox httpd on loopback ports.
//
// Covered here: deploy, sticker and labels, status, redeploy, rollback to the exact previous digests, an image that
// never becomes healthy (old container restored), a tag moved after the release was cut, tampered or replayed tasks
// (written straight into the queue, as a compromised database could), and the crash cases: kill -9 of the agent or
// of the control plane mid-deploy, a control-plane restart with tasks queued.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { TaskSigningKeyring, newTaskNonce, type TaskPayload } from "@ferry/pki";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, privateDockerdSkipReason, runDocker, startPrivateDockerd, type TestImage } from "../helpers/docker.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";
import { freePort, httpGet } from "../helpers/net.js";

const dbUrl = testDatabaseUrl();
const skip = (await dockerSkipReason("deployment end-to-end suite")) || registrySkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON);
if (skip) console.warn(`\n*** deploy suite skipped: ${skip} ***\n`);

interface TaskView {
  id: string;
  state: string;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  images: { component: string; digest: string; ref: string }[];
  target: { name: string };
  agentId: string;
  events?: { step: string; detail: string }[];
}
interface DeploymentView {
  id: string;
  state: string;
  action: string;
  tasks: TaskView[];
}


describe("deployments against the real Docker Engine", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let db: { url: string; drop: () => Promise<void> };
  let sql: pg.Client;
  let socket: string;
  const agent = new TestAgent("dock-1");
  const other = new TestAgent("dock-2");
  const suffix = randomBytes(3).toString("hex");
  const container = `ferry-e2e-web-${suffix}`;
  let port = 0;
  let agentId = "";
  let otherId = "";
  const images: Record<string, TestImage> = {};
  const scratch = mkdtempSync(join(tmpdir(), "ferry-deploy-e2e-"));

  const deploy = async (release: string, extra: string[] = []) => {
    const r = await cp.cli(["deploy", release, "--to", "dev", "--wait", "--timeout", "120", "--json", ...extra]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry deploy printed no JSON: ${r.stderr}`);
    return { code: r.code, d: JSON.parse(r.stdout) as DeploymentView, stderr: r.stderr };
  };
  type Inspected = { Id: string; Image: string; State: { Running: boolean }; Config: { Labels: Record<string, string> } };
  const inspect = async (name = container) => (JSON.parse(await runDocker(socket, ["inspect", name])) as Inspected[])[0]!;
  const release = async (version: string, ref: string) => {
    const r = await cp.api<{ id: string }>("POST", "/api/v1/releases", { name: "shop", version, components: { web: ref } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id;
  };
  const waitDeployment = (id: string, pred: (d: DeploymentView) => boolean, what: string, timeoutMs = 60_000) =>
    waitFor(what, async () => {
      const r = await cp.api<DeploymentView>("GET", `/api/v1/deployments/${id}`);
      return pred(r.body) ? r.body : undefined;
    }, { timeoutMs });

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    db = await createDatabase(dbUrl!);
    sql = new pg.Client({ connectionString: db.url });
    reg = await startRegistry();
    port = await freePort();
    // A long sweep interval: delivery must come from the push path (LISTEN/NOTIFY, Hello), not the safety-net sweep.
    cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--task-ack-timeout", "3s", "--liveness-grace", "2s", "--task-sweep-interval", "30s"] });
    await sql.connect();
    for (const [name, version, healthy] of [["v1", "1", true], ["v2", "2", true], ["bad", "bad", false], ["v3", "3", true]] as const) {
      images[name] = await buildTestImage({ registry: reg.host, repository: "shop/web", tag: version, version: `web ${version}`, port, healthy });
    }
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${reg.host}/shop/web`])).code, 0);
    for (const a of [agent, other]) {
      const e = await a.enrol(await cp.createJoinString("dev"));
      assert.equal(e.code, 0, e.stderr);
      a.start(["--docker-socket", socket, "--observe-interval", "1"]);
    }
    const agents = await waitFor("both agents online with the docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; name: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      const online = r.body.agents.filter((x) => x.status === "online" && x.facts.drivers?.includes("docker"));
      return online.length === 2 ? online : undefined;
    });
    agentId = agents.find((a) => a.name === "dock-1")!.id;
    otherId = agents.find((a) => a.name === "dock-2")!.id;
    const t = await cp.api("POST", "/api/v1/environments/dev/targets", {
      name: "web",
      kind: "docker",
      agentId,
      config: { container, component: "web", healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 8, intervalSeconds: 1 } },
    });
    assert.equal(t.status, 201, JSON.stringify(t.body));
  });

  after(async () => {
    await agent.dispose();
    await other.dispose();
    await cp?.stop();
    await reg?.stop();
    if (socket) {
      const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith(container));
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
    await sql?.end().catch(() => undefined);
    await db?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("deploys a release: pulls by digest, runs it healthy, labels the container and writes the sticker", async () => {
    await release("1", `:1`);
    const { code, d, stderr } = await deploy("shop@1");
    assert.equal(code, 0, stderr);
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.match(stderr, /web: prepare/);
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" });
    const c = await inspect();
    assert.equal(c.State.Running, true);
    assert.equal(c.Config.Labels["ferry.digest"], images.v1!.digest);
    assert.equal(c.Config.Labels["ferry.deployment"], d.id);
    assert.equal(c.Config.Labels["ferry.component"], "web");
    const image = (JSON.parse(await runDocker(socket, ["image", "inspect", c.Image])) as { RepoDigests: string[] }[])[0]!;
    assert.ok(image.RepoDigests.includes(images.v1!.pinned), `${JSON.stringify(image.RepoDigests)} has ${images.v1!.pinned}`);
    const targetId = ((await cp.api<{ id: string }>("GET", "/api/v1/environments/dev/targets/web")).body).id;
    const sticker = JSON.parse(readFileSync(join(agent.stateDir, "stickers", `${targetId}.json`), "utf8")) as { deploymentId: string; images: { digest: string }[]; taskId: string };
    assert.equal(sticker.deploymentId, d.id);
    assert.equal(sticker.images[0]?.digest, images.v1!.digest);
    assert.equal(sticker.taskId, d.tasks[0]!.id);
    const status = await waitFor("status in sync from the agent's sticker", async () => {
      const r = await cp.cli(["status", "--env", "dev", "--json"]);
      const s = JSON.parse(r.stdout) as { targets: { target: string; sync: string; deployed: { images: { digest: string }[] } | null }[] };
      const t = s.targets.find((x) => x.target === "web");
      return t?.sync === "in-sync" ? t : undefined;
    });
    assert.equal(status.deployed?.images[0]?.digest, images.v1!.digest);
    const log = await cp.cli(["deployment", "show", d.id, "--logs"]);
    assert.equal(log.code, 0, log.stderr);
    // The logs are what was asked for: on stdout, after the summary.
    assert.match(log.stdout, /\[health\]/);
    // The log arrives whole and once: every step line exactly once, in order.
    assert.equal((log.stdout.match(/\[start\] deploy/g) ?? []).length, 1, log.stdout);
    const lines = log.stdout.split("\n").filter((l) => /^\d{4}-/.test(l));
    assert.equal(new Set(lines).size, lines.length, `no line twice:\n${log.stdout}`);
    assert.equal((log.stdout.match(/\[sticker\]/g) ?? []).length, 1, log.stdout);
  });

  it("flags drift when the container stops outside Ferry, and clears it when it runs again", async () => {
    type Status = { targets: { target: string; sync: string; drift: string[] }[] };
    const web = async () => (await cp.api<Status>("GET", "/api/v1/status?environment=dev")).body.targets.find((t) => t.target === "web")!;
    await runDocker(socket, ["stop", "-t", "1", container]);
    const drifted = await waitFor("status to show drift", async () => {
      const t = await web();
      return t.sync === "drift" ? t : undefined;
    }, { timeoutMs: 30_000 });
    assert.ok(drifted.drift.some((d) => /not running|observed stopped/.test(d)), drifted.drift.join("; "));
    const shown = await cp.cli(["status", "--env", "dev"]);
    assert.match(shown.stdout, /DRIFT/);
    await runDocker(socket, ["start", container]);
    await waitFor("status back in sync", async () => ((await web()).sync === "in-sync" ? true : undefined), { timeoutMs: 30_000 });
  });

  it("replaces the running container with a new release, then rolls back to exactly the previous digest", async () => {
    await release("2", `:2`);
    const v2 = await deploy("shop@2");
    assert.equal(v2.d.state, "succeeded", JSON.stringify(v2.d));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 2" });
    const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"])).split("\n").filter((n) => n.startsWith(container));
    assert.deepEqual(names, [container], "the old container is removed after a successful switch");
    const rb = await cp.cli(["rollback", "--env", "dev", "--wait", "--json"]);
    assert.equal(rb.code, 0, rb.stderr);
    const d = JSON.parse(rb.stdout) as DeploymentView;
    assert.equal(d.action, "rollback");
    assert.equal(d.tasks[0]?.images[0]?.digest, images.v1!.digest);
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" });
    assert.equal((await inspect()).Config.Labels["ferry.digest"], images.v1!.digest);
  });

  it("fails an image that never becomes healthy, restores the old container and reports the health output", async () => {
    const before1 = await inspect();
    await release("bad", `:bad`);
    const { code, d } = await deploy("shop@bad");
    assert.equal(code, 1);
    assert.equal(d.state, "failed");
    const t = d.tasks[0]!;
    assert.equal(t.code, "HEALTH_CHECK_FAILED", JSON.stringify(t));
    assert.ok(t.details && "health" in t.details, `health output in ${JSON.stringify(t.details)}`);
    assert.equal(t.details?.["restored"], true);
    const now = await inspect();
    assert.equal(now.Id, before1.Id, "the old container is back, not a copy");
    assert.equal(now.State.Running, true);
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" });
  });

  it("runs the release's digest when the tag moved in the registry after the release was cut", async () => {
    await release("3", `:3`);
    // Move tag 3 to different content.
    const moved = await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "3", version: "web 3-moved", port });
    assert.notEqual(moved.digest, images.v3!.digest);
    const { d } = await deploy("shop@3");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.equal(d.tasks[0]?.images[0]?.digest, images.v3!.digest);
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 3" });
    assert.equal((await inspect()).Config.Labels["ferry.digest"], images.v3!.digest);
  });

  it("delivers a deployment queued through another replica to the agent connected here (LISTEN/NOTIFY)", async () => {
    const replica = await TestControlPlane.start({
      databaseUrl: db.url,
      extraArgs: ["--ca-dir", join(cp.dataDir, "ca"), "--task-signing-dir", join(cp.dataDir, "task-signing"), "--task-ack-timeout", "3s"],
    });
    try {
      const started = Date.now();
      const r = await replica.api<DeploymentView>("POST", "/api/v1/deployments", { release: "shop@2", environment: "dev" }, cp.adminToken);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const d = await waitDeployment(r.body.id, (x) => x.state === "succeeded" || x.state === "failed", "the deployment queued on the other replica");
      assert.equal(d.state, "succeeded", JSON.stringify(d));
      // Pushed at once through NOTIFY, not found by the (30 s) sweep of the replica holding the stream.
      const t = d.tasks[0]!;
      const delivered = await cp.api<{ tasks: { startedAt: string | null }[] }>("GET", `/api/v1/deployments/${d.id}`);
      assert.ok(Date.parse(delivered.body.tasks[0]!.startedAt!) - started < 10_000, `accepted ${delivered.body.tasks[0]!.startedAt} for ${t.id}`);
      assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 2" });
    } finally {
      await replica.stop();
    }
  });

  it("rotates the task-signing key with overlap: agents learn the new key at once and keep trusting the old one", async () => {
    const before1 = (await cp.cli(["signing-key", "list", "--json"])).stdout;
    const oldKey = (JSON.parse(before1) as { activeKeyId: string }).activeKeyId;
    const short = await cp.cli(["signing-key", "rotate", "--overlap", "5m"]);
    assert.equal(short.code, 1, "an overlap shorter than the task TTL is refused");
    assert.match(short.stderr, /VALIDATION_FAILED/);
    const r = await cp.cli(["signing-key", "rotate", "--overlap", "2h", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const k = JSON.parse(r.stdout) as { activeKeyId: string; keys: { keyId: string }[] };
    assert.notEqual(k.activeKeyId, oldKey);
    assert.deepEqual(k.keys.map((x) => x.keyId).sort(), [oldKey, k.activeKeyId].sort());
    await waitFor("the agent to trust both keys", () => {
      const trusted = JSON.parse(readFileSync(join(agent.stateDir, "task-signing-keys.json"), "utf8")) as { keys: { keyId: string }[] };
      return trusted.keys.length === 2 ? true : undefined;
    });
    const { d } = await deploy("shop@2");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    const row = await sql.query<{ key_id: string }>("SELECT key_id FROM tasks WHERE id = $1", [d.tasks[0]!.id]);
    assert.equal(row.rows[0]?.key_id, k.activeKeyId);
  });

  describe("tampered and replayed tasks are refused before anything runs", () => {
    let keyring: TaskSigningKeyring;
    let targetId = "";
    let releaseId = "";
    let lastPayload: TaskPayload;

    before(async () => {
      keyring = await TaskSigningKeyring.loadOrCreate(join(cp.dataDir, "task-signing"));
      targetId = ((await cp.api<{ id: string }>("GET", "/api/v1/environments/dev/targets/web")).body).id;
      releaseId = ((await cp.api<{ id: string }>("GET", "/api/v1/releases/shop@2")).body).id;
      const last = (await sql.query<{ payload: Buffer }>("SELECT payload FROM tasks WHERE state = 'succeeded' ORDER BY finished_at DESC LIMIT 1")).rows[0]!;
      lastPayload = JSON.parse(last.payload.toString("utf8")) as TaskPayload;
    });

    /** Writes a task straight into the queue (as someone with database access could) and waits for the agent's answer. */
    async function inject(mutate: (p: TaskPayload) => TaskPayload, sign: (p: TaskPayload) => { payload: Uint8Array; keyId: string; signature: Uint8Array; payloadType: string }): Promise<TaskView> {
      const deploymentId = `dep_${randomBytes(8).toString("hex")}`;
      const taskId = `tsk_${randomBytes(10).toString("hex")}`;
      const now = Date.now();
      const base: TaskPayload = {
        v: 1, taskId, deploymentId, agentId, issuedAt: now, notAfter: now + 600_000, nonce: newTaskNonce(), action: "deploy",
        target: lastPayload.target, release: { id: releaseId, name: "shop", version: "2" },
        images: [{ component: "web", repository: images.v2!.repository, digest: images.v2!.digest, ref: images.v2!.pinned }],
      };
      const payload = mutate(base);
      const env = sign(payload);
      const before1 = await inspect();
      await sql.query(`INSERT INTO deployments (id, environment, release_id, action, state, requested_by) VALUES ($1, 'dev', $2, 'deploy', 'queued', 'intruder')`, [deploymentId, releaseId]);
      await sql.query(
        `INSERT INTO tasks (id, deployment_id, agent_id, target_id, release_id, action, state, payload, payload_type, key_id, signature, images, not_after)
         VALUES ($1, $2, $3, $4, $5, 'deploy', 'queued', $6, $7, $8, $9, $10, now() + interval '10 minutes')`,
        [taskId, deploymentId, agentId, targetId, releaseId, Buffer.from(env.payload), env.payloadType, env.keyId, Buffer.from(env.signature), JSON.stringify(payload.images)],
      );
      await sql.query("SELECT pg_notify('ferry_tasks', $1)", [agentId]);
      const d = await waitDeployment(deploymentId, (x) => x.state === "failed" || x.state === "succeeded", "the agent's answer to an injected task", 30_000);
      const after1 = await inspect();
      assert.equal(after1.Id, before1.Id, "nothing changed on the target");
      return d.tasks[0]!;
    }

    it("refuses a bad signature", async () => {
      const t = await inject((p) => p, (p) => {
        const s = keyring.sign(p);
        const sig = Buffer.from(s.signature);
        sig[0] = sig[0]! ^ 0xff;
        return { ...s, signature: sig };
      });
      assert.equal(t.state, "errored");
      assert.equal(t.code, "TASK_BAD_SIGNATURE");
    });

    it("refuses a payload changed after signing", async () => {
      const t = await inject((p) => p, (p) => {
        const s = keyring.sign(p);
        const text = Buffer.from(s.payload).toString("utf8").replace(images.v2!.digest, images.bad!.digest);
        return { ...s, payload: Buffer.from(text) };
      });
      assert.equal(t.code, "TASK_BAD_SIGNATURE");
    });

    it("refuses an unknown key id", async () => {
      const rogue = await TaskSigningKeyring.loadOrCreate(join(scratch, "rogue-keys"));
      const t = await inject((p) => p, (p) => rogue.sign(p));
      assert.equal(t.code, "TASK_UNKNOWN_KEY");
    });

    it("refuses a task addressed to another agent", async () => {
      const t = await inject((p) => ({ ...p, agentId: otherId }), (p) => keyring.sign(p));
      assert.equal(t.code, "TASK_WRONG_AUDIENCE");
    });

    it("refuses an expired task", async () => {
      const t = await inject((p) => ({ ...p, issuedAt: Date.now() - 3_600_000, notAfter: Date.now() - 600_000 }), (p) => keyring.sign(p));
      assert.equal(t.code, "TASK_EXPIRED");
    });

    it("refuses a replayed nonce", async () => {
      const t = await inject((p) => ({ ...p, nonce: lastPayload.nonce }), (p) => keyring.sign(p));
      assert.equal(t.code, "TASK_REPLAYED");
    });
  });

  it("delivers tasks queued while the control plane restarts", async () => {
    await agent.stop("SIGTERM");
    const r = await cp.api<DeploymentView>("POST", "/api/v1/deployments", { release: "shop@2", environment: "dev" });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await cp.restart("SIGTERM");
    agent.start(["--docker-socket", socket, "--observe-interval", "1"]);
    const d = await waitDeployment(r.body.id, (x) => x.state === "succeeded" || x.state === "failed", "the queued deployment to finish after the restart");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 2" });
  });

  it("survives kill -9 of the control plane mid-deploy: the agent finishes and delivers the result later", async () => {
    // A container that takes a few seconds to become healthy gives time to kill the control plane.
    await cp.api("PATCH", "/api/v1/environments/dev/targets/web", {
      config: { container, component: "web", command: ["sh", "-c", `sleep 4; exec httpd -f -p 127.0.0.1:${port} -h /www`], healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 30, intervalSeconds: 1 } },
    });
    const r = await cp.api<DeploymentView>("POST", "/api/v1/deployments", { release: "shop@1", environment: "dev" });
    assert.equal(r.status, 201);
    await waitDeployment(r.body.id, (x) => x.tasks[0]?.state === "running", "the task to be running");
    await cp.proc.kill("SIGKILL");
    // The deploy completes on the target while the control plane is down.
    await waitFor("web 1 to serve while the control plane is down", async () => ((await httpGet(port, "/version"))?.body === "web 1" ? true : undefined), { timeoutMs: 60_000 });
    await cp.boot({ api: Number(new URL(cp.runtime.api).port), agent: cp.runtime.agentPort, enrol: cp.runtime.enrolPort });
    const d = await waitDeployment(r.body.id, (x) => x.state === "succeeded" || x.state === "failed", "the spooled result to arrive");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    const log = await fetch(`${cp.runtime.api}/api/v1/deployments/${d.id}/tasks/${d.tasks[0]!.id}/log`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    assert.match(await log.text(), /\[sticker\]/);
  });

  it("survives kill -9 of the agent mid-deploy: reported interrupted with the real container state, and a retry completes", async () => {
    const r = await cp.api<DeploymentView>("POST", "/api/v1/deployments", { release: "shop@2", environment: "dev" });
    assert.equal(r.status, 201);
    await waitDeployment(r.body.id, (x) => (x.tasks[0]?.events ?? []).some((e) => e.step === "health"), "the deploy to reach the health wait");
    await agent.stop("SIGKILL");
    agent.start(["--docker-socket", socket, "--observe-interval", "1"]);
    const d = await waitDeployment(r.body.id, (x) => x.state === "failed" || x.state === "succeeded", "the interrupted task to be reported");
    const t = d.tasks[0]!;
    assert.equal(t.state, "errored", JSON.stringify(t));
    assert.equal(t.code, "TASK_INTERRUPTED");
    assert.ok(t.details && "found" in t.details, `inspection in ${JSON.stringify(t.details)}`);
    const retry = await cp.cli(["deployment", "retry", d.id, "--wait", "--json"]);
    assert.equal(retry.code, 0, retry.stderr);
    const rd = JSON.parse(retry.stdout) as DeploymentView;
    assert.equal(rd.state, "succeeded", JSON.stringify(rd));
    await waitFor("web 2 to serve", async () => ((await httpGet(port, "/version"))?.body === "web 2" ? true : undefined), { timeoutMs: 30_000 });
    const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"])).split("\n").filter((n) => n.startsWith(container));
    assert.deepEqual(names, [container], "no leftover containers after the retry");
    assert.ok(existsSync(join(agent.stateDir, "tasks")));
  });

  it("survives a Docker daemon restart between two deploys", async (t) => {
    const why = privateDockerdSkipReason();
    if (why) {
      if (process.env["CI"] === "true") assert.fail(`the daemon-restart case must run in CI: ${why}`);
      t.skip(why);
      return;
    }
    // The target's own engine, so restarting it disturbs nothing else.
    const engine = await startPrivateDockerd();
    try {
      const port2 = await freePort();
      const name = `ferry-e2e-restart-${suffix}`;
      const created = await cp.api("POST", "/api/v1/environments/dev/targets", {
        name: "web-restart",
        kind: "docker",
        agentId,
        config: {
          container: name,
          component: "web",
          socketPath: engine.socketPath,
          command: ["httpd", "-f", "-p", `127.0.0.1:${port2}`, "-h", "/www"],
          healthCheck: { type: "http", url: `http://127.0.0.1:${port2}/health`, timeoutSeconds: 15, intervalSeconds: 1 },
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const first = await deploy("shop@1", ["--target", "web-restart"]);
      assert.equal(first.d.state, "succeeded", JSON.stringify(first.d));
      assert.deepEqual(await httpGet(port2, "/version"), { status: 200, body: "web 1" });
      await engine.stop();
      await engine.start();
      const second = await deploy("shop@2", ["--target", "web-restart"]);
      assert.equal(second.d.state, "succeeded", JSON.stringify(second.d));
      assert.deepEqual(await httpGet(port2, "/version"), { status: 200, body: "web 2" });
      const names = (await runDocker(engine.socketPath, ["ps", "-a", "--format", "{{.Names}}"])).split("\n").filter(Boolean);
      assert.deepEqual(names, [name]);
    } finally {
      await engine.destroy();
    }
  });
});
