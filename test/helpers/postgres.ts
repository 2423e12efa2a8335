// A throwaway PostgreSQL database on the server named by FERRY_TEST_DATABASE_URL (set by .ci/run), for suites that
// need the server rather than PGlite (replicas sharing one database).
import { randomBytes } from "node:crypto";
import pg from "pg";

export function testDatabaseUrl(): string | null {
  const url = process.env["FERRY_TEST_DATABASE_URL"];
  if (url) return url;
  if (process.env["CI"] === "true") throw new Error("FERRY_TEST_DATABASE_URL must be set in CI (see .ci/run)");
  return null;
}

export const POSTGRES_SKIP_REASON =
  "FERRY_TEST_DATABASE_URL is not set: the PostgreSQL server suites did not run (CI sets it; locally: export FERRY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test)";

export async function createDatabase(baseUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `ferry_e2e_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
