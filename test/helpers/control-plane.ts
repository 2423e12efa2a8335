// A real control-plane process for end-to-end tests: `ferry server` on loopback with ports chosen by the kernel,
// its own data directory, and short liveness settings so offline detection takes seconds.
import { mkdtempSync, readFileSync, rmSync, existsSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FERRY_BIN, run, start, type Proc } from "./processes.js";
import { waitFor } from "./wait.js";

export interface Runtime {
  pid: number;
  api: string;
  agentPort: number;
  enrolPort: number;
  caFingerprint: string;
}

export interface ControlPlaneOptions {
  dataDir?: string;
  databaseUrl?: string;
  heartbeatInterval?: string;
  extraArgs?: string[];
  ports?: { api: number; agent: number; enrol: number };
}

export class TestControlPlane {
  proc!: Proc;
  runtime!: Runtime;
  readonly dataDir: string;
  private readonly ownsDir: boolean;

  constructor(readonly opts: ControlPlaneOptions = {}) {
    this.ownsDir = !opts.dataDir;
    this.dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "ferry-cp-"));
  }

  static async start(opts: ControlPlaneOptions = {}): Promise<TestControlPlane> {
    const cp = new TestControlPlane(opts);
    await cp.boot(opts.ports);
    return cp;
  }

  /** Starts the process; ports default to 0 (kernel-chosen) the first time and to the same ports on restart. */
  async boot(ports?: { api: number; agent: number; enrol: number }): Promise<void> {
    const runtimeFile = join(this.dataDir, "runtime.json");
    if (existsSync(runtimeFile)) unlinkSync(runtimeFile);
    const args = [
      "server",
      "--data-dir", this.dataDir,
      "--api-listen", `127.0.0.1:${ports?.api ?? 0}`,
      "--agent-listen", `127.0.0.1:${ports?.agent ?? 0}`,
      "--enrol-listen", `127.0.0.1:${ports?.enrol ?? 0}`,
      "--heartbeat-interval", this.opts.heartbeatInterval ?? "250ms",
      "--log-level", "debug",
      // Test webhook receivers listen on loopback, which webhooks may reach only when allowed (docs/webhooks.md).
      "--webhook-allow", "127.0.0.1/32,::1/128",
      ...(this.opts.databaseUrl ? ["--database-url", this.opts.databaseUrl] : []),
      ...(this.opts.extraArgs ?? []),
    ];
    this.proc = start(FERRY_BIN, args);
    const proc = this.proc;
    this.runtime = await waitFor(
      "the control plane to write runtime.json",
      () => {
        if (proc.child.exitCode !== null) throw new Error(`ferry server exited with ${proc.child.exitCode}: ${proc.stderr}`);
        return existsSync(runtimeFile) ? (JSON.parse(readFileSync(runtimeFile, "utf8")) as Runtime) : undefined;
      },
      { timeoutMs: 60_000 },
    );
  }

  async restart(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const ports = { api: Number(new URL(this.runtime.api).port), agent: this.runtime.agentPort, enrol: this.runtime.enrolPort };
    await this.proc.kill(signal);
    await this.boot(ports);
  }

  get adminToken(): string {
    return readFileSync(join(this.dataDir, "admin-token"), "utf8").trim();
  }

  get enrolEndpoint(): string {
    return `127.0.0.1:${this.runtime.enrolPort}`;
  }

  get agentEndpoint(): string {
    return `127.0.0.1:${this.runtime.agentPort}`;
  }

  async api<T = unknown>(method: string, path: string, body?: unknown, token: string | null = this.adminToken): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = {};
    if (token) headers["authorization"] = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${this.runtime.api}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  }

  /** Runs the real `ferry` CLI against this server. */
  cli(args: string[], env: NodeJS.ProcessEnv = {}) {
    return run(FERRY_BIN, args, { FERRY_URL: this.runtime.api, FERRY_TOKEN: this.adminToken, ...env });
  }

  /** Creates the environment unless it exists (join tokens are only issued for existing environments). */
  async ensureEnvironment(name: string): Promise<void> {
    const r = await this.api("POST", "/api/v1/environments", { name });
    if (r.status !== 201 && r.status !== 409) throw new Error(`environment ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  async createJoinString(environment = "dev", extra: Record<string, unknown> = {}): Promise<string> {
    await this.ensureEnvironment(environment);
    const r = await this.api<{ joinString: string }>("POST", "/api/v1/join-tokens", { environment, ...extra });
    if (r.status !== 201) throw new Error(`join token: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.joinString;
  }

  async stop(): Promise<void> {
    await this.proc.kill("SIGTERM");
    if (this.ownsDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}
