// `npm run bench:compose` — the compose driver deploying a three-service project (web, worker, sidecar) next to
// `docker-compose pull && docker-compose up -d` by hand with the same digests, side by side in one run
// (docs/performance.md, "Compose benchmark").
//
// Real Docker Engine (scripts/test-env.sh), Debian's docker-compose 1.29, a real registry on loopback. Each round
// updates every service of both projects from v1 to v2 (or back); images are removed from the engine before each
// measured deploy, so both pull. Ferry's time is the driver's phases as the agent runs them (runPhases): pull and
// verify every digest, write the lock, up the changed services, crash-aware health with a settle window
// (--settle, default 1 s), sticker. The hand-run is timed when `up -d` returns and again after the same check done
// with the CLI (the settle window, then docker inspect: running, no restart), the baseline the target is judged on.
// While each update runs, bench/rollout/load-client.mjs (node:http only, no Ferry code) sends GET /version to the web service at --rate requests/s (200) and counts failed requests.
//
// A third project, deployed by the same driver in the same rounds, has web routed (config.routes) through a real
// HAProxy on loopback: its load goes to the router's listen port, so its failed requests are those of a routed update
// (--drain, default 2 s, is how long the old slot drains). Without haproxy installed that side is left out.
//
//   npm run bench:compose [-- --rounds 4] [--rate 200] [--settle 1] [--drain 2]
import { spawn, spawnSync, type ChildProcess, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { composeLock, type ImagePin } from "@ferry/contract";
import Docker from "dockerode";
import { pino } from "pino";

import { runPhases } from "../../agent/src/core/phase-runner.js";
import type { PhaseContext, ProgressSink } from "../../agent/src/drivers/driver.js";
import { ComposeDriver, composeConfig } from "../../agent/src/drivers/compose/compose-driver.js";
import { haproxyConfig } from "../../agent/src/routing/haproxy/haproxy-config.js";
import { HaproxyRouter } from "../../agent/src/routing/haproxy/haproxy-router.js";
import { buildTestImage, dockerEngine, type TestImage } from "../../test/helpers/docker.js";
import { freePort } from "../../test/helpers/net.js";
import { startRegistry } from "../../test/helpers/registry.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number ≥ 0`);
  return v;
};
const ROUNDS = Math.min(Math.max(1, arg("rounds", 4)), 20);
const RATE = Math.min(arg("rate", 200), 1000);
const SETTLE = Math.min(arg("settle", 1), 60);
const DRAIN = Math.min(arg("drain", 2), 60);
const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));
const run = promisify(execFile);

interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  longestGapMs: number;
}

function startLoad(port: number): { stop: () => Promise<LoadReport> } {
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, "bench/rollout/load-client.mjs"), "--port", String(port), "--rate", String(RATE), "--max-seconds", "120"], { stdio: ["ignore", "pipe", "inherit"] });
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
const silent: ProgressSink = { step() {}, log() {} };

const socketPath = (await dockerEngine()).socketPath;
const docker = new Docker({ socketPath });
const env = { ...process.env, DOCKER_HOST: `unix://${socketPath}` };
const registry = await startRegistry();
const RUN = `ferrybench${randomBytes(3).toString("hex")}`;
const names = ["web", "worker", "sidecar"] as const;
type Name = (typeof names)[number];
type Side = "ferry" | "hand" | "routed";
const SIDES: Side[] = HAPROXY ? ["ferry", "hand", "routed"] : ["ferry", "hand"];
if (!HAPROXY) console.warn("haproxy is not installed: the routed side is left out");
const dirs: Record<Side, string> = { ferry: mkdtempSync(join(tmpdir(), "ferry-bench-compose-")), hand: mkdtempSync(join(tmpdir(), "ferry-bench-compose-")), routed: mkdtempSync(join(tmpdir(), "ferry-bench-compose-")) };
const projects: Record<Side, string> = { ferry: `${RUN}f`, hand: `${RUN}h`, routed: `${RUN}r` };
const ports: Record<Side, Record<Name, number>> = { ferry: { web: 0, worker: 0, sidecar: 0 }, hand: { web: 0, worker: 0, sidecar: 0 }, routed: { web: 0, worker: 0, sidecar: 0 } };
const images: Record<Side, Record<string, TestImage>> = { ferry: {}, hand: {}, routed: {} };
const route = { listen: 0, blue: 0, green: 0 };
let haproxy: ChildProcess | undefined;

try {
  for (const side of SIDES) {
    for (const n of names) {
      ports[side][n] = await freePort();
      for (const v of ["1", "2"]) images[side][`${n}${v}`] = await buildTestImage({ registry: registry.host, repository: `${RUN}/${side}/${n}`, tag: `v${v}`, version: v, port: ports[side][n], socketPath });
    }
    // The routed web listens on the port its slot is told ($PORT).
    const command = (n: Name) => (side === "routed" && n === "web" ? `    command: ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$$PORT -h /www & wait"]\n` : "");
    const svc = (n: Name) => `  ${n}:\n    image: example/${n}:latest\n    network_mode: host\n    restart: unless-stopped\n    stop_grace_period: 2s\n${command(n)}`;
    writeFileSync(join(dirs[side], "docker-compose.yml"), `version: "3.8"\nservices:\n${names.map(svc).join("")}`);
  }
  let router: HaproxyRouter | undefined;
  if (HAPROXY) {
    [route.listen, route.blue, route.green] = [await freePort(), await freePort(), await freePort()];
    const cfg = join(dirs.routed, "haproxy.cfg");
    const admin = { socket: join(dirs.routed, "admin.sock"), maintenanceMap: join(dirs.routed, "maintenance.map") };
    writeFileSync(admin.maintenanceMap, "");
    writeFileSync(cfg, haproxyConfig(admin, [{ name: "web", listen: `127.0.0.1:${route.listen}`, slots: { blue: { address: "127.0.0.1", port: route.blue }, green: { address: "127.0.0.1", port: route.green } } }]));
    const check = spawnSync(HAPROXY, ["-c", "-q", "-f", cfg], { encoding: "utf8" });
    if (check.status !== 0) throw new Error(`haproxy refuses the generated config: ${check.stderr}`);
    haproxy = spawn(HAPROXY, ["-db", "-f", cfg], { stdio: "ignore" });
    router = new HaproxyRouter(admin);
    for (let i = 0; ; i++) {
      if (await router.info().then(() => true, () => false)) break;
      if (i > 100) throw new Error("haproxy's runtime socket did not answer");
      await sleep(50);
    }
  }
  const pins = (side: Side, v: string): ImagePin[] =>
    names.map((n) => {
      const i = images[side][`${n}${v}`]!;
      return { component: n, repository: i.repository, digest: i.digest, ref: i.pinned };
    });
  const driver = new ComposeDriver({ socketPath, cli: "v1", settleSeconds: SETTLE, stopTimeoutSeconds: 2, ...(router ? { router } : {}) });
  const configs = {
    ferry: composeConfig({ project: projects.ferry, directory: dirs.ferry }),
    routed: composeConfig({ project: projects.routed, directory: dirs.routed, routes: [{ composeService: "web", service: "web", listen: `127.0.0.1:${route.listen}`, slots: { blue: route.blue, green: route.green }, drainSeconds: DRAIN }] }),
  };
  const ferryDeploy = async (v: string, side: "ferry" | "routed" = "ferry") => {
    const config = configs[side];
    const ctx: PhaseContext<typeof config> = {
      taskId: `task-${randomBytes(4).toString("hex")}`,
      deploymentId: `dep-${randomBytes(4).toString("hex")}`,
      action: "deploy",
      release: { id: `rel-${v}`, name: "bench", version: v },
      target: { id: "t", name: "bench", kind: "compose", config: { ...config } },
      config,
      images: pins(side, v),
      credentials: () => undefined,
      signal: new AbortController().signal,
      progress: silent,
    };
    await runPhases(driver, ctx, { logger: pino({ level: "silent" }) });
  };
  // By hand: the same digests in an override file (what a careful operator would write), then pull and up -d.
  // `upMs` is when `up -d` returned; the check after it is the same work Ferry's health phase does, done the way an
  // operator would with the CLI: wait the settle window, then confirm every container of the project is running and
  // has not restarted (docker inspect). Both figures come from the one deploy.
  const handDeploy = async (v: string): Promise<{ upMs: number }> => {
    const t0 = performance.now();
    writeFileSync(join(dirs.hand, "pinned.json"), composeLock({}, pins("hand", v)).text);
    const base = ["-p", projects.hand, "-f", join(dirs.hand, "docker-compose.yml"), "-f", join(dirs.hand, "pinned.json")];
    await run("docker-compose", [...base, "pull", "-q"], { env, cwd: dirs.hand });
    await run("docker-compose", [...base, "up", "-d"], { env, cwd: dirs.hand });
    const upMs = performance.now() - t0;
    if (SETTLE > 0) {
      const ids = (await run("docker-compose", [...base, "ps", "-q"], { env, cwd: dirs.hand })).stdout.split("\n").filter(Boolean);
      const inspect = async () => (await run("docker", ["-H", `unix://${socketPath}`, "inspect", "--format", "{{.State.Running}} {{.RestartCount}}", ...ids], { env })).stdout.trim().split("\n");
      const before = await inspect();
      await sleep(SETTLE * 1000);
      const after = await inspect();
      if (after.some((l, i) => !l.startsWith("true") || l !== before[i])) throw new Error(`by hand: a service did not stay up through the settle window (${after.join(", ")})`);
    }
    return { upMs };
  };
  const dropImages = async (side: Side, v: string) => {
    for (const n of names) await docker.getImage(images[side][`${n}${v}`]!.pinned).remove({ force: true }).catch(() => undefined);
  };
  // First deploy of v1 on both, unmeasured.
  await ferryDeploy("1");
  await handDeploy("1");
  if (router) await ferryDeploy("1", "routed");
  await sleep(1000);

  const rows: Array<{ round: number; to: string; ferryMs: number; handMs: number; handUpMs: number; ferryLoad: LoadReport; handLoad: LoadReport; routed?: { ms: number; load: LoadReport } }> = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const to = round % 2 === 1 ? "2" : "1";
    for (const side of SIDES) await dropImages(side, to);
    const measure = async (side: Side) => {
      const load = startLoad(side === "routed" ? route.listen : ports[side].web);
      await sleep(500);
      const t0 = performance.now();
      const hand = side === "hand" ? await handDeploy(to) : (await ferryDeploy(to, side), undefined);
      const ms = performance.now() - t0;
      await sleep(500);
      return { ms, upMs: hand?.upMs ?? ms, load: await load.stop() };
    };
    // Alternate who goes first, so neither always meets a warmer engine.
    const first = round % 2 === 1 ? "ferry" : "hand";
    const a = await measure(first);
    const b = await measure(first === "ferry" ? "hand" : "ferry");
    const f = first === "ferry" ? a : b;
    const h = first === "ferry" ? b : a;
    // The routed side last: its drain makes it the longest, and it is compared by failed requests, not time.
    const r = router ? await measure("routed") : undefined;
    rows.push({ round, to: `v${to}`, ferryMs: f.ms, handMs: h.ms, handUpMs: h.upMs, ferryLoad: f.load, handLoad: h.load, ...(r ? { routed: r } : {}) });
    console.log(
      `round ${round} → v${to}: ferry ${f.ms.toFixed(0)} ms (web failed ${f.load.failed}/${f.load.sent}), by hand ${h.upMs.toFixed(0)} ms to up -d, ${h.ms.toFixed(0)} ms checked (web failed ${h.load.failed}/${h.load.sent})` +
        (r ? `, ferry routed ${r.ms.toFixed(0)} ms (web failed ${r.load.failed}/${r.load.sent})` : ""),
    );
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const fm = median(rows.map((r) => r.ferryMs));
  const hm = median(rows.map((r) => r.handMs));
  const hu = median(rows.map((r) => r.handUpMs));
  console.log(
    JSON.stringify({
      rounds: ROUNDS,
      rate: RATE,
      settleSeconds: SETTLE,
      ferryMedianMs: Math.round(fm),
      handCheckedMedianMs: Math.round(hm),
      handUpMedianMs: Math.round(hu),
      ratio: Number((fm / hm).toFixed(2)),
      ratioToBareUp: Number((fm / hu).toFixed(2)),
      ferryWebFailed: rows.map((r) => r.ferryLoad.failed),
      handWebFailed: rows.map((r) => r.handLoad.failed),
      ferryLongestGapMs: rows.map((r) => r.ferryLoad.longestGapMs),
      handLongestGapMs: rows.map((r) => r.handLoad.longestGapMs),
      ...(router
        ? {
            drainSeconds: DRAIN,
            routedMedianMs: Math.round(median(rows.map((r) => r.routed!.ms))),
            routedWebFailed: rows.map((r) => r.routed!.load.failed),
            routedWebSent: rows.map((r) => r.routed!.load.sent),
            routedLongestGapMs: rows.map((r) => r.routed!.load.longestGapMs),
          }
        : {}),
    }),
  );
} finally {
  for (const side of ["ferry", "hand", "routed"] as const) {
    // down removes the routed side's one-off slot containers too.
    await run("docker-compose", ["-p", projects[side], "-f", join(dirs[side], "docker-compose.yml"), "down", "-t", "2"], { env, cwd: dirs[side] }).catch(() => undefined);
    const left = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${projects[side]}`] } }).catch(() => []);
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    rmSync(dirs[side], { recursive: true, force: true });
  }
  if (haproxy && haproxy.exitCode === null) {
    const exited = new Promise((r) => haproxy!.once("exit", r));
    haproxy.kill("SIGTERM");
    await exited;
  }
  for (const img of await docker.listImages()) {
    if ((img.RepoDigests ?? []).some((d) => d.startsWith(`${registry.host}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
  }
  await registry.stop();
}
