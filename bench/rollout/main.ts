// `npm run bench:rollout` — zero-downtime figures through the control plane's rollout engine, side by side in one
// run with today's replace mode and with a plain docker CLI script (docs/performance.md, "Rollout benchmark").
//
// Everything is real and on loopback: a `ferry server` on PostgreSQL (a fresh database, dropped at the end), one
// `ferry-agent` with its Docker driver behind HAProxy (configured by `ferry-agent router haproxy-config`), the Docker
// Engine of scripts/test-env.sh and a registry. Deploys and rollbacks go through the `ferry` CLI; the figures come
// from the rollout's step timestamps and from load-client.mjs, a separate process that shares no code with Ferry
// (node:http only), at --rate requests/s (250).
//
//   npm run bench:rollout [-- --rate 250] [--targets 20] [--soak 10]
//   FERRY_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test) names the server to use.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { TestAgent } from "../../test/helpers/agent.js";
import { TestControlPlane } from "../../test/helpers/control-plane.js";
import { buildTestImage, dockerEngine, runDocker } from "../../test/helpers/docker.js";
import { freePort } from "../../test/helpers/net.js";
import { createDatabase } from "../../test/helpers/postgres.js";
import { AGENT_BIN, run } from "../../test/helpers/processes.js";
import { startRegistry, type TestRegistry } from "../../test/helpers/registry.js";
import { waitFor } from "../../test/helpers/wait.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const arg = (name: string, dflt: number, max: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0 || v > max) throw new Error(`--${name} must be a number in (0, ${max}]`);
  return v;
};
const RATE = arg("rate", 250, 1000);
const TARGETS = Math.round(arg("targets", 20, 50));
const SOAK_S = arg("soak", 10, 120);
const RUN = `ferry-bench-ro-${randomBytes(3).toString("hex")}`;
const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));
if (!HAPROXY) throw new Error("haproxy is not installed (scripts/test-env.sh installs it)");
const DATABASE = process.env["FERRY_TEST_DATABASE_URL"] ?? "postgresql://postgres@127.0.0.1:5432/test";
/** Every wait on the control plane gives up after this long: the bench never hangs. */
const WAIT_MS = 180_000;

interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  longestGapMs: number;
  achievedRate: number;
  errors: Record<string, number>;
  versions: Record<string, { first: number; last: number }>;
}
interface Step { index: number; phase: string; kind: string; name: string; state: string; startedAt: string | null; finishedAt: string | null }
interface Rollout { id: string; state: string; createdAt: string; finishedAt: string | null; reason: Record<string, unknown> | null; steps: Step[] }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (iso: string | null | undefined): number => (iso ? Date.parse(iso) : NaN);

/** Load clients still running: a run that fails midway stops them in its cleanup. */
const loads = new Set<ChildProcess>();

function startLoad(port: number): { stop: () => Promise<LoadReport> } {
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, "bench/rollout/load-client.mjs"), "--port", String(port), "--rate", String(RATE), "--max-seconds", "240", "--max-requests", "100000"], { stdio: ["ignore", "pipe", "inherit"] });
  loads.add(child);
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString("utf8")));
  const done = new Promise<LoadReport>((resolve, reject) =>
    child.once("exit", () => {
      loads.delete(child);
      try {
        resolve(JSON.parse(out.trim()) as LoadReport);
      } catch {
        reject(new Error(`the load client printed no report: ${out.slice(0, 200)}`));
      }
    }),
  );
  // A client killed by the cleanup of a failed run prints nothing, and nobody waits for its report then.
  done.catch(() => undefined);
  return {
    stop: () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return done;
    },
  };
}

// Each image's httpd listens on $PORT (a slot's port, set by the driver, or the target's env). "bad" answers for 4 s
// after it starts, long enough to pass its health check, then exits: a canary that breaks once it takes traffic.
const COMMAND = ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$PORT -h /www & if grep -q bad /www/version; then sleep 4; exit 1; fi; wait"];
const health = (port: number) => ({ type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 20, intervalSeconds: 1, settleSeconds: 1 });

const socketPath = (await dockerEngine()).socketPath;
const dir = mkdtempSync(join(tmpdir(), "ferry-bench-rollout-"));
const agent = new TestAgent(`${RUN}-agent`);
const results: Record<string, unknown> = { at: new Date().toISOString(), rate: RATE, targets: TARGETS, soakSeconds: SOAK_S };
let db: { url: string; drop: () => Promise<void> } | undefined;
let registry: TestRegistry | undefined;
let haproxy: ChildProcess | undefined;
let cp: TestControlPlane | undefined;

async function ferry(args: string[]): Promise<string> {
  const r = await cp!.cli(args);
  if (r.code !== 0) throw new Error(`ferry ${args.join(" ")}: exit ${r.code}: ${r.stderr.slice(0, 2000)}`);
  return r.stdout;
}
async function rollout(id: string): Promise<Rollout> {
  const r = await cp!.api<Rollout>("GET", `/api/v1/rollouts/${id}`);
  if (r.status !== 200) throw new Error(`rollout ${id}: ${r.status}`);
  return r.body;
}
/** Starts a rollout through the CLI and follows it to a final state (polled every 100 ms, at most WAIT_MS). */
async function rolloutToEnd(args: string[]): Promise<Rollout> {
  const d = JSON.parse(await ferry([...args, "--json"])) as { rollout?: { id: string } };
  if (!d.rollout) throw new Error(`ferry ${args.join(" ")} started no rollout`);
  const id = d.rollout.id;
  return waitFor(`rollout ${id} to finish`, async () => {
    const r = await rollout(id);
    return ["succeeded", "rolled_back", "failed", "halted"].includes(r.state) ? r : undefined;
  }, { timeoutMs: WAIT_MS, intervalMs: 100 });
}
const step = (r: Rollout, phase: string, kind: string, nth = 0): Step | undefined => r.steps.filter((s) => s.phase === phase && s.kind === kind)[nth];

try {
  db = await createDatabase(DATABASE);
  registry = await startRegistry();
  for (const v of ["1", "2", "bad"]) await buildTestImage({ registry: registry.host, repository: `${RUN}/web`, tag: v, version: v, port: 1, socketPath, keepLocal: true });

  // HAProxy in front of the blue-green/canary target, configured by the agent's own command.
  const [listen, blue, green] = [await freePort(), await freePort(), await freePort()];
  const adminSocket = join(dir, "haproxy.sock");
  const maintenanceMap = join(dir, "maintenance.map");
  const cfg = await run(AGENT_BIN, ["router", "haproxy-config", "--service", "web", "--listen", `127.0.0.1:${listen}`, "--blue", String(blue), "--green", String(green), "--socket", adminSocket, "--maintenance-map", maintenanceMap]);
  if (cfg.code !== 0) throw new Error(`haproxy-config: ${cfg.stderr}`);
  writeFileSync(join(dir, "haproxy.cfg"), cfg.stdout);
  writeFileSync(maintenanceMap, "");
  haproxy = spawn(HAPROXY, ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: "ignore" });
  await waitFor("haproxy's admin socket", () => existsSync(adminSocket));

  cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--log-level", "warn"] });
  await ferry(["env", "create", "dev"]);
  await ferry(["component", "create", "web", "--repository", `${registry.host}/${RUN}/web`]);
  const enrolled = await agent.enrol(await cp.createJoinString("dev"));
  if (enrolled.code !== 0) throw new Error(`enrol: ${enrolled.stderr}`);
  agent.start(["--log-level", "warn", "--docker-socket", socketPath, "--driver", "docker.router=haproxy", "--driver", `docker.routerSocket=${adminSocket}`, "--driver", `docker.routerMaintenanceMap=${maintenanceMap}`]);
  const online = await waitFor("the agent online with a routed docker driver", async () => {
    const r = await cp!.api<{ agents: { id: string; status: string; facts: { driverFacts?: { kind: string; capabilities: string[] }[] } }[] }>("GET", "/api/v1/agents");
    return r.body.agents.find((a) => a.status === "online" && a.facts.driverFacts?.some((f) => f.kind === "docker" && f.capabilities.includes("router")));
  }, { timeoutMs: 60_000 });

  // Targets: "bg" routed (blue-green, canary), "replace" not routed (today's all-at-once), fleet-NN for rolling.
  const target = async (name: string, config: Record<string, unknown>) => {
    const t = await cp!.api("POST", "/api/v1/environments/dev/targets", { name, kind: "docker", agentId: online.id, config: { component: "web", command: COMMAND, ...config } });
    if (t.status !== 201) throw new Error(`target ${name}: ${t.status} ${JSON.stringify(t.body)}`);
  };
  await target("bg", { container: `${RUN}-bg`, healthCheck: health(blue), route: { service: "web", listen: `127.0.0.1:${listen}`, slots: { blue, green }, drainSeconds: 2 } });
  const replacePort = await freePort();
  await target("replace", { container: `${RUN}-replace`, env: { PORT: String(replacePort) }, healthCheck: health(replacePort) });
  const fleet: string[] = [];
  for (let i = 0; i < TARGETS; i++) {
    const port = await freePort();
    const name = `fleet-${String(i).padStart(2, "0")}`;
    await target(name, { container: `${RUN}-${name}`, env: { PORT: String(port) }, healthCheck: health(port) });
    fleet.push(name);
  }
  for (const v of ["1", "2", "bad"]) {
    const r = await cp.api("POST", "/api/v1/releases", { name: "shop", version: v, components: { web: `:${v}` } });
    if (r.status !== 201) throw new Error(`release ${v}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  await ferry(["deploy", "shop@1", "--to", "dev", "--wait", "--timeout", "180", "--json"]);
  process.stderr.write(`set up: ${2 + TARGETS} targets on shop@1\n`);

  // ── replace mode: all-at-once on a target without a router (stop, then start on the same port) ──
  {
    const load = startLoad(replacePort);
    await sleep(1000);
    await ferry(["deploy", "shop@2", "--to", "dev", "--target", "replace", "--wait", "--timeout", "120", "--json"]);
    await sleep(1000);
    const deploy = await load.stop();
    const load2 = startLoad(replacePort);
    await sleep(1000);
    await ferry(["rollback", "--env", "dev", "--target", "replace", "--wait", "--timeout", "120", "--json"]);
    await sleep(1000);
    results["replace"] = { deploy, rollback: await load2.stop() };
  }

  // ── blue-green through the engine and HAProxy, then `ferry rollback` ──
  {
    const load = startLoad(listen);
    await sleep(1000);
    const r = await rolloutToEnd(["deploy", "shop@2", "--to", "dev", "--target", "bg", "--strategy", "blue-green"]);
    await sleep(1000);
    const deploy = await load.stop();
    if (r.state !== "succeeded") throw new Error(`blue-green rollout ${r.state}: ${JSON.stringify(r.reason)}`);
    // Step 0 starts the new slot and ends when its health check passed; step 1 switches and retires.
    const healthy = ms(step(r, "forward", "wave", 0)?.finishedAt);
    const switchStart = ms(step(r, "forward", "wave", 1)?.startedAt);
    const firstV2 = deploy.versions["2"]?.first ?? NaN;
    const load2 = startLoad(listen);
    await sleep(1000);
    const order = Date.now();
    await ferry(["rollback", "--env", "dev", "--target", "bg", "--wait", "--timeout", "120", "--json"]);
    const rollbackTaskMs = Date.now() - order;
    await sleep(1000);
    const rollback = await load2.stop();
    // The last v2 answer after the order: from then on only the previous digest answered.
    const previousServingAfterOrderMs = Math.max(0, (rollback.versions["2"]?.last ?? order) - order);
    results["blueGreen"] = {
      deploy,
      rollback,
      rolloutMs: ms(r.finishedAt) - ms(r.createdAt),
      healthyToFirstV2Ms: firstV2 - healthy,
      switchStartToFirstV2Ms: firstV2 - switchStart,
      healthyToSwitchStartMs: switchStart - healthy,
      rollbackTaskMs,
      previousServingAfterOrderMs,
    };
  }

  // ── canary of a broken version: the analysis fails, the rollback puts weight 0 first ──
  {
    const load = startLoad(listen);
    await sleep(1000);
    const strategy = JSON.stringify({ kind: "canary", steps: [{ weight: 25, bakeSeconds: 8 }], analysis: { minRequests: 20, maxInconclusive: 0 }, drainSeconds: 2 });
    const r = await rolloutToEnd(["deploy", "shop@bad", "--to", "dev", "--target", "bg", "--strategy", strategy]);
    await sleep(1000);
    const traffic = await load.stop();
    const exposed = step(r, "forward", "weights");
    const analysis = step(r, "forward", "analysis");
    const zero = step(r, "rollback", "weights");
    results["canary"] = {
      state: r.state,
      reason: r.reason,
      steps: r.steps.map((s) => ({ phase: s.phase, kind: s.kind, state: s.state, startedAt: s.startedAt, finishedAt: s.finishedAt })),
      analysisToWeightZeroMs: ms(zero?.finishedAt) - ms(analysis?.finishedAt),
      exposedToWeightZeroMs: ms(zero?.finishedAt) - ms(exposed?.finishedAt),
      load: traffic,
    };
  }

  // ── rolling over the fleet, batches of 25 %, a soak between batches, images present ──
  {
    const t0 = Date.now();
    const strategy = JSON.stringify({ kind: "rolling", batch: "25%", soakSeconds: SOAK_S });
    const r = await rolloutToEnd(["deploy", "shop@2", "--to", "dev", ...fleet.flatMap((t) => ["--target", t]), "--strategy", strategy]);
    const observedMs = Date.now() - t0;
    if (r.state !== "succeeded") throw new Error(`rolling rollout ${r.state}: ${JSON.stringify(r.reason)}`);
    // The plain script: as many containers, each stopped, removed and started again with the docker CLI, one after
    // another, no health check and no soak.
    const v2 = `${registry.host}/${RUN}/web:2`;
    const ports = await Promise.all(fleet.map(() => freePort()));
    const names = fleet.map((_, i) => `${RUN}-script-${i}`);
    for (const [i, name] of names.entries()) await runDocker(socketPath, ["run", "-d", "--network", "host", "--name", name, "-e", `PORT=${ports[i]}`, `${registry.host}/${RUN}/web:1`, ...COMMAND]);
    const t1 = Date.now();
    for (const [i, name] of names.entries()) {
      await runDocker(socketPath, ["stop", "-t", "10", name]);
      await runDocker(socketPath, ["rm", name]);
      await runDocker(socketPath, ["run", "-d", "--network", "host", "--name", name, "-e", `PORT=${ports[i]}`, v2, ...COMMAND]);
    }
    const scriptMs = Date.now() - t1;
    results["rolling"] = { steps: r.steps.length, waves: r.steps.filter((s) => s.kind === "wave").length, rolloutMs: ms(r.finishedAt) - ms(r.createdAt), observedMs, dockerCliScriptMs: scriptMs };
  }
} finally {
  for (const child of loads) child.kill("SIGKILL");
  await agent.dispose().catch(() => undefined);
  await cp?.stop().catch(() => undefined);
  if (haproxy && haproxy.exitCode === null) {
    const exited = new Promise((r) => haproxy!.once("exit", r));
    haproxy.kill("SIGTERM");
    await exited;
  }
  const names = (await runDocker(socketPath, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith(RUN));
  if (names.length) await runDocker(socketPath, ["rm", "-f", ...names]).catch(() => "");
  if (registry) {
    const images = (await runDocker(socketPath, ["images", "--format", "{{.Repository}}:{{.Tag}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith(`${registry!.host}/${RUN}/`));
    if (images.length) await runDocker(socketPath, ["rmi", "-f", ...images]).catch(() => "");
    await registry.stop();
  }
  await db?.drop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}

type BlueGreen = { deploy: LoadReport; rollback: LoadReport; rolloutMs: number; healthyToFirstV2Ms: number; switchStartToFirstV2Ms: number; healthyToSwitchStartMs: number; rollbackTaskMs: number; previousServingAfterOrderMs: number };
const r = results as { replace: { deploy: LoadReport; rollback: LoadReport }; blueGreen: BlueGreen; canary: { state: string; analysisToWeightZeroMs: number; exposedToWeightZeroMs: number; load: LoadReport }; rolling: { rolloutMs: number; observedMs: number; dockerCliScriptMs: number } };
const verdict = (met: boolean) => (met ? "PASS" : "MISS");
const line = (name: string, v: string, target: string, result: string) => process.stdout.write(`${name.padEnd(56)} ${v.padEnd(44)} ${target.padEnd(12)} ${result}\n`);
const load = (l: LoadReport) => `${l.failed} / ${l.longestGapMs} ms (${l.achievedRate}/s)`;
line("replace deploy: failed requests / longest gap", load(r.replace.deploy), "(baseline)", "");
line("replace rollback: failed requests / longest gap", load(r.replace.rollback), "(baseline)", "");
line("blue-green deploy: failed requests / longest gap", load(r.blueGreen.deploy), "0 failed", verdict(r.blueGreen.deploy.failed === 0));
line("blue-green rollback: failed requests / longest gap", load(r.blueGreen.rollback), "0 failed", verdict(r.blueGreen.rollback.failed === 0));
line("new slot healthy (step 0 finished) → first v2 answer", `${r.blueGreen.healthyToFirstV2Ms} ms (switch start → v2 ${r.blueGreen.switchStartToFirstV2Ms} ms)`, "≤ 1000 ms", verdict(r.blueGreen.healthyToFirstV2Ms <= 1000));
line("`ferry rollback` issued → last v2 answer", `${r.blueGreen.previousServingAfterOrderMs} ms (CLI --wait ${r.blueGreen.rollbackTaskMs} ms)`, "≤ 5000 ms", verdict(r.blueGreen.previousServingAfterOrderMs <= 5000));
line("canary broken: analysis finished → weight 0 step done", `${r.canary.analysisToWeightZeroMs} ms (${r.canary.state}; ${r.canary.load.failed} failed)`, "≤ 30000 ms", verdict(r.canary.state === "rolled_back" && r.canary.analysisToWeightZeroMs <= 30_000));
line(`rolling over ${TARGETS} targets, 25 % batches, ${SOAK_S} s soak`, `${r.rolling.rolloutMs} ms (CLI→done ${r.rolling.observedMs}; docker CLI ${r.rolling.dockerCliScriptMs})`, "< 90000 ms", verdict(r.rolling.rolloutMs < 90_000));
mkdirSync(join(ROOT, "bench-results"), { recursive: true });
const file = join(ROOT, "bench-results", `rollout-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`wrote ${file}\n`);
