// `npm run bench:api:plans` — the release list queries at N releases, on PGlite and (with --database-url) on the
// PostgreSQL server: their plans (EXPLAIN ANALYZE) and their cost per call, measured one call at a time in this
// process. It seeds the tables directly with SQL (no registry, no HTTP), so it takes seconds where bench:api takes
// minutes, and it is the way to look at a plan: bench:api drops its database at the end.
//
//   npm run bench:api:plans                                 10,000 releases on PGlite (in memory)
//   npm run bench:api:plans -- --releases N
//   npm run bench:api:plans -- --database-url postgresql://postgres@127.0.0.1:5432/test
//                                                           also on that server, in a fresh schema dropped at the end
//   npm run bench:api:plans -- --no-analyze                 the plans of tables without statistics (as PGlite, or a
//                                                           server without autovacuum, has them until ANALYZE)
//
// The seed follows bench:api: 3 components, each release pins 1–3 of them (the first component in about two
// releases of three, the third in about one of three), names from 10 projects, created a few milliseconds apart.
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { openStore } from "../../control-plane/src/adapters/store/index.js";
import { CatalogService } from "../../control-plane/src/domain/catalog/catalog-service.js";
import type { ImageRegistry } from "../../control-plane/src/ports/registry.js";
import type { Store } from "../../control-plane/src/ports/store.js";
import { round, summarise } from "./stats.js";

interface Options {
  releases: number;
  databaseUrl: string | null;
  calls: number;
  analyze: boolean;
}

function usage(msg: string): never {
  console.error(`bench:api:plans: ${msg}`);
  console.error("usage: npm run bench:api:plans -- [--releases N] [--database-url URL] [--calls N] [--no-analyze]");
  process.exit(2);
}

function parse(argv: string[]): Options {
  const o: Options = { releases: 10_000, databaseUrl: null, calls: 300, analyze: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === "--releases" || a === "--calls") {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 10 || n > 1_000_000) usage(`${a} must be a whole number from 10 to 1,000,000`);
      if (a === "--releases") o.releases = n;
      else o.calls = n;
      i++;
    } else if (a === "--no-analyze") {
      o.analyze = false;
    } else if (a === "--database-url") {
      if (!v) usage("--database-url needs a value");
      o.databaseUrl = v;
      i++;
    } else usage(`unknown argument ${a}`);
  }
  return o;
}

const COMPONENTS = ["web", "api", "worker"];

async function seed(store: Store, n: number, analyze: boolean): Promise<void> {
  for (const c of COMPONENTS) {
    await store.query(`INSERT INTO components (name, repository, created_by) VALUES ($1, $2, 'bench')`, [c, `127.0.0.1:5000/bench/${c}`]);
  }
  // Pins: release i pins "web" unless i % 3 = 2, "api" when i % 3 <> 1, "worker" when i % 3 = 0 — so web is in
  // about two releases of three, api in two of three, worker in one of three; every release has 1–3 pins.
  await store.query(
    `INSERT INTO releases (id, name, version, created_by, created_at)
     SELECT 'rel_' || lpad(i::text, 10, '0'), 'project-' || (i % 10), 'v' || i, 'bench',
            timestamptz '2026-01-01 00:00:00+00' + i * interval '3.217 milliseconds'
       FROM generate_series(1, $1::int) AS i`,
    [n],
  );
  const pin = (component: string, cond: string) =>
    store.query(
      `INSERT INTO release_pins (release_id, component, repository, digest, source_tag, media_type)
       SELECT 'rel_' || lpad(i::text, 10, '0'), $2, $3, 'sha256:' || md5(i::text || $2) || md5($2 || i::text), '1.0',
              'application/vnd.oci.image.manifest.v1+json'
         FROM generate_series(1, $1::int) AS i WHERE ${cond}`,
      [n, component, `127.0.0.1:5000/bench/${component}`],
    );
  await pin("web", "i % 3 <> 2");
  await pin("api", "i % 3 <> 1");
  await pin("worker", "i % 3 = 0");
  if (analyze) {
    await store.query("ANALYZE releases");
    await store.query("ANALYZE release_pins");
  }
}

interface Case {
  name: string;
  sql: string;
  params: unknown[];
}

async function explain(store: Store, c: Case): Promise<string> {
  const r = await store.query<Record<string, string>>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${c.sql}`, c.params);
  return r.rows.map((row) => Object.values(row)[0]).join("\n");
}

const noRegistry: ImageRegistry = {
  resolve: () => Promise.reject(new Error("this benchmark reads releases only")),
};

async function time(calls: number, fn: () => Promise<unknown>): Promise<{ p50: number; p99: number; mean: number }> {
  for (let i = 0; i < Math.min(50, calls); i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  const s = summarise(ms);
  return { p50: s.p50, p99: s.p99, mean: s.mean };
}

async function run(label: string, store: Store, o: Options): Promise<void> {
  const t0 = performance.now();
  await seed(store, o.releases, o.analyze);
  console.log(`\n## ${label}: ${o.releases} releases seeded in ${round((performance.now() - t0) / 1000, 1)} s`);
  const deep = await store.query<{ created_at: Date; id: string }>(
    `SELECT created_at, id FROM releases ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1`,
    [Math.floor(o.releases * 0.75)],
  );
  const cursor = deep.rows[0];
  if (!cursor) throw new Error("no release to start a deep page from");
  const page = `SELECT r.id, r.created_at FROM releases r`;
  const order = `ORDER BY r.created_at DESC, r.id DESC LIMIT 51`;
  const has = (n: number) => `EXISTS (SELECT 1 FROM release_pins p WHERE p.release_id = r.id AND p.component = $${n})`;
  const cases: Case[] = [
    { name: "SELECT 1 (per-query floor)", sql: "SELECT 1", params: [] },
    { name: "first page", sql: `${page} ${order}`, params: [] },
    { name: "deep page (cursor)", sql: `${page} WHERE (r.created_at, r.id) < ($1::timestamptz, $2) ${order}`, params: [cursor.created_at.toISOString(), cursor.id] },
    { name: "?component=web (2 in 3)", sql: `${page} WHERE ${has(1)} ${order}`, params: ["web"] },
    { name: "?component=worker (1 in 3)", sql: `${page} WHERE ${has(1)} ${order}`, params: ["worker"] },
    { name: "?name=project-3", sql: `${page} WHERE r.name = $1 ${order}`, params: ["project-3"] },
  ];
  for (const c of cases) {
    const t = await time(o.calls, () => store.query(c.sql, c.params));
    console.log(`\n### ${c.name}: p50 ${t.p50} ms, p99 ${t.p99} ms, mean ${t.mean} ms (${o.calls} calls, one at a time)\n`);
    console.log(await explain(store, c));
  }
  // The service call the API makes for a list page (the cache empty for the first call, then warm).
  const catalog = new CatalogService({
    store,
    registry: noRegistry,
    credentials: { get: async () => null },
    clock: { now: () => Date.now() },
  });
  for (const [name, q] of [["listReleases()", {}], ["listReleases({ component: 'worker' })", { component: "worker" }]] as const) {
    const t = await time(o.calls, () => catalog.listReleases(q));
    console.log(`\n### ${name} (cache warm): p50 ${t.p50} ms, p99 ${t.p99} ms, mean ${t.mean} ms`);
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const pglite = await openStore({});
  try {
    await run("PGlite (in memory)", pglite, o);
  } finally {
    await pglite.close();
  }
  if (o.databaseUrl) {
    const schema = `bench_plans_${randomBytes(4).toString("hex")}`;
    const pg = await openStore({ databaseUrl: o.databaseUrl, schema });
    try {
      await run(`PostgreSQL (schema ${schema})`, pg, o);
    } finally {
      await pg.query(`DROP SCHEMA "${schema}" CASCADE`).catch((err: unknown) => console.error(`could not drop schema ${schema}: ${String(err)}`));
      await pg.close();
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
