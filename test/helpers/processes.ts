// Spawns the real Ferry binaries (built into dist) as child processes and keeps their output for assertions and for
// failure reports. Every process started here is killed when the test's cleanup runs.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const FERRY_BIN = `${ROOT}/control-plane/bin/ferry.js`;
export const AGENT_BIN = `${ROOT}/agent/bin/ferry-agent.js`;

export interface Proc {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Structured log lines the process printed (pino JSON on stdout). */
  logs(): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function start(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  // .js/.mjs files run under this Node; anything else (shell wrappers) is executed directly.
  const direct = !/\.m?js$/.test(bin);
  const child = spawn(direct ? bin : process.execPath, direct ? args : [bin, ...args], {
    cwd: ROOT,
    env: { ...process.env, FERRY_LOG_FORMAT: "json", NODE_OPTIONS: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    get stdout() {
      return out;
    },
    get stderr() {
      return err;
    },
    logs() {
      return out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return {};
          }
        });
    },
    exited,
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs a command to completion. */
export async function run(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = start(bin, args, env);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout, stderr: p.stderr };
}
