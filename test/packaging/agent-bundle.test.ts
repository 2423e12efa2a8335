// What the agent bundle holds (docs/performance.md, "Footprint"): the Docker driver talks to the engine through its
// own small client on node:http (agent/src/drivers/docker/engine), so neither dockerode nor docker-modem (nor the ssh2
// that docker-modem pulled in) may come back into it, and ssh2 stays in the SSH driver's chunk, loaded only when
// that driver is created.
//
// The bundle is built here by scripts/bundle-agent.mjs from agent/src (--from-source) into a temp directory, with the
// same esbuild settings as the one that ships, so no `npm run build` is needed first.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Strings only dockerode or docker-modem code carries (checked against a bundle that had them). */
const DOCKERODE_MARKERS = ["dockerode", "docker-modem", "followProgress", "demuxStream", "DOCKER_CLIENT_TIMEOUT", "(HTTP code ", "swarmInit", "listSecrets"];
/** ssh2's protocol identification string. */
const SSH2_MARKER = "SSH-2.0-ssh2js";

/** The files a module loads: its static imports, and with `dynamic` the dynamic imports whose path matches it. */
function closure(entry: string, dynamic?: RegExp): Map<string, string> {
  const seen = new Map<string, string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    const src = readFileSync(file, "utf8");
    seen.set(file, src);
    for (const m of src.matchAll(/(?:import|from)\s*"(\.[^"]+\.mjs)"/g)) visit(join(dirname(file), m[1]!));
    if (dynamic) {
      for (const m of src.matchAll(/import\("(\.[^"]+\.mjs)"\)/g)) if (dynamic.test(m[1]!)) visit(join(dirname(file), m[1]!));
    }
  };
  visit(entry);
  return seen;
}

describe("agent bundle", () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-agent-bundle-"));
  const entry = join(dir, "ferry-agent.mjs");
  let files: Map<string, string>;

  before(() => {
    const built = spawnSync(process.execPath, [join(ROOT, "scripts/bundle-agent.mjs"), "--from-source", "--outdir", dir], { cwd: ROOT, encoding: "utf8" });
    assert.equal(built.status, 0, built.stderr);
    files = new Map(
      [".", "chunks"].flatMap((sub) =>
        readdirSync(join(dir, sub))
          .filter((n) => n.endsWith(".mjs"))
          .map((n): [string, string] => [join(dir, sub, n), readFileSync(join(dir, sub, n), "utf8")]),
      ),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("contains no dockerode or docker-modem code in any file", () => {
    assert.ok(files.size > 5, "the entry point and its chunks");
    for (const [file, src] of files) {
      for (const marker of DOCKERODE_MARKERS) assert.ok(!src.includes(marker), `${file.slice(dir.length + 1)} contains ${JSON.stringify(marker)}`);
    }
  });

  it("the Docker driver, as the agent loads it, brings its own engine client and no ssh2; ssh2 is in the SSH driver's chunk only", () => {
    const docker = closure(entry, /docker-driver-/);
    const loaded = [...docker.keys()].map((f) => f.slice(dir.length + 1));
    assert.ok(loaded.some((f) => /^chunks\/docker-driver-/.test(f)), `the entry point imports the Docker driver on demand (${loaded.join(", ")})`);
    const text = [...docker.values()].join("\n");
    assert.ok(text.includes("/images/create") && text.includes("X-Registry-Auth"), "the engine client is in the Docker driver's code");
    assert.ok(!text.includes(SSH2_MARKER), "ssh2 is not loaded with the Docker driver");

    const withSsh2 = [...files].filter(([, src]) => src.includes(SSH2_MARKER)).map(([f]) => f.slice(dir.length + 1));
    assert.equal(withSsh2.length, 1, withSsh2.join(", "));
    assert.match(withSsh2[0]!, /^chunks\/ssh-driver-/);
    assert.ok(!closure(entry).has(join(dir, withSsh2[0]!)), "the SSH driver's chunk is not loaded at start");
  });

  it("no package of the agent depends on dockerode, and the lock file holds none", () => {
    const agentPkg = JSON.parse(readFileSync(join(ROOT, "agent/package.json"), "utf8")) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
    const rootPkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
    for (const pkg of [agentPkg, rootPkg]) {
      const deps = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies });
      assert.deepEqual(deps.filter((d) => /dockerode|docker-modem/.test(d)), []);
    }
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, unknown> };
    assert.deepEqual(Object.keys(lock.packages).filter((p) => /node_modules\/(@types\/)?(dockerode|docker-modem)$/.test(p)), []);
  });
});
