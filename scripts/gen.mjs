#!/usr/bin/env node
// Regenerates the protobuf-es code under proto/src/gen from proto/**/*.proto with buf.
// With --check, generates into a scratch copy and fails if the committed code differs.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const genDir = join(root, "proto/src/gen");
const check = process.argv.includes("--check");

// buf.gen.yaml is the single source of plugin options; --output re-roots its out paths for the check.
function run(base) {
  execFileSync(join(root, "node_modules/.bin/buf"), ["generate", "--output", base], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, PATH: `${join(root, "node_modules/.bin")}:${process.env.PATH}` },
  });
}

function files(dir) {
  const out = new Map();
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return out;
}

execFileSync(join(root, "node_modules/.bin/buf"), ["lint"], { cwd: root, stdio: "inherit" });
if (!check) {
  run(root);
  process.exit(0);
}
const scratch = mkdtempSync(join(tmpdir(), "ferry-gen-"));
try {
  cpSync(genDir, join(scratch, "committed"), { recursive: true });
  run(join(scratch, "fresh"));
  const a = files(join(scratch, "committed"));
  const b = files(join(scratch, "fresh/proto/src/gen"));
  const diffs = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  if (diffs.length > 0) {
    console.error(`gen:check: generated code is out of date: ${diffs.join(", ")}. Run: npm run gen`);
    process.exit(1);
  }
  console.log("gen:check: generated code is up to date");
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
