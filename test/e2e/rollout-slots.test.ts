// Blue-green, canary and maintenance end to end: a `ferry server` on PostgreSQL running the rollout engine, a real
// `ferry-agent` with its Docker driver behind a real HAProxy (configured with `ferry-agent router haproxy-config`,
// driven through its runtime socket), the real Docker Engine and a registry, all on loopback. Clients are a plain
// node:http loop sharing no code with Ferry.
//
// Covered: a blue-green rollout and a rollback under continuous requests lose none; a canary whose new version stops
// answering fails its analysis and is rolled back automatically with weight 0 first; maintenance on answers 503 with
// the message, off serves again; an A/B rollout splits by a cookie (sticky per value, an allowlisted value always on
// B, no cookie on A), passes its analysis and switches everyone to B.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));
const dbUrl = testDatabaseUrl();
const skip = (await dockerSkipReason("rollout slots end-to-end suite")) || registrySkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON) || (HAPROXY ? false : "haproxy is not installed (scripts/test-env.sh installs it)");
if (skip) console.warn(`\n*** rollout-slots suite skipped: ${skip} ***\n`);

interface Step { index: number; kind: string; phase: string; state: string; result: Record<string, unknown> }
interface Rollout { id: string; state: string; reason: Record<string, unknown> | null; steps: Step[] }

/** GET path through the router on a fresh connection: status and body, or the error. */
const get = (port: number, path: string, cookie?: string) => httpGet(port, path, { timeoutMs: 5000, ...(cookie ? { cookie } : {}) });

/** Requests through the router, three at a time with a 5 ms pause, until stopped (at most 150 s): counts by answer. */
const load = (port: number) => httpLoad(port, { workers: 3, pauseMs: 5, maxMs: 150_000, timeoutMs: 5000 });

describe("blue-green, canary and maintenance through a real router", { skip, concurrency: false }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let db: { url: string; drop: () => Promise<void> };
  let socket: string;
  let haproxy: ChildProcess | undefined;
  const agent = new TestAgent("slots-1");
  const run_ = randomBytes(3).toString("hex");
  const container = `ferry-e2e-slots-${run_}`;
  const dir = mkdtempSync(join(tmpdir(), "ferry-slots-e2e-"));
  const adminSocket = join(dir, "haproxy.sock");
  const maintenanceMap = join(dir, "maintenance.map");
  const splitMap = join(dir, "split.map");
  let listen = 0;

  const rolloutOf = async (deploymentOutput: string): Promise<string> => {
    const d = JSON.parse(deploymentOutput) as { rollout?: { id: string } };
    assert.ok(d.rollout, deploymentOutput);
    return d.rollout.id;
  };
  const waitRollout = (id: string, states: string[], timeoutMs = 90_000) =>
    waitFor(`rollout ${id} to be ${states.join(" or ")}`, async () => {
      const r = await cp.api<Rollout>("GET", `/api/v1/rollouts/${id}`);
      return states.includes(r.body.state) ? r.body : undefined;
    }, { timeoutMs });
  const release = async (version: string) => {
    const r = await cp.api("POST", "/api/v1/releases", { name: "shop", version, components: { web: `:${version}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    db = await createDatabase(dbUrl!);
    reg = await startRegistry();
    const [blue, green] = [await freePort(), await freePort()];
    listen = await freePort();
    // Each image's httpd listens on the slot's port ($PORT, set by the driver); "bad" stops answering 4 s after it
    // started: healthy when checked, then every connection to it fails while the canary bakes. It stops accepting
    // connections (the answers under way finish: busybox httpd answers each in its own process) and exits a second
    // later. Killed outright, an answer the router had begun to relay would be cut off mid-body, which no router can
    // hide and which this test does not measure.
    for (const v of ["1", "2", "bad"]) await buildTestImage({ registry: reg.host, repository: "shop/web", tag: v, version: v, port: 1 });
    const cfg = await run(AGENT_BIN, ["router", "haproxy-config", "--service", "web", "--listen", `127.0.0.1:${listen}`, "--blue", String(blue), "--green", String(green), "--socket", adminSocket, "--maintenance-map", maintenanceMap, "--split-cookie", "user", "--split-map", splitMap]);
    assert.equal(cfg.code, 0, cfg.stderr);
    writeFileSync(join(dir, "haproxy.cfg"), cfg.stdout);
    writeFileSync(maintenanceMap, "");
    writeFileSync(splitMap, "");
    haproxy = spawn(HAPROXY!, ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: "ignore" });
    await waitFor("haproxy's admin socket", () => Promise.resolve(existsSync(adminSocket) || undefined));
    cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--task-ack-timeout", "3s", "--liveness-grace", "2s"] });
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${reg.host}/shop/web`])).code, 0);
    const e = await agent.enrol(await cp.createJoinString("dev"));
    assert.equal(e.code, 0, e.stderr);
    agent.start(["--docker-socket", socket, "--driver", "docker.router=haproxy", "--driver", `docker.routerSocket=${adminSocket}`, "--driver", `docker.routerMaintenanceMap=${maintenanceMap}`, "--driver", `docker.routerSplitMap=${splitMap}`]);
    const online = await waitFor("the agent online with a routed docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { driverFacts?: { kind: string; capabilities: string[] }[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((a) => a.status === "online" && a.facts.driverFacts?.some((f) => f.kind === "docker" && f.capabilities.includes("router")));
    });
    const command = ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$PORT -h /www & if grep -q bad /www/version; then sleep 4; kill $!; sleep 1; exit 1; fi; wait"];
    const t = await cp.api("POST", "/api/v1/environments/dev/targets", {
      name: "web",
      kind: "docker",
      agentId: online.id,
      config: {
        container,
        component: "web",
        command,
        healthCheck: { type: "http", url: `http://127.0.0.1:${blue}/health`, timeoutSeconds: 8, intervalSeconds: 1, settleSeconds: 1 },
        route: { service: "web", listen: `127.0.0.1:${listen}`, slots: { blue, green }, drainSeconds: 1, split: { by: "cookie", name: "user" } },
      },
    });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    for (const v of ["1", "2", "bad"]) await release(v);
    const first = await cp.cli(["deploy", "shop@1", "--to", "dev", "--wait", "--timeout", "90", "--json"]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(await get(listen, "/version"), { status: 200, body: "1" });
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
      const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith(container));
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a blue-green rollout, then a rollback, lose no request", async () => {
    const traffic = load(listen);
    const d = await cp.cli(["deploy", "shop@2", "--to", "dev", "--strategy", "blue-green", "--json"]);
    assert.equal(d.code, 0, d.stderr);
    const r = await waitRollout(await rolloutOf(d.stdout), ["succeeded", "rolled_back", "failed", "halted"]);
    assert.equal(r.state, "succeeded", JSON.stringify(r));
    assert.deepEqual(r.steps.map((s) => `${s.kind}:${s.state}`), ["wave:succeeded", "wave:succeeded"]);
    await waitFor("version 2 served", async () => ((await get(listen, "/version")).body === "2" ? true : undefined));
    const rb = await cp.cli(["rollback", "--env", "dev", "--wait", "--timeout", "90", "--json"]);
    assert.equal(rb.code, 0, rb.stderr);
    await waitFor("version 1 served again", async () => ((await get(listen, "/version")).body === "1" ? true : undefined));
    const seen = await traffic.stop();
    assert.equal(seen.failed, 0, seen.errors.join("; "));
    assert.ok(seen.ok > 50, `only ${seen.ok} requests`);
    assert.deepEqual([...seen.bodies].sort(), ["1", "2"]);
  });

  it("a canary that stops answering fails its analysis and is rolled back with weight 0 first", async () => {
    const traffic = load(listen);
    const strategy = JSON.stringify({ kind: "canary", steps: [{ weight: 50, bakeSeconds: 8 }], analysis: { minRequests: 10, maxInconclusive: 0 }, drainSeconds: 1 });
    const d = await cp.cli(["deploy", "shop@bad", "--to", "dev", "--strategy", strategy, "--json"]);
    assert.equal(d.code, 0, d.stderr);
    const r = await waitRollout(await rolloutOf(d.stdout), ["succeeded", "rolled_back", "failed", "halted"]);
    const seen = await traffic.stop();
    assert.equal(r.state, "rolled_back", JSON.stringify(r));
    assert.equal(r.reason?.["code"], "ROLLOUT_ANALYSIS_FAILED", JSON.stringify(r.reason));
    const analysis = r.steps.find((s) => s.kind === "analysis")!.result["analysis"] as { verdict: string; perTarget: { measurements: { name: string; verdict: string }[] }[] };
    assert.equal(analysis.verdict, "fail");
    assert.ok(analysis.perTarget[0]!.measurements.some((m) => m.name === "error-rate" && m.verdict === "fail"));
    const rollback = r.steps.filter((s) => s.phase === "rollback").map((s) => `${s.kind}:${s.state}`);
    assert.deepEqual(rollback, ["weights:succeeded", "wave:succeeded"]);
    assert.deepEqual(await get(listen, "/version"), { status: 200, body: "1" });
    // The router retried a request the canary could not take on the stable slot: clients saw version 1 only.
    assert.equal(seen.failed, 0, seen.errors.join("; "));
    const status = JSON.parse((await cp.cli(["status", "--env", "dev", "--json"])).stdout) as { targets: { deployed: { release: string } | null }[] };
    assert.equal(status.targets[0]!.deployed?.release, "shop@1", "the canary never became what the target runs");
  });

  it("maintenance on answers 503 with the message; off serves again", async () => {
    const on = await cp.cli(["maintenance", "on", "--env", "dev", "--message", "back at ten", "--wait", "--json"]);
    assert.equal(on.code, 0, on.stderr);
    assert.deepEqual(await get(listen, "/version"), { status: 503, body: "back at ten" });
    const off = await cp.cli(["maintenance", "off", "--env", "dev", "--wait", "--json"]);
    assert.equal(off.code, 0, off.stderr);
    assert.deepEqual(await get(listen, "/version"), { status: 200, body: "1" });
    const refused = await cp.cli(["maintenance", "on", "--env", "dev", "--message", 'say "no"']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /VALIDATION_FAILED|message/);
  });

  it("an A/B rollout splits by cookie, sticky per user, then switches everyone to B after its analysis", async () => {
    const before = await get(listen, "/version");
    assert.equal(before.status, 200);
    const a = before.body;
    const strategy = JSON.stringify({ kind: "ab", split: { by: "cookie", name: "user", percent: 50 }, allowlist: ["tester"], bakeSeconds: 8, analysis: { minRequests: 10, maxInconclusive: 1 }, drainSeconds: 1 });
    const d = await cp.cli(["deploy", "shop@2", "--to", "dev", "--strategy", strategy, "--json"]);
    assert.equal(d.code, 0, d.stderr);
    const id = await rolloutOf(d.stdout);
    await waitFor("the A/B split in force", async () => {
      const r = await cp.api<Rollout>("GET", `/api/v1/rollouts/${id}`);
      return r.body.steps.find((s) => s.kind === "weights")?.state === "succeeded" ? true : undefined;
    }, { timeoutMs: 60_000 });
    // During the bake: 40 users twice each; every user sees one version both times, and both versions are seen.
    const seen = new Map<string, string>();
    let b = 0;
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 40; i++) {
        const res = await get(listen, "/version", `user=u${i}`);
        assert.equal(res.status, 200);
        if (round === 0) seen.set(`u${i}`, res.body);
        else assert.equal(res.body, seen.get(`u${i}`), `user u${i} changed version`);
        if (res.body === "2") b++;
      }
    }
    assert.ok(b > 0 && b < 80, `${b} of 80 requests on B`);
    assert.deepEqual(await get(listen, "/version", "user=tester"), { status: 200, body: "2" }, "an allowlisted user is on B");
    assert.deepEqual(await get(listen, "/version"), { status: 200, body: a }, "no cookie stays on A");
    // Traffic on both sides for the analysis (its requests and latency comparison) until the rollout ends, however
    // the bake and the analysis fall: B by the allowlisted user, A without a cookie (bounded: 60 s).
    let ended = false;
    const until = Date.now() + 60_000;
    const feed = (async () => {
      for (let i = 0; !ended && Date.now() < until; i++) {
        await get(listen, "/version", i % 2 === 0 ? "user=tester" : undefined).catch(() => undefined);
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    const r = await waitRollout(id, ["succeeded", "rolled_back", "failed", "halted"]).finally(() => (ended = true));
    await feed;
    assert.equal(r.state, "succeeded", JSON.stringify(r));
    const analysis = r.steps.find((s) => s.kind === "analysis")!.result["analysis"] as { verdict: string };
    assert.equal(analysis.verdict, "pass");
    assert.deepEqual(await get(listen, "/version"), { status: 200, body: "2" }, "after the switch everyone is on B");
    assert.deepEqual(await get(listen, "/version", "user=u1"), { status: 200, body: "2" });
  });
});
