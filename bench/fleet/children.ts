// Every process the bench starts is registered here and killed by its PID when the bench ends, fails or is
// interrupted. Nothing is ever killed by name.
import { fork, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";

// Preloaded (node --import) into every process the bench starts, including the Ferry server under test. If the
// bench dies without cleaning up (SIGKILL, OOM), its children are re-parented; each notices within a second and
// stops itself (SIGTERM: Ferry shuts down cleanly), so a crashed bench never leaves servers or load generators
// behind. Cost to the process under test: one unref'd timer per second. A data: URL keeps it plain JavaScript, with
// nothing to compile, in a process that does not load tsx.
const GUARD_SOURCE = `
const parent = process.ppid;
const timer = setInterval(() => {
  if (process.ppid === parent) return;
  clearInterval(timer);
  process.kill(process.pid, "SIGTERM");
  setTimeout(() => process.exit(1), 10000).unref();
}, 1000);
timer.unref();
`;
export const ORPHAN_GUARD = `data:text/javascript,${encodeURIComponent(GUARD_SOURCE)}`;

const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** A TypeScript module of the bench as a child process with an IPC channel (inherits tsx from this process). */
export function forkBench(modulePath: string, args: string[] = [], extraExecArgv: string[] = []): ChildProcess {
  const child = fork(modulePath, args, {
    execArgv: [...process.execArgv, "--import", ORPHAN_GUARD, ...extraExecArgv],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  return track(child);
}

export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  return track(spawn(command, args, options));
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** SIGTERM, then SIGKILL after graceMs. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pid = child.pid;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    exited(child),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
        resolve();
      }, graceMs);
    }),
  ]);
  clearTimeout(timer);
  await exited(child);
}

export async function stopAllChildren(graceMs = 5_000): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, graceMs)));
}

/** Last resort at process exit (synchronous): SIGKILL whatever is still running. */
export function killAllChildrenNow(): void {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/**
 * Runs a bench's body with every child it starts accounted for: children are stopped, and then the extra cleanups
 * run, when the body ends, fails, or the global timeout fires, and on SIGINT/SIGTERM; children are killed outright if
 * the process exits anyway. Exits the process: 0 after the body, 1 when it threw, 3 at the timeout, 130 on a signal.
 */
export async function superviseBench(
  o: { timeoutMs: number; log: (line: string) => void; cleanups: Array<() => Promise<unknown> | void> },
  body: () => Promise<void>,
): Promise<never> {
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await stopAllChildren();
    for (const c of o.cleanups) {
      try {
        await c();
      } catch {
        // best effort: the remaining cleanups still run
      }
    }
  };
  process.on("exit", killAllChildrenNow);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      o.log(`${sig}: stopping every process the bench started`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const global = setTimeout(() => {
    o.log(`global timeout (${o.timeoutMs / 60_000} min): stopping`);
    void cleanup().finally(() => process.exit(3));
  }, o.timeoutMs);
  global.unref();
  try {
    await body();
  } catch (err) {
    o.log(`the bench could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    process.exit(1);
  }
  clearTimeout(global);
  await cleanup();
  process.exit(0);
}
