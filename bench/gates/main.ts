// `npm run bench:gates` — how long gate evaluation takes. Target: p99 < 50 ms.
//
//   (a) in process: the GateEngine (createGateEngine, as PromotionService calls it: settings parsed, then every gate
//       evaluated) over realistic contexts — 5 gates (2 approvals of a group, prior environment with a soak,
//       security over 10 image digests with 1–2 scanners each and some exceptions, 3 freeze windows in three time
//       zones, 3 policy rules) — p50/p99 over 20,000 evaluations after a warm-up;
//   (b) end to end: GET /api/v1/promotions/{id}/why-blocked on a real `ferry server` (control-plane/bin/ferry.js,
//       built dist) holding 200 promotions that wait for their gates, one per environment, each re-evaluated from
//       the store on every request. Baselines measured in the same run, same server, same client:
//       GET /api/v1/whoami (authentication, no domain read) and GET /api/v1/environments/{name} (one row).
//
//   npm run bench:gates                          PGlite in the server's data directory
//   npm run bench:gates -- --database-url postgresql://postgres@127.0.0.1:5432/test
//                                                PostgreSQL (a fresh database is created for the run and dropped)
//   other flags: --evaluations N (20000), --promotions N (200), --requests N per endpoint (4000),
//                --concurrency C (8), --cpu-prof DIR (the server writes a V8 CPU profile there when it stops)
//
// How the estate is made: the bench opens the store the server will use (the same data directory, or the fresh
// database), migrates it, and creates environments, components, releases, scan reports, exceptions, groups and the
// promotions through the domain services themselves (CatalogService, SecurityRecords, PromotionService), with a
// registry stand-in that resolves each tag to a digest derived from it (these releases are never deployed, so no
// image is pulled). The prior-environment gate reads successful deployments: one row per (release, environment
// before) is inserted into `deployments` directly, finished three hours earlier. Then the store is closed and the
// server started on it; its promotion sweeper (every second, on every active promotion) runs during the
// measurement, as it would in production.
//
// Every process started here listens on 127.0.0.1 and is stopped by its PID (bench/fleet/children.ts).
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { EvidenceKey, TaskSigningKeyring } from "@ferry/pki";
import { openStore } from "../../control-plane/src/adapters/store/index.js";
import type { Principal } from "../../control-plane/src/domain/auth/roles.js";
import { CatalogService } from "../../control-plane/src/domain/catalog/catalog-service.js";
import { DeploymentService } from "../../control-plane/src/domain/deploy/deployment-service.js";
import { EvidenceStore } from "../../control-plane/src/domain/promotion/evidence-store.js";
import { createGateEngine, parseScanReport } from "../../control-plane/src/domain/promotion/gate-engine.js";
import { digestSetHash, type GateContext } from "../../control-plane/src/domain/promotion/gates/types.js";
import { PromotionService } from "../../control-plane/src/domain/promotion/promotion-service.js";
import { SecurityRecords } from "../../control-plane/src/domain/promotion/security-records.js";
import { RolloutService } from "../../control-plane/src/domain/rollout/rollout-service.js";
import type { ImageRegistry } from "../../control-plane/src/ports/registry.js";
import { createDatabase } from "../../test/helpers/postgres.js";
import { killAllChildrenNow, stopAllChildren } from "../fleet/children.js";
import { FerryServer, ROOT } from "../fleet/ferry-server.js";
import { round, summarise, type Summary } from "../api/stats.js";

const TARGET_P99_MS = 50;
const DIGESTS_PER_RELEASE = 10;
const RELEASES = 20;
const HOUR = 3_600_000;

// ---------------------------------------------------------------------------------------------------------------
// options

interface Options {
  evaluations: number;
  promotions: number;
  requests: number;
  concurrency: number;
  cpuProfDir: string | null;
  databaseUrl: string | null;
}

function usage(msg: string): never {
  console.error(`bench:gates: ${msg}`);
  console.error("usage: npm run bench:gates -- [--evaluations N] [--promotions N] [--requests N] [--concurrency C] [--cpu-prof DIR] [--database-url URL]");
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const o: Options = { evaluations: 20_000, promotions: 200, requests: 4000, concurrency: 8, databaseUrl: null, cpuProfDir: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[++i];
    const num = (min: number, max: number) => {
      const n = Number(v);
      if (v === undefined || !Number.isInteger(n) || n < min || n > max) usage(`${flag} needs a whole number from ${min} to ${max}`);
      return n;
    };
    switch (flag) {
      case "--evaluations":
        o.evaluations = num(100, 1_000_000);
        break;
      case "--promotions":
        o.promotions = num(1, 2000);
        break;
      case "--requests":
        o.requests = num(10, 100_000);
        break;
      case "--concurrency":
        o.concurrency = num(1, 64);
        break;
      case "--cpu-prof":
        if (!v) usage("--cpu-prof needs a directory");
        o.cpuProfDir = resolve(v);
        break;
      case "--database-url":
        if (!v) usage("--database-url needs a URL");
        o.databaseUrl = v;
        break;
      default:
        usage(`unknown argument ${flag ?? ""}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// the gates every bench environment declares

const digestOf = (ref: string) => `sha256:${createHash("sha256").update(ref).digest("hex")}`;
/** What an enrolled agent with the Compose driver reports (a release of several images deploys to a compose target). */
const AGENT_FACTS = { drivers: ["compose"], driverFacts: [{ kind: "compose", capabilities: ["several-images", "side-by-side", "router"] }], taskPayloadVersions: [1, 2] };
const components = Array.from({ length: DIGESTS_PER_RELEASE }, (_, i) => `svc${i}`);

function gateSettings(): Record<string, unknown> {
  return {
    gates: [
      { kind: "approvals", name: "approvers", config: { group: "bench-approvers", count: 2 } },
      { kind: "prior-environment", name: "previous first", config: { soak: "2h" } },
      { kind: "security", name: "no highs", config: { blockAt: "high", requireReport: true, maxReportAge: "7d" } },
      {
        kind: "freeze",
        name: "freezes",
        config: {
          windows: [
            { name: "weekend", timeZone: "Europe/Berlin", cron: "0 22 * * 5", durationMinutes: 3600 },
            { name: "nightly batch", timeZone: "America/New_York", weekly: { days: ["mon", "tue", "wed", "thu", "fri"], start: "23:00", end: "01:30" } },
            { name: "year end", timeZone: "Asia/Kolkata", cron: "0 0 20 12 *", durationMinutes: 20_160 },
          ],
          breakGlassRole: "release-manager",
        },
      },
      {
        kind: "policy",
        name: "release policy",
        config: {
          rules: [
            { type: "required-labels", labels: ["team", "tier=gold"] },
            { type: "allowed-registries", registries: ["127.0.0.1:5000/bench"] },
            { type: "max-age", age: "30d" },
          ],
        },
      },
    ],
  };
}

const trivyReport = (counts: { high?: number; medium?: number; low?: number }, scannerVersion: string) => {
  const vulns: Record<string, string>[] = [];
  let n = 0;
  for (const [sev, k] of Object.entries(counts)) for (let i = 0; i < (k ?? 0); i++) vulns.push({ VulnerabilityID: `CVE-2030-${String(++n).padStart(4, "0")}`, PkgName: `pkg${n}`, InstalledVersion: "1.0", Severity: sev.toUpperCase() });
  return { SchemaVersion: 2, ArtifactName: "bench", Trivy: { Version: scannerVersion }, Results: [{ Target: "image", Vulnerabilities: vulns }] };
};

// ---------------------------------------------------------------------------------------------------------------
// (a) in process

/** Contexts as PromotionService builds them: 10 pinned images, scans per digest, some exceptions, a few approvals. */
function syntheticContexts(now: number, variants: number): GateContext[] {
  const out: GateContext[] = [];
  for (let v = 0; v < variants; v++) {
    const pins = components.map((c, i) => ({ component: c, repository: `127.0.0.1:5000/bench/${c}`, digest: digestOf(`${c}:${v}.${i}`) }));
    const hash = digestSetHash(pins);
    const scans: GateContext["scans"] = {};
    pins.forEach((p, i) => {
      // Most images have one Trivy report; every third also a SARIF scanner's; one in ten none fresh enough.
      const age = i % 10 === 9 ? 9 * 24 * HOUR : (i + 1) * HOUR;
      scans[p.digest] = [{ scanner: "trivy 0.52.0", format: "trivy", uploadedAt: new Date(now - age), counts: { critical: 0, high: (i + v) % 7 === 0 ? 1 : 0, medium: i % 4, low: i % 5, unknown: 0 } }];
      if (i % 3 === 0) scans[p.digest]!.push({ scanner: "grype 0.79", format: "sarif", uploadedAt: new Date(now - 2 * HOUR), counts: { medium: 1, low: 2 } });
    });
    const exceptions = pins
      .filter((_, i) => i % 4 === 0)
      .map((p, i) => ({ digest: p.digest, maxSeverity: "high", reason: "not reachable", approver: "sec-lead", expiresAt: new Date(now + (i % 2 ? 1 : -1) * 24 * HOUR) }));
    const approvers = ["bob", "carol", "dave"].slice(0, v % 4);
    out.push({
      promotion: { id: `prm_${v}`, requestedBy: "alice", requestedAt: new Date(now - HOUR), environment: `stage-${v}`, previousEnvironment: `stage-${v - 1}`, breakGlass: v % 5 === 0 ? { by: "rm", roles: ["release-manager"], reason: "hotfix", at: new Date(now) } : null },
      release: { id: `rel_${v}`, name: "bench", version: `1.${v}.0`, createdAt: new Date(now - (v % 10) * 24 * HOUR), labels: { team: "bench", tier: v % 6 ? "gold" : "silver" }, provenance: {}, pins },
      digestSetHash: hash,
      approvals: approvers.map((s, i) => ({ subject: s, groups: ["bench-approvers"], roles: ["approver"], decision: "approve" as const, digestSetHash: i === 2 ? "sha256:other" : hash, at: new Date(now - 10 * 60_000), comment: "" })),
      priorSuccess: v % 3 ? { environment: `stage-${v - 1}`, finishedAt: new Date(now - (v % 2 ? 3 : 1) * HOUR) } : null,
      scans,
      exceptions,
    });
  }
  return out;
}

function inProcess(evaluations: number): { evaluate: Summary; states: Record<string, number> } {
  const engine = createGateEngine();
  const settings = gateSettings();
  engine.check(settings);
  // Instants over six weeks around the spring DST changes (America/New_York, then Europe/Berlin), at every hour of
  // the day, so freeze windows are sometimes in effect and the zone rules are exercised.
  const base = Date.UTC(2030, 2, 1);
  const ctxs = syntheticContexts(base, 64);
  const instants = Array.from({ length: 97 }, (_, i) => new Date(base + i * 0.43 * 24 * HOUR + (i % 24) * HOUR));
  const states: Record<string, number> = {};
  const run = (n: number, record: boolean): number[] => {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const ctx = ctxs[i % ctxs.length]!;
      const now = instants[i % instants.length]!;
      const t0 = performance.now();
      const v = engine.evaluate(settings, ctx, now);
      const dt = performance.now() - t0;
      if (record) {
        samples.push(dt);
        states[v.state] = (states[v.state] ?? 0) + 1;
      }
    }
    return samples;
  };
  run(Math.min(2000, evaluations), false);
  return { evaluate: summarise(run(evaluations, true)), states };
}

// ---------------------------------------------------------------------------------------------------------------
// (b) end to end: the estate

/** The id of the successful deployment seeded as the prior success for environment `e`. */
const seededDeploymentId = (e: number) => `dep_bench${String(e).padStart(6, "0")}`;

/**
 * Waits until the server has recorded the evidence packet of every seeded deployment (they were inserted as rows,
 * without one; the server's sweep records them, 100 a sweep). The newest 1,000 packets are read in one request; any
 * seeded deployment not among them (more than 1,000 seeded) is asked about by subject.
 */
async function awaitSeededEvidence(api: string, token: string, deployments: string[]): Promise<void> {
  const get = async (query: string) => {
    const r = await fetch(`${api}/api/v1/evidence?${query}`, { headers: { authorization: `Bearer ${token}` } });
    if (r.status !== 200) throw new Error(`GET /api/v1/evidence?${query} answered ${r.status}`);
    return ((await r.json()) as { evidence: { kind: string; subjectId: string }[] }).evidence;
  };
  for (const deadline = Date.now() + 120_000; ; ) {
    const newest = await get("limit=1000");
    const recorded = new Set(newest.filter((e) => e.kind === "deployment").map((e) => e.subjectId));
    let missing = deployments.filter((d) => !recorded.has(d));
    if (missing.length > 0 && newest.length === 1000) {
      const still: string[] = [];
      for (const d of missing) if (!(await get(`subject=${d}&limit=1`)).some((e) => e.kind === "deployment")) still.push(d);
      missing = still;
    }
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`the server recorded evidence for ${deployments.length - missing.length} of the ${deployments.length} seeded deployments in 120 s`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

async function seed(store: Awaited<ReturnType<typeof openStore>>, o: Options, work: string): Promise<string[]> {
  const clock = { now: () => Date.now() };
  const gates = createGateEngine();
  const registry: ImageRegistry = {
    resolve: (reference) =>
      Promise.resolve({ repository: reference.replace(/:[^:/@]+$/, ""), digest: digestOf(reference), mediaType: "application/vnd.oci.image.manifest.v1+json", sourceTag: reference.split(":").pop() ?? null, platforms: [] }),
  };
  const catalog = new CatalogService({ store, registry, credentials: { get: async () => null }, clock, checkSettings: (s) => gates.check(s) });
  const keyring = await TaskSigningKeyring.loadOrCreate(join(work, "task-signing"));
  const deployments = new DeploymentService({ store, catalog, signer: keyring, clock, taskTtlMs: HOUR });
  const evidence = new EvidenceStore({ store, key: await EvidenceKey.loadOrCreate(join(work, "evidence")), clock });
  const records = new SecurityRecords({ store, clock, parseReport: parseScanReport });
  const promotions = new PromotionService({ store, catalog, deployments, rollouts: new RolloutService({ store, catalog, deployments, clock }), gates, evidence, events: { emit: () => {} }, clock, ttlMs: 7 * 24 * HOUR });

  for (const c of components) await catalog.createComponent({ name: c, repository: `127.0.0.1:5000/bench/${c}` }, "bench");
  const releases = [];
  for (let r = 0; r < RELEASES; r++) {
    const rel = await catalog.createRelease(
      { name: "bench", version: `1.${r}.0`, components: Object.fromEntries(components.map((c, i) => [c, `:1.${r}.${i}`])), notes: `bench release ${r}`, provenance: { labels: { team: "bench", tier: r % 5 ? "gold" : "silver" } } },
      "bench",
    );
    releases.push(rel);
    for (const [i, pin] of rel.pins.entries()) {
      await records.uploadScan({ digest: pin.digest, report: trivyReport({ high: (i + r) % 9 === 0 ? 1 : 0, medium: i % 3, low: i % 4 }, "0.52.0") }, "bench");
      if (i % 3 === 0) await records.uploadScan({ digest: pin.digest, report: trivyReport({ medium: 1 }, "0.53.0") }, "bench");
      if (i % 4 === 0) await records.createException({ digest: pin.digest, maxSeverity: "high", reason: "not reachable in this build", expires: "30d" }, "bench");
    }
  }
  for (const s of ["bob", "carol", "dave"]) await records.addToGroup("bench-approvers", s, "bench");

  await catalog.createEnvironment({ name: "ci" }, "bench");
  const settings = gateSettings();
  const envs: string[] = [];
  for (let e = 0; e < o.promotions; e++) {
    const name = `stage-${String(e).padStart(4, "0")}`;
    await catalog.createEnvironment({ name, settings }, "bench");
    // A promotion is refused into an environment with nothing to deploy to: one target per environment, served by
    // an agent row (nothing is deployed; the promotions wait on their gates).
    const agent = `agt_bench${String(e).padStart(6, "0")}`;
    await store.query("INSERT INTO agents (id, name, environment, status, facts) VALUES ($1, $1, $2, 'online', $3)", [agent, name, JSON.stringify(AGENT_FACTS)]);
    await catalog.createTarget({ environment: name, name: "app", kind: "compose", agentId: agent, config: { project: "app", directory: "/srv/app", services: Object.fromEntries(components.map((c) => [c, c])) } }, "bench");
    envs.push(name);
  }
  // The prior-environment gate (and the request's refusal) look at successful deployments in the environment before.
  const finished = new Date(Date.now() - 3 * HOUR);
  for (let e = 0; e < envs.length; e++) {
    const rel = releases[e % RELEASES]!;
    const previous = e === 0 ? "ci" : envs[e - 1]!;
    await store.query(
      `INSERT INTO deployments (id, environment, release_id, action, state, requested_by, created_at, updated_at, finished_at)
       VALUES ($1, $2, $3, 'deploy', 'succeeded', 'bench', $4, $4, $4)`,
      [seededDeploymentId(e), previous, rel.id, finished],
    );
  }
  const alice: Principal = { tokenId: "tok_alice", subject: "alice", roles: ["deployer"] };
  const bob: Principal = { tokenId: "tok_bob", subject: "bob", roles: ["approver"] };
  const ids: string[] = [];
  for (let e = 0; e < envs.length; e++) {
    const p = await promotions.request({ release: releases[e % RELEASES]!.id, environment: envs[e]! }, alice);
    // One of the two approvals: the promotion keeps waiting, so every why-blocked evaluates its gates.
    if (e % 2 === 0) await promotions.approve(p.id, bob);
    const now = await promotions.get(p.id);
    if (now.state !== "awaiting_gates") throw new Error(`seeded promotion ${p.id} is ${now.state}, not awaiting_gates`);
    ids.push(p.id);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------------------------
// (b) end to end: the load

interface LoadResult {
  latency: Summary;
  requests: number;
  errors: number;
  firstError: string | null;
  requestsPerSecond: number;
}

/** `requests` GETs over `paths` in turn, `concurrency` at a time (a closed loop: bounded in count and in flight). */
async function load(api: string, token: string, paths: string[], requests: number, concurrency: number): Promise<LoadResult & { samples: number[] }> {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= requests) return;
        const path = paths[i % paths.length]!;
        const s = performance.now();
        try {
          const res = await fetch(`${api}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
          await res.arrayBuffer();
          if (res.status !== 200) {
            errors++;
            firstError ??= `${path}: HTTP ${res.status}`;
            continue;
          }
          samples.push(performance.now() - s);
        } catch (err) {
          errors++;
          firstError ??= `${path}: ${(err as Error).message}`;
        }
      }
    }),
  );
  const elapsed = performance.now() - t0;
  return { latency: summarise(samples), requests: samples.length, errors, firstError, requestsPerSecond: round((samples.length / elapsed) * 1000, 1), samples };
}

// ---------------------------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const log = (s: string) => console.log(`[${(performance.now() / 1000).toFixed(1).padStart(6)} s] ${s}`);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memoryGiB: round(totalmem() / 2 ** 30, 1), kernel: release(), node: process.version };
  const loadAverage: Record<string, number> = { start: round(loadavg()[0] ?? 0, 2) };
  log(`machine: ${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node}, 1-minute load ${loadAverage["start"]}`);

  // (a)
  const a = inProcess(o.evaluations);
  loadAverage["afterInProcess"] = round(loadavg()[0] ?? 0, 2);
  log(`(a) in process, ${o.evaluations} evaluations of 5 gates: p50 ${a.evaluate.p50} ms, p99 ${a.evaluate.p99} ms, max ${a.evaluate.max} ms (verdicts: ${JSON.stringify(a.states)})`);

  // (b)
  const work = mkdtempSync(join(tmpdir(), "ferry-bench-gates-"));
  let database: { url: string; drop: () => Promise<void> } | null = null;
  let server: FerryServer | null = null;
  try {
    if (o.databaseUrl) {
      database = await createDatabase(o.databaseUrl);
      log(`PostgreSQL: fresh database ${new URL(database.url).pathname.slice(1)}`);
    }
    const dataDir = join(work, "ferry");
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const seedStart = performance.now();
    const store = await openStore(database ? { databaseUrl: database.url } : { dataDir });
    let ids: string[];
    try {
      ids = await seed(store, o, work);
    } finally {
      await store.close();
    }
    log(`seeded ${ids.length} promotions awaiting their gates in ${ids.length} environments, ${RELEASES} releases × ${DIGESTS_PER_RELEASE} images with scans and exceptions (${((performance.now() - seedStart) / 1000).toFixed(1)} s)`);

    server = await FerryServer.start({ dataDir, heartbeatIntervalMs: 15_000, ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}), args: database ? ["--database-url", database.url] : [], timeoutMs: 60_000 });
    const api = server.runtime.api;
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    log(`ferry server ${api} (pid ${server.pid}), ${database ? "PostgreSQL" : "PGlite"}`);

    // The seeded deployments were inserted as rows, without the evidence packet every finished deployment gets: the
    // server's sweep records those in its first seconds (100 a sweep), a backlog production never has at once. The
    // measurement starts when it is done, so it sees the steady state.
    const backlogStart = performance.now();
    await awaitSeededEvidence(api, token, ids.map((_, e) => seededDeploymentId(e)));
    log(`the server recorded the seeded deployments' evidence (${((performance.now() - backlogStart) / 1000).toFixed(1)} s)`);

    const sample = await fetch(`${api}/api/v1/promotions/${ids[0]}/why-blocked`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await sample.json()) as { blocked: boolean; gates: { name: string; state: string }[] };
    if (sample.status !== 200 || body.gates.length !== 5) throw new Error(`why-blocked answered ${sample.status}: ${JSON.stringify(body)}`);
    log(`why-blocked ${ids[0]}: ${body.gates.map((g) => `${g.name}=${g.state}`).join(", ")}`);

    const endpoints = {
      whyBlocked: ids.map((id) => `/api/v1/promotions/${id}/why-blocked`),
      whoami: ["/api/v1/whoami"],
      environment: ids.map((_, e) => `/api/v1/environments/stage-${String(e).padStart(4, "0")}`),
    };
    // Warm-up, then rounds that alternate the endpoints, so drift in the machine's load touches all three alike.
    for (const paths of Object.values(endpoints)) await load(api, token, paths, Math.min(400, o.requests), o.concurrency);
    const rounds = 4;
    const per = Math.ceil(o.requests / rounds);
    const raw: Record<keyof typeof endpoints, number[]> = { whyBlocked: [], whoami: [], environment: [] };
    const totals: Record<string, { errors: number; firstError: string | null; rps: number[] }> = {};
    for (let r = 0; r < rounds; r++) {
      for (const [key, paths] of Object.entries(endpoints) as [keyof typeof endpoints, string[]][]) {
        const res = await load(api, token, paths, per, o.concurrency);
        raw[key].push(...res.samples);
        const t = (totals[key] ??= { errors: 0, firstError: null, rps: [] });
        t.errors += res.errors;
        t.firstError ??= res.firstError;
        t.rps.push(res.requestsPerSecond);
      }
    }
    loadAverage["afterEndToEnd"] = round(loadavg()[0] ?? 0, 2);
    const e2e = Object.fromEntries(
      (Object.keys(endpoints) as (keyof typeof endpoints)[]).map((k) => [
        k,
        { latency: summarise(raw[k]), requests: raw[k].length, errors: totals[k]!.errors, firstError: totals[k]!.firstError, requestsPerSecond: round(totals[k]!.rps.reduce((s, x) => s + x, 0) / rounds, 1) },
      ]),
    ) as Record<keyof typeof endpoints, LoadResult>;

    // report
    const verdictA = a.evaluate.p99 < TARGET_P99_MS ? "PASS" : "MISS";
    const verdictB = e2e.whyBlocked.latency.p99 < TARGET_P99_MS && e2e.whyBlocked.errors === 0 ? "PASS" : "MISS";
    const row = (label: string, r: LoadResult) =>
      `${label.padEnd(44)}${String(r.latency.p50).padStart(8)}${String(r.latency.p90).padStart(8)}${String(r.latency.p99).padStart(8)}${String(r.latency.max).padStart(8)}${String(r.requestsPerSecond).padStart(9)}${String(r.errors).padStart(7)}`;
    console.log("");
    console.log(`Gate evaluation bench — ${database ? "PostgreSQL" : "PGlite"}, ${machine.cpus} cores, Node ${machine.node}; target p99 < ${TARGET_P99_MS} ms`);
    console.log("");
    console.log(`(a) in process: GateEngine.evaluate (parse settings + 5 gates), ${a.evaluate.count} evaluations`);
    console.log(`    p50 ${a.evaluate.p50} ms  p90 ${a.evaluate.p90} ms  p99 ${a.evaluate.p99} ms  max ${a.evaluate.max} ms  mean ${a.evaluate.mean} ms   ${verdictA}`);
    console.log("");
    console.log(`(b) end to end over HTTP, ${ids.length} promotions awaiting gates, ${o.concurrency} concurrent keep-alive clients, ${rounds} alternating rounds`);
    console.log(`${"endpoint".padEnd(44)}${"p50".padStart(8)}${"p90".padStart(8)}${"p99".padStart(8)}${"max".padStart(8)}${"req/s".padStart(9)}${"errors".padStart(7)}`);
    console.log(row("GET /promotions/{id}/why-blocked", e2e.whyBlocked));
    console.log(row("baseline GET /whoami", e2e.whoami));
    console.log(row("baseline GET /environments/{name}", e2e.environment));
    console.log(`why-blocked p99 ${e2e.whyBlocked.latency.p99} ms (${round(e2e.whyBlocked.latency.p99 / e2e.environment.latency.p99, 1)}× the one-row read): ${verdictB}`);
    console.log(`1-minute load average: ${Object.entries(loadAverage).map(([k, v]) => `${k} ${v}`).join(", ")}`);

    const resultsDir = join(ROOT, "bench-results");
    mkdirSync(resultsDir, { recursive: true });
    const out = join(resultsDir, `gates-${stamp}.json`);
    writeFileSync(
      out,
      `${JSON.stringify(
        {
          bench: "gates",
          startedAt: startedAt.toISOString(),
          options: o,
          machine,
          loadAverage1m: loadAverage,
          database: database ? "postgresql" : "pglite",
          targetP99Ms: TARGET_P99_MS,
          inProcess: { evaluations: o.evaluations, gates: 5, digests: DIGESTS_PER_RELEASE, freezeWindows: 3, latencyMs: a.evaluate, verdicts: a.states, verdict: verdictA },
          endToEnd: { promotions: ids.length, concurrency: o.concurrency, rounds, ...e2e, verdict: verdictB },
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nwrote ${out}`);
  } finally {
    if (server) await server.stop();
    await stopAllChildren();
    if (database) await database.drop().catch((err: unknown) => console.error(`dropping the database: ${(err as Error).message}`));
    rmSync(work, { recursive: true, force: true });
  }
}

process.on("exit", () => killAllChildrenNow());
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    console.error(`\nbench:gates: ${sig}, stopping children`);
    void stopAllChildren().finally(() => process.exit(130));
  });
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    console.error(`bench:gates failed: ${(err as Error).stack ?? String(err)}`);
    await stopAllChildren();
    process.exit(1);
  },
);
