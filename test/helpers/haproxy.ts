// A real HAProxy for tests (Debian's haproxy, installed by scripts/test-env.sh): checked with -c, started in the
// foreground on the given config (loopback binds only), stopped by its own pid.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { waitFor } from "./wait.js";

export const HAPROXY_BIN = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));

export function haproxySkipReason(): string | false {
  return HAPROXY_BIN ? false : "haproxy is not installed (scripts/test-env.sh installs it)";
}

export interface TestHaproxy {
  stop(): Promise<void>;
}

/** Writes `config` to `<dir>/haproxy.cfg`, checks it, starts HAProxy and waits until `ready` answers. */
export async function startHaproxy(dir: string, config: string, ready: () => Promise<unknown>): Promise<TestHaproxy> {
  if (!HAPROXY_BIN) throw new Error("haproxy is not installed");
  const cfg = join(dir, "haproxy.cfg");
  writeFileSync(cfg, config);
  const check = spawnSync(HAPROXY_BIN, ["-c", "-q", "-f", cfg], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`haproxy -c: ${check.stderr}`);
  const proc: ChildProcess = spawn(HAPROXY_BIN, ["-db", "-f", cfg], { stdio: "ignore" });
  await waitFor("haproxy's runtime socket", () => ready().then(() => true));
  return {
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}
