// Health that a broken container cannot fool, end to end: a `ferry server` (embedded PGlite), a real agent process,
// the real Docker Engine (scripts/test-env.sh) and a real OCI registry on loopback, reached through a TCP proxy that
// can slow the registry down. The target has no healthCheck configured — the defaults a new user gets.
//
//   (a) an image that exits with code 3 a second after it starts (Docker restarting it) fails the deploy with
//       INSTANCE_CRASHED, its exit code and output in the task log; the previous version serves again when the task
//       ends; the next deploy of a good image succeeds without manual help;
//   (b) an image whose own HEALTHCHECK turns unhealthy fails the deploy;
//   (c) a crash-looping (restarting) old container is replaced by a good deploy, and a rollback works after it;
//   (d) the old version keeps serving while the new image is pulled and verified (a slow registry): every request
//       made before the `start` phase began is answered by the old version.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";

import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker, type TestImage } from "../helpers/docker.js";
import { freePort, httpGet } from "../helpers/net.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";

const skip = (await dockerSkipReason("deploy-health end-to-end suite")) || registrySkipReason();
if (skip) console.warn(`\n*** deploy-health suite skipped: ${skip} ***\n`);

interface TaskView {
  id: string;
  state: string;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  events?: { step: string; detail: string; at: string }[];
}
interface DeploymentView {
  id: string;
  state: string;
  action: string;
  tasks: TaskView[];
}


/**
 * A TCP proxy on loopback in front of the registry. While `slow` is on, what the registry sends is passed on in
 * 16 KiB pieces, one every 80 ms (about 200 KiB/s), so pulling a test image takes seconds instead of milliseconds.
 */
async function startSlowProxy(upstreamPort: number): Promise<{ host: string; slow: boolean; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { slow: false };
  const server: Server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: upstreamPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(upstream);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    const queue: Buffer[] = [];
    let draining = false;
    const drain = () => {
      const piece = queue.shift();
      if (!piece) {
        draining = false;
        upstream.resume();
        return;
      }
      client.write(piece);
      setTimeout(drain, 80);
    };
    upstream.on("data", (chunk: Buffer) => {
      if (!state.slow && !draining) {
        client.write(chunk);
        return;
      }
      for (let off = 0; off < chunk.length; off += 16 * 1024) queue.push(chunk.subarray(off, off + 16 * 1024));
      upstream.pause();
      if (!draining) {
        draining = true;
        drain();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    get slow() {
      return state.slow;
    },
    set slow(v: boolean) {
      state.slow = v;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("deploy health against the real Docker Engine", { skip, concurrency: false }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let proxy: Awaited<ReturnType<typeof startSlowProxy>>;
  let socket: string;
  const agent = new TestAgent("health-1");
  const suffix = randomBytes(3).toString("hex");
  const container = `ferry-e2e-health-${suffix}`;
  const repository = `shop/health-${suffix}`;
  let port = 0;
  const images: Record<string, TestImage> = {};

  const release = async (version: string) => {
    const r = await cp.api<{ id: string }>("POST", "/api/v1/releases", { name: "shop", version, components: { web: `:${version}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const deploy = async (version: string) => {
    const r = await cp.cli(["deploy", `shop@${version}`, "--to", "dev", "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry deploy printed no JSON: ${r.stderr}`);
    return { code: r.code, d: JSON.parse(r.stdout) as DeploymentView, stderr: r.stderr };
  };
  const taskLog = async (d: DeploymentView) => {
    const res = await fetch(`${cp.runtime.api}/api/v1/deployments/${d.id}/tasks/${d.tasks[0]!.id}/log`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    return res.text();
  };
  const containers = async () => (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"])).split("\n").filter((n) => n.startsWith(container));

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    reg = await startRegistry();
    proxy = await startSlowProxy(Number(reg.host.split(":")[1]));
    port = await freePort();
    cp = await TestControlPlane.start();
    const build = (tag: string, version: string, extra: Partial<Parameters<typeof buildTestImage>[0]> = {}) =>
      buildTestImage({ registry: proxy.host, repository, tag, version: `web ${version}`, port, ...extra });
    images["1"] = await build("1", "1");
    images["crash"] = await build("crash", "crash", { crash: { afterSeconds: 1, exitCode: 3 } });
    images["unhealthy"] = await build("unhealthy", "unhealthy", { dockerHealthcheck: true, healthcheckPath: "/missing" });
    images["4"] = await build("4", "4");
    images["5"] = await build("5", "5");
    images["6"] = await build("6", "6");
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${proxy.host}/${repository}`])).code, 0);
    const e = await agent.enrol(await cp.createJoinString("dev"));
    assert.equal(e.code, 0, e.stderr);
    agent.start(["--docker-socket", socket, "--observe-interval", "1"]);
    const agentId = await waitFor("the agent online with the docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((x) => x.status === "online" && x.facts.drivers?.includes("docker"))?.id;
    });
    // No healthCheck: the defaults (running with no restart through the settle window, the image's own HEALTHCHECK).
    const t = await cp.api("POST", "/api/v1/environments/dev/targets", { name: "web", kind: "docker", agentId, config: { container, component: "web" } });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    for (const v of ["1", "crash", "unhealthy", "4", "5", "6"]) await release(v);
  });

  after(async () => {
    await agent.dispose();
    await cp?.stop();
    await proxy?.close();
    await reg?.stop();
    if (socket) {
      const names = await containers().catch(() => []);
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
  });

  it("(a) a crash-looping image fails with INSTANCE_CRASHED, the previous version serves again when the task ends, and the next deploy succeeds", async () => {
    const first = await deploy("1");
    assert.equal(first.d.state, "succeeded", JSON.stringify(first.d));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" });

    const { code, d } = await deploy("crash");
    assert.equal(code, 1);
    assert.equal(d.state, "failed", JSON.stringify(d));
    const t = d.tasks[0]!;
    assert.equal(t.code, "INSTANCE_CRASHED", JSON.stringify(t));
    assert.equal(t.details?.["restored"], true);
    // The previous version answers as soon as the task has ended (restore waits until it runs again).
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" });
    const log = await taskLog(d);
    assert.match(log, /exit code 3/);
    assert.match(log, /web crash crashing with exit code 3/);
    assert.match(log, /host networking: old and new cannot run side by side; the switch has a short outage/);
    assert.deepEqual(await containers(), [container]);

    const next = await deploy("4");
    assert.equal(next.d.state, "succeeded", JSON.stringify(next.d));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 4" });
  });

  it("(b) an image whose HEALTHCHECK turns unhealthy fails the deploy and the previous version serves again", async () => {
    const { code, d } = await deploy("unhealthy");
    assert.equal(code, 1);
    const t = d.tasks[0]!;
    assert.equal(t.code, "HEALTH_CHECK_FAILED", JSON.stringify(t));
    assert.match(t.message ?? "", /HEALTHCHECK reports unhealthy/);
    assert.equal(t.details?.["restored"], true);
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 4" });
  });

  it("(c) a restarting (crash-looping) old container is replaced by a good deploy, and a rollback works after it", async () => {
    // The container starts crash-looping after it was deployed (its dependency went away, say): the same container
    // under the target's name, now running the crashing image under Docker's restart policy.
    await runDocker(socket, ["rm", "-f", container]);
    await runDocker(socket, ["run", "-d", "--name", container, "--network", "host", "--restart", "unless-stopped", images["crash"]!.pinned]);
    await waitFor("the old container to be restarting", async () => ((await runDocker(socket, ["inspect", "--format", "{{.State.Restarting}}", container])).trim() === "true" ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    const { d } = await deploy("5");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 5" });
    assert.deepEqual(await containers(), [container]);
    assert.match(await taskLog(d), /crash-loops/);

    const rb = await cp.cli(["rollback", "--env", "dev", "--wait", "--json"]);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal((JSON.parse(rb.stdout) as DeploymentView).state, "succeeded");
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 4" });
  });

  it("(d) the old version keeps serving while the new image is pulled and verified", async () => {
    proxy.slow = true;
    try {
      const polls: Array<{ at: number; body: string | undefined }> = [];
      const r = await cp.api<DeploymentView>("POST", "/api/v1/deployments", { release: "shop@6", environment: "dev" });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      let done: DeploymentView | undefined;
      // Poll the service every 100 ms (bounded: 2 minutes) until the deployment ends.
      for (let i = 0; i < 1200 && !done; i++) {
        const at = Date.now();
        polls.push({ at, body: (await httpGet(port, "/version"))?.body });
        const d = (await cp.api<DeploymentView>("GET", `/api/v1/deployments/${r.body.id}`)).body;
        if (d.state === "succeeded" || d.state === "failed") done = d;
        else await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(done?.state, "succeeded", JSON.stringify(done));
      const events = done.tasks[0]!.events ?? [];
      const prepareAt = Date.parse(events.find((e) => e.step === "prepare")?.at ?? "");
      const startIndex = events.findIndex((e) => e.step === "prepare");
      const startAt = Date.parse(events.slice(startIndex + 1).find((e) => e.step === "start")?.at ?? "");
      assert.ok(Number.isFinite(prepareAt) && Number.isFinite(startAt), JSON.stringify(events));
      assert.ok(startAt - prepareAt >= 2000, `the pull should be slow (prepare took ${startAt - prepareAt} ms)`);
      const duringPrepare = polls.filter((p) => p.at >= prepareAt && p.at < startAt);
      assert.ok(duringPrepare.length >= 10, `${duringPrepare.length} requests during prepare`);
      assert.deepEqual([...new Set(duringPrepare.map((p) => p.body))], ["web 4"], "only the old version answers while the new image is pulled and verified");
      assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 6" });
      const log = await taskLog(done);
      assert.match(log, /prepare: verified: image [0-9a-f]{12} carries/);
    } finally {
      proxy.slow = false;
    }
  });
});
