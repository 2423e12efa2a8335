// The bench's process protocol: the orchestrator (main.ts) drives load generators and the baseline server over
// Node's IPC channel with request/response messages. Times that cross processes are epoch milliseconds with
// sub-millisecond precision (`now()` below): every process runs on the same host, so their clocks agree.
import type { ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";

/** Epoch milliseconds, sub-millisecond resolution, comparable between processes on one host. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export type Mode = "ferry" | "baseline";

/** A gRPC call ended before the agent was up, counted by Ferry code (or gRPC status / transport error). */
export type FailureCounts = Record<string, number>;

/** One simulated agent's enrolled identity (kept in the fleet cache between runs). */
export interface AgentIdentity {
  /** Index in the whole fleet. */
  gi: number;
  id: string;
  keyPem: string;
  certPem: string;
}

export interface EnrolResult {
  enrolled: number;
  failed: number;
  failures: FailureCounts;
  elapsedMs: number;
  identities: AgentIdentity[];
}

export interface ConnectResult {
  up: number;
  notUp: number;
  /** Successful TLS handshakes (including ones whose stream was later refused). */
  handshakes: number;
  /** Connection attempts that ended before the agent was up, by reason. */
  failures: FailureCounts;
  /** Streams of agents that were up and then ended during the round (they count as not back again), by reason. */
  lost: FailureCounts;
  /** Agents that had to wait (backoff or server retry-after) at least once. */
  retried: number;
  /** The first agent torn down (storm only) and the last agent up. */
  startedAt: number;
  lastUpAt: number;
}

export interface RecordResult {
  sent: number;
  acked: number;
  /** Heartbeat sent -> HeartbeatAck received, milliseconds, for heartbeats sent inside the window. */
  latenciesMs: number[];
  /** Heartbeats sent in the window that had no ack when it closed. */
  unacked: number;
  up: number;
  /** Streams of up agents that ended during the window (they reconnect), by reason. */
  lost: FailureCounts;
}

export interface GeneratorStatus {
  agents: number;
  up: number;
  connecting: number;
  openFiles: number;
  rssBytes: number;
  lost: FailureCounts;
}

export type GeneratorCommands = {
  enrol: { args: { caPem: string; enrolPort: number; joinToken: string; count: number; firstIndex: number; total: number; concurrency: number }; result: EnrolResult };
  /** Takes identities enrolled by an earlier run (the fleet cache) instead of enrolling. */
  load: { args: { caPem: string; identities: AgentIdentity[]; heartbeatIntervalMs: number }; result: { loaded: number } };
  /**
   * Points the agents at a server. `welcomeTimeout`: "agent" abandons a connection attempt without Welcome after
   * 3 × interval, TLS included, as the real agent does; "none" waits (bounded by the bench's phase timeout).
   */
  target: { args: { mode: Mode; port: number; caPem: string; welcomeTimeout: "agent" | "none" }; result: null };
  /** Connects every agent; `concurrency` bounds attempts in flight (null: all at once, as in a storm). */
  connect: { args: { concurrency: number | null; timeoutMs: number }; result: ConnectResult };
  /** Tears down every connection at once, then reconnects every agent immediately. */
  storm: { args: { timeoutMs: number }; result: ConnectResult };
  /** Re-schedules heartbeats so the whole fleet's load is spread evenly: agent i beats at at + i/total × interval. */
  rephase: { args: { at: number; total: number }; result: null };
  recordStart: { args: Record<string, never>; result: null };
  recordStop: { args: Record<string, never>; result: RecordResult };
  fanoutArm: { args: Record<string, never>; result: null };
  /** How many agents received each ping nonce since the arm. */
  fanoutStatus: { args: Record<string, never>; result: Record<string, number> };
  /** Arrival times (epoch ms) of one nonce, one per agent that received it. */
  fanoutCollect: { args: { nonce: string }; result: number[] };
  status: { args: Record<string, never>; result: GeneratorStatus };
  /** Closes every connection and stops every timer. */
  drop: { args: Record<string, never>; result: null };
};

export type BaselineCommands = {
  start: { args: { keyPem: string; certChainPem: string; caPem: string; heartbeatIntervalMs: number }; result: { port: number } };
  stats: { args: Record<string, never>; result: { heartbeats: number; streams: number } };
  /** process.memoryUsage() of the baseline server. */
  memory: { args: Record<string, never>; result: HeapFigures };
  /** Writes one Ping{nonce} to every open stream. */
  pingAll: { args: { nonce: string }; result: { sent: number } };
  stop: { args: Record<string, never>; result: null };
};

/** Where a server's memory is, bytes: the JavaScript heap, and memory outside it that V8 knows of (Buffers, WASM). */
export interface HeapFigures {
  heapUsed: number;
  heapTotal: number;
  external: number;
}

export type CommandMap = Record<string, { args: unknown; result: unknown }>;

interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
interface Response {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

function isRequest(m: unknown): m is Request {
  return typeof m === "object" && m !== null && "id" in m && "cmd" in m;
}
function isResponse(m: unknown): m is Response {
  return typeof m === "object" && m !== null && "id" in m && "ok" in m;
}

/** Parent side: typed calls to a forked child. */
export class Rpc<C extends CommandMap> {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(
    readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.on("message", (m: unknown) => {
      if (!isResponse(m)) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${name}: ${m.error ?? "failed"}`));
    });
    child.once("exit", (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${code ?? signal}) with a call pending`));
      this.pending.clear();
    });
  }

  call<K extends keyof C & string>(cmd: K, args: C[K]["args"]): Promise<C[K]["result"]> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const req: Request = { id, cmd, args };
      if (!this.child.connected) {
        this.pending.delete(id);
        reject(new Error(`${this.name} is not running`));
        return;
      }
      this.child.send(req, (err) => {
        if (err) {
          this.pending.delete(id);
          reject(err);
        }
      });
    });
  }
}

/** Child side: serves commands from the parent; exits when the parent goes away. */
export function serve<C extends CommandMap>(handlers: { [K in keyof C]: (args: C[K]["args"]) => Promise<C[K]["result"]> | C[K]["result"] }): void {
  if (!process.send) throw new Error("this module runs as a child process of bench/fleet/main.ts");
  process.on("message", (m: unknown) => {
    if (!isRequest(m)) return;
    const handler = handlers[m.cmd as keyof C];
    const reply = (r: Response) => {
      if (process.connected) process.send?.(r);
    };
    if (!handler) {
      reply({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(m.args as never))
      .then(
        (result) => reply({ id: m.id, ok: true, result: result ?? null }),
        (err: unknown) => reply({ id: m.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
  // The orchestrator owns this process: without it there is nothing to do, and nothing may be left running.
  process.on("disconnect", () => process.exit(0));
}
