// `npm start` builds only when an input changed (scripts/build-if-changed.mjs): after a build, a second start skips
// it; touching a source file makes it stale; putting the file's time back makes it current again. And `npm test` on a
// machine where the test environment cannot be prepared stops at once with the command that prepares it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "../helpers/processes.js";

const script = join(ROOT, "scripts/build-if-changed.mjs");
const run = (...args: string[]) => spawnSync(process.execPath, [script, ...args], { cwd: ROOT, encoding: "utf8", timeout: 600_000 });

describe("npm start's build step", () => {
  it("builds when needed, then skips the build while nothing changed", { timeout: 600_000 }, () => {
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const second = run();
    assert.equal(second.status, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /building/, "nothing changed: no build");
    const check = run("--check");
    assert.deepEqual([check.status, check.stdout.trim()], [0, "build is up to date"]);

    const source = join(ROOT, "pki/src/fingerprint.ts");
    const before = statSync(source);
    try {
      utimesSync(source, before.atime, new Date(before.mtimeMs + 5000));
      const stale = run("--check");
      assert.deepEqual([stale.status, stale.stdout.trim()], [1, "build needed: sources changed since the last build"]);
    } finally {
      utimesSync(source, before.atimeMs / 1000, before.mtimeMs / 1000);
    }
    assert.equal(run("--check").status, 0, "the same inputs are current again");
  });
});

describe("npm test on a machine without the test environment", () => {
  it("stops at once, before any suite, naming the one command that prepares it", () => {
    // A user who is not root and cannot sudo: fake `id` and `sudo` first on PATH.
    const bin = mkdtempSync(join(tmpdir(), "ferry-fresh-"));
    try {
      writeFileSync(join(bin, "id"), '#!/bin/sh\n[ "$1" = "-u" ] && echo 1000 && exit 0\nexec /usr/bin/id "$@"\n');
      writeFileSync(join(bin, "sudo"), "#!/bin/sh\nexit 1\n");
      chmodSync(join(bin, "id"), 0o755);
      chmodSync(join(bin, "sudo"), 0o755);
      const r = spawnSync("bash", [join(ROOT, "scripts/test.sh")], { cwd: ROOT, encoding: "utf8", timeout: 60_000, env: { ...process.env, PATH: `${bin}:${process.env["PATH"] ?? ""}`, FERRY_TEST_SETUP: "" } });
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /sudo bash scripts\/test-env\.sh/);
      assert.doesNotMatch(r.stdout, /generated code|typecheck|unit and store tests/, "no suite ran");
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
