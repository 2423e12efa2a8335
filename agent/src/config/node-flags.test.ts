import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { isAgentError } from "../core/agent-error.js";
import { DRIVER_REGISTRATIONS } from "../drivers/index.js";
import { enabledRegistrations } from "./driver-settings.js";
import { checkWebAssembly, nodeFlagsFor, webAssemblyUsers } from "./node-flags.js";

const UNIT_FLAGS = "--no-opt --jitless --no-expose-wasm --expose-gc";
const drivers = (sections: Record<string, boolean>) => ({ drivers: Object.fromEntries(Object.entries(sections).map(([kind, enabled]) => [kind, { enabled, settings: {} }])) });

describe("node flags for a configuration", () => {
  it("keeps every flag when no enabled driver needs WebAssembly", () => {
    const users = webAssemblyUsers(drivers({}), DRIVER_REGISTRATIONS);
    assert.deepEqual(users, []);
    assert.equal(nodeFlagsFor(UNIT_FLAGS, users), UNIT_FLAGS);
    assert.deepEqual(enabledRegistrations(drivers({}), DRIVER_REGISTRATIONS).map((r) => r.descriptor.kind), ["docker", "compose"]);
  });

  it("drops the flags that remove WebAssembly when the ssh driver is enabled, in every spelling V8 reads", () => {
    const users = webAssemblyUsers(drivers({ ssh: true }), DRIVER_REGISTRATIONS);
    assert.equal(users.length, 1);
    assert.match(users[0] ?? "", /^drivers\.ssh \(ssh2/);
    assert.equal(nodeFlagsFor(UNIT_FLAGS, users), "--no-opt --expose-gc");
    assert.equal(nodeFlagsFor("  --lite_mode\t--jitless=true --expose-wasm=false --no_expose_wasm --single-threaded ", users), "--single-threaded");
    assert.equal(nodeFlagsFor("--jitless=false --expose-wasm --max-semi-space-size=1", users), "--jitless=false --expose-wasm --max-semi-space-size=1");
    assert.equal(nodeFlagsFor("", users), "");
  });

  it("a driver that is turned off does not count", () => {
    assert.deepEqual(webAssemblyUsers(drivers({ ssh: false, docker: false }), DRIVER_REGISTRATIONS), []);
  });

  it("refuses to go on without WebAssembly only when an enabled driver needs it", () => {
    assert.doesNotThrow(() => checkWebAssembly([], false));
    assert.doesNotThrow(() => checkWebAssembly(["drivers.ssh (x)"], true));
    assert.throws(
      () => checkWebAssembly(["drivers.ssh (x)"], false),
      (err: unknown) => isAgentError(err) && err.code === "RUNTIME_FLAGS_UNSUITABLE" && err.kind === "usage" && /drivers\.ssh \(x\) needs WebAssembly/.test(err.message),
    );
  });

  it("an agent started by hand with --jitless and the ssh driver stops at once, exit 2, saying why", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-node-flags-"));
    try {
      const config = join(dir, "agent.json");
      writeFileSync(config, JSON.stringify({ drivers: { ssh: { enabled: true } } }), { mode: 0o600 });
      const main = fileURLToPath(new URL("../cli/main.ts", import.meta.url));
      const run = (flags: string[]) =>
        spawnSync(process.execPath, [...flags, "--conditions=ferry-source", "--import", "tsx", main, "run", "--state-dir", dir, "--config", config], { encoding: "utf8", timeout: 60_000 });
      const r = run(["--jitless", "--no-expose-wasm"]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /RUNTIME_FLAGS_UNSUITABLE: drivers\.ssh .* needs WebAssembly/);
      // With WebAssembly it gets past the check: to the missing identity.
      const ok = run([]);
      assert.equal(ok.status, 2, ok.stderr);
      assert.match(ok.stderr, /NOT_ENROLLED|STATE_DIR/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
