// The Ferry control plane under test: the real `ferry server` process (control-plane/bin/ferry.js, built into dist)
// with its own temporary data directory on PGlite, every listener on 127.0.0.1 with a kernel-chosen port. The bench
// finds the ports in <data-dir>/runtime.json, as the end-to-end tests do (test/helpers/control-plane.ts).
import type { ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeJoinString } from "@ferry/pki";
import { ORPHAN_GUARD, spawnTracked, stopChild } from "./children.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const FERRY_BIN = join(ROOT, "control-plane/bin/ferry.js");

interface Runtime {
  pid: number;
  api: string;
  agentPort: number;
  enrolPort: number;
}

export interface FerryServerOptions {
  dataDir: string;
  heartbeatIntervalMs: number;
  /** Extra `ferry server` flags. */
  args: string[];
  /** The `ferry` entry point (default: this repository's build); a modified copy for experiments. */
  bin?: string;
  /** Write a V8 CPU profile of the server here (node --cpu-prof) when it stops. */
  cpuProfDir?: string;
  /** Extra node flags (e.g. a preload) and environment for the server process. */
  nodeArgs?: string[];
  env?: Record<string, string>;
  timeoutMs: number;
}

export class FerryServer {
  private constructor(
    readonly child: ChildProcess,
    readonly pid: number,
    readonly runtime: Runtime,
    readonly dataDir: string,
    readonly logFile: string,
  ) {}

  static async start(o: FerryServerOptions): Promise<FerryServer> {
    const runtimeFile = join(o.dataDir, "runtime.json");
    // A restart on the same data directory: the previous process's runtime.json must not be mistaken for this one's.
    if (existsSync(runtimeFile)) unlinkSync(runtimeFile);
    const logFile = join(o.dataDir, "server.log");
    const out = openSync(logFile, "a");
    const nodeArgs = ["--import", ORPHAN_GUARD];
    if (o.cpuProfDir) nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${o.cpuProfDir}`);
    if (o.nodeArgs) nodeArgs.push(...o.nodeArgs);
    const child = spawnTracked(
      process.execPath,
      [
        ...nodeArgs,
        o.bin ?? FERRY_BIN,
        "server",
        "--data-dir", o.dataDir,
        "--api-listen", "127.0.0.1:0",
        "--agent-listen", "127.0.0.1:0",
        "--enrol-listen", "127.0.0.1:0",
        "--heartbeat-interval", `${o.heartbeatIntervalMs}ms`,
        "--log-level", "info",
        ...o.args,
      ],
      // Logs go to a file, as a service's would; piping 15,000 connect lines through the bench would load it.
      { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: "", FERRY_LOG_FORMAT: "json", ...o.env }, stdio: ["ignore", out, out] },
    );
    closeSync(out);
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`ferry server exited (${child.exitCode ?? child.signalCode}); see ${logFile}:\n${tail(logFile)}`);
      }
      if (existsSync(runtimeFile)) {
        const rt = JSON.parse(readFileSync(runtimeFile, "utf8")) as Runtime;
        return new FerryServer(child, child.pid ?? rt.pid, rt, o.dataDir, logFile);
      }
      if (Date.now() > deadline) throw new Error(`ferry server did not start within ${o.timeoutMs} ms; see ${logFile}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  get caPem(): string {
    return readFileSync(join(this.dataDir, "ca", "ca.crt"), "utf8");
  }

  private get adminToken(): string {
    return readFileSync(join(this.dataDir, "admin-token"), "utf8").trim();
  }

  private async api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.adminToken}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${this.runtime.api}${path}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  /** A join token for `uses` enrolments; returns its secret. */
  async joinToken(uses: number): Promise<string> {
    // Join tokens are only issued for existing environments; a second call finds it there (409).
    await this.api("POST", "/api/v1/environments", { name: "bench" }).catch((err: unknown) => {
      if (!/\b409\b/.test(String(err))) throw err;
    });
    const r = await this.api<{ joinString: string }>("POST", "/api/v1/join-tokens", { environment: "bench", uses, ttl: "2h" });
    return decodeJoinString(r.joinString).token;
  }

  /** POST /api/v1/fleet/ping: the server writes Ping{nonce} on every stream it holds. */
  async pingFleet(): Promise<{ replicaSent: number }> {
    return this.api("POST", "/api/v1/fleet/ping");
  }

  /** GET /metrics (no authentication), as name{labels} -> value. */
  async metrics(): Promise<Map<string, number>> {
    const res = await fetch(`${this.runtime.api}/metrics`, { signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    const out = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue;
      const i = line.lastIndexOf(" ");
      out.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return out;
  }

  /** Graceful stop (SIGTERM, which also writes the CPU profile), SIGKILL after the grace period. */
  async stop(): Promise<void> {
    await stopChild(this.child, 30_000);
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-20).join("\n");
  } catch {
    return "";
  }
}
