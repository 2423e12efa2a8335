// `npm run bench:compose` — the compose driver deploying a three-service project (web, worker, sidecar) next to
// `docker-compose pull && docker-compose up -d` by hand with the same digests, side by side in one run, the target
// (≤ 1.15×) judged both ways, each against a hand-run doing the same work (docs/performance.md, "Compose benchmark"):
//
//   (a) Ferry with the health gate a user who relies on compose healthchecks configures: no settle window (settle 0:
//       running, not restarted, and the service's compose healthcheck healthy when it has one), against the bare
//       hand-run (`pull && up -d`, timed when `up -d` returns) — and beside it the hand-run that waits for the same
//       thing (every container running, not restarted, healthy), the baseline doing the same work;
//   (b) Ferry with the settle window (--settle, default 1 s) against the hand-run that waits the same window after
//       `up -d`, waits for healthy, and checks with docker inspect that nothing restarted.
//
// Real Docker Engine (scripts/test-env.sh), Debian's docker-compose 1.29, a real registry on loopback. Each service
// has a compose healthcheck (wget of /health every --healthcheck seconds, default 1; 0 leaves them out). Each round
// updates every service of every project from v1 to v2 (or back); images are removed from the engine before each
// measured deploy, so all pull. The order of the three timed deploys rotates from round to round. Ferry's time is the
// driver's phases as the agent runs them (runPhases), and each phase is timed from the progress the phases report
// (where Ferry's time goes). The hand-run's three figures come from one deploy: when `up -d` returns (bare), when
// every container is healthy (found with docker ps, polled with docker inspect every 250 ms, as a script would), and
// when, the settle window after `up -d` also past, a last docker inspect shows no restart (checked). While each
// update runs, bench/rollout/load-client.mjs (node:http only, no Ferry code) sends GET /version to the web service
// at --rate requests/s (200) and counts failed requests.
//
// A fourth project, deployed by the settle-window driver in the same rounds, has web routed (config.routes) through
// a real HAProxy on loopback: its load goes to the router's listen port, so its failed requests are those of a routed
// update (target 0; --drain, default 2 s, is how long the old slot drains). Without haproxy installed that side is
// left out.
//
//   npm run bench:compose [-- --rounds 4] [--rate 200] [--settle 1] [--healthcheck 1] [--drain 2]
import { spawn, spawnSync, type ChildProcess, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { composeLock, type ImagePin } from "@ferry/contract";
import { pino } from "pino";

import { runPhases } from "../../agent/src/core/phase-runner.js";
import type { PhaseContext, ProgressSink } from "../../agent/src/drivers/driver.js";
import { ComposeDriver, composeConfig } from "../../agent/src/drivers/compose/compose-driver.js";
import { EngineClient } from "../../agent/src/drivers/docker/engine/client.js";
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
/** The compose healthcheck's interval, in seconds (0: the services have none). At least 0.1 s when set. */
const HEALTHCHECK = Math.min(arg("healthcheck", 1), 30);
if (HEALTHCHECK > 0 && HEALTHCHECK < 0.1) throw new Error("--healthcheck is 0 (none) or at least 0.1 s");
/** How often the hand-run's script looks at the containers while it waits for healthy. */
const HAND_POLL_MS = 250;
const TARGET = 1.15;
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

/** Where one Ferry deploy's time went, in ms, from the phase steps and log lines the phases report. */
interface FerryPhases {
  /** prepare: until the last image is pulled and verified (the compose file is checked meanwhile). */
  pull: number;
  /** prepare after the pulls: the file check's wait, the project's containers, the previous lock and sticker. */
  prepareRest: number;
  /** start: `up -d --no-deps` of the changed services, until the first new container is seen. */
  up: number;
  /** start besides `up`: the lock written, the new containers listed and marked (or a routed slot started). */
  startRest: number;
  health: number;
  switch: number;
  retire: number;
  /** runPhases itself, before the first phase and after the last. */
  other: number;
  /** When the health phase ended (ms since the epoch), to hold against when the services were ready. */
  healthEndAt: number;
}

function phaseTimer(t0: number): { sink: ProgressSink; phases: (t1: number) => FerryPhases } {
  const steps: Array<[string, number]> = [];
  const lines: Array<[string, number]> = [];
  return {
    sink: { step: (s) => steps.push([s, performance.now()]), log: (l) => lines.push([l, performance.now()]) },
    phases: (t1) => {
      const at = (s: string) => steps.find(([n]) => n === s)?.[1];
      const end = (s: string) => {
        const i = steps.findIndex(([n]) => n === s);
        return i < 0 ? undefined : (steps[i + 1]?.[1] ?? t1);
      };
      const span = (s: string) => (at(s) !== undefined ? end(s)! - at(s)! : 0);
      const pulled = lines.filter(([l]) => /^prepare: pull: .* downloaded, /.test(l)).at(-1)?.[1] ?? at("prepare") ?? t0;
      const upFrom = lines.find(([l]) => l.startsWith("start: replacing "))?.[1];
      const upTo = lines.find(([l]) => /^start: [^ ]+: container /.test(l))?.[1];
      const up = upFrom !== undefined && upTo !== undefined ? upTo - upFrom : 0;
      const p: FerryPhases = {
        pull: pulled - (at("prepare") ?? t0),
        prepareRest: (end("prepare") ?? t0) - pulled,
        up,
        startRest: span("start") - up,
        health: span("health"),
        switch: span("switch"),
        retire: span("retire"),
        other: 0,
        healthEndAt: performance.timeOrigin + (end("health") ?? t1),
      };
      p.other = t1 - t0 - (span("prepare") + span("start") + p.health + p.switch + p.retire);
      return p;
    },
  };
}

const socketPath = (await dockerEngine()).socketPath;
const docker = new EngineClient({ socketPath });
const env = { ...process.env, DOCKER_HOST: `unix://${socketPath}` };
const registry = await startRegistry();
const RUN = `ferrybench${randomBytes(3).toString("hex")}`;
const names = ["web", "worker", "sidecar"] as const;
type Name = (typeof names)[number];
/** gate: Ferry, settle 0 (a); settle: Ferry, the settle window (b); hand: by hand; routed: Ferry, web routed. */
type Side = "gate" | "settle" | "hand" | "routed";
type Timed = Exclude<Side, "routed">;
const ALL: Side[] = ["gate", "settle", "hand", "routed"];
const SIDES: Side[] = HAPROXY ? ALL : ["gate", "settle", "hand"];
if (!HAPROXY) console.warn("haproxy is not installed: the routed side is left out");
const dirs = Object.fromEntries(ALL.map((s) => [s, mkdtempSync(join(tmpdir(), "ferry-bench-compose-"))])) as Record<Side, string>;
const projects: Record<Side, string> = { gate: `${RUN}g`, settle: `${RUN}s`, hand: `${RUN}h`, routed: `${RUN}r` };
const ports = Object.fromEntries(ALL.map((s) => [s, { web: 0, worker: 0, sidecar: 0 }])) as Record<Side, Record<Name, number>>;
const images = Object.fromEntries(ALL.map((s) => [s, {}])) as Record<Side, Record<string, TestImage>>;
const route = { listen: 0, blue: 0, green: 0 };
let haproxy: ChildProcess | undefined;

try {
  for (const side of SIDES) {
    for (const n of names) {
      ports[side][n] = await freePort();
      for (const v of ["1", "2"]) images[side][`${n}${v}`] = await buildTestImage({ registry: registry.host, repository: `${RUN}/${side}/${n}`, tag: `v${v}`, version: v, port: ports[side][n], socketPath });
    }
    // The routed web listens on the port its slot is told ($PORT), and its healthcheck asks there.
    const routedWeb = (n: Name) => side === "routed" && n === "web";
    const command = (n: Name) => (routedWeb(n) ? `    command: ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:$$PORT -h /www & wait"]\n` : "");
    const healthcheck = (n: Name) =>
      HEALTHCHECK > 0
        ? `    healthcheck:\n      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:${routedWeb(n) ? "$$PORT" : ports[side][n]}/health"]\n      interval: ${Math.round(HEALTHCHECK * 1000)}ms\n      timeout: 1s\n      retries: 3\n`
        : "";
    const svc = (n: Name) => `  ${n}:\n    image: example/${n}:latest\n    network_mode: host\n    restart: unless-stopped\n    stop_grace_period: 2s\n${command(n)}${healthcheck(n)}`;
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
  const drivers = {
    gate: new ComposeDriver({ socketPath, cli: "v1", settleSeconds: 0, stopTimeoutSeconds: 2 }),
    settle: new ComposeDriver({ socketPath, cli: "v1", settleSeconds: SETTLE, stopTimeoutSeconds: 2, ...(router ? { router } : {}) }),
  };
  const configs = {
    gate: composeConfig({ project: projects.gate, directory: dirs.gate }),
    settle: composeConfig({ project: projects.settle, directory: dirs.settle }),
    routed: composeConfig({ project: projects.routed, directory: dirs.routed, routes: [{ composeService: "web", service: "web", listen: `127.0.0.1:${route.listen}`, slots: { blue: route.blue, green: route.green }, drainSeconds: DRAIN }] }),
  };
  const ferryDeploy = async (v: string, side: "gate" | "settle" | "routed"): Promise<FerryPhases> => {
    const config = configs[side];
    const t0 = performance.now();
    const timer = phaseTimer(t0);
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
      progress: timer.sink,
    };
    await runPhases(side === "gate" ? drivers.gate : drivers.settle, ctx, { logger: pino({ level: "silent" }) });
    return timer.phases(performance.now());
  };

  // By hand: the same digests in an override file (what a careful operator would write), then pull and up -d, then
  // the check an operator's script would run, with the CLI: every container of the project running, not restarted,
  // and healthy where it has a healthcheck (docker inspect every 250 ms until so); the settle window after `up -d`;
  // docker inspect once more. Every figure comes from the one deploy.
  interface HandTimes {
    pullMs: number;
    upMs: number;
    healthyMs: number;
    checkedMs: number;
  }
  const handDeploy = async (v: string): Promise<HandTimes> => {
    const t0 = performance.now();
    writeFileSync(join(dirs.hand, "pinned.json"), composeLock({}, pins("hand", v)).text);
    const base = ["-p", projects.hand, "-f", join(dirs.hand, "docker-compose.yml"), "-f", join(dirs.hand, "pinned.json")];
    await run("docker-compose", [...base, "pull", "-q"], { env, cwd: dirs.hand });
    const pullMs = performance.now() - t0;
    await run("docker-compose", [...base, "up", "-d"], { env, cwd: dirs.hand });
    const tUp = performance.now();
    // The project's containers by Compose's label with the docker CLI (`docker-compose ps -q` says the same, but starts
    // Python: a few hundred ms the baseline should not pay).
    const ids = (await run("docker", ["-H", `unix://${socketPath}`, "ps", "-a", "-q", "--filter", `label=com.docker.compose.project=${projects.hand}`], { env })).stdout.split("\n").filter(Boolean);
    if (ids.length !== names.length) throw new Error(`by hand: ${ids.length} containers in the project after up -d, not ${names.length}`);
    const format = "{{.State.Running}} {{.RestartCount}} {{.State.StartedAt}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";
    const inspect = async () => (await run("docker", ["-H", `unix://${socketPath}`, "inspect", "--format", format, ...ids], { env })).stdout.trim().split("\n").map((l) => l.split(" "));
    const first = await inspect();
    const judge = (now: string[][]) => {
      const bad = now.findIndex(([running, restarts, startedAt, health], i) => running !== "true" || restarts !== first[i]![1] || startedAt !== first[i]![2] || health === "unhealthy");
      if (bad >= 0) throw new Error(`by hand: a service did not stay up (${now.map((l) => l.join(" ")).join(", ")})`);
      return now.every(([, , , health]) => health === "healthy" || health === "none");
    };
    for (let now = first; !judge(now); now = await inspect()) {
      if (performance.now() - tUp > 60_000) throw new Error(`by hand: not healthy within 60 s (${now.map((l) => l.join(" ")).join(", ")})`);
      await sleep(HAND_POLL_MS);
    }
    const healthyMs = performance.now() - t0;
    const left = tUp + SETTLE * 1000 - performance.now();
    if (left > 0) await sleep(left);
    if (SETTLE > 0) judge(await inspect());
    return { pullMs, upMs: tUp - t0, healthyMs, checkedMs: performance.now() - t0 };
  };
  const dropImages = async (side: Side, v: string) => {
    for (const n of names) await docker.getImage(images[side][`${n}${v}`]!.pinned).remove({ force: true }).catch(() => undefined);
  };
  // When a project's services were ready by the gate's rules, from the engine's own record (ms since the epoch): for
  // each service, its container started + the settle window, and its first passing healthcheck (Health.Log) when it
  // has one; the latest of these over the services. A deploy that reports healthy later than that lost the difference
  // to how often it looks. (The engine keeps the last 5 checks: with a very short --healthcheck interval the first pass
  // may be gone, and the figure is then an underestimate.)
  const readyAt = async (side: Side, settleMs: number): Promise<number> => {
    const listed = await docker.listContainers({ filters: { label: [`com.docker.compose.project=${projects[side]}`] } });
    let ready = 0;
    for (const c of listed) {
      const s = (await docker.getContainer(c.Id).inspect()).State;
      const started = Date.parse(s.StartedAt);
      const passed = (s.Health?.Log ?? []).filter((e) => e.ExitCode === 0 && Date.parse(e.Start) >= started).map((e) => Date.parse(e.End));
      ready = Math.max(ready, started + settleMs, ...(s.Health ? [passed.length > 0 ? Math.min(...passed) : Number.NaN] : []));
    }
    return ready;
  };
  // First deploy of v1 everywhere, unmeasured.
  await ferryDeploy("1", "gate");
  await ferryDeploy("1", "settle");
  await handDeploy("1");
  if (router) await ferryDeploy("1", "routed");
  await sleep(1000);

  interface Measured {
    ms: number;
    load: LoadReport;
    /** How long after the services were ready (readyAt) the deploy saw it. */
    lateMs?: number;
    phases?: FerryPhases;
    hand?: HandTimes;
  }
  const rows: Array<{ round: number; to: string; order: Timed[]; configMs: number } & Partial<Record<Side, Measured>>> = [];
  const TIMED: Timed[] = ["gate", "settle", "hand"];
  for (let round = 1; round <= ROUNDS; round++) {
    const to = round % 2 === 1 ? "2" : "1";
    for (const side of SIDES) await dropImages(side, to);
    const measure = async (side: Side): Promise<Measured> => {
      const load = startLoad(side === "routed" ? route.listen : ports[side].web);
      await sleep(500);
      const t0 = performance.now();
      let phases: FerryPhases | undefined;
      let hand: HandTimes | undefined;
      if (side === "hand") hand = await handDeploy(to);
      else phases = await ferryDeploy(to, side);
      const ms = performance.now() - t0;
      let lateMs: number | undefined;
      if (side !== "routed") {
        const seen = phases ? phases.healthEndAt : performance.timeOrigin + t0 + hand!.healthyMs;
        lateMs = Math.round(seen - (await readyAt(side, side === "settle" ? SETTLE * 1000 : 0)));
      }
      await sleep(500);
      return { ms, load: await load.stop(), ...(lateMs !== undefined ? { lateMs } : {}), ...(phases ? { phases } : {}), ...(hand ? { hand } : {}) };
    };
    // The order rotates, so no side always meets a warmer (or busier) engine.
    const order = TIMED.map((_, i) => TIMED[(i + round - 1) % TIMED.length]!);
    const row: (typeof rows)[number] = { round, to: `v${to}`, order, configMs: 0 };
    for (const side of order) row[side] = await measure(side);
    // What prepare's check of the compose file costs on its own (`docker-compose config`, a Python start-up for v1),
    // unmeasured otherwise: prepare runs it beside the pulls and waits for it after them ("prepareRest").
    const c0 = performance.now();
    await run("docker-compose", ["-p", projects.gate, "-f", join(dirs.gate, "docker-compose.yml"), "config"], { env, cwd: dirs.gate });
    row.configMs = performance.now() - c0;
    // The routed side last: its drain makes it the longest, and it is compared by failed requests, not time.
    if (router) row.routed = await measure("routed");
    rows.push(row);
    const { gate: g, settle: s, hand: h, routed: r } = row as Required<typeof row>;
    const web = (m: Measured) => `web failed ${m.load.failed}/${m.load.sent}`;
    console.log(
      `round ${round} → v${to} (${order.join(", ")}): ferry settle 0 ${g.ms.toFixed(0)} ms (${web(g)}), ferry settle ${SETTLE} s ${s.ms.toFixed(0)} ms (${web(s)}); ` +
        `by hand ${h.hand!.upMs.toFixed(0)} ms to up -d, ${h.hand!.healthyMs.toFixed(0)} healthy, ${h.hand!.checkedMs.toFixed(0)} checked (${web(h)})` +
        (r ? `; ferry routed ${r.ms.toFixed(0)} ms (${web(r)})` : ""),
    );
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((x, y) => x - y);
    return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const med = (f: (r: (typeof rows)[number]) => number) => Math.round(median(rows.map(f)));
  const gateMs = med((r) => r.gate!.ms);
  const settleMs = med((r) => r.settle!.ms);
  const hand = { pullMs: med((r) => r.hand!.hand!.pullMs), upMs: med((r) => r.hand!.hand!.upMs), healthyMs: med((r) => r.hand!.hand!.healthyMs), checkedMs: med((r) => r.hand!.hand!.checkedMs) };
  const phaseMedians = (side: "gate" | "settle" | "routed") => {
    if (!rows[0]![side]) return undefined;
    const keys = (Object.keys(rows[0]![side].phases!) as Array<keyof FerryPhases>).filter((k) => k !== "healthEndAt");
    return Object.fromEntries(keys.map((k) => [k, med((r) => r[side]!.phases![k])]));
  };
  const ratio = (a: number, b: number) => Number((a / b).toFixed(2));
  const verdict = (r: number) => (r <= TARGET ? "PASS" : "MISS");
  const failed = (side: Side) => rows.map((r) => r[side]?.load.failed ?? 0);
  const routedFailed = router ? failed("routed") : undefined;
  const a = ratio(gateMs, hand.upMs);
  const b = ratio(settleMs, hand.checkedMs);
  const summary = {
    rounds: ROUNDS,
    rate: RATE,
    settleSeconds: SETTLE,
    healthcheckSeconds: HEALTHCHECK,
    a: { ferrySettle0Ms: gateMs, handBareUpMs: hand.upMs, ratio: a, verdict: verdict(a), handHealthyMs: hand.healthyMs, ratioToHandHealthy: ratio(gateMs, hand.healthyMs) },
    b: { ferrySettleMs: settleMs, handCheckedMs: hand.checkedMs, ratio: b, verdict: verdict(b), ratioToBareUp: ratio(settleMs, hand.upMs) },
    web: {
      ...(routedFailed ? { routedFailed, routedSent: rows.map((r) => r.routed!.load.sent), routedVerdict: routedFailed.every((n) => n === 0) ? "PASS" : "MISS", routedLongestGapMs: rows.map((r) => r.routed!.load.longestGapMs), routedMedianMs: med((r) => r.routed!.ms), drainSeconds: DRAIN } : {}),
      handUpFailed: failed("hand"),
      handUpSent: rows.map((r) => r.hand!.load.sent),
      handLongestGapMs: rows.map((r) => r.hand!.load.longestGapMs),
      ferryInPlaceFailed: { settle0: failed("gate"), settle: failed("settle") },
    },
    phases: { settle0: phaseMedians("gate"), settle: phaseMedians("settle"), routed: phaseMedians("routed"), hand: { pullMs: hand.pullMs, upMs: hand.upMs - hand.pullMs, toHealthyMs: hand.healthyMs - hand.upMs, toCheckedMs: hand.checkedMs - hand.upMs } },
    // How long after the services were ready by the engine's record each deploy saw it (settle 0 and the hand-run:
    // healthy; settle: healthy and the window past), per round.
    composeConfigMs: med((r) => r.configMs),
    // Ferry settle 0 had it seen the services ready at once (its time less seenLateMs): what the health polling costs.
    settle0SeenAtOnceMs: med((r) => r.gate!.ms - Math.max(0, r.gate!.lateMs ?? 0)),
    seenLateMs: { settle0: rows.map((r) => r.gate!.lateMs), settle: rows.map((r) => r.settle!.lateMs), hand: rows.map((r) => r.hand!.lateMs) },
  };
  const hc = HEALTHCHECK > 0 ? `compose healthcheck every ${HEALTHCHECK} s` : "no compose healthcheck";
  console.log(
    [
      `(a) Ferry, settle 0 + ${hc}: ${gateMs} ms vs bare pull && up -d ${hand.upMs} ms: ${a}× (≤ ${TARGET}×: ${verdict(a)}); vs by hand waiting for the same (running, not restarted, healthy) ${hand.healthyMs} ms: ${summary.a.ratioToHandHealthy}×`,
      `(b) Ferry, settle ${SETTLE} s + ${hc}: ${settleMs} ms vs by hand with the same window, healthy, docker inspect ${hand.checkedMs} ms: ${b}× (≤ ${TARGET}×: ${verdict(b)}); vs bare up -d: ${summary.b.ratioToBareUp}×`,
      `web failed requests per update at ${RATE}/s: ${routedFailed ? `Ferry routed ${routedFailed.join(", ")} (target 0: ${summary.web.routedVerdict}); ` : ""}plain up -d by hand ${failed("hand").join(", ")}; Ferry in place ${failed("gate").join(", ")} (settle 0), ${failed("settle").join(", ")} (settle ${SETTLE} s)`,
    ].join("\n"),
  );
  console.log(JSON.stringify(summary));
} finally {
  for (const side of ALL) {
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
