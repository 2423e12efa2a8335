#!/usr/bin/env node
// Builds the operator console (console/) into console/dist with esbuild: one JavaScript bundle (Preact included) and
// one stylesheet, both named by a hash of their content (so the server may let browsers cache them for good), the
// HTML shell, and manifest.json listing what the server serves.
//
// Skipped when nothing that goes into the build changed since the last build (a hash of the sources, the lock file
// and this script is kept in console/dist/.build-stamp), so `npm start` does not rebuild it every time. --force
// rebuilds anyway.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "console");
const out = join(src, "dist");
const stampFile = join(out, ".build-stamp");

function walk(dir, files = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, files);
    else files.push(p);
  }
  return files;
}

const inputs = [...walk(join(src, "src")), join(src, "index.html"), join(src, "tsconfig.json"), join(root, "package-lock.json"), fileURLToPath(import.meta.url)];
const h = createHash("sha256");
for (const f of inputs) h.update(relative(root, f)).update("\0").update(readFileSync(f)).update("\0");
const stamp = h.digest("hex");

if (!process.argv.includes("--force") && existsSync(stampFile) && readFileSync(stampFile, "utf8").trim() === stamp && existsSync(join(out, "manifest.json"))) {
  console.log("console: up to date");
  process.exit(0);
}

const started = Date.now();
const js = await esbuild.build({
  entryPoints: [join(src, "src", "main.tsx")],
  bundle: true,
  format: "esm",
  minify: true,
  write: false,
  jsx: "automatic",
  jsxImportSource: "preact",
  target: ["chrome109", "firefox115", "safari16"],
  legalComments: "none",
  logLevel: "warning",
});
const css = await esbuild.build({ entryPoints: [join(src, "src", "styles.css")], bundle: true, minify: true, write: false, logLevel: "warning" });
const jsText = js.outputFiles[0].contents;
const cssText = css.outputFiles[0].contents;
const short = (b) => createHash("sha256").update(b).digest("hex").slice(0, 10);
const jsName = `console-${short(jsText)}.js`;
const cssName = `console-${short(cssText)}.css`;
const html = readFileSync(join(src, "index.html"), "utf8").replace("%JS%", jsName).replace("%CSS%", cssName);

// Written beside and swapped in, so a server starting meanwhile never reads half a build.
const tmp = `${out}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
writeFileSync(join(tmp, jsName), jsText);
writeFileSync(join(tmp, cssName), cssText);
writeFileSync(join(tmp, "index.html"), html);
writeFileSync(join(tmp, "manifest.json"), `${JSON.stringify({ files: ["index.html", jsName, cssName] }, null, 2)}\n`);
writeFileSync(join(tmp, ".build-stamp"), `${stamp}\n`);
rmSync(out, { recursive: true, force: true });
renameSync(tmp, out);
console.log(`console: built ${jsName} (${(jsText.length / 1024).toFixed(1)} KiB) and ${cssName} in ${Date.now() - started} ms`);
