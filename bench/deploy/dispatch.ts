// Part 2 of `npm run bench:deploy`: task dispatch latency with a connected fleet — from the moment a task is queued
// to the moment the agent holds it verified.
//
// The fleet: N simulated agents (dispatch-agents.ts) in G processes, each with its own certificate enrolled through
// the real Enrol RPC and its own mTLS Connect stream. An enrolled fleet is reused from bench/fleet's cache
// (bench-results/fleet-cache/agents-M, same format, M >= N) when one fits and the control plane runs on PGlite;
// otherwise the agents enrol here and, on PGlite, the result is stored in that cache for the next run.
//
// Ferry: one target of kind docker per agent; deployments are created one target at a time through
// POST /api/v1/deployments at a fixed rate (open loop, with a bound on requests in flight). For each task the bench
// knows when the POST was sent and the task's queuedAt (the server's clock, the same host's); the agent reports when
// the offer arrived and when verifySignedTask returned. Agents ack and report success at once, so every target is
// free again long before its next turn.
//
// Baseline (dispatch-baseline.ts): a bare grpc-js server holding the same agents' streams signs the same kind of task
// and writes it on the agent's stream when the orchestrator says so, at the same rate: the push path with no queue.
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FleetCa } from "@ferry/pki";
import { forkBench, stopChild } from "../fleet/children.js";
import { FerryServer, ROOT } from "../fleet/ferry-server.js";
import { now, Rpc, type AgentIdentity } from "../fleet/ipc.js";
import { cpuMs } from "../fleet/proc-stats.js";
import { ApiError, FerryApi, type DeploymentView } from "./ferry-api.js";
import type { AgentsCommands, BaselineCommands, TaskSeen } from "./ipc.js";

export interface DispatchOptions {
  agents: number;
  generators: number;
  tasks: number;
  ratePerSec: number;
  maxInFlight: number;
  warmupTasks: number;
  registryHost: string;
  repository: string;
  workDir: string;
  /** `--database-url` for the server (a fresh database), or null for PGlite. */
  databaseUrl: string | null;
  freshFleet: boolean;
  skipBaseline: boolean;
  log: (msg: string) => void;
}

export interface DispatchSample {
  taskId: string;
  /** Request sent (POST for Ferry, IPC command for the baseline) -> verified at the agent, ms. */
  fromRequestMs: number;
  /** queuedAt (Ferry: the task row's queued_at; baseline: command received) -> verified at the agent, ms. */
  fromQueuedMs: number;
  /** Offer decoded -> verifySignedTask returned, ms. */
  verifyMs: number;
}

export interface DispatchSide {
  agentsUp: number;
  requested: number;
  delivered: number;
  refused: number;
  /** Deployments the API refused (e.g. DEPLOYMENT_IN_PROGRESS), by code. */
  rejected: Record<string, number>;
  /** Slots where the bound on requests in flight held the schedule back. */
  lateSlots: number;
  offeredPerSec: number;
  elapsedMs: number;
  /** POST /deployments round trip (Ferry only), ms. */
  postMs: number[];
  samples: DispatchSample[];
  serverCpuPercent: number;
  /** Ferry: deployments not finished a few seconds after the last one (tasks piling up). */
  unfinished?: number;
}

export interface DispatchResult {
  agents: number;
  fleet: { cached: boolean; source: string; enrolMs: number | null };
  ferry: DispatchSide;
  baseline: DispatchSide | null;
}

const CACHE_ROOT = join(ROOT, "bench-results", "fleet-cache");
const CACHE_MIN_VALIDITY_MS = 6 * 3_600_000;
const ENV = "bench";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

interface FleetFile {
  createdAt: string;
  enrolment: Record<string, unknown>;
  identities: AgentIdentity[];
}

class Generators {
  constructor(readonly rpcs: Array<Rpc<AgentsCommands>>) {}
  all<K extends keyof AgentsCommands>(cmd: K, args: AgentsCommands[K]["args"]): Promise<Array<AgentsCommands[K]["result"]>> {
    return Promise.all(this.rpcs.map((r) => r.call(cmd, args)));
  }
  async load(caPem: string, identities: AgentIdentity[]): Promise<void> {
    const g = this.rpcs.length;
    await Promise.all(this.rpcs.map((r, i) => r.call("load", { caPem, identities: identities.filter((_, j) => j % g === i) })));
  }
}

function findCachedFleet(n: number, log: (m: string) => void): { dir: string; fleet: FleetFile } | null {
  if (!existsSync(CACHE_ROOT)) return null;
  const sizes = readdirSync(CACHE_ROOT)
    .map((d) => Number(/^agents-(\d+)$/.exec(d)?.[1]))
    .filter((m) => Number.isInteger(m) && m >= n)
    .sort((a, b) => a - b);
  for (const m of sizes) {
    const dir = join(CACHE_ROOT, `agents-${m}`);
    const file = join(dir, "fleet.json");
    if (!existsSync(file) || !existsSync(join(dir, "data", "ca", "ca.crt"))) continue;
    const fleet = JSON.parse(readFileSync(file, "utf8")) as FleetFile;
    const first = fleet.identities[0];
    const notAfter = first ? Date.parse(new X509Certificate(first.certPem).validTo) : 0;
    if (fleet.identities.length !== m || notAfter - Date.now() <= CACHE_MIN_VALIDITY_MS) {
      log(`dispatch: the cached fleet in ${dir} does not fit (agents or certificate validity)`);
      continue;
    }
    return { dir, fleet };
  }
  return null;
}

export async function runDispatch(o: DispatchOptions): Promise<DispatchResult> {
  const { log } = o;
  const N = o.agents;
  const dataDir = join(o.workDir, "dispatch-cp");
  const serverArgs = o.databaseUrl ? ["--database-url", o.databaseUrl] : [];
  const genPath = fileURLToPath(new URL("./dispatch-agents.ts", import.meta.url));
  const gens = new Generators(Array.from({ length: o.generators }, (_, i) => new Rpc<AgentsCommands>(forkBench(genPath, [], ["--max-old-space-size=2048"]), `agents ${i}`)));

  // ---- the fleet
  let identities: AgentIdentity[];
  let fleetInfo: DispatchResult["fleet"];
  let server: FerryServer | null = null;
  const cached = o.databaseUrl || o.freshFleet ? null : findCachedFleet(N, log);
  if (cached) {
    log(`dispatch: reusing ${N} of the ${cached.fleet.identities.length} agents enrolled at ${cached.fleet.createdAt} (${cached.dir}; --fresh-fleet to enrol again)`);
    cpSync(join(cached.dir, "data"), dataDir, { recursive: true });
    identities = cached.fleet.identities.slice(0, N);
    fleetInfo = { cached: true, source: cached.dir, enrolMs: null };
  } else {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // Enrolment is set-up, not what is measured: let the server enrol as fast as it can, with certificates that
    // outlive the cache (as bench/fleet does).
    server = await FerryServer.start({ dataDir, heartbeatIntervalMs: 15_000, args: [...serverArgs, "--enrol-rate", "100000", "--enrol-burst", "100000", "--enrol-peer-rate", "100000", "--enrol-peer-burst", "100000", "--cert-lifetime", "720h"], timeoutMs: 120_000 });
    log(`dispatch: enrolling ${N} agents over gRPC`);
    const e0 = now();
    const shares = Array.from({ length: o.generators }, (_, i) => Math.floor(N / o.generators) + (i < N % o.generators ? 1 : 0));
    let firstIndex = 0;
    const results = await Promise.all(
      shares.map(async (count, i) => {
        const joinToken = await server!.joinToken(count);
        const fi = firstIndex;
        firstIndex += count;
        return (gens.rpcs[i] as Rpc<AgentsCommands>).call("enrol", { caPem: server!.caPem, enrolPort: server!.runtime.enrolPort, joinToken, count, firstIndex: fi, concurrency: 16 });
      }),
    );
    identities = results.flatMap((r) => r.identities).sort((a, b) => a.gi - b.gi);
    const enrolMs = now() - e0;
    log(`dispatch: enrolled ${identities.length}/${N} in ${(enrolMs / 1000).toFixed(1)} s ${JSON.stringify(results.map((r) => r.failures))}`);
    if (identities.length < N) throw new Error(`only ${identities.length} of ${N} agents could enrol`);
    fleetInfo = { cached: false, source: o.databaseUrl ? "enrolled (PostgreSQL)" : "enrolled", enrolMs };
    if (!o.databaseUrl) {
      // Stored in bench/fleet's cache format, so either bench reuses it.
      await server.stop();
      server = null;
      const dir = join(CACHE_ROOT, `agents-${N}`);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      cpSync(dataDir, join(dir, "data"), { recursive: true, filter: (src) => !/server\.log$|runtime\.json$/.test(src) });
      const createdAt = new Date().toISOString();
      const fleet: FleetFile = {
        createdAt,
        enrolment: { cached: false, createdAt, enrolled: N, elapsedMs: Math.round(enrolMs), perSec: Math.round((N / enrolMs) * 1000), serverCpuMsPerEnrolment: NaN, fleetSize: N },
        identities,
      };
      writeFileSync(join(dir, "fleet.json.tmp"), JSON.stringify(fleet));
      renameSync(join(dir, "fleet.json.tmp"), join(dir, "fleet.json"));
    }
  }
  if (!existsSync(join(dataDir, "ca", "ca.crt"))) throw new Error(`no CA in ${dataDir}`);
  const caPem = readFileSync(join(dataDir, "ca", "ca.crt"), "utf8");
  if (cached) await gens.load(caPem, identities);

  server ??= await FerryServer.start({ dataDir, heartbeatIntervalMs: 15_000, args: serverArgs, timeoutMs: 120_000 });
  const api = new FerryApi(server.runtime.api, dataDir);
  try {
    await gens.all("target", { mode: "ferry", port: server.runtime.agentPort, caPem });
    const c0 = now();
    const conn = await gens.all("connect", { concurrency: 64, timeoutMs: 180_000 });
    const up = conn.reduce((n, r) => n + r.up, 0);
    log(`dispatch: ${up}/${N} agents connected to Ferry in ${((now() - c0) / 1000).toFixed(1)} s ${JSON.stringify(conn.map((r) => r.failures))}`);
    if (up < N) throw new Error(`only ${up} of ${N} agents connected`);

    // ---- what to deploy where
    await api.ensure("/environments", { name: ENV });
    await api.ensure("/components", { name: "web", repository: `${o.registryHost}/${o.repository}` });
    const release = await api.call<{ id: string }>("POST", "/releases", { name: "dispatch", version: "1", components: { web: ":1" } });
    const t0 = now();
    const targets: Array<{ name: string; agentId: string; id: string }> = [];
    let nextTarget = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (nextTarget < identities.length) {
          const a = identities[nextTarget++] as AgentIdentity;
          const name = `t-${a.gi}`;
          const t = await api.call<{ id: string }>("POST", `/environments/${ENV}/targets`, { name, kind: "docker", agentId: a.id, config: { container: `bench-${a.gi}`, component: "web" } });
          targets.push({ name, agentId: a.id, id: t.id });
        }
      }),
    );
    targets.sort((a, b) => a.name.localeCompare(b.name));
    log(`dispatch: ${targets.length} docker targets created in ${((now() - t0) / 1000).toFixed(1)} s`);

    // ---- Ferry
    const ferry = await schedule(o, targets, async (target) => {
      const sentAt = now();
      const d = await api.call<DeploymentView>("POST", "/deployments", { release: release.id, environment: ENV, targets: [target.name] });
      const task = d.tasks[0]!;
      return { taskId: task.id, sentAt, queuedAt: Date.parse(task.queuedAt), answeredAt: now() };
    }, gens, server.pid, log, "Ferry");
    // Tasks that did not finish: the agents report at once, so anything left is stuck.
    await sleep(3000);
    let unfinished = 0;
    for (const state of ["queued", "running"]) {
      const r = await api.call<{ deployments: unknown[] }>("GET", `/deployments?environment=${ENV}&state=${state}&limit=200`);
      unfinished += r.deployments.length;
    }
    ferry.unfinished = unfinished;
    await server.stop();
    server = null;

    // ---- baseline
    let baseline: DispatchSide | null = null;
    if (!o.skipBaseline) {
      const ca = await FleetCa.loadOrCreate(join(dataDir, "ca"));
      const cert = await ca.issueServerCertificate({ hosts: ["127.0.0.1", "localhost"], lifetimeMs: 86_400_000 });
      const base = new Rpc<BaselineCommands>(forkBench(fileURLToPath(new URL("./dispatch-baseline.ts", import.meta.url))), "dispatch baseline");
      try {
        const { port } = await base.call("start", {
          keyPem: cert.keyPem,
          certChainPem: `${cert.certPem.trim()}\n${ca.certPem.trim()}\n`,
          caPem: ca.certPem,
          keyringDir: join(o.workDir, "baseline-keys"),
          heartbeatIntervalMs: 15_000,
        });
        await gens.all("target", { mode: "baseline", port, caPem: ca.certPem });
        const bc = await gens.all("connect", { concurrency: 64, timeoutMs: 180_000 });
        const bup = bc.reduce((n, r) => n + r.up, 0);
        log(`dispatch: ${bup}/${N} agents connected to the baseline`);
        let seq = 0;
        baseline = await schedule(o, targets, async (target) => {
          const taskId = `tsk_base_${++seq}`;
          const sentAt = now();
          const r = await base.call("offer", { agentId: target.agentId, taskId, target: { id: target.id, name: target.name } });
          if (!r.sent) throw new ApiError(0, "NO_STREAM", `the baseline holds no stream for ${target.agentId}`);
          return { taskId, sentAt, queuedAt: r.queuedAt, answeredAt: now() };
        }, gens, base.child.pid as number, log, "baseline");
        baseline.postMs = [];
        await base.call("stop", {}).catch(() => null);
      } finally {
        await stopChild(base.child);
      }
    }
    await gens.all("drop", {});
    return { agents: N, fleet: fleetInfo, ferry, baseline };
  } finally {
    if (server) await server.stop();
    await Promise.all(gens.rpcs.map((r) => stopChild(r.child)));
  }
}

interface Requested {
  taskId: string;
  sentAt: number;
  queuedAt: number;
  answeredAt: number;
}

/**
 * Warm-up, then `tasks` requests at `ratePerSec` (open loop: request i is due at start + i / rate; at most
 * `maxInFlight` outstanding, a slot that finds the bound full waits and is counted late), targets in turn.
 */
async function schedule(
  o: DispatchOptions,
  targets: Array<{ name: string; agentId: string; id: string }>,
  request: (t: { name: string; agentId: string; id: string }) => Promise<Requested>,
  gens: Generators,
  serverPid: number,
  log: (m: string) => void,
  name: string,
): Promise<DispatchSide> {
  let turn = 0;
  const nextTarget = () => targets[turn++ % targets.length]!;
  // Warm-up: not recorded (JIT, connection pools, first statements).
  for (let i = 0; i < o.warmupTasks; i++) await request(nextTarget()).catch(() => null);
  await sleep(1000);
  await gens.all("collect", {});

  const requested: Requested[] = [];
  const rejected: Record<string, number> = {};
  let inFlight = 0;
  let lateSlots = 0;
  let wake: (() => void) | null = null;
  const cpu0 = cpuMs(serverPid);
  const start = now();
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < o.tasks; i++) {
    await sleep(start + (i * 1000) / o.ratePerSec - now());
    if (inFlight >= o.maxInFlight) {
      lateSlots += 1;
      while (inFlight >= o.maxInFlight) await new Promise<void>((r) => (wake = r));
    }
    inFlight += 1;
    const target = nextTarget();
    pending.push(
      request(target)
        .then((r) => void requested.push(r))
        .catch((err: unknown) => {
          const code = err instanceof ApiError ? err.code : (err as Error).message.slice(0, 60);
          rejected[code] = (rejected[code] ?? 0) + 1;
        })
        .finally(() => {
          inFlight -= 1;
          const w = wake;
          wake = null;
          w?.();
        }),
    );
  }
  await Promise.all(pending);
  const elapsedMs = now() - start;
  const serverCpuPercent = ((cpuMs(serverPid) - cpu0) / elapsedMs) * 100;

  // Every offer the agents saw, until all requested tasks are in (bounded).
  const seen = new Map<string, TaskSeen>();
  const deadline = now() + 30_000;
  for (;;) {
    for (const list of await gens.all("collect", {})) for (const s of list) seen.set(s.taskId, s);
    if (requested.every((r) => seen.has(r.taskId)) || now() > deadline) break;
    await sleep(250);
  }
  const status = await gens.all("status", {});
  const samples: DispatchSample[] = [];
  let refused = 0;
  for (const r of requested) {
    const s = seen.get(r.taskId);
    if (!s) continue;
    if (!s.verified) {
      refused += 1;
      continue;
    }
    samples.push({ taskId: r.taskId, fromRequestMs: s.verifiedAt - r.sentAt, fromQueuedMs: s.verifiedAt - r.queuedAt, verifyMs: s.verifiedAt - s.receivedAt });
  }
  const side: DispatchSide = {
    agentsUp: status.reduce((n, s) => n + s.up, 0),
    requested: requested.length,
    delivered: samples.length + refused,
    refused,
    rejected,
    lateSlots,
    offeredPerSec: o.ratePerSec,
    elapsedMs,
    postMs: requested.map((r) => r.answeredAt - r.sentAt),
    samples,
    serverCpuPercent,
  };
  log(`dispatch: ${name}: ${side.requested} requested, ${side.delivered} delivered (${refused} refused), rejected ${JSON.stringify(rejected)}, ${lateSlots} late slots, ${(elapsedMs / 1000).toFixed(1)} s, server CPU ${serverCpuPercent.toFixed(0)} %`);
  return side;
}
