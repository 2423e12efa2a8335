#!/usr/bin/env node
// Bundles the built agent (agent/dist) and its dependencies into one file, installers/dist/ferry-agent.mjs, which
// runs on any host with Node.js >= 20.11 and nothing else. This is what install.sh installs.
import { build } from "esbuild";
import { mkdirSync, readFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const version = JSON.parse(readFileSync(`${root}/agent/package.json`, "utf8")).version;
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
  // CommonJS dependencies (grpc-js, pino, ssh2) call require() and read __dirname; give the ESM bundle both.
  banner: {
    js: [
      "#!/usr/bin/env node",
      `// ferry-agent ${version} — single-file bundle`,
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
