#!/usr/bin/env node
// Runs node's test runner over every *.test.ts under the given folders (Node 20's --test has no glob support).
// Usage: node scripts/run-tests.mjs [--concurrency N] DIR... [-- extra node --test flags]
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
let concurrency = "1";
const dirs = [];
const extra = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--concurrency") concurrency = args[++i];
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
files.sort();
if (files.length === 0) {
  console.error(`no test files under ${dirs.join(", ")}`);
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--conditions=ferry-source", "--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...extra, ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
