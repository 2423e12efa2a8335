// The agent's node runtime flags and glibc allocator settings are chosen for its footprint (docs/performance.md,
// "Footprint") and written in two places: the systemd unit and the container image. They must stay the same, and
// each launcher must hand the flags to node.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

const ROOT = new URL("../..", import.meta.url).pathname;
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

function unitFlags(): string {
  const m = /^Environment="FERRY_AGENT_NODE_FLAGS=([^"]*)"$/m.exec(read("installers/linux/ferry-agent.service"));
  assert.ok(m, "the unit sets FERRY_AGENT_NODE_FLAGS");
  return m[1] as string;
}

describe("agent node flags", () => {
  it("the container image sets the systemd unit's flags, and node accepts them", () => {
    const m = /^ENV FERRY_AGENT_NODE_FLAGS="([^"]*)"$/m.exec(read("installers/container/Dockerfile"));
    assert.ok(m, "the Dockerfile sets FERRY_AGENT_NODE_FLAGS");
    assert.equal(m[1], unitFlags());
    const r = spawnSync(process.execPath, [...unitFlags().split(/\s+/), "-e", "process.stdout.write(typeof gc)"], { encoding: "utf8" });
    assert.equal(r.stdout, "function", "--expose-gc gives the agent gc()");
    assert.equal(r.stderr, "", "node and V8 start without a warning");
  });

  it("the container image sets the unit's allocator settings", () => {
    const pairs = (text: string, re: RegExp): Record<string, string> => Object.fromEntries([...text.matchAll(re)].map((m): [string, string] => [m[1] as string, m[2] as string]));
    const unit = pairs(read("installers/linux/ferry-agent.service"), /^Environment=(MALLOC_[A-Z_]+)=(\S+)$/gm);
    assert.deepEqual(Object.keys(unit).sort(), ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]);
    const image = pairs(read("installers/container/Dockerfile"), /\b(MALLOC_[A-Z_]+)=(\d+)/g);
    assert.deepEqual(image, unit);
  });

  // A `node` on PATH that prints its arguments; asked for `node-flags`, it records the call and answers with the flags
  // an ssh-enabled configuration would get, as the agent does (agent/src/config/node-flags.ts, tested there).
  function fakeNode(dir: string): { calls: () => string } {
    const file = join(dir, "node");
    writeFileSync(
      file,
      `#!/bin/sh\nfor a in "$@"; do if [ "$a" = node-flags ]; then printf '%s\\n' "$*" >> "${dir}/node-flags-calls"; echo "--no-opt --expose-gc"; exit 0; fi; done\nprintf "%s\\n" "$@"\n`,
    );
    chmodSync(file, 0o755);
    return { calls: () => (existsSync(join(dir, "node-flags-calls")) ? readFileSync(join(dir, "node-flags-calls"), "utf8") : "") };
  }

  it("the container's entry point asks the agent which flags suit its configuration, then passes those to node", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-entrypoint-"));
    try {
      writeFileSync(join(dir, "identity.json"), "{}");
      const node = fakeNode(dir);
      const run = (flags: string) =>
        execFileSync("sh", [join(ROOT, "installers/container/entrypoint.sh")], { encoding: "utf8", env: { PATH: `${dir}:/usr/bin:/bin`, FERRY_AGENT_STATE_DIR: dir, FERRY_AGENT_NODE_FLAGS: flags } });
      assert.deepEqual(run(unitFlags()).trim().split("\n"), ["--no-opt", "--expose-gc", "/opt/ferry-agent/ferry-agent.mjs", "run", "--state-dir", dir]);
      assert.equal(node.calls(), `${unitFlags()} /opt/ferry-agent/ferry-agent.mjs node-flags run --state-dir ${dir}\n`);
      // Flags that keep WebAssembly need no question.
      assert.deepEqual(run("--no-opt --single-threaded").trim().split("\n"), ["--no-opt", "--single-threaded", "/opt/ferry-agent/ferry-agent.mjs", "run", "--state-dir", dir]);
      assert.equal(node.calls().split("\n").length, 2, "asked once, for the unit's flags only");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the wrapper install.sh writes asks the agent before run and enrol, and passes the flags to node", () => {
    const script = read("installers/linux/install.sh");
    const m = /cat > "\$BIN\.tmp" <<WRAPPER\n([\s\S]*?)\nWRAPPER\n/.exec(script);
    assert.ok(m, "install.sh writes the wrapper from a here-document");
    const dir = mkdtempSync(join(tmpdir(), "ferry-wrapper-"));
    try {
      const node = fakeNode(dir);
      // The here-document as the shell expands it: \$ stays $, $OPT becomes the install directory.
      const wrapper = join(dir, "ferry-agent");
      writeFileSync(wrapper, (m[1] as string).replaceAll('"$OPT/', `"${dir}/opt/`).replaceAll("\\$", "$"));
      chmodSync(wrapper, 0o755);
      const run = (args: string[], flags: string) => execFileSync(wrapper, args, { encoding: "utf8", env: { PATH: `${dir}:/usr/bin:/bin`, FERRY_AGENT_NODE_FLAGS: flags } }).trim().split("\n");
      const entry = `${dir}/opt/ferry-agent.mjs`;
      assert.deepEqual(run(["run", "--state-dir", "/s"], unitFlags()), ["--no-opt", "--expose-gc", entry, "run", "--state-dir", "/s"]);
      assert.equal(node.calls(), `${unitFlags()} ${entry} node-flags run --state-dir /s\n`);
      assert.deepEqual(run(["enrol", "--state-dir", "/s"], unitFlags()).slice(0, 3), ["--no-opt", "--expose-gc", entry]);
      // Other commands, and flags that keep WebAssembly, go straight to node.
      assert.deepEqual(run(["config", "--state-dir", "/s"], unitFlags()), [...unitFlags().split(/\s+/), entry, "config", "--state-dir", "/s"]);
      assert.deepEqual(run(["run"], "--no-opt"), ["--no-opt", entry, "run"]);
      assert.equal(node.calls().trim().split("\n").length, 2, "asked for run and enrol only");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
