// A real agent process for end-to-end tests.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AGENT_BIN, run, start, type Proc } from "./processes.js";

export class TestAgent {
  readonly stateDir: string;
  proc: Proc | null = null;

  constructor(readonly name: string) {
    this.stateDir = mkdtempSync(join(tmpdir(), `ferry-agent-${name}-`));
  }

  enrol(joinString: string, extra: string[] = []) {
    return run(AGENT_BIN, ["enrol", "--join", joinString, "--state-dir", this.stateDir, "--name", this.name, ...extra], { FERRY_LOG_FORMAT: "json" });
  }

  start(extra: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
    this.proc = start(AGENT_BIN, ["run", "--state-dir", this.stateDir, "--log-level", "debug", ...extra], env);
    return this.proc;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.proc?.kill(signal);
  }

  async dispose(): Promise<void> {
    await this.stop("SIGKILL");
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
