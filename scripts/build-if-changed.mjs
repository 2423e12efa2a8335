#!/usr/bin/env node
// `npm start`'s build step: runs `npm run build` only when an input changed since the last build this script made.
//
// tsc's own incremental mode still parses every file and loads every declaration file of four packages (about 15 s
// with nothing changed); a fingerprint of the inputs' paths, sizes and modification times takes milliseconds. Inputs:
// each package's src/ and the console's (tests included: cheap to list, and a build never depends on them being left out of the check),
// tsconfig and package.json, the root tsconfig.base.json, package-lock.json and the asset-copy script. A missing
// dist/ of any package also means "build". The fingerprint is taken before the build starts, so an edit made while it
// runs is caught the next time.
//
//   node scripts/build-if-changed.mjs           build if needed
//   node scripts/build-if-changed.mjs --check   exit 0 when up to date, 1 when a build is needed (says why); builds nothing
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PACKAGES = ["proto", "contract", "pki", "agent", "control-plane"];
const STAMP = join(ROOT, "node_modules", ".cache", "ferry", "build-stamp");

function* files(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist") continue;
    const p = join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) yield* files(p);
    else yield [p, s];
  }
}

export function fingerprint() {
  const h = createHash("sha256");
  // Whole milliseconds: sub-millisecond times do not survive every way a time is set back (utimes with a Date).
  const add = (p, s) => h.update(`${relative(ROOT, p)}\0${s.size}\0${Math.trunc(s.mtimeMs)}\n`);
  for (const pkg of PACKAGES) {
    for (const [p, s] of files(join(ROOT, pkg, "src"))) add(p, s);
    for (const f of ["package.json", "tsconfig.build.json"]) {
      const p = join(ROOT, pkg, f);
      if (existsSync(p)) add(p, statSync(p));
    }
  }
  // The console is built by its own script into console/dist (scripts/build-console.mjs).
  for (const [p, s] of files(join(ROOT, "console", "src"))) add(p, s);
  for (const f of ["tsconfig.base.json", "package-lock.json", "package.json", "scripts/copy-assets.mjs", "scripts/build-console.mjs", "console/index.html", "console/tsconfig.json"]) {
    const p = join(ROOT, f);
    if (existsSync(p)) add(p, statSync(p));
  }
  return h.digest("hex");
}

/** Why a build is needed, or null when the last build is current. */
export function staleReason(current = fingerprint()) {
  for (const pkg of [...PACKAGES, "console"]) if (!existsSync(join(ROOT, pkg, "dist"))) return `${pkg}/dist is missing`;
  if (!existsSync(STAMP)) return "no earlier build by this script";
  if (readFileSync(STAMP, "utf8").trim() !== current) return "sources changed since the last build";
  return null;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const current = fingerprint();
  const why = staleReason(current);
  if (process.argv.includes("--check")) {
    process.stdout.write(why === null ? "build is up to date\n" : `build needed: ${why}\n`);
    process.exit(why === null ? 0 : 1);
  }
  if (why !== null) {
    process.stderr.write(`building (${why})\n`);
    const r = spawnSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
    if (r.status !== 0) process.exit(r.status ?? 1);
    mkdirSync(dirname(STAMP), { recursive: true });
    writeFileSync(STAMP, `${current}\n`);
  }
}
