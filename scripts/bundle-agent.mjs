#!/usr/bin/env node
// Bundles the built agent (agent/dist) and its dependencies into one file, installers/dist/ferry-agent.mjs, which
// runs on any host with Node.js >= 20.11 and nothing else. This is what install.sh installs.
//
// Built for a small resident footprint (docs/performance.md, "Footprint"; measured with `npm run bench:footprint`):
// - minified: V8 keeps a module's whole source text in memory for lazy compilation and Function#toString, so 3.5 MB
//   of readable source is 3.5 MB of heap. Names are kept (keepNames) so stack traces and logged error names read.
// - ASCII only: a single non-Latin-1 character (the banner's dash once) makes V8 store the whole source as a
//   two-byte string, doubling it.
// - ssh2 on demand: dockerode's connection library loads ssh2 at start for ssh:// Docker hosts, and ssh2 at load
//   instantiates a WebAssembly module with a 16 MB memory. The bundle loads it when an ssh:// host is first used.
import { build } from "esbuild";
import { mkdirSync, readFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const version = JSON.parse(readFileSync(`${root}/agent/package.json`, "utf8")).version;

// docker-modem's `require("./ssh")` becomes a stub that requires the real module on first call; esbuild wraps every
// CommonJS module in a function run at its first require, so ssh2 is then evaluated only when an ssh:// host is used.
const sshOnDemand = {
  name: "docker-modem-ssh-on-demand",
  setup(b) {
    b.onResolve({ filter: /^\.\/ssh$/ }, (args) =>
      /docker-modem[\\/]lib[\\/]modem\.js$/.test(args.importer) ? { path: "docker-modem-ssh", namespace: "ferry-on-demand" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "ferry-on-demand" }, () => ({
      contents: 'module.exports = function (opt) { return require("docker-modem/lib/ssh.js")(opt); };',
      resolveDir: `${root}/node_modules`,
      loader: "js",
    }));
  },
};
mkdirSync(`${root}/installers/dist`, { recursive: true });
await build({
  entryPoints: [`${root}/agent/dist/cli/main.js`],
  outfile: `${root}/installers/dist/ferry-agent.mjs`,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Native addons cannot be bundled. The only ones in the tree are optional accelerators of ssh2 (pulled in by
  // dockerode's connection library), which it tries inside try/catch and does without.
  external: ["*.node"],
  minify: true,
  keepNames: true,
  charset: "ascii",
  plugins: [sshOnDemand],
  // CommonJS dependencies (grpc-js, pino, ssh2) call require() and read __dirname; give the ESM bundle both.
  banner: {
    js: [
      "#!/usr/bin/env node",
      `// ferry-agent ${version} - single-file bundle`,
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
console.log(`installers/dist/ferry-agent.mjs (agent ${version})`);
