// A protocol-faithful fake of the Nomad HTTP API, for the nomad driver's tests (docs/drivers/nomad.md says what is
// faked and where each behaviour comes from: the Nomad HTTP API reference and the Job specification's update block).
//
// Wire: PascalCase JSON; durations in nanoseconds; `X-Nomad-Token` (403 "Permission denied" without a token that
// may do the call); errors as plain text with their status; every read answers `X-Nomad-Index` and supports blocking
// queries (`?index=N&wait=…`, answered when the index passes N or the wait ends); `?namespace=` and `?region=`.
// An RPC refusal that carries no HTTP code (check-and-set, a promotion that is not possible) is a 500 with the error's
// text, as Nomad's HTTP layer answers it.
//
// Behaviour: one monotonic index for every write; a register bumps the job's Version only when its spec changed;
// each register makes an evaluation (pending, then complete a tick later) and, for a group with an update block, a
// deployment that appears when the evaluation is processed; canaries (placed beside the old allocations, then
// "requires manual promotion", then promoted, or auto-promoted) → rolling replacement within max_parallel →
// successful, and the version marked stable; an unhealthy allocation fails the deployment, and auto_revert registers
// the latest stable version again as a new version; progress_deadline fails a deployment that stops making progress;
// a newer register cancels a running deployment. Scriptable: failing images, ticks a new allocation takes to be
// healthy, and 429 answers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";

type Json = Record<string, unknown>;
const NS = 1_000_000;

export const DEPLOYMENT_DESCRIPTIONS = {
  running: "Deployment is running",
  needsPromotion: "Deployment is running but requires manual promotion",
  autoPromotion: "Deployment is running pending automatic promotion",
  successful: "Deployment completed successfully",
  newerJob: "Cancelled due to newer version of job",
  unhealthy: "Failed due to unhealthy allocations",
  progressDeadline: "Failed due to progress deadline",
  failedByUser: "Deployment marked as failed",
} as const;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface UpdateBlock {
  MaxParallel: number;
  Canary: number;
  AutoPromote: boolean;
  AutoRevert: boolean;
  MinHealthyTime: number;
  HealthyDeadline: number;
  ProgressDeadline: number;
  HealthCheck: string;
  Stagger: number;
}

interface Alloc {
  ID: string;
  EvalID: string;
  Name: string;
  NodeID: string;
  Namespace: string;
  JobID: string;
  JobVersion: number;
  TaskGroup: string;
  DesiredStatus: "run" | "stop";
  ClientStatus: "pending" | "running" | "failed" | "complete";
  DeploymentID: string;
  DeploymentStatus: { Healthy: boolean | null; Canary: boolean; Timestamp: string } | null;
  CreateIndex: number;
  ModifyIndex: number;
  CreateTime: number;
  ModifyTime: number;
  age: number;
  willFail: boolean;
}

interface GroupState {
  AutoRevert: boolean;
  AutoPromote: boolean;
  ProgressDeadline: number;
  RequireProgressBy: string;
  Promoted: boolean;
  PlacedCanaries: string[];
  DesiredCanaries: number;
  DesiredTotal: number;
  PlacedAllocs: number;
  HealthyAllocs: number;
  UnhealthyAllocs: number;
}

interface Deployment {
  ID: string;
  Namespace: string;
  JobID: string;
  JobVersion: number;
  JobModifyIndex: number;
  JobSpecModifyIndex: number;
  JobCreateIndex: number;
  IsMultiregion: boolean;
  TaskGroups: Record<string, GroupState>;
  Status: "running" | "successful" | "failed" | "cancelled" | "paused";
  StatusDescription: string;
  CreateIndex: number;
  ModifyIndex: number;
  requireProgressByMs: Record<string, number>;
}

interface Evaluation {
  ID: string;
  Namespace: string;
  Priority: number;
  Type: string;
  TriggeredBy: string;
  JobID: string;
  JobModifyIndex: number;
  DeploymentID?: string;
  Status: "pending" | "complete" | "failed" | "canceled";
  StatusDescription: string;
  CreateIndex: number;
  ModifyIndex: number;
  CreateTime: number;
  ModifyTime: number;
  job: Json;
}

interface JobRecord {
  versions: Json[];
  deployments: Deployment[];
}

export interface NomadFakeOptions {
  region?: string;
  /** secret id → "write" | "read"; when set, ACLs are enforced. */
  tokens?: Record<string, "write" | "read">;
  /** Ticks a new allocation takes to be healthy (or to fail). Default 1. */
  convergeTicks?: number;
  /** When set, the clock advances one tick every tickMs of real time. */
  tickMs?: number;
}

/** Fields that do not make a job's spec differ (Nomad's Job.SpecChanged ignores these). */
const NOT_SPEC = ["Version", "Stable", "Status", "StatusDescription", "CreateIndex", "ModifyIndex", "JobModifyIndex", "SubmitTime"];
const MAX_BLOCKING_WAIT_MS = 10_000;

export class NomadFake {
  readonly region: string;
  readonly #tokens: Map<string, "write" | "read"> | undefined;
  readonly #jobs = new Map<string, JobRecord>();
  readonly #allocs = new Map<string, Alloc>();
  readonly #evals = new Map<string, Evaluation>();
  readonly #waiters = new Set<() => void>();
  readonly #later: (() => void)[] = [];
  #server: Server | undefined;
  #timer: NodeJS.Timeout | undefined;
  #index = 10;
  #rateLimited = 0;
  /** ms since the epoch; each tick is one second. */
  now = Date.UTC(2026, 11, 4, 12, 0, 0);
  convergeTicks: number;
  /** Images (as in config.image) whose allocations fail instead of becoming healthy. */
  readonly failingImages = new Set<string>();
  /** Every request, for tests that check what a driver called. */
  readonly calls: { method: string; path: string; body?: Json }[] = [];

  constructor(opts: NomadFakeOptions = {}) {
    this.region = opts.region ?? "global";
    this.#tokens = opts.tokens ? new Map(Object.entries(opts.tokens)) : undefined;
    this.convergeTicks = opts.convergeTicks ?? 1;
    if (opts.tickMs) {
      this.#timer = setInterval(() => this.tick(), opts.tickMs);
      this.#timer.unref();
    }
  }

  /** Listens on loopback; with `tls`, over HTTPS (and with `tls.ca`, requiring a client certificate, as Nomad's mTLS). */
  async listen(tls?: { key: string; cert: string; ca?: string }): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#handle(req, res);
    this.#server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, handler) : createServer(handler);
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    return `${tls ? "https" : "http"}://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    for (const w of this.#waiters) w();
    if (!this.#server) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server!.close(() => resolve()));
  }

  /** The next `n` requests are answered 429. */
  rateLimit(n: number): void {
    this.#rateLimited = n;
  }

  get index(): number {
    return this.#index;
  }

  /** Registers a job and runs its first deployment to the end, as a job already serving. */
  seedJob(job: Json, namespace = "default"): void {
    this.#register({ ...job, Namespace: namespace }, {});
    for (let i = 0; i < 200 && this.#activeDeployment(namespace, job["ID"] as string); i++) this.tick();
    for (let i = 0; i < 5; i++) this.tick();
  }

  job(id: string, namespace = "default"): Json | undefined {
    return this.#jobs.get(`${namespace}/${id}`)?.versions.at(-1);
  }

  deployments(id: string, namespace = "default"): Deployment[] {
    return this.#jobs.get(`${namespace}/${id}`)?.deployments ?? [];
  }

  allocations(id: string, namespace = "default"): Alloc[] {
    return [...this.#allocs.values()].filter((a) => a.JobID === id && a.Namespace === namespace);
  }

  /**
   * Scripts a crash of a running allocation after its deployment health was set (a canary that fails during Ferry's
   * bake): as in Nomad, its ClientStatus turns "failed" and its DeploymentStatus keeps the health it was given once.
   */
  failAllocation(id: string): void {
    const a = this.#allocs.get(id);
    if (!a) throw new Error(`no allocation ${id}`);
    a.ClientStatus = "failed";
    a.ModifyIndex = this.#bump();
    a.ModifyTime = this.now * NS;
    this.#wake();
  }

  tick(steps = 1): void {
    for (let i = 0; i < steps; i++) {
      this.now += 1000;
      let changed = false;
      // A deployment appears a tick after its evaluation completes, as it does when the scheduler's plan is applied
      // after the evaluation is acknowledged: followers must wait for it rather than expect it at once.
      for (const later of this.#later.splice(0)) {
        later();
        changed = true;
      }
      for (const ev of this.#evals.values()) {
        if (ev.Status !== "pending") continue;
        const index = this.#bump();
        ev.Status = "complete";
        ev.ModifyIndex = index;
        ev.ModifyTime = this.now * NS;
        this.#later.push(() => this.#process(ev));
        changed = true;
      }
      for (const [key, rec] of this.#jobs) {
        const d = rec.deployments.at(-1);
        if (d?.Status === "running" && this.#step(key, rec, d)) changed = true;
      }
      if (changed) this.#wake();
    }
  }

  // ── HTTP ───────────────────────────────────────────────────────────────────────────────────────────────────

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://fake");
    const text = (status: number, body: string): void => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
      res.end(body);
    };
    let body: Json | undefined;
    if (chunks.length > 0) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Json;
      } catch (err) {
        return text(400, `failed to parse request: ${(err as Error).message}`);
      }
    }
    this.calls.push({ method: req.method ?? "GET", path: url.pathname, ...(body ? { body } : {}) });
    if (this.#rateLimited > 0) {
      this.#rateLimited--;
      return text(429, "Too many requests");
    }
    try {
      const write = req.method === "POST" || req.method === "PUT" || req.method === "DELETE";
      this.#authorize(req.headers["x-nomad-token"], write);
      const region = url.searchParams.get("region");
      if (region && region !== this.region) throw new HttpError(500, `No path to region`);
      const namespace = url.searchParams.get("namespace") ?? (body?.["Job"] as Json | undefined)?.["Namespace"] as string | undefined ?? "default";
      if (!write) {
        const min = Number(url.searchParams.get("index") ?? 0);
        if (min > 0 && this.#index <= min) await this.#block(min, parseWait(url.searchParams.get("wait")));
      }
      const out = this.#route(req.method ?? "GET", url.pathname, namespace, body ?? {});
      const payload = JSON.stringify(out);
      res.writeHead(200, { "content-type": "application/json", "x-nomad-index": String(this.#index), "x-nomad-knownleader": "true", "x-nomad-lastcontact": "0" });
      res.end(payload);
    } catch (err) {
      if (err instanceof HttpError) return text(err.status, err.message);
      return text(500, (err as Error).message);
    }
  }

  #authorize(token: string | string[] | undefined, write: boolean): void {
    if (!this.#tokens) return;
    const role = typeof token === "string" ? this.#tokens.get(token) : undefined;
    if (!role || (write && role !== "write")) throw new HttpError(403, "Permission denied");
  }

  #block(min: number, waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const check = (): void => {
        if (this.#index > min) done();
      };
      const timer = setTimeout(done, Math.min(waitMs, MAX_BLOCKING_WAIT_MS));
      this.#waiters.add(check);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  #bump(): number {
    return ++this.#index;
  }

  #route(method: string, path: string, namespace: string, body: Json): unknown {
    let m: RegExpExecArray | null;
    if (method === "GET" && path === "/v1/status/leader") return "127.0.0.1:4647";
    if (method === "GET" && path === "/v1/agent/self") return { config: { Region: this.region, Version: { Version: "1.9.0" } }, member: { Name: "fake" } };
    if (method === "GET" && path === "/v1/jobs") {
      return [...this.#jobs.entries()].filter(([k]) => k.startsWith(`${namespace}/`)).map(([, r]) => stub(r.versions.at(-1)!));
    }
    if (method === "POST" && path === "/v1/jobs") return this.#registerRequest(namespace, body, undefined);
    if ((m = /^\/v1\/job\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]!);
      if (method === "GET") return this.#current(namespace, id);
      if (method === "POST" || method === "PUT") return this.#registerRequest(namespace, body, id);
    }
    if ((m = /^\/v1\/job\/([^/]+)\/(versions|allocations|deployment|deployments|evaluations|revert)$/.exec(path))) {
      const id = decodeURIComponent(m[1]!);
      const rec = this.#record(namespace, id);
      switch (m[2]) {
        case "versions":
          return { Versions: [...rec.versions].reverse(), Diffs: null };
        case "allocations":
          return this.allocations(id, namespace).map(viewAlloc);
        case "deployment":
          return rec.deployments.at(-1) ? viewDeployment(rec.deployments.at(-1)!) : null;
        case "deployments":
          return [...rec.deployments].reverse().map(viewDeployment);
        case "evaluations":
          return [...this.#evals.values()].filter((e) => e.JobID === id && e.Namespace === namespace).map(viewEval);
        case "revert":
          if (method !== "POST" && method !== "PUT") break;
          return this.#revert(namespace, id, body);
      }
    }
    if (method === "GET" && (m = /^\/v1\/evaluation\/([^/]+)$/.exec(path))) {
      const ev = this.#evals.get(m[1]!);
      if (!ev) throw new HttpError(404, "eval not found");
      return viewEval(ev);
    }
    if (method === "GET" && (m = /^\/v1\/deployment\/([^/]+)$/.exec(path))) return viewDeployment(this.#deployment(m[1]!));
    if ((method === "POST" || method === "PUT") && (m = /^\/v1\/deployment\/(promote|fail)\/([^/]+)$/.exec(path))) {
      const d = this.#deployment(m[2]!);
      if (body["DeploymentID"] !== undefined && body["DeploymentID"] !== d.ID) throw new HttpError(400, "deployment ID in the path and the body differ");
      return m[1] === "promote" ? this.#promote(d, body) : this.#fail(d, DEPLOYMENT_DESCRIPTIONS.failedByUser);
    }
    throw new HttpError(404, `Invalid URL path: ${path}`);
  }

  #record(namespace: string, id: string): JobRecord {
    const rec = this.#jobs.get(`${namespace}/${id}`);
    if (!rec) throw new HttpError(404, "job not found");
    return rec;
  }

  #current(namespace: string, id: string): Json {
    return structuredClone(this.#record(namespace, id).versions.at(-1)!);
  }

  #deployment(id: string): Deployment {
    for (const r of this.#jobs.values()) for (const d of r.deployments) if (d.ID === id) return d;
    throw new HttpError(404, "deployment not found");
  }

  #activeDeployment(namespace: string, id: string): Deployment | undefined {
    const d = this.#jobs.get(`${namespace}/${id}`)?.deployments.at(-1);
    return d?.Status === "running" ? d : undefined;
  }

  // ── register, revert ───────────────────────────────────────────────────────────────────────────────────────

  #registerRequest(namespace: string, body: Json, pathId: string | undefined): Json {
    const job = body["Job"] as Json | undefined;
    if (!job || typeof job !== "object") throw new HttpError(400, "Job must be specified");
    if (pathId !== undefined && job["ID"] !== pathId) throw new HttpError(400, "Job ID does not match name");
    return this.#register({ ...job, Namespace: (job["Namespace"]) ?? namespace }, body);
  }

  #register(job: Json, opts: Json): Json {
    const id = job["ID"];
    if (typeof id !== "string" || id === "") throw new HttpError(400, "Missing job ID");
    const namespace = job["Namespace"] as string;
    const groups = job["TaskGroups"];
    if (!Array.isArray(groups) || groups.length === 0) throw new HttpError(500, "1 error occurred:\n\t* Missing job task groups\n\n");
    for (const g of groups as Json[]) {
      const tasks = g["Tasks"];
      if (!Array.isArray(tasks) || tasks.length === 0) throw new HttpError(500, `1 error occurred:\n\t* Task group ${String(g["Name"])} validation failed: Missing tasks for task group\n\n`);
      for (const t of tasks as Json[]) {
        if (t["Driver"] === "docker" && typeof (t["Config"] as Json | undefined)?.["image"] !== "string") throw new HttpError(500, `1 error occurred:\n\t* Task ${String(t["Name"])}: missing required attribute "image"\n\n`);
      }
    }
    const key = `${namespace}/${id}`;
    const rec = this.#jobs.get(key);
    const current = rec?.versions.at(-1);
    if (opts["EnforceIndex"] === true) {
      const want = Number(opts["JobModifyIndex"] ?? 0);
      const have = Number(current?.["JobModifyIndex"] ?? 0);
      if (want === 0 && current) throw new HttpError(500, `Enforcing job modify index ${want}: job already exists`);
      if (want !== 0 && want !== have) throw new HttpError(500, `Enforcing job modify index ${want}: job exists with conflicting job modify index: ${have}`);
    }
    const index = this.#bump();
    const changed = !current || specOf(current) !== specOf(normalise(job));
    let stored: Json;
    if (changed) {
      stored = {
        ...normalise(job),
        Region: this.region,
        Version: current ? (current["Version"] as number) + 1 : 0,
        Stable: false,
        Status: "pending",
        CreateIndex: current?.["CreateIndex"] ?? index,
        ModifyIndex: index,
        JobModifyIndex: index,
        SubmitTime: this.now * NS,
      };
      const r = rec ?? { versions: [], deployments: [] };
      r.versions.push(stored);
      this.#jobs.set(key, r);
      // A newer version cancels the deployment of the one before (Nomad's deployment watcher).
      const running = r.deployments.at(-1);
      if (running?.Status === "running") {
        running.Status = "cancelled";
        running.StatusDescription = DEPLOYMENT_DESCRIPTIONS.newerJob;
        running.ModifyIndex = index;
      }
    } else {
      // Same spec: no new version (Job.SpecChanged), but the register still makes an evaluation.
      stored = current!;
      stored["ModifyIndex"] = index;
    }
    const ev: Evaluation = {
      ID: randomUUID(),
      Namespace: namespace,
      Priority: (stored["Priority"] as number | undefined) ?? 50,
      Type: (stored["Type"] as string | undefined) ?? "service",
      TriggeredBy: "job-register",
      JobID: id,
      JobModifyIndex: stored["JobModifyIndex"] as number,
      Status: "pending",
      StatusDescription: "",
      CreateIndex: index,
      ModifyIndex: index,
      CreateTime: this.now * NS,
      ModifyTime: this.now * NS,
      job: stored,
    };
    this.#evals.set(ev.ID, ev);
    this.#wake();
    return { EvalID: ev.ID, EvalCreateIndex: index, JobModifyIndex: stored["JobModifyIndex"], Warnings: "", Index: index, LastIndex: 0, KnownLeader: false, LastContact: 0 };
  }

  #revert(namespace: string, id: string, body: Json): Json {
    const rec = this.#record(namespace, id);
    const version = body["JobVersion"];
    const current = rec.versions.at(-1)!;
    if (typeof version !== "number") throw new HttpError(400, "missing job version");
    if (body["EnforcePriorVersion"] !== undefined && body["EnforcePriorVersion"] !== null && body["EnforcePriorVersion"] !== current["Version"]) {
      throw new HttpError(500, `current job has version ${String(current["Version"])}; enforcing version ${JSON.stringify(body["EnforcePriorVersion"])}`);
    }
    if (version === current["Version"]) throw new HttpError(500, `can't revert to current version`);
    const target = rec.versions.find((v) => v["Version"] === version);
    if (!target) throw new HttpError(500, `job ${id} at version ${version} not found`);
    return this.#register({ ...stripIndexes(target), Namespace: namespace }, {});
  }

  // ── the scheduler and the deployment watcher ──────────────────────────────────────────────────────────────

  #process(ev: Evaluation): void {
    const index = this.#bump();
    const key = `${ev.Namespace}/${ev.JobID}`;
    const rec = this.#jobs.get(key)!;
    const job = rec.versions.at(-1)!;
    if (job["JobModifyIndex"] !== ev.JobModifyIndex) return;
    const version = job["Version"] as number;
    const existing = rec.deployments.find((d) => d.JobVersion === version && d.JobSpecModifyIndex === job["JobModifyIndex"]);
    if (existing) return;
    job["Status"] = "running";
    const groups = job["TaskGroups"] as Json[];
    // An allocation whose group is unchanged in the new version is updated in place (its JobVersion moves on, it is
    // not replaced): how a revert to the spec that already runs finishes without a rollout.
    for (const a of this.allocations(ev.JobID, ev.Namespace)) {
      if (a.DesiredStatus !== "run" || a.JobVersion === version) continue;
      const was = rec.versions.find((v) => v["Version"] === a.JobVersion);
      const before = (was?.["TaskGroups"] as Json[] | undefined)?.find((g) => g["Name"] === a.TaskGroup);
      const now = groups.find((g) => g["Name"] === a.TaskGroup);
      if (before && now && JSON.stringify(before) === JSON.stringify(now)) {
        a.JobVersion = version;
        a.ModifyIndex = index;
      }
    }
    const needs = groups.some((g) => this.allocations(ev.JobID, ev.Namespace).filter((a) => a.TaskGroup === g["Name"] && a.DesiredStatus === "run" && a.JobVersion === version).length < (g["Count"] as number));
    if (!needs) {
      job["Stable"] = true;
      return;
    }
    const d: Deployment = {
      ID: randomUUID(),
      Namespace: ev.Namespace,
      JobID: ev.JobID,
      JobVersion: version,
      JobModifyIndex: job["JobModifyIndex"],
      JobSpecModifyIndex: job["JobModifyIndex"],
      JobCreateIndex: job["CreateIndex"] as number,
      IsMultiregion: false,
      TaskGroups: {},
      Status: "running",
      StatusDescription: DEPLOYMENT_DESCRIPTIONS.running,
      CreateIndex: index,
      ModifyIndex: index,
      requireProgressByMs: {},
    };
    const first = !this.allocations(ev.JobID, ev.Namespace).some((a) => a.DesiredStatus === "run");
    for (const g of groups) {
      const u = g["Update"] as UpdateBlock;
      const name = g["Name"] as string;
      d.requireProgressByMs[name] = u.ProgressDeadline > 0 ? this.now + u.ProgressDeadline / NS : Number.MAX_SAFE_INTEGER;
      d.TaskGroups[name] = {
        AutoRevert: u.AutoRevert,
        AutoPromote: u.AutoPromote,
        ProgressDeadline: u.ProgressDeadline,
        RequireProgressBy: new Date(Math.min(d.requireProgressByMs[name], 8.64e15)).toISOString(),
        Promoted: false,
        PlacedCanaries: [],
        // Canaries are placed only when allocations of an older version exist to be replaced.
        DesiredCanaries: first ? 0 : u.Canary,
        DesiredTotal: g["Count"] as number,
        PlacedAllocs: 0,
        HealthyAllocs: 0,
        UnhealthyAllocs: 0,
      };
    }
    ev.DeploymentID = d.ID;
    rec.deployments.push(d);
  }

  /** One step of a running deployment; true when something changed. */
  #step(key: string, rec: JobRecord, d: Deployment): boolean {
    const job = rec.versions.find((v) => v["Version"] === d.JobVersion)!;
    let changed = false;
    const mine = () => [...this.#allocs.values()].filter((a) => a.DeploymentID === d.ID && a.DesiredStatus === "run");
    // Allocations move on.
    for (const a of mine()) {
      if (a.DeploymentStatus?.Healthy !== null && a.DeploymentStatus?.Healthy !== undefined) continue;
      a.age++;
      if (a.age < this.convergeTicks) continue;
      const g = d.TaskGroups[a.TaskGroup]!;
      a.ModifyIndex = this.#bump();
      a.ModifyTime = this.now * NS;
      changed = true;
      if (a.willFail) {
        a.ClientStatus = "failed";
        a.DeploymentStatus = { ...a.DeploymentStatus!, Healthy: false, Timestamp: new Date(this.now).toISOString() };
        g.UnhealthyAllocs++;
      } else {
        a.ClientStatus = "running";
        a.DeploymentStatus = { ...a.DeploymentStatus!, Healthy: true, Timestamp: new Date(this.now).toISOString() };
        g.HealthyAllocs++;
        const u = (job["TaskGroups"] as Json[]).find((x) => x["Name"] === a.TaskGroup)!["Update"] as UpdateBlock;
        if (u.ProgressDeadline > 0) {
          d.requireProgressByMs[a.TaskGroup] = this.now + u.ProgressDeadline / NS;
          g.RequireProgressBy = new Date(d.requireProgressByMs[a.TaskGroup]!).toISOString();
        }
      }
    }
    for (const [name, g] of Object.entries(d.TaskGroups)) {
      if (g.UnhealthyAllocs > 0) return this.#fail(d, DEPLOYMENT_DESCRIPTIONS.unhealthy), true;
      if (this.now > d.requireProgressByMs[name]!) return this.#fail(d, DEPLOYMENT_DESCRIPTIONS.progressDeadline), true;
    }
    let done = true;
    let needsPromotion = false;
    for (const tg of job["TaskGroups"] as Json[]) {
      const name = tg["Name"] as string;
      const g = d.TaskGroups[name]!;
      const u = tg["Update"] as UpdateBlock;
      const groupAllocs = () => [...this.#allocs.values()].filter((a) => a.JobID === d.JobID && a.Namespace === d.Namespace && a.TaskGroup === name && a.DesiredStatus === "run");
      const ours = groupAllocs().filter((a) => a.DeploymentID === d.ID);
      const canaryPhase = g.DesiredCanaries > 0 && !g.Promoted;
      if (canaryPhase) {
        while (g.PlacedCanaries.length < g.DesiredCanaries) {
          const a = this.#place(d, job, tg, true);
          g.PlacedCanaries.push(a.ID);
          changed = true;
        }
        const healthy = g.PlacedCanaries.every((id) => this.#allocs.get(id)?.DeploymentStatus?.Healthy === true);
        if (healthy && g.AutoPromote) {
          g.Promoted = true;
          changed = true;
        } else {
          done = false;
          if (healthy) needsPromotion = true;
          continue;
        }
      }
      // Rolling: replace old allocations, at most max_parallel new ones not yet healthy at once.
      const inFlight = ours.filter((a) => a.DeploymentStatus?.Healthy !== true).length;
      const olds = groupAllocs().filter((a) => a.DeploymentID !== d.ID);
      const missing = (tg["Count"] as number) - ours.length;
      let room = Math.max(0, Math.max(1, u.MaxParallel) - inFlight);
      // Promoted canaries take the place of as many old allocations.
      const surplus = olds.length + ours.length - (tg["Count"] as number);
      for (const a of olds.slice(0, Math.max(0, Math.min(surplus, olds.length)))) {
        if (ours.filter((x) => x.DeploymentStatus?.Healthy === true).length <= 0 && missing > 0) break;
        this.#stop(a);
        changed = true;
      }
      for (let n = 0; n < missing && room > 0; n++, room--) {
        const old = groupAllocs().find((a) => a.DeploymentID !== d.ID);
        if (old) this.#stop(old);
        this.#place(d, job, tg, false);
        changed = true;
      }
      const now = groupAllocs();
      if (!(now.length === (tg["Count"] as number) && now.every((a) => a.DeploymentID === d.ID && a.DeploymentStatus?.Healthy === true))) done = false;
    }
    const description = needsPromotion ? DEPLOYMENT_DESCRIPTIONS.needsPromotion : DEPLOYMENT_DESCRIPTIONS.running;
    if (d.StatusDescription !== description && !done) {
      d.StatusDescription = description;
      changed = true;
    }
    if (done) {
      d.Status = "successful";
      d.StatusDescription = DEPLOYMENT_DESCRIPTIONS.successful;
      job["Stable"] = true;
      job["Status"] = "running";
      changed = true;
    }
    if (changed) {
      d.ModifyIndex = this.#bump();
      void key;
    }
    return changed;
  }

  #place(d: Deployment, job: Json, tg: Json, canary: boolean): Alloc {
    const index = this.#bump();
    const images = (tg["Tasks"] as Json[]).map((t) => (t["Config"] as Json | undefined)?.["image"] as string | undefined);
    const n = [...this.#allocs.values()].filter((a) => a.JobID === d.JobID && a.TaskGroup === tg["Name"]).length;
    const a: Alloc = {
      ID: randomUUID(),
      EvalID: "",
      Name: `${d.JobID}.${String(tg["Name"])}[${n}]`,
      NodeID: "fake-node-1",
      Namespace: d.Namespace,
      JobID: d.JobID,
      JobVersion: job["Version"] as number,
      TaskGroup: tg["Name"] as string,
      DesiredStatus: "run",
      ClientStatus: "pending",
      DeploymentID: d.ID,
      DeploymentStatus: { Healthy: null, Canary: canary, Timestamp: new Date(this.now).toISOString() },
      CreateIndex: index,
      ModifyIndex: index,
      CreateTime: this.now * NS,
      ModifyTime: this.now * NS,
      age: 0,
      willFail: images.some((i) => i !== undefined && this.failingImages.has(i)),
    };
    this.#allocs.set(a.ID, a);
    d.TaskGroups[a.TaskGroup]!.PlacedAllocs++;
    return a;
  }

  #stop(a: Alloc): void {
    a.DesiredStatus = "stop";
    a.ClientStatus = "complete";
    a.ModifyIndex = this.#bump();
  }

  #promote(d: Deployment, body: Json): Json {
    if (d.Status !== "running") throw new HttpError(500, `can't promote terminal deployment`);
    const groups = body["All"] === true ? Object.keys(d.TaskGroups) : ((body["Groups"] as string[] | undefined) ?? []);
    if (groups.length === 0) throw new HttpError(400, "must specify at least one group or All");
    for (const name of groups) {
      const g = d.TaskGroups[name];
      if (!g) throw new HttpError(500, `deployment has no task group ${JSON.stringify(name)}`);
      if (g.DesiredCanaries === 0) continue;
      const healthy = g.PlacedCanaries.filter((id) => this.#allocs.get(id)?.DeploymentStatus?.Healthy === true).length;
      if (healthy < g.DesiredCanaries) throw new HttpError(500, `Task group ${JSON.stringify(name)} has ${healthy}/${g.DesiredCanaries} healthy allocations`);
    }
    if (!Object.values(d.TaskGroups).some((g) => g.DesiredCanaries > 0)) throw new HttpError(500, "no canaries to promote");
    for (const name of groups) d.TaskGroups[name]!.Promoted = true;
    const index = this.#bump();
    d.ModifyIndex = index;
    d.StatusDescription = DEPLOYMENT_DESCRIPTIONS.running;
    this.#wake();
    return { EvalID: randomUUID(), EvalCreateIndex: index, DeploymentModifyIndex: index, Index: index };
  }

  #fail(d: Deployment, description: string): Json {
    if (d.Status !== "running" && d.Status !== "paused") throw new HttpError(500, `can't fail terminal deployment`);
    const index = this.#bump();
    d.Status = "failed";
    d.StatusDescription = description;
    d.ModifyIndex = index;
    // Canaries of a failed deployment are stopped; the allocations that served keep serving.
    for (const a of this.#allocs.values()) if (a.DeploymentID === d.ID && (a.DeploymentStatus?.Canary || a.ClientStatus === "failed")) this.#stop(a);
    const rec = this.#jobs.get(`${d.Namespace}/${d.JobID}`)!;
    if (Object.values(d.TaskGroups).some((g) => g.AutoRevert)) {
      const stable = [...rec.versions].reverse().find((v) => v["Stable"] === true && (v["Version"] as number) < d.JobVersion);
      if (stable) {
        d.StatusDescription = `${description} - rolling back to job version ${String(stable["Version"])}`;
        this.#register({ ...stripIndexes(stable), Namespace: d.Namespace }, {});
      } else {
        d.StatusDescription = `${description} - no stable job version to auto revert to`;
      }
    }
    this.#wake();
    return { EvalID: randomUUID(), EvalCreateIndex: index, DeploymentModifyIndex: index, Index: index };
  }
}

/** Fills in what Nomad's job canonicalisation fills in: the update block on each group, durations in ns. */
function normalise(job: Json): Json {
  const out = structuredClone(job);
  const jobUpdate = (out["Update"] ?? {}) as Partial<UpdateBlock>;
  out["Type"] ??= "service";
  out["Priority"] ??= 50;
  out["Meta"] ??= null;
  for (const g of (out["TaskGroups"] as Json[]) ?? []) {
    g["Count"] ??= 1;
    const u = { ...jobUpdate, ...((g["Update"] ?? {}) as Partial<UpdateBlock>) };
    g["Update"] = {
      Stagger: u.Stagger ?? 30_000 * NS,
      MaxParallel: u.MaxParallel ?? 1,
      HealthCheck: u.HealthCheck ?? "checks",
      MinHealthyTime: u.MinHealthyTime ?? 10_000 * NS,
      HealthyDeadline: u.HealthyDeadline ?? 300_000 * NS,
      ProgressDeadline: u.ProgressDeadline ?? 600_000 * NS,
      AutoRevert: u.AutoRevert ?? false,
      AutoPromote: u.AutoPromote ?? false,
      Canary: u.Canary ?? 0,
    } satisfies UpdateBlock;
  }
  return out;
}

function specOf(job: Json): string {
  const copy: Json = { ...job };
  for (const k of NOT_SPEC) delete copy[k];
  delete copy["Region"];
  return JSON.stringify(copy);
}

function stripIndexes(job: Json): Json {
  const copy = structuredClone(job);
  for (const k of NOT_SPEC) delete copy[k];
  return copy;
}

function stub(job: Json): Json {
  return { ID: job["ID"], Name: job["Name"] ?? job["ID"], Namespace: job["Namespace"], Type: job["Type"], Status: job["Status"], Version: job["Version"], Stable: job["Stable"], JobModifyIndex: job["JobModifyIndex"], ModifyIndex: job["ModifyIndex"], CreateIndex: job["CreateIndex"] };
}

function viewAlloc(a: Alloc): Json {
  const { age: _age, willFail: _willFail, ...rest } = a;
  return structuredClone(rest);
}

function viewDeployment(d: Deployment): Json {
  const { requireProgressByMs: _r, ...rest } = d;
  return structuredClone(rest);
}

function viewEval(e: Evaluation): Json {
  const { job: _job, ...rest } = e;
  return structuredClone(rest);
}

function parseWait(s: string | null): number {
  if (!s) return 5 * 60_000;
  const m = /^(\d+)(ms|s|m)$/.exec(s);
  if (!m) return 5 * 60_000;
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}
