// The agent talks gRPC through its own client on node:http2 (agent/src/core/grpc/), so the agent bundle must not
// carry grpc-js (docs/performance.md, "Footprint"). This builds the bundle's module graph with esbuild, as
// scripts/bundle-agent.mjs does (same entry, platform and externals; from the sources, so no build is needed), and
// checks that neither @grpc/grpc-js nor the control plane's side of @ferry/proto (grpc-js glue) is in it. (dockerode,
// which required grpc-js for BuildKit sessions, is gone too: test/packaging/agent-bundle.test.ts.)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { build, type Metafile } from "esbuild";

const ROOT = new URL("../..", import.meta.url).pathname;

async function agentGraph(): Promise<Metafile> {
  const result = await build({
    entryPoints: [join(ROOT, "agent/src/cli/main.ts")],
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    metafile: true,
    platform: "node",
    format: "esm",
    target: "node20",
    splitting: true,
    outdir: join(ROOT, "installers/dist/graph-check"), // nothing is written (write: false)
    external: ["*.node"],
    conditions: ["ferry-source"],
    logLevel: "silent",
  });
  return result.metafile;
}

const isGrpcJs = (p: string): boolean => p.includes("node_modules/@grpc/grpc-js/");

describe("agent bundle without grpc-js", () => {
  it("bundles the same entry as the bundle script", () => {
    // The built entry (agent/dist/cli/main.js) or its source, which this graph starts from.
    assert.match(readFileSync(join(ROOT, "scripts/bundle-agent.mjs"), "utf8"), /"ferry-agent":[^\n]*\/agent\/(dist\/cli\/main\.js|src\/cli\/main\.ts)`/);
  });

  it("no module of the agent's graph imports grpc-js, and no grpc-js file is in it", async () => {
    const graph = await agentGraph();
    const inputs = Object.keys(graph.inputs);
    assert.ok(inputs.some((p) => p.endsWith("agent/src/core/grpc/client.ts")), "the agent's own gRPC client is in the graph");
    for (const glue of ["proto/src/index.ts", "proto/src/grpc.ts", "proto/src/errors.ts", "proto/src/error-code-interceptor.ts"]) {
      assert.ok(!inputs.some((p) => p.endsWith(glue)), `${glue} (the control plane's grpc-js glue) is not in the agent`);
    }
    const importers = new Set<string>();
    for (const [file, info] of Object.entries(graph.inputs)) {
      if (isGrpcJs(file)) continue;
      for (const imp of info.imports) if (isGrpcJs(imp.path)) importers.add(file);
    }
    const deps = (JSON.parse(readFileSync(join(ROOT, "agent/package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies;
    assert.equal(deps["@grpc/grpc-js"], undefined, "grpc-js is not a runtime dependency of the agent");
    assert.deepEqual([...importers].sort(), [], "who imports grpc-js");
    assert.deepEqual(inputs.filter(isGrpcJs), [], "no grpc-js file in the bundle");
  });
});
