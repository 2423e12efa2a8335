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
  // CommonJS dependencies (grpc-js, pino) call require(); give the ESM bundle one.
  banner: {
    js: `#!/usr/bin/env node\n// ferry-agent ${version} — single-file bundle\nimport { createRequire as __ferryCreateRequire } from "node:module";\nconst require = __ferryCreateRequire(import.meta.url);`,
  },
  define: { "process.env.FERRY_AGENT_BUNDLED_VERSION": JSON.stringify(version) },
  legalComments: "linked",
  logLevel: "warning",
});
console.log(`installers/dist/ferry-agent.mjs (agent ${version})`);
