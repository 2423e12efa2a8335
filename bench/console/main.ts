// `npm run bench:console` — the operator console with a large estate in the store: 10,000 releases and 1,000 agents
// (each with a target, a deployment record and a sticker), driven in Debian's Chromium through playwright-core.
// Measures
//   - initial load to interactive: from navigation to the overview showing its metrics and its full
//     environment × component matrix (the page's data requests done and rendered), for a signed-in operator;
//   - the same for the fleet page (1,000 agent rows) and the releases page;
//   - change to screen: from an API call that changes the control plane (an agent revoked; an environment created)
//     to the change visible in the open overview, through the event stream.
// Targets (docs/console.md): load < 2 s, update < 1 s. Prints figures, writes bench-results/console-<time>.json, and
// exits 1 when a median misses its target.
//
//   npm run bench:console                                 10,000 releases, 1,000 agents, PGlite
//   npm run bench:console -- --quick                      1,000 releases, 100 agents
//   npm run bench:console -- --database-url postgresql://postgres@127.0.0.1:5432/test   (a fresh database, dropped after)
//   npm run bench:console -- --screenshots DIR            also save screenshots of the main pages (docs/images)
//
// Everything listens on 127.0.0.1; the server and the browser are stopped by their handles at the end, on error and
// after a global timeout (10 minutes).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { chromium, type Browser, type Page } from "playwright-core";
import { openStore } from "../../control-plane/src/adapters/store/index.js";
import { TestControlPlane } from "../../test/helpers/control-plane.js";
import { createDatabase } from "../../test/helpers/postgres.js";
import { ROOT } from "../../test/helpers/processes.js";
import { seedEstate } from "./seed.js";

const CHROMIUM = process.env["FERRY_CHROMIUM"] ?? "/usr/bin/chromium";
const argv = process.argv.slice(2);
const flag = (name: string): string | null => {
  const i = argv.indexOf(name);
  return i >= 0 ? (argv[i + 1] ?? null) : null;
};
const quick = argv.includes("--quick");
const size = {
  releases: Number(flag("--releases") ?? (quick ? 1000 : 10_000)),
  agents: Number(flag("--agents") ?? (quick ? 100 : 1000)),
  components: ["web", "api", "worker", "scheduler", "gateway"],
  environments: ["dev", "staging", "prod"],
};
const baseUrl = flag("--database-url");
const shots = flag("--screenshots");
const LOAD_TARGET_MS = 2000;
const UPDATE_TARGET_MS = 1000;
const ROUNDS = quick ? 3 : 5;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] as number) : NaN;
};
const round = (n: number) => Math.round(n);

let cp: TestControlPlane | null = null;
let browser: Browser | null = null;
let db: { url: string; drop: () => Promise<void> } | null = null;

async function cleanup(): Promise<void> {
  await browser?.close().catch(() => undefined);
  await cp?.stop().catch(() => undefined);
  await db?.drop().catch(() => undefined);
}
const globalTimer = setTimeout(() => {
  console.error("bench:console: global timeout (10 min)");
  void cleanup().finally(() => process.exit(2));
}, 10 * 60_000);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

async function signedInPage(token: string, width = 1280): Promise<Page> {
  const page = await browser!.newPage({ viewport: { width, height: 900 } });
  // A returning operator: the token is already in the tab's session storage (what the sign-in form stores).
  await page.addInitScript({ content: `sessionStorage.setItem("ferry.console.token", ${JSON.stringify(token)});` });
  return page;
}

async function timeLoad(page: Page, path: string, ready: string): Promise<number> {
  const t0 = performance.now();
  await page.goto(`${cp!.runtime.api}${path}`, { waitUntil: "commit" });
  await page.waitForSelector(ready, { timeout: 30_000 });
  return performance.now() - t0;
}

async function main(): Promise<void> {
  if (baseUrl) db = await createDatabase(baseUrl);
  cp = await TestControlPlane.start({ ...(db ? { databaseUrl: db.url } : {}), heartbeatInterval: "15s", extraArgs: ["--log-level", "warn"] });
  const ports = { api: Number(new URL(cp.runtime.api).port), agent: cp.runtime.agentPort, enrol: cp.runtime.enrolPort };
  const token = cp.adminToken;
  // PGlite's directory belongs to one process: seed between two runs of the server (the same on PostgreSQL).
  await cp.proc.kill("SIGTERM");
  const seedStart = performance.now();
  const store = await openStore(db ? { databaseUrl: db.url } : { dataDir: cp.dataDir });
  await seedEstate(store, size);
  await store.query("ANALYZE");
  await store.close();
  const seedMs = performance.now() - seedStart;
  await cp.boot(ports);
  console.log(`seeded ${size.releases} releases, ${size.agents} agents and targets in ${round(seedMs)} ms (${db ? "PostgreSQL" : "PGlite"})`);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
  const page = await signedInPage(token);
  const matrixReady = `[data-cell="prod/${size.components[0]}"] .cell-release a`;
  // A first load warms the server's caches the way any earlier visitor would; the figures are the loads after it.
  const cold = await timeLoad(page, "/", matrixReady);
  const loads: Record<string, number[]> = { overview: [], fleet: [], releases: [] };
  for (let i = 0; i < ROUNDS; i++) {
    loads["overview"]!.push(await timeLoad(page, "/", matrixReady));
    loads["fleet"]!.push(await timeLoad(page, "/fleet", `tr[data-agent="host-${size.agents}"]`));
    loads["releases"]!.push(await timeLoad(page, "/releases", `a[href="/releases/rel_bench${size.releases}"]`));
  }

  // Screenshots before the changes below add environments and revoke agents.
  if (shots) {
    mkdirSync(shots, { recursive: true });
    await page.goto(`${cp.runtime.api}/`);
    await page.waitForSelector(matrixReady);
    await page.screenshot({ path: join(shots, "overview-large.png") });
    await page.goto(`${cp.runtime.api}/fleet`);
    await page.waitForSelector(`tr[data-agent="host-${size.agents}"]`);
    await page.screenshot({ path: join(shots, "fleet.png") });
    const narrow = await signedInPage(token, 420);
    await narrow.goto(`${cp.runtime.api}/`);
    await narrow.waitForSelector(matrixReady);
    await narrow.screenshot({ path: join(shots, "overview-narrow.png") });
    await narrow.close();
  }


  // Change to screen, on an overview left open (as an operator would).
  await timeLoad(page, "/", matrixReady);
  await page.waitForSelector('html[data-live="live"]', { timeout: 10_000 });
  const updates: Record<string, number[]> = { "agent revoked": [], "environment created": [] };
  for (let i = 1; i <= ROUNDS; i++) {
    const before = await page.locator(".stat-sub").first().innerText();
    let t0 = performance.now();
    const r = await cp.api("POST", `/api/v1/agents/agt_bench${i}/revoke`, { reason: "bench" });
    if (r.status !== 200) throw new Error(`revoke: ${r.status} ${JSON.stringify(r.body)}`);
    // A locator, not waitForFunction: the console's CSP (no 'unsafe-eval') refuses evaluated strings.
    const exact = new RegExp(`^${before.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
    await page.locator(".stat-sub").first().filter({ hasNotText: exact }).waitFor({ timeout: 10_000 });
    updates["agent revoked"]!.push(performance.now() - t0);
    t0 = performance.now();
    const e = await cp.api("POST", "/api/v1/environments", { name: `bench-${i}` });
    if (e.status !== 201) throw new Error(`environment: ${e.status} ${JSON.stringify(e.body)}`);
    await page.waitForSelector(`a[href="/environments/bench-${i}"]`, { timeout: 10_000 });
    updates["environment created"]!.push(performance.now() - t0);
  }

  const result = {
    when: new Date().toISOString(),
    store: db ? "postgres" : "pglite",
    size: { releases: size.releases, agents: size.agents, components: size.components.length, environments: size.environments.length },
    coldLoadMs: round(cold),
    loadMs: Object.fromEntries(Object.entries(loads).map(([k, v]) => [k, { median: round(median(v)), max: round(Math.max(...v)), samples: v.map(round) }])),
    updateMs: Object.fromEntries(Object.entries(updates).map(([k, v]) => [k, { median: round(median(v)), max: round(Math.max(...v)), samples: v.map(round) }])),
    targets: { loadMs: LOAD_TARGET_MS, updateMs: UPDATE_TARGET_MS },
  };
  console.log(JSON.stringify(result, null, 2));
  mkdirSync(join(ROOT, "bench-results"), { recursive: true });
  const file = join(ROOT, "bench-results", `console-${result.when.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`written to ${file}`);
  const missed = [
    ...Object.entries(result.loadMs).filter(([, v]) => v.median >= LOAD_TARGET_MS).map(([k, v]) => `${k} load ${v.median} ms ≥ ${LOAD_TARGET_MS} ms`),
    ...Object.entries(result.updateMs).filter(([, v]) => v.median >= UPDATE_TARGET_MS).map(([k, v]) => `${k} update ${v.median} ms ≥ ${UPDATE_TARGET_MS} ms`),
  ];
  if (missed.length) {
    console.error(`targets missed: ${missed.join("; ")}`);
    process.exitCode = 1;
  } else console.log("targets met: load < 2 s, update < 1 s");
}

main()
  .catch((err: unknown) => {
    console.error(err);
    if (cp) console.error(cp.proc.stderr.slice(-4000));
    process.exitCode = 2;
  })
  .finally(() => {
    clearTimeout(globalTimer);
    void cleanup();
  });
