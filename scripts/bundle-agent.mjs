#!/usr/bin/env node
// Bundles the built agent (agent/dist) and its dependencies into one directory, installers/dist/ferry-agent/: the
// entry point ferry-agent.mjs and its chunks (chunks/*.mjs), which run on any host with Node.js >= 20.11 and nothing
// else. This directory is what install.sh installs and the container image copies.
//
// Built for a small resident footprint (docs/performance.md, "Footprint"; measured with `npm run bench:footprint`):
// - minified: V8 keeps a module's whole source text in memory for lazy compilation and Function#toString, so 3.5 MB
//   of readable source is 3.5 MB of heap. Names are kept (keepNames) so stack traces and logged error names read.
// - ASCII only: a single non-Latin-1 character (the banner's dash once) makes V8 store the whole source as a
//   two-byte string, doubling it.
// - split into chunks loaded on demand: V8 keeps the source text of every script it has loaded, so what the running
//   agent does not use (the drivers it has not created, the AWS SDK, @peculiar/x509 when no CSR is built, pino-pretty)
//   lives in chunks of its own that are read only when first imported (measured: 1.4 MB less source text, and the
//   node built-ins those parts import, such as node:http and node:child_process, are not loaded either). Chunk names
//   carry a hash of their content, so the chunks of two versions never collide: install.sh adds the new ones beside
//   the old (a running agent still finds what it may yet import) and removes those of older versions afterwards.
// - ssh2 on demand: ssh2 at load instantiates a WebAssembly module with a 16 MB memory. Only the SSH driver imports
//   it, and the SSH driver's code is imported when the agent creates that driver (drivers/ssh/index.ts), so ssh2
//   lives in that driver's chunk and is evaluated only then (the Docker driver's engine client is node:http alone).
import { build } from "esbuild";
import { readFileSync, rmSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const version = JSON.parse(readFileSync(`${root}/agent/package.json`, "utf8")).version;

const onDemandContents = {
  "pino-transport": 'module.exports = function (opts) { return require("pino/lib/transport.js")(opts); };',
};

// pino loads its transport module (thread-stream, which runs transports in a worker thread, and with it node:assert,
// node:module and node:url) at start, for pino.transport(), which the agent does not call. Its `require` becomes a
// stub that requires the real module on first call; esbuild wraps every CommonJS module in a function run at its first
// require, so the transport module is then evaluated only if pino.transport() is ever called.
const pinoTransportOnDemand = {
  name: "pino-transport-on-demand",
  setup(b) {
    b.onResolve({ filter: /^\.\/lib\/transport$/ }, (args) =>
      /pino[\\/]pino\.js$/.test(args.importer) ? { path: "pino-transport", namespace: "ferry-on-demand" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "ferry-on-demand" }, (args) => ({
      contents: onDemandContents[args.path],
      resolveDir: `${root}/node_modules`,
      loader: "js",
    }));
  },
};
// For checks of the bundle (test/packaging/agent-bundle.test.ts): `--outdir DIR` writes it to DIR instead, and
// `--from-source` bundles agent/src (TypeScript, and the workspace packages' sources through their "ferry-source"
// export condition) so that it needs no `npm run build` first. What ships is built from agent/dist.
const args = process.argv.slice(2);
const outdirArg = args.includes("--outdir") ? args[args.indexOf("--outdir") + 1] : undefined;
if (args.includes("--outdir") && !outdirArg) throw new Error("--outdir needs a directory");
const fromSource = args.includes("--from-source");
const outdir = outdirArg ?? `${root}/installers/dist/ferry-agent`;
// A fresh directory each time: chunks of an earlier build must not ship with this one.
rmSync(outdir, { recursive: true, force: true });
if (!outdirArg) {
  rmSync(`${root}/installers/dist/ferry-agent.mjs`, { force: true }); // the single file of earlier versions
  rmSync(`${root}/installers/dist/ferry-agent.mjs.LEGAL.txt`, { force: true });
}
await build({
  entryPoints: { "ferry-agent": fromSource ? `${root}/agent/src/cli/main.ts` : `${root}/agent/dist/cli/main.js` },
  ...(fromSource ? { conditions: ["ferry-source"] } : {}),
  outdir,
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Native addons cannot be bundled. The only ones in the tree are optional accelerators of ssh2 (the SSH driver's),
  // which it tries inside try/catch and does without.
  external: ["*.node"],
  minify: true,
  keepNames: true,
  charset: "ascii",
  plugins: [pinoTransportOnDemand],
  // CommonJS dependencies (grpc-js, pino, ssh2) call require() and read __dirname; give every file of the bundle both.
  banner: {
    js: [
      "#!/usr/bin/env node",
      `// ferry-agent ${version}`,
      'import { createRequire as __ferryCreateRequire } from "node:module";',
      'import { fileURLToPath as __ferryFileURLToPath } from "node:url";',
      "const require = __ferryCreateRequire(import.meta.url);",
      "const __filename = __ferryFileURLToPath(import.meta.url);",
      'const __dirname = __ferryFileURLToPath(new URL(".", import.meta.url));',
    ].join("\n"),
  },
  define: { "process.env.FERRY_AGENT_BUNDLED_VERSION": JSON.stringify(version) },
  legalComments: "linked",
  logLevel: "warning",
});
console.log(`${outdirArg ?? "installers/dist/ferry-agent"}/ferry-agent.mjs and its chunks (agent ${version}${fromSource ? ", from agent/src" : ""})`);
