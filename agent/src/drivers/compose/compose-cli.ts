// The Compose CLI on the host, as the driver runs it: Debian's docker-compose 1.29 (v1), or the `docker compose`
// plugin (v2) where it is installed. The driver speaks only the subset both read the same way: -p, -f (several),
// config, config --services, up -d --no-deps --no-build, rm -s -f, and ps is not used (the engine is asked directly).
//
// Every run is bounded: a time limit, an output limit, and the task's AbortSignal (a cancelled task kills the CLI).
// DOCKER_HOST is set per run from the target's socket, so the CLI and the driver's engine client see one engine.
import { execFile } from "node:child_process";

import { DriverError } from "../driver.js";

export type ComposeFlavour = "v1" | "v2";

export interface ComposeCli {
  flavour: ComposeFlavour;
  /** The program and the arguments that come before Compose's own: ["docker-compose"] or ["docker", "compose"]. */
  command: readonly [string, ...string[]];
  version: string;
}

/** Output beyond this is cut (the CLI's progress for a large project stays far below it). */
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;
export const DEFAULT_CLI_TIMEOUT_MS = 10 * 60_000;

export interface CliRun {
  stdout: string;
  stderr: string;
}

function run(file: string, args: readonly string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; signal?: AbortSignal; timeoutMs?: number }): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: opts.env, cwd: opts.cwd, maxBuffer: MAX_OUTPUT_BYTES, timeout: opts.timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS, signal: opts.signal, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) reject(Object.assign(err as Error, { stdout, stderr }));
        else resolve({ stdout, stderr });
      },
    );
  });
}

export function cliEnv(socketPath: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, DOCKER_HOST: `unix://${socketPath}` };
}

/**
 * Which Compose CLI the host has, trying `preferred` only when the agent's config names one: v2 first (the current
 * one), then v1. Undefined when none runs.
 */
export async function detectCompose(socketPath: string, preferred?: ComposeFlavour): Promise<ComposeCli | undefined> {
  const env = cliEnv(socketPath);
  const candidates: ComposeCli[] = [
    { flavour: "v2", command: ["docker", "compose"], version: "" },
    { flavour: "v1", command: ["docker-compose"], version: "" },
  ];
  for (const c of candidates) {
    if (preferred && c.flavour !== preferred) continue;
    try {
      const [file, ...pre] = c.command;
      const { stdout } = await run(file, [...pre, "version", "--short"], { env, timeoutMs: 15_000 });
      const version = stdout.trim().split("\n")[0] ?? "";
      // `docker compose` on a docker CLI without the plugin prints docker's own help and fails; a version must parse.
      if (/^v?\d+\.\d+/.test(version)) return { ...c, version: version.replace(/^v/, "") };
    } catch {
      // not installed, or not working: try the next
    }
  }
  return undefined;
}

/** What a failed CLI run said, trimmed to its last lines (Compose prints the reason last). */
export function cliFailure(err: unknown): string {
  const e = err as { stderr?: string; stdout?: string; message?: string; killed?: boolean; code?: unknown };
  if (e.killed) return `the Compose CLI was stopped (time limit or cancel)`;
  const text = `${e.stderr ?? ""}\n${e.stdout ?? ""}`.trim() || e.message || String(err);
  const lines = text.split("\n").map((l) => l.trimEnd()).filter((l) => l !== "");
  return lines.slice(-8).join("\n").slice(0, 2000);
}

/** A Compose project as the CLI addresses it: its name, the operator's file, and (once written) Ferry's lock file. */
export interface ComposeInvocation {
  cli: ComposeCli;
  socketPath: string;
  directory: string;
  project: string;
  files: string[];
}

export async function compose(inv: ComposeInvocation, args: readonly string[], signal?: AbortSignal, code = "COMPOSE_UP_FAILED"): Promise<CliRun> {
  const [file, ...pre] = inv.cli.command;
  const full = [...pre, "-p", inv.project, ...inv.files.flatMap((f) => ["-f", f]), ...args];
  try {
    return await run(file, full, { env: cliEnv(inv.socketPath), cwd: inv.directory, ...(signal ? { signal } : {}) });
  } catch (err) {
    signal?.throwIfAborted();
    throw new DriverError(code, `${inv.cli.command.join(" ")} ${args.join(" ")} failed: ${cliFailure(err)}`, { project: inv.project, args: [...args], error: cliFailure(err) });
  }
}
