#!/usr/bin/env node
// Runs node's test runner over every *.test.ts under the given folders (Node 20's --test has no glob support).
// Usage: node scripts/run-tests.mjs [--concurrency N] [--file-timeout SECONDS] DIR... [-- extra node --test flags]
//
// Every test file must finish within --file-timeout (default 20 minutes): a file that hangs is cancelled and reported
// as failed, and the run goes on to the next file, instead of waiting until CI's own limit ends the whole run.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
let concurrency = "1";
let fileTimeoutSeconds = 1200;
const dirs = [];
const extra = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--concurrency") concurrency = args[++i];
  else if (a === "--file-timeout") fileTimeoutSeconds = Number(args[++i]);
  else if (a === "--") {
    extra.push(...args.slice(i + 1));
    break;
  }
  else dirs.push(a);
}
const files = [];
const walk = (d) => {
  for (const name of readdirSync(d)) {
    if (name === "node_modules" || name === "dist") continue;
    const p = join(d, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.ts")) files.push(p);
  }
};
for (const d of dirs) {
  if (statSync(d).isFile()) files.push(d);
  else walk(d);
}
if (!Number.isInteger(fileTimeoutSeconds) || fileTimeoutSeconds < 1 || fileTimeoutSeconds > 24 * 3600) {
  console.error("--file-timeout is a whole number of seconds between 1 and 86400");
  process.exit(2);
}
files.sort();
if (files.length === 0) {
  console.error(`no test files under ${dirs.join(", ")}`);
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--conditions=ferry-source", "--import", "tsx", "--test", `--test-concurrency=${concurrency}`, `--test-timeout=${fileTimeoutSeconds * 1000}`, ...extra, ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
