// The agent's node runtime flags and glibc allocator settings are chosen for its footprint (docs/performance.md,
// "Footprint") and written in two places: the systemd unit and the container image. They must stay the same, and
// each launcher must hand the flags to node.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
    const out = execFileSync(process.execPath, [...unitFlags().split(/\s+/), "-e", "process.stdout.write('ok')"], { encoding: "utf8" });
    assert.equal(out, "ok");
  });

  it("the container image sets the unit's allocator settings", () => {
    const pairs = (text: string, re: RegExp): Record<string, string> => Object.fromEntries([...text.matchAll(re)].map((m): [string, string] => [m[1] as string, m[2] as string]));
    const unit = pairs(read("installers/linux/ferry-agent.service"), /^Environment=(MALLOC_[A-Z_]+)=(\S+)$/gm);
    assert.deepEqual(Object.keys(unit).sort(), ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]);
    const image = pairs(read("installers/container/Dockerfile"), /\b(MALLOC_[A-Z_]+)=(\d+)/g);
    assert.deepEqual(image, unit);
  });

  it("the container's entry point and the installed wrapper pass them to node", () => {
    assert.match(read("installers/linux/install.sh"), /exec node \\\$FERRY_AGENT_NODE_FLAGS /);
    // Run the entry point with a `node` on PATH that prints its arguments, as an enrolled agent would start.
    const dir = mkdtempSync(join(tmpdir(), "ferry-entrypoint-"));
    try {
      writeFileSync(join(dir, "identity.json"), "{}");
      const fakeNode = join(dir, "node");
      writeFileSync(fakeNode, '#!/bin/sh\nprintf "%s\\n" "$@"\n');
      chmodSync(fakeNode, 0o755);
      const out = execFileSync("sh", [join(ROOT, "installers/container/entrypoint.sh")], {
        encoding: "utf8",
        env: { PATH: `${dir}:/usr/bin:/bin`, FERRY_AGENT_STATE_DIR: dir, FERRY_AGENT_NODE_FLAGS: unitFlags() },
      });
      assert.deepEqual(out.trim().split("\n"), [...unitFlags().split(/\s+/), "/opt/ferry-agent/ferry-agent.mjs", "run", "--state-dir", dir]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
