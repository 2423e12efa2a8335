// `npm run bench:rollout` — zero-downtime figures for the Docker driver through the host router, side by side in
// one run with today's replace mode and with a plain docker CLI script (docs/performance.md, "Rollout benchmark").
//
// Real Docker Engine (scripts/test-env.sh), real registry and real HAProxy on loopback. Traffic comes from
// load-client.mjs, a separate process that shares no code with Ferry (node:http only), at --rate requests/s (250).
// The driver's phases run as the agent runs them (runPhases); the rolling part runs the planner's batches. What it
// does not cover yet: the control plane's rollout engine (docs/rollouts.md, "Status").
//
//   npm run bench:rollout [-- --rate 250] [--targets 20] [--soak 10]
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import Docker from "dockerode";
import { pino } from "pino";

import { runPhases } from "../../agent/src/core/phase-runner.js";
import type { PhaseContext, ProgressSink } from "../../agent/src/drivers/driver.js";
import { DockerDriver, dockerConfig } from "../../agent/src/drivers/docker/docker-driver.js";
import { haproxyConfig } from "../../agent/src/routing/haproxy/haproxy-config.js";
import { HaproxyRouter } from "../../agent/src/routing/haproxy/haproxy-router.js";
import { analyse, type CounterRead } from "../../control-plane/src/domain/rollout/analysis.js";
import { rollingBatches } from "../../control-plane/src/domain/rollout/planner.js";
import { parseAnalysis } from "../../control-plane/src/domain/rollout/strategy.js";
import { buildTestImage, dockerEngine, runDocker, type TestImage } from "../../test/helpers/docker.js";
import { freePort } from "../../test/helpers/net.js";
import { startRegistry } from "../../test/helpers/registry.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
};
const RATE = arg("rate", 250);
const TARGETS = Math.min(arg("targets", 20), 50);
const SOAK_S = arg("soak", 10);
const RUN = `ferry-bench-ro-${randomBytes(3).toString("hex")}`;
const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));
if (!HAPROXY) throw new Error("haproxy is not installed (scripts/test-env.sh installs it)");

interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  longestGapMs: number;
  achievedRate: number;
  errors: Record<string, number>;
  versions: Record<string, { first: number; last: number }>;
}

function startLoad(port: number): { stop: () => Promise<LoadReport> } {
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, "bench/rollout/load-client.mjs"), "--port", String(port), "--rate", String(RATE), "--max-seconds", "180"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString("utf8")));
  const done = new Promise<LoadReport>((resolve) => child.once("exit", () => resolve(JSON.parse(out.trim()) as LoadReport)));
  return {
    stop: () => {
      child.kill("SIGTERM");
      return done;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Steps implements ProgressSink {
  readonly at = new Map<string, number>();
  step(step: string): void {
    this.at.set(step, Date.now());
  }
  log(): void {}
}

const socketPath = (await dockerEngine()).socketPath;
const docker = new Docker({ socketPath });
const registry = await startRegistry();
const dir = mkdtempSync(join(tmpdir(), "ferry-bench-rollout-"));
let haproxy: ChildProcess | undefined;
const results: Record<string, unknown> = { at: new Date().toISOString(), rate: RATE };

function ctxFor(config: Record<string, unknown>, image: TestImage, action: "deploy" | "rollback", progress: ProgressSink, id = "web"): PhaseContext<ReturnType<typeof dockerConfig>> {
  return {
    taskId: `task-${randomBytes(4).toString("hex")}`,
    deploymentId: `dep-${randomBytes(4).toString("hex")}`,
    action,
    release: { id: "rel", name: "bench", version: "x" },
    target: { id, name: id, kind: "docker", config },
    config: dockerConfig(config),
    images: [{ component: "web", repository: image.repository, digest: image.digest, ref: image.pinned }],
    credentials: () => undefined,
    signal: new AbortController().signal,
    progress,
  };
}

const COMMAND = ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$PORT -h /www & wait"];
const health = (port: number) => ({ type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 20, intervalSeconds: 1, settleSeconds: 1 });

try {
  const build = (v: string) => buildTestImage({ registry: registry.host, repository: `${RUN}/web`, tag: `v${v}`, version: v, port: 1, socketPath, keepLocal: true });
  const v1 = await build("1");
  const v2 = await build("2");
  const broken = await build("3");

  // ── replace mode (today's all-at-once on a Docker target) ──
  {
    const port = await freePort();
    const driver = new DockerDriver({ socketPath, stopTimeoutSeconds: 10, settleSeconds: 1 });
    const config = { container: `${RUN}-replace`, command: COMMAND, env: { PORT: String(port) }, healthCheck: health(port) };
    await runPhases(driver, ctxFor(config, v1, "deploy", new Steps()), { logger: pino({ level: "silent" }) });
    const load = startLoad(port);
    await sleep(1000);
    await runPhases(driver, ctxFor(config, v2, "deploy", new Steps()), { logger: pino({ level: "silent" }) });
    await sleep(1000);
    const deploy = await load.stop();
    const load2 = startLoad(port);
    await sleep(1000);
    await runPhases(driver, ctxFor(config, v1, "rollback", new Steps()), { logger: pino({ level: "silent" }) });
    await sleep(1000);
    const rollback = await load2.stop();
    results["replace"] = { deploy, rollback };
  }

  // ── blue-green through HAProxy ──
  {
    const [listen, blue, green] = [await freePort(), await freePort(), await freePort()];
    const socket = join(dir, "admin.sock");
    const maintenanceMap = join(dir, "maintenance.map");
    writeFileSync(maintenanceMap, "");
    const cfg = join(dir, "haproxy.cfg");
    writeFileSync(cfg, haproxyConfig({ socket, maintenanceMap }, [{ name: "web", listen: `127.0.0.1:${listen}`, slots: { blue: { address: "127.0.0.1", port: blue }, green: { address: "127.0.0.1", port: green } } }]));
    haproxy = spawn(HAPROXY, ["-db", "-f", cfg], { stdio: "ignore" });
    const router = new HaproxyRouter({ socket, maintenanceMap });
    for (let i = 0; ; i++) {
      try {
        await router.info();
        break;
      } catch (err) {
        if (i > 100) throw err;
        await sleep(50);
      }
    }
    const driver = new DockerDriver({ socketPath, stopTimeoutSeconds: 10, settleSeconds: 1, router });
    const config = { container: `${RUN}-bg`, command: COMMAND, healthCheck: health(1), route: { service: "web", listen: `127.0.0.1:${listen}`, slots: { blue, green }, drainSeconds: 30 } };
    await runPhases(driver, ctxFor(config, v1, "deploy", new Steps()), { logger: pino({ level: "silent" }) });
    const load = startLoad(listen);
    await sleep(1000);
    const steps = new Steps();
    const t0 = Date.now();
    await runPhases(driver, ctxFor(config, v2, "deploy", steps), { logger: pino({ level: "silent" }) });
    const deployMs = Date.now() - t0;
    await sleep(1000);
    const deploy = await load.stop();
    // The switch step begins the moment health has passed; the first v2 answer is when traffic reached it.
    const switchAfterHealthyMs = (deploy.versions["2"]?.first ?? NaN) - (steps.at.get("switch") ?? NaN);
    const load2 = startLoad(listen);
    await sleep(1000);
    const order = Date.now();
    await runPhases(driver, ctxFor(config, v1, "rollback", new Steps()), { logger: pino({ level: "silent" }) });
    const rollbackMs = Date.now() - order;
    await sleep(1000);
    const rollback = await load2.stop();
    // v1 answered before the order too (it is this run's first answer); what counts is v1 after v2's last answer.
    const previousServingMs = (rollback.versions["2"]?.last ?? order) - order;
    results["blueGreen"] = { deploy, rollback, deployMs, rollbackMs, switchAfterHealthyMs, previousServingAfterOrderMs: Math.max(0, previousServingMs) };

    // A canary of a broken version: it starts and stays up but never answers on its port. Weight 25 %, then the
    // analysis of the router's counters every second, as the engine will run it; weight 0 at the first failing one.
    const brokenConfig = { ...config, command: ["sh", "-c", "trap 'exit 0' TERM INT; sleep 3600 & wait"], healthCheck: { type: "none", settleSeconds: 1 } };
    const started = await runPhases(driver, ctxFor(brokenConfig, broken, "deploy", new Steps()), { logger: pino({ level: "silent" }), phases: ["prepare", "start", "health"] });
    const state = JSON.parse(JSON.stringify(started.state)) as never;
    const routeCtx = () => ({ ...ctxFor(brokenConfig, broken, "deploy", new Steps()) });
    const read = async (): Promise<CounterRead> => {
      const m = (await driver.route(routeCtx(), { op: "measure" }, state)) as unknown as CounterRead & { new: CounterRead["new"]; stable: CounterRead["stable"] };
      return { epoch: m.epoch, new: m.new, stable: m.stable };
    };
    const load3 = startLoad(listen);
    await sleep(500);
    const before = await read();
    await driver.route(routeCtx(), { op: "weights", newWeight: 25 }, state);
    const exposed = Date.now();
    const analysisConfig = parseAnalysis({ minRequests: 20 }, "analysis");
    let verdict = "inconclusive";
    let analyses = 0;
    while (Date.now() - exposed < 60_000) {
      await sleep(1000);
      analyses++;
      verdict = analyse(analysisConfig, before, await read()).verdict;
      if (verdict === "fail") break;
    }
    await driver.route(routeCtx(), { op: "weights", newWeight: 0 }, state);
    const weightZeroMs = Date.now() - exposed;
    await runPhases(driver, ctxFor(brokenConfig, broken, "rollback", new Steps()), { logger: pino({ level: "silent" }), phases: ["restore"], state });
    await sleep(500);
    const canary = await load3.stop();
    results["canary"] = { verdict, analyses, weightZeroAfterExposedMs: weightZeroMs, load: canary };
  }

  // ── rolling over N targets, batches of 25 %, a soak between batches, images present ──
  {
    const driver = new DockerDriver({ socketPath, stopTimeoutSeconds: 10, settleSeconds: 1 });
    const ports = await Promise.all(Array.from({ length: TARGETS }, () => freePort()));
    const configs = ports.map((p, i) => ({ container: `${RUN}-roll-${i}`, command: COMMAND, env: { PORT: String(p) }, healthCheck: health(p) }));
    await Promise.all(configs.map((c, i) => runPhases(driver, ctxFor(c, v1, "deploy", new Steps(), `t${i}`), { logger: pino({ level: "silent" }) })));
    const t0 = Date.now();
    const batches = rollingBatches(configs.map((_, i) => i), { percent: 25 });
    for (const [n, batch] of batches.entries()) {
      await Promise.all(batch.map((i) => runPhases(driver, ctxFor(configs[i]!, v2, "deploy", new Steps(), `t${i}`), { logger: pino({ level: "silent" }) })));
      if (n < batches.length - 1) await sleep(SOAK_S * 1000);
    }
    const rollingMs = Date.now() - t0;
    // The plain script: stop and start each container with the docker CLI, one after another, no health check.
    const t1 = Date.now();
    for (const [i, c] of configs.entries()) {
      await runDocker(socketPath, ["rm", "-f", c.container]);
      await runDocker(socketPath, ["run", "-d", "--network", "host", "--name", c.container, "-e", `PORT=${ports[i]}`, v1.pinned, ...COMMAND]);
    }
    const scriptMs = Date.now() - t1;
    results["rolling"] = { targets: TARGETS, batches: batches.length, soakSeconds: SOAK_S, ferryMs: rollingMs, dockerCliScriptMs: scriptMs };
  }
} finally {
  for (const c of await docker.listContainers({ all: true, filters: { name: [RUN] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const img of await docker.listImages()) {
    if ((img.RepoDigests ?? []).some((d) => d.startsWith(`${registry.host}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
  }
  if (haproxy && haproxy.exitCode === null) haproxy.kill("SIGTERM");
  await registry.stop();
  rmSync(dir, { recursive: true, force: true });
}

const c = results["canary"] as { verdict: string; weightZeroAfterExposedMs: number; load: LoadReport };
const r = results as { replace: { deploy: LoadReport; rollback: LoadReport }; blueGreen: { deploy: LoadReport; rollback: LoadReport; switchAfterHealthyMs: number; previousServingAfterOrderMs: number; rollbackMs: number }; rolling: { ferryMs: number; dockerCliScriptMs: number; targets: number } };
const line = (name: string, v: string, target: string, met: boolean) => process.stdout.write(`${name.padEnd(58)} ${v.padEnd(28)} ${target.padEnd(14)} ${met ? "met" : "MISSED"}\n`);
line("replace deploy: failed requests / longest gap", `${r.replace.deploy.failed} / ${r.replace.deploy.longestGapMs} ms (${r.replace.deploy.achievedRate}/s)`, "(comparison)", true);
line("replace rollback: failed requests / longest gap", `${r.replace.rollback.failed} / ${r.replace.rollback.longestGapMs} ms`, "(comparison)", true);
line("blue-green deploy: failed requests / longest gap", `${r.blueGreen.deploy.failed} / ${r.blueGreen.deploy.longestGapMs} ms (${r.blueGreen.deploy.achievedRate}/s)`, "0 failed", r.blueGreen.deploy.failed === 0);
line("blue-green rollback: failed requests / longest gap", `${r.blueGreen.rollback.failed} / ${r.blueGreen.rollback.longestGapMs} ms`, "0 failed", r.blueGreen.rollback.failed === 0);
line("traffic on the new slot after it is healthy", `${r.blueGreen.switchAfterHealthyMs} ms`, "≤ 1000 ms", r.blueGreen.switchAfterHealthyMs <= 1000);
line("rollback: previous digest serving after the order", `${r.blueGreen.previousServingAfterOrderMs} ms (task ${r.blueGreen.rollbackMs} ms)`, "≤ 5000 ms", r.blueGreen.previousServingAfterOrderMs <= 5000);
line("canary of a broken version: weight 0 after exposure", `${c.weightZeroAfterExposedMs} ms (${c.verdict}; ${c.load.failed} failed requests)`, "≤ 30000 ms", c.verdict === "fail" && c.weightZeroAfterExposedMs <= 30_000);
line(`rolling over ${r.rolling.targets} targets, 25 % batches, ${SOAK_S} s soak`, `${r.rolling.ferryMs} ms (docker CLI script ${r.rolling.dockerCliScriptMs} ms)`, "< 90000 ms", r.rolling.ferryMs < 90_000);
mkdirSync(join(ROOT, "bench-results"), { recursive: true });
const file = join(ROOT, "bench-results", `rollout-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`wrote ${file}\n`);

