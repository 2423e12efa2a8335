// `npm run bench:deploy` — how long a Ferry deployment takes next to the docker CLI doing the same work, how long a
// rollback takes, and how fast a queued task reaches a connected agent with a fleet of 1,000. See
// docs/performance.md ("Deploy benchmark").
//
//   npm run bench:deploy                     5 rounds of each deploy mode; dispatch to 1,000 agents, 1,000 tasks
//   npm run bench:deploy -- --quick          2 rounds; 1,000 agents, 300 tasks: a smoke run
//   other flags: --rounds N, --poll-ms MS (25), --agents N (1000), --tasks N, --rate R (tasks/s, 10),
//                --max-in-flight K (4), --database-url URL (PostgreSQL: a fresh database per server, dropped after),
//                --only deploy|dispatch, --skip-baseline (dispatch), --fresh-fleet, --keep, --timeout-minutes M
//
// Part 1 (deploy-compare.ts): a real `ferry server`, a real agent with the Docker driver on the project's test
// engine (scripts/test-env.sh), a real registry on loopback, against the docker CLI on the same engine and digest.
// Part 2 (dispatch.ts): a `ferry server` and simulated agents in separate processes, then a bare grpc-js baseline.
//
// Prints figures with a met/MISSED line per target and writes bench-results/deploy-<timestamp>.json. Exit status 0
// whenever the bench ran (missed targets are printed), non-zero only when it could not run.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { dockerEngine } from "../../test/helpers/docker.js";
import { createDatabase } from "../../test/helpers/postgres.js";
import { pushImage, registrySkipReason, startRegistry, type TestRegistry } from "../../test/helpers/registry.js";
import { superviseBench } from "../fleet/children.js";
import { ROOT } from "../fleet/ferry-server.js";
import { percentile, round } from "../fleet/stats.js";
import { runDeployComparison, type CompareResult, type Mode } from "./deploy-compare.js";
import { runDispatch, type DispatchResult, type DispatchSide } from "./dispatch.js";

interface Options {
  quick: boolean;
  rounds: number;
  pollMs: number;
  agents: number;
  tasks: number;
  rate: number;
  maxInFlight: number;
  databaseUrl: string | null;
  only: "deploy" | "dispatch" | null;
  skipBaseline: boolean;
  freshFleet: boolean;
  keep: boolean;
  timeoutMinutes: number;
}

function usage(msg: string): never {
  process.stderr.write(
    `bench:deploy: ${msg}\nusage: npm run bench:deploy -- [--quick] [--rounds N] [--poll-ms MS] [--agents N] [--tasks N] [--rate R] [--max-in-flight K] ` +
      `[--database-url URL] [--only deploy|dispatch] [--skip-baseline] [--fresh-fleet] [--keep] [--timeout-minutes M]\n`,
  );
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const withValue = ["rounds", "poll-ms", "agents", "tasks", "rate", "max-in-flight", "database-url", "only", "timeout-minutes"];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("--")) usage(`unexpected argument ${a}`);
    const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (v !== undefined) flags.set(k, v);
    else if (withValue.includes(k)) {
      const next = argv[++i];
      if (next === undefined) usage(`--${k} needs a value`);
      flags.set(k, next);
    } else flags.set(k, true);
  }
  for (const k of flags.keys()) if (![...withValue, "quick", "skip-baseline", "fresh-fleet", "keep"].includes(k)) usage(`unknown flag --${k}`);
  const num = (k: string, def: number, min: number, max: number): number => {
    const v = flags.get(k);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) usage(`--${k} must be a number from ${min} to ${max}`);
    return n;
  };
  const quick = flags.has("quick");
  const only = flags.get("only");
  if (only !== undefined && only !== "deploy" && only !== "dispatch") usage("--only takes deploy or dispatch");
  const db = flags.get("database-url");
  return {
    quick,
    rounds: Math.round(num("rounds", quick ? 2 : 5, 1, 100)),
    pollMs: Math.round(num("poll-ms", 25, 5, 1000)),
    agents: Math.round(num("agents", 1000, 10, 10_000)),
    tasks: Math.round(num("tasks", quick ? 300 : 1000, 10, 100_000)),
    rate: num("rate", 10, 1, 1000),
    maxInFlight: Math.round(num("max-in-flight", 4, 1, 256)),
    databaseUrl: typeof db === "string" ? db : null,
    only: (only as Options["only"]) ?? null,
    skipBaseline: flags.has("skip-baseline"),
    freshFleet: flags.has("fresh-fleet"),
    keep: flags.has("keep"),
    timeoutMinutes: num("timeout-minutes", quick ? 10 : 30, 1, 600),
  };
}

/** What must be undone even when the bench is interrupted or times out (containers, the registry). */
const abortHooks: Array<() => Promise<unknown>> = [];

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------------------------------------------------------
// figures

interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}
function summary(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return { count: s.length, p50: round(percentile(s, 0.5)), p90: round(percentile(s, 0.9)), p99: round(percentile(s, 0.99)), max: round(s[s.length - 1] ?? NaN) };
}

interface Verdict {
  metric: string;
  ferry: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean | null;
}

function deployFigures(c: CompareResult) {
  const byMode = (mode: Mode) => {
    const f = c.ferry.filter((s) => s.mode === mode);
    const d = c.docker.filter((s) => s.mode === mode);
    const medianSteps = (list: Array<Record<string, number>>) => {
      const names = [...new Set(list.flatMap((s) => Object.keys(s)))];
      return Object.fromEntries(names.map((n) => [n, round(percentile([...list.map((s) => s[n] ?? 0)].sort((a, b) => a - b), 0.5))]));
    };
    return {
      ferryPolled: summary(f.map((s) => s.polledMs)),
      ferryExact: summary(f.map((s) => s.exactMs)),
      ferryToFirstEvent: summary(f.map((s) => s.toFirstEventMs)),
      ferrySteps: medianSteps(f.map((s) => s.steps)),
      docker: summary(d.map((s) => s.totalMs)),
      dockerSteps: medianSteps(d.map((s) => s.steps)),
    };
  };
  return { cold: byMode("cold"), warm: byMode("warm"), rollback: summary(c.rollback.map((s) => s.polledMs)), rollbackExact: summary(c.rollback.map((s) => s.exactMs)) };
}

function dispatchFigures(s: DispatchSide) {
  return {
    fromQueued: summary(s.samples.map((x) => x.fromQueuedMs)),
    fromRequest: summary(s.samples.map((x) => x.fromRequestMs)),
    verify: summary(s.samples.map((x) => x.verifyMs)),
    post: summary(s.postMs),
  };
}

function verdicts(deploy: ReturnType<typeof deployFigures> | null, dispatch: { ferry: ReturnType<typeof dispatchFigures>; baseline: ReturnType<typeof dispatchFigures> | null; result: DispatchResult } | null): Verdict[] {
  const v: Verdict[] = [];
  const ms = (n: number) => `${Math.round(n)} ms`;
  if (deploy) {
    for (const mode of ["cold", "warm"] as const) {
      const m = deploy[mode];
      const ratio = m.ferryPolled.p50 / m.docker.p50;
      v.push({
        metric: `deploy ${mode === "cold" ? "cold (image not local)" : "warm (image local)"} median / p90`,
        ferry: `${ms(m.ferryPolled.p50)} / ${ms(m.ferryPolled.p90)} (exact ${ms(m.ferryExact.p50)})`,
        baseline: `${ms(m.docker.p50)} / ${ms(m.docker.p90)}`,
        ratio: `${round(ratio, 2)}× (exact ${round(m.ferryExact.p50 / m.docker.p50, 2)}×)`,
        target: "≤ 1.15× docker CLI",
        met: ratio <= 1.15,
      });
    }
    v.push({ metric: "rollback median / p90 / max", ferry: `${ms(deploy.rollback.p50)} / ${ms(deploy.rollback.p90)} / ${ms(deploy.rollback.max)}`, baseline: "-", ratio: "", target: "< 10 s", met: deploy.rollback.max < 10_000 });
  }
  if (dispatch) {
    const f = dispatch.ferry;
    const b = dispatch.baseline;
    const all = dispatch.result.ferry.samples.length === dispatch.result.ferry.requested && dispatch.result.ferry.requested > 0;
    v.push({
      metric: `dispatch queued → verified p50 / p99 (${dispatch.result.agents} agents)`,
      ferry: `${round(f.fromQueued.p50)} / ${round(f.fromQueued.p99)} ms${all ? "" : " (not all delivered)"}`,
      baseline: b ? `${round(b.fromQueued.p50)} / ${round(b.fromQueued.p99)} ms` : "-",
      ratio: b ? `${round(f.fromQueued.p99 / b.fromQueued.p99, 1)}× (p99)` : "",
      target: "p99 < 100 ms",
      met: all && f.fromQueued.p99 < 100,
    });
    v.push({
      metric: "dispatch request sent → verified p50 / p99",
      ferry: `${round(f.fromRequest.p50)} / ${round(f.fromRequest.p99)} ms`,
      baseline: b ? `${round(b.fromRequest.p50)} / ${round(b.fromRequest.p99)} ms` : "-",
      ratio: "",
      target: "",
      met: null,
    });
  }
  return v;
}

function table(rows: Verdict[]): string {
  const head = ["", "Ferry", "baseline", "Ferry/base", "target", ""];
  const cells = rows.map((r) => [r.metric, r.ferry, r.baseline, r.ratio, r.target, r.met === null ? "" : r.met ? "PASS" : "MISS"]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i] as number)).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// main

async function run(o: Options, workDir: string): Promise<void> {
  const started = new Date();
  const load0 = loadavg();
  const engine = await dockerEngine();
  if (!engine.available) throw new Error(`${engine.reason}`);
  const regSkip = registrySkipReason();
  if (regSkip) throw new Error(regSkip);
  const dbs: Array<{ drop: () => Promise<void> }> = [];
  const serverDb = async (): Promise<string[]> => {
    if (!o.databaseUrl) return [];
    const db = await createDatabase(o.databaseUrl);
    dbs.push(db);
    return ["--database-url", db.url];
  };
  let reg: TestRegistry | null = null;
  let compare: CompareResult | null = null;
  let dispatch: DispatchResult | null = null;
  try {
    reg = await startRegistry();
    const r = reg;
    abortHooks.push(() => r.stop());
    log(`registry ${reg.host}, Docker Engine ${engine.socketPath}, ${o.databaseUrl ? "PostgreSQL" : "PGlite"}; load average ${load0.map((l) => l.toFixed(2)).join(" ")}`);
    if (o.only !== "dispatch") {
      compare = await runDeployComparison({ rounds: o.rounds, pollMs: o.pollMs, socket: engine.socketPath, registryHost: reg.host, workDir, serverArgs: await serverDb(), log, onAbort: (fn) => abortHooks.push(fn) });
    }
    if (o.only !== "deploy") {
      await pushImage(reg, "bench-dispatch/web", "1");
      const dbArgs = await serverDb();
      dispatch = await runDispatch({
        agents: o.agents,
        generators: Math.max(2, Math.ceil(o.agents / 2000)),
        tasks: o.tasks,
        ratePerSec: o.rate,
        maxInFlight: o.maxInFlight,
        warmupTasks: Math.min(50, Math.ceil(o.tasks / 10)),
        registryHost: reg.host,
        repository: "bench-dispatch/web",
        workDir,
        databaseUrl: dbArgs[1] ?? null,
        freshFleet: o.freshFleet,
        skipBaseline: o.skipBaseline,
        log,
      });
    }
  } finally {
    await reg?.stop();
    for (const db of dbs) await db.drop().catch((err: unknown) => log(`could not drop a bench database: ${(err as Error).message}`));
  }

  const deploy = compare ? deployFigures(compare) : null;
  const disp = dispatch ? { ferry: dispatchFigures(dispatch.ferry), baseline: dispatch.baseline ? dispatchFigures(dispatch.baseline) : null, result: dispatch } : null;
  const rows = verdicts(deploy, disp);
  const finished = new Date();
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return null;
    }
  };
  const out = {
    bench: "deploy",
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    machine: { cpus: cpus().length, memoryBytes: totalmem(), node: process.version, kernel: release(), loadAverageAtStart: load0, loadAverageAtEnd: loadavg() },
    options: o,
    code: { commit: git(["rev-parse", "HEAD"]), uncommittedChanges: git(["status", "--porcelain", "--", "control-plane", "agent", "pki", "proto"])?.split("\n").filter(Boolean).length ?? null },
    deploy: compare ? { figures: deploy, samples: compare } : null,
    dispatch: dispatch
      ? {
          figures: disp,
          fleet: dispatch.fleet,
          agents: dispatch.agents,
          ferry: { ...dispatch.ferry, samples: undefined, postMs: undefined },
          baseline: dispatch.baseline ? { ...dispatch.baseline, samples: undefined, postMs: undefined } : null,
        }
      : null,
    verdicts: rows,
  };
  const resultsDir = join(ROOT, "bench-results");
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `deploy-${started.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);

  const lines: string[] = [];
  if (deploy) {
    for (const mode of ["cold", "warm"] as const) {
      const m = deploy[mode];
      lines.push(
        `${mode}: Ferry steps (median ms) request→first event ${m.ferryToFirstEvent.p50}, ${Object.entries(m.ferrySteps).map(([k, v]) => `${k} ${v}`).join(", ")}`,
        `${mode}: docker CLI steps (median ms) ${Object.entries(m.dockerSteps).map(([k, v]) => `${k} ${v}`).join(", ")}`,
      );
    }
  }
  if (disp) {
    const f = disp.ferry;
    lines.push(`dispatch: Ferry verify ${f.verify.p50}/${f.verify.p99} ms (p50/p99), POST /deployments ${f.post.p50}/${f.post.p99} ms, server CPU ${round(dispatch!.ferry.serverCpuPercent)} % of a core, unfinished after the run ${dispatch!.ferry.unfinished}`);
  }
  process.stdout.write(
    `\nFerry deploy bench — ${started.toISOString()}, ${round((finished.getTime() - started.getTime()) / 1000)} s, load average ${load0.map((l) => l.toFixed(1)).join(" ")} → ${loadavg().map((l) => l.toFixed(1)).join(" ")}\n\n` +
      `${table(rows)}\n\n${lines.join("\n")}\n\nresults: ${file}\n`,
  );
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const workDir = mkdtempSync(join(tmpdir(), "ferry-bench-deploy-"));
  await superviseBench(
    {
      timeoutMs: o.timeoutMinutes * 60_000,
      log,
      cleanups: [
        async () => {
          for (const hook of abortHooks.splice(0)) await hook().catch(() => null);
        },
        () => (o.keep ? undefined : rmSync(workDir, { recursive: true, force: true })),
      ],
    },
    () => run(o, workDir),
  );
}

void main();
