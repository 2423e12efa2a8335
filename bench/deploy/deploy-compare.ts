// Part 1 of `npm run bench:deploy`: one deploy by Ferry against the same deploy done by hand with the docker CLI,
// on the same engine, the same image digest and the same health check, plus rollback time.
//
// The setting: one real `ferry server`, one real agent (agent/bin/ferry-agent.js with the Docker driver) on the
// test engine, a real registry on loopback, two busybox httpd images (v1 and v2) that listen on the same loopback
// port with host networking, so only one container can serve it at a time.
//
// A Ferry round: v1 runs in the target's container; POST /api/v1/deployments of v2 -> the task succeeded and the
// agent's sticker file names this deployment (the API polled every --poll-ms; the sticker file checked at each
// poll). The "exact" figure takes the end from the task's finishedAt and the sticker file's mtime instead, which
// removes the polling error. Then POST /api/v1/rollbacks -> succeeded puts v1 back (timed: the rollback figure).
//
// A docker CLI round does what the driver does, by hand: v1 runs in a container of its own; `docker image inspect
// repo@digest` and, only if the engine does not have it, `docker pull repo@digest` (the driver's rule: an image the
// engine holds under that exact digest is not pulled again), `docker create --network host --name NEW repo@digest`,
// `docker stop OLD` (both want the port), `docker start NEW`, `docker inspect NEW` (its RestartCount and StartedAt),
// GET the health URL until 200 on the driver's own schedule (agent/src/drivers/docker/health.ts: at once, then after
// 250 ms, 500 ms, then every interval), then — as the driver does, and as a script must to tell a crash loop from a
// healthy service — wait until the settle window after the start has passed and `docker inspect NEW` again: still
// running, same RestartCount and StartedAt. `docker rm OLD`. One process per step, as a script would. Both sides use
// the same settle window (SETTLE_SECONDS, set in the target's healthCheck). Both sides stop the old container with the engine's default 10 s
// grace (the test image exits on SIGTERM at once).
//
// Cold: the v2 image is removed from the engine before the round (`docker rmi repo@digest`, checked); warm: it is
// present. Rounds alternate which side goes first. Between rounds, untimed, the other side's container is stopped
// and this side's v1 container started and waited for, so both start from the same state: v1 serving the port.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { buildTestImage, runDocker, type TestImage } from "../../test/helpers/docker.js";
import { ORPHAN_GUARD, exited, spawnTracked, stopChild } from "../fleet/children.js";
import { FerryServer, ROOT } from "../fleet/ferry-server.js";
import { now } from "../fleet/ipc.js";
import { FerryApi, type DeploymentView } from "./ferry-api.js";
import { freePort } from "../../test/helpers/net.js";

const AGENT_BIN = join(ROOT, "agent/bin/ferry-agent.js");
/** The driver's health schedule (agent/src/drivers/docker/health.ts): first probe at once, then 250 ms doubling up to the interval. */
const FIRST_PROBE_DELAY_MS = 250;
const HEALTH_INTERVAL_SECONDS = 1;
/** The settle window both sides wait: the driver's default, written into the bench target's config explicitly. */
const SETTLE_SECONDS = 3;

export type Mode = "cold" | "warm";

export interface CompareOptions {
  rounds: number;
  pollMs: number;
  socket: string;
  registryHost: string;
  workDir: string;
  serverArgs: string[];
  log: (msg: string) => void;
  /** Registers what must be undone if the bench is interrupted (containers and images on the shared engine). */
  onAbort: (fn: () => Promise<unknown>) => void;
}

export interface FerrySample {
  mode: Mode;
  round: number;
  first: boolean;
  deploymentId: string;
  /** POST sent -> the poll that saw the task succeeded and the sticker written. */
  polledMs: number;
  /** POST sent -> max(task finishedAt, sticker file mtime): the same end without the polling error. */
  exactMs: number;
  /** POST sent -> first progress event (delivery: API, queue, NOTIFY, offer, verify, journal, ack). */
  toFirstEventMs: number;
  /** Step name -> ms from its event to the next (the last step to finishedAt). */
  steps: Record<string, number>;
}

export interface DockerSample {
  mode: Mode;
  round: number;
  first: boolean;
  totalMs: number;
  steps: Record<string, number>;
  healthProbes: number;
}

export interface RollbackSample {
  mode: Mode;
  round: number;
  deploymentId: string;
  polledMs: number;
  exactMs: number;
}

export interface CompareResult {
  image: { v1: string; v2: string; sizeNote: string };
  ferry: FerrySample[];
  docker: DockerSample[];
  rollback: RollbackSample[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** One GET; the status, or 0 when nothing answered. Same client (node:http) and timeout rule as the driver's probe. */
function probe(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(url, { method: "GET", timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on("error", () => resolve({ status: 0, body: "" }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.end();
  });
}

/** The driver's schedule: probe at once, then wait 250 ms, 500 ms, ... capped at the interval. */
async function waitHealthy(url: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let delay = FIRST_PROBE_DELAY_MS;
  for (let probes = 1; ; probes++) {
    const r = await probe(url, Math.max(500, Math.min(HEALTH_INTERVAL_SECONDS * 1000, deadline - Date.now())));
    if (r.status >= 200 && r.status < 300) return probes;
    if (Date.now() >= deadline) throw new Error(`${url} not healthy within ${timeoutMs} ms`);
    await sleep(Math.min(delay, HEALTH_INTERVAL_SECONDS * 1000, deadline - Date.now()));
    delay *= 2;
  }
}

/** Untimed: until the port serves `version` (the expected container is the one answering). */
async function waitServing(base: string, version: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await probe(`${base}/version`, 1000);
    if (r.status === 200 && r.body === version) return;
    if (Date.now() > deadline) throw new Error(`${base} does not serve ${version} (last: ${r.status} ${r.body})`);
    await sleep(50);
  }
}

async function imagePresent(socket: string, ref: string): Promise<boolean> {
  try {
    await runDocker(socket, ["image", "inspect", "--format", "{{.Id}}", ref]);
    return true;
  } catch {
    return false;
  }
}

async function containerRunning(socket: string, name: string): Promise<boolean> {
  try {
    return (await runDocker(socket, ["inspect", "--format", "{{.State.Running}}", name])).trim() === "true";
  } catch {
    return false;
  }
}

async function setImageState(socket: string, pinned: string, mode: Mode): Promise<void> {
  if (mode === "warm") {
    if (!(await imagePresent(socket, pinned))) await runDocker(socket, ["pull", "--quiet", pinned], { timeoutMs: 120_000 });
    return;
  }
  if (await imagePresent(socket, pinned)) await runDocker(socket, ["rmi", pinned]);
  if (await imagePresent(socket, pinned)) throw new Error(`${pinned} is still in the engine after docker rmi (a container uses it?)`);
}

async function runToExit(child: ChildProcess, what: string, timeoutMs: number): Promise<void> {
  const timer = setTimeout(() => void stopChild(child, 1000), timeoutMs);
  await exited(child);
  clearTimeout(timer);
  if (child.exitCode !== 0) throw new Error(`${what} exited with ${child.exitCode ?? child.signalCode}`);
}

export async function runDeployComparison(o: CompareOptions): Promise<CompareResult> {
  const { socket, log } = o;
  const suffix = randomBytes(3).toString("hex");
  const repository = `bench-deploy-${suffix}/web`;
  const container = `ferry-bench-web-${suffix}`;
  const cliPrefix = `ferry-bench-cli-${suffix}`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const healthUrl = `${base}/health`;

  log(`deploy: building and pushing two test images (port ${port}) to ${o.registryHost}/${repository}`);
  const v1: TestImage = await buildTestImage({ registry: o.registryHost, repository, tag: "1", version: "web 1", port, socketPath: socket });
  const v2: TestImage = await buildTestImage({ registry: o.registryHost, repository, tag: "2", version: "web 2", port, socketPath: socket });

  const dataDir = join(o.workDir, "deploy-cp");
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const server = await FerryServer.start({ dataDir, heartbeatIntervalMs: 15_000, args: o.serverArgs, timeoutMs: 120_000 });
  const api = new FerryApi(server.runtime.api, dataDir);
  const stateDir = join(o.workDir, "deploy-agent");
  let agent: ChildProcess | null = null;
  let cliSeq = 0;
  const cliName = () => `${cliPrefix}-${++cliSeq}`;
  let cliOld = "";
  const ferry: FerrySample[] = [];
  const docker: DockerSample[] = [];
  const rollback: RollbackSample[] = [];

  const removeContainers = async () => {
    const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => ""))
      .split("\n")
      .filter((n) => n.startsWith(container) || n.startsWith(cliPrefix));
    if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    for (const img of [v2.pinned, v1.pinned]) await runDocker(socket, ["rmi", img]).catch(() => "");
  };
  o.onAbort(removeContainers);
  const cleanup = async () => {
    if (agent) await stopChild(agent, 10_000);
    await server.stop();
    await removeContainers();
  };

  try {
    await api.ensure("/environments", { name: "deploy-bench" });
    await api.ensure("/components", { name: "web", repository: `${o.registryHost}/${repository}` });
    const join_ = await api.call<{ joinString: string }>("POST", "/join-tokens", { environment: "deploy-bench", uses: 1, ttl: "30m" });
    const enrol = spawnTracked(process.execPath, ["--import", ORPHAN_GUARD, AGENT_BIN, "enrol", "--join", join_.joinString, "--state-dir", stateDir, "--name", "bench-docker"], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    await runToExit(enrol, "ferry-agent enrol", 60_000);
    const agentLog = openSync(join(o.workDir, "deploy-agent.log"), "a");
    agent = spawnTracked(process.execPath, ["--import", ORPHAN_GUARD, AGENT_BIN, "run", "--state-dir", stateDir, "--docker-socket", socket, "--log-level", "info"], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json" },
      stdio: ["ignore", agentLog, agentLog],
    });
    closeSync(agentLog);
    let agentId = "";
    for (const deadline = Date.now() + 60_000; ; ) {
      const r = await api.call<{ agents: { id: string; name: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/agents?environment=deploy-bench");
      const a = r.agents.find((x) => x.name === "bench-docker" && x.status === "online" && x.facts.drivers?.includes("docker"));
      if (a) {
        agentId = a.id;
        break;
      }
      if (Date.now() > deadline) throw new Error("the bench agent did not come online with the docker driver");
      await sleep(200);
    }
    const target = await api.call<{ id: string }>("POST", "/environments/deploy-bench/targets", {
      name: "web",
      kind: "docker",
      agentId,
      config: { container, component: "web", healthCheck: { type: "http", url: healthUrl, timeoutSeconds: 30, intervalSeconds: HEALTH_INTERVAL_SECONDS, settleSeconds: SETTLE_SECONDS } },
    });
    const stickerFile = join(stateDir, "stickers", `${target.id}.json`);
    const rel1 = await api.call<{ id: string }>("POST", "/releases", { name: "bench-web", version: "1", components: { web: ":1" } });
    const rel2 = await api.call<{ id: string }>("POST", "/releases", { name: "bench-web", version: "2", components: { web: ":2" } });

    const stickerFor = (deploymentId: string): number | null => {
      try {
        if (!existsSync(stickerFile)) return null;
        const s = JSON.parse(readFileSync(stickerFile, "utf8")) as { deploymentId?: string };
        return s.deploymentId === deploymentId ? statSync(stickerFile).mtimeMs : null;
      } catch {
        return null; // being replaced
      }
    };

    /** Polls until the task succeeded and the sticker names the deployment; returns both ends. */
    const follow = async (id: string, t0: number, what: string): Promise<{ polledMs: number; exactMs: number; d: DeploymentView }> => {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const d = await api.call<DeploymentView>("GET", `/deployments/${id}`);
        const task = d.tasks[0];
        if (task && ["failed", "errored", "expired", "cancelled"].includes(task.state)) {
          throw new Error(`${what} ${id}: task ${task.state} ${task.code ?? ""} ${task.message ?? ""}`);
        }
        const stickerAt = task?.state === "succeeded" ? stickerFor(id) : null;
        if (task && stickerAt !== null) {
          const polledMs = now() - t0;
          const finishedAt = Date.parse(task.finishedAt ?? "") || 0;
          return { polledMs, exactMs: Math.max(finishedAt, stickerAt) - t0, d };
        }
        if (Date.now() > deadline) throw new Error(`${what} ${id} did not finish within 120 s (${task?.state})`);
        await sleep(o.pollMs);
      }
    };

    // Set-up, untimed: v1 through Ferry (the target's first deployment) and the CLI side's own v1 container.
    log("deploy: first deployment of v1 (untimed)");
    const first = await api.call<DeploymentView>("POST", "/deployments", { release: rel1.id, environment: "deploy-bench" });
    await follow(first.id, now(), "first deployment");
    cliOld = cliName();
    await runDocker(socket, ["create", "--network", "host", "--name", cliOld, v1.pinned]);

    const ferryRound = async (mode: Mode, round: number, isFirst: boolean): Promise<FerrySample> => {
      if (await containerRunning(socket, cliOld)) await runDocker(socket, ["stop", cliOld]);
      if (!(await containerRunning(socket, container))) await runDocker(socket, ["start", container]);
      await waitServing(base, "web 1");
      await setImageState(socket, v2.pinned, mode);
      await sleep(200);
      const t0 = now();
      const dep = await api.call<DeploymentView>("POST", "/deployments", { release: rel2.id, environment: "deploy-bench", targets: ["web"] });
      const { polledMs, exactMs, d } = await follow(dep.id, t0, `${mode} deploy`);
      const served = await probe(`${base}/version`, 2000);
      if (served.body !== "web 2") throw new Error(`after the Ferry deploy the port serves ${JSON.stringify(served.body)}, not web 2`);
      const task = d.tasks[0]!;
      const events = task.events ?? [];
      const steps: Record<string, number> = {};
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        const end = events[i + 1] ? Date.parse(events[i + 1]!.at) : Date.parse(task.finishedAt ?? "");
        // The task runner's own "start" (task accepted) comes first; the driver's "start" is the container start.
        const name = i === 0 && e.step === "start" ? "accepted" : e.step;
        steps[name] = (steps[name] ?? 0) + (end - Date.parse(e.at));
      }
      const toFirstEventMs = events[0] ? Date.parse(events[0].at) - t0 : NaN;

      // Rollback, timed: v2 -> v1.
      await sleep(200);
      const r0 = now();
      const rb = await api.call<DeploymentView>("POST", "/rollbacks", { environment: "deploy-bench" });
      const rbEnd = await follow(rb.id, r0, "rollback");
      rollback.push({ mode, round, deploymentId: rb.id, polledMs: rbEnd.polledMs, exactMs: rbEnd.exactMs });
      await waitServing(base, "web 1");
      return { mode, round, first: isFirst, deploymentId: dep.id, polledMs, exactMs, toFirstEventMs, steps };
    };

    const dockerRound = async (mode: Mode, round: number, isFirst: boolean): Promise<DockerSample> => {
      if (await containerRunning(socket, container)) await runDocker(socket, ["stop", container]);
      await runDocker(socket, ["start", cliOld]);
      await waitServing(base, "web 1");
      await setImageState(socket, v2.pinned, mode);
      await sleep(200);
      const steps: Record<string, number> = {};
      const timed = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
        const s = now();
        try {
          return await fn();
        } finally {
          steps[step] = now() - s;
        }
      };
      const next = cliName();
      const t0 = now();
      // "pull" covers the presence check and, when the image is missing, the pull.
      await timed("pull", async () => {
        if (!(await imagePresent(socket, v2.pinned))) await runDocker(socket, ["pull", v2.pinned], { timeoutMs: 120_000 });
      });
      await timed("create", () => runDocker(socket, ["create", "--network", "host", "--name", next, v2.pinned]));
      await timed("stop-old", () => runDocker(socket, ["stop", cliOld]));
      await timed("start", () => runDocker(socket, ["start", next]));
      const startedAt = now();
      const inspectRun = async () => (await runDocker(socket, ["inspect", "--format", "{{.State.Running}} {{.State.Restarting}} {{.RestartCount}} {{.State.StartedAt}}", next])).trim();
      const mark = await timed("inspect", inspectRun);
      const healthProbes = await timed("health", () => waitHealthy(healthUrl, 30_000));
      await timed("settle", async () => {
        await sleep(startedAt + SETTLE_SECONDS * 1000 - now());
        const seen = await inspectRun();
        if (seen !== mark) throw new Error(`the docker CLI's new container restarted during the settle window (${mark} -> ${seen})`);
      });
      await timed("cleanup", () => runDocker(socket, ["rm", cliOld]));
      const totalMs = now() - t0;
      const served = await probe(`${base}/version`, 2000);
      if (served.body !== "web 2") throw new Error(`after the docker CLI deploy the port serves ${JSON.stringify(served.body)}, not web 2`);
      // Untimed reset: the v2 container goes (so a cold round can remove the image), a fresh v1 container waits.
      await runDocker(socket, ["rm", "-f", next]);
      cliOld = cliName();
      await runDocker(socket, ["create", "--network", "host", "--name", cliOld, v1.pinned]);
      return { mode, round, first: isFirst, totalMs, steps, healthProbes };
    };

    for (let round = 1; round <= o.rounds; round++) {
      for (const mode of ["cold", "warm"] as const) {
        // Alternate the order: Ferry first in odd rounds, the docker CLI first in even ones.
        const ferryFirst = round % 2 === 1;
        for (const side of ferryFirst ? ["ferry", "docker"] : ["docker", "ferry"]) {
          const isFirst = side === (ferryFirst ? "ferry" : "docker");
          if (side === "ferry") ferry.push(await ferryRound(mode, round, isFirst));
          else docker.push(await dockerRound(mode, round, isFirst));
        }
        const f = ferry[ferry.length - 1]!;
        const c = docker[docker.length - 1]!;
        const rb = rollback[rollback.length - 1]!;
        log(`deploy: round ${round} ${mode}: Ferry ${f.polledMs.toFixed(0)} ms (exact ${f.exactMs.toFixed(0)}), docker CLI ${c.totalMs.toFixed(0)} ms, rollback ${rb.polledMs.toFixed(0)} ms`);
      }
    }
    return { image: { v1: v1.pinned, v2: v2.pinned, sizeNote: "busybox-static httpd image, about 2 MB, one layer" }, ferry, docker, rollback };
  } finally {
    await cleanup();
  }
}
