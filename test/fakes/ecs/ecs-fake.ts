// A protocol-faithful fake of the Amazon ECS API, for the ecs driver's tests (docs/drivers/ecs.md says what is faked).
//
// Wire: AWS JSON 1.1 — POST / with `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Action>` and
// `Content-Type: application/x-amz-json-1.1`; every request SigV4-signed (sigv4.ts); timestamps as epoch seconds;
// an `x-amzn-RequestId` on every answer; errors as HTTP 400 `{"__type": "<Exception>", "message": "…"}` (ECS API
// Reference, "Common Errors" and each action's Errors section; the SDK's model in @aws-sdk/client-ecs is the shape
// of every member). A missing service is not an error: DescribeServices lists it in failures[] with reason MISSING.
//
// Behaviour: task-definition revisions only increase (a deregistered revision stays describable, INACTIVE); a service
// deployment launches and stops tasks within maximumPercent / minimumHealthyPercent, one step per clock tick; tasks
// whose image is marked failing stop, and the deployment circuit breaker fails the deployment at its threshold
// (min(200, max(3, ceil(desiredCount / 2))), per the developer guide) and, with rollback, starts a deployment of the
// last completed task definition. Scriptable: throttling and access denial per action, slow convergence (ticks a task
// takes to start), and a wrong-digest mode in which running tasks report another imageDigest than asked for.
//
// ECS's own deployment strategies (BLUE_GREEN, LINEAR, CANARY: DeploymentConfiguration.strategy) are modelled as
// service deployments (ECS API Reference: ServiceDeployment, DescribeServiceDeployments, ListServiceDeployments,
// StopServiceDeployment; Developer Guide: "Amazon ECS blue/green deployments", "Lifecycle hooks for Amazon ECS service
// deployments"): each update that changes the task definition starts one, with a source and a target service revision,
// that walks the lifecycle stages RECONCILE_SERVICE → PRE_SCALE_UP → SCALE_UP → POST_SCALE_UP → TEST_TRAFFIC_SHIFT →
// POST_TEST_TRAFFIC_SHIFT → PRODUCTION_TRAFFIC_SHIFT → POST_PRODUCTION_TRAFFIC_SHIFT → BAKE_TIME → CLEAN_UP and ends
// SUCCESSFUL; the source revision's tasks run until the bake time is over. LINEAR shifts production traffic by
// stepPercent every stepBakeTimeInMinutes, CANARY canaryPercent then the rest after canaryBakeTimeInMinutes. Lifecycle
// hooks (AWS_LAMBDA) hold a stage until every hook of it answered: the fake "is" Lambda through `lambdas`, a registry of
// functions by ARN that receive the payload ECS sends and answer {hookStatus, callBackDelay?, hookDetails?}; IN_PROGRESS
// is asked again after callBackDelay (default 30) seconds of the fake's clock, FAILED, an invalid answer, a throw or a
// missing function roll back. A rollback (StopServiceDeployment ROLLBACK, a FAILED hook, the circuit breaker) goes
// ROLLBACK_REQUESTED → ROLLBACK_IN_PROGRESS → ROLLBACK_SUCCESSFUL, traffic back on the source revision. One fake second
// passes per tick, so minutes of bake are 60 ticks each. ROLLING updates are not recorded as service deployments here.
// PAUSE hooks hold their stage in AWAITING_ACTION until ContinueServiceDeployment (CONTINUE or ROLLBACK) or their
// timeoutConfiguration (default 1440 minutes, ROLLBACK).
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { checkSigV4 } from "./sigv4.js";

export const ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113.";
export const FAKE_ACCOUNT = "123456789012";

type Json = Record<string, unknown>;

class EcsError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export interface FakeTag {
  key: string;
  value: string;
}

interface TaskDefinition extends Json {
  taskDefinitionArn: string;
  family: string;
  revision: number;
  status: "ACTIVE" | "INACTIVE";
  containerDefinitions: Json[];
}

interface Deployment {
  id: string;
  status: "PRIMARY" | "ACTIVE" | "INACTIVE";
  taskDefinition: string;
  desiredCount: number;
  pendingCount: number;
  runningCount: number;
  failedTasks: number;
  createdAt: number;
  updatedAt: number;
  launchType: string;
  rolloutState: "IN_PROGRESS" | "COMPLETED" | "FAILED";
  rolloutStateReason: string;
}

interface Task {
  taskArn: string;
  clusterArn: string;
  taskDefinitionArn: string;
  startedBy: string;
  group: string;
  lastStatus: "PENDING" | "RUNNING" | "STOPPED";
  desiredStatus: "RUNNING" | "STOPPED";
  containers: { name: string; image: string; imageDigest?: string; lastStatus: string; exitCode?: number; containerArn: string; taskArn: string }[];
  createdAt: number;
  startedAt?: number;
  stoppedAt?: number;
  stoppedReason?: string;
  age: number;
  willFail: boolean;
}

interface Service {
  serviceArn: string;
  serviceName: string;
  clusterArn: string;
  taskDefinition: string;
  desiredCount: number;
  status: "ACTIVE" | "DRAINING" | "INACTIVE";
  launchType: string;
  deploymentController: { type: string };
  deploymentConfiguration: Json & { maximumPercent: number; minimumHealthyPercent: number; deploymentCircuitBreaker: { enable: boolean; rollback: boolean } };
  deployments: Deployment[];
  events: { id: string; createdAt: number; message: string }[];
  createdAt: number;
  tags: FakeTag[];
  /** The task definition of the last deployment that completed: where a circuit-breaker rollback goes. */
  lastCompleted?: string;
  /** The service revision now serving (a new one per task-definition change). */
  revisionArn: string;
  /** The service deployments of native strategies, newest first. */
  serviceDeployments: string[];
}

export const LIFECYCLE_STAGES = [
  "RECONCILE_SERVICE",
  "PRE_SCALE_UP",
  "SCALE_UP",
  "POST_SCALE_UP",
  "TEST_TRAFFIC_SHIFT",
  "POST_TEST_TRAFFIC_SHIFT",
  "PRODUCTION_TRAFFIC_SHIFT",
  "POST_PRODUCTION_TRAFFIC_SHIFT",
  "BAKE_TIME",
  "CLEAN_UP",
] as const;
type LifecycleStage = (typeof LIFECYCLE_STAGES)[number];
/** The stages a hook may name (DeploymentLifecycleHookStage): SCALE_UP, BAKE_TIME and CLEAN_UP are not among them. */
const HOOK_STAGES = new Set(["RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"]);
/** The stages a PAUSE hook may name (Developer Guide, "Pause hooks for Amazon ECS service deployments"). */
const PAUSE_STAGES = new Set(["RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"]);
const STRATEGIES = new Set(["ROLLING", "BLUE_GREEN", "LINEAR", "CANARY"]);
const NATIVE = new Set(["BLUE_GREEN", "LINEAR", "CANARY"]);
const DEPLOYMENT_STATUSES = new Set(["PENDING", "SUCCESSFUL", "STOPPED", "STOP_REQUESTED", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"]);
const ACTIVE_STATUSES = new Set(["PENDING", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"]);
const LAMBDA_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]+)?$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const DEFAULT_CALLBACK_SECONDS = 30;

/** What a hook function answers (Developer Guide, "Lambda hooks for Amazon ECS service deployments"). */
export interface HookAnswer {
  hookStatus?: unknown;
  callBackDelay?: unknown;
  hookDetails?: unknown;
}
/** A lifecycle hook's Lambda function as the fake runs it: given the payload ECS sends, answers a HookAnswer. */
export type HookFunction = (payload: Json) => unknown;

interface HookRun {
  hookId: string;
  stage: string;
  targetType: "AWS_LAMBDA" | "PAUSE";
  /** The Lambda's ARN; "" for a PAUSE hook. */
  targetArn: string;
  status: "IN_PROGRESS" | "AWAITING_ACTION" | "SUCCEEDED" | "FAILED" | "TIMED_OUT";
  nextAt: number;
  expiresAt: number;
  timeoutAction: "CONTINUE" | "ROLLBACK";
  hookDetails?: unknown;
  invocations: number;
  busy: boolean;
  reason?: string;
}

interface ServiceDeploymentRec {
  arn: string;
  serviceArn: string;
  clusterArn: string;
  serviceName: string;
  strategy: string;
  config: Json;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  stoppedAt?: number;
  updatedAt: number;
  status: string;
  statusReason: string;
  lifecycleStage: LifecycleStage;
  stageSince: number;
  /** The stage's own work is done and its hooks (if any) are running. */
  stageWorkDone: boolean;
  preProductionHooksDone: boolean;
  hooks: HookRun[];
  source: { revisionArn: string; taskDefinition: string; deploymentId: string | undefined };
  target: { revisionArn: string; taskDefinition: string; deploymentId: string };
  testWeight: number;
  productionWeight: number;
  nextShiftAt: number;
  /** Each production-traffic step taken: [fake time ms, weight of the target revision]. */
  shifts: [number, number][];
  rollback?: { reason: string; startedAt: number; serviceRevisionArn: string };
  circuitBreaker: { status: string; failureCount: number; threshold: number };
}

interface Cluster {
  clusterArn: string;
  clusterName: string;
  status: "ACTIVE";
  services: Map<string, Service>;
}

export interface EcsFakeOptions {
  region?: string;
  /** access key id → secret access key. */
  credentials?: Record<string, string>;
  /** Ticks a new task takes from PENDING to RUNNING (or to STOPPED when it fails). Default 1. */
  convergeTicks?: number;
  /** When set, the clock advances by tickMs every tickMs of real time. Without it, tests call tick(). */
  tickMs?: number;
}

/** Bounds the fake holds the same as ECS does (service quotas and API limits). */
const MAX_SERVICES_PER_DESCRIBE = 10;
const MAX_TASKS_PER_DESCRIBE = 100;
const MAX_TAGS = 50;

export class EcsFake {
  readonly region: string;
  readonly #secrets: Map<string, string>;
  readonly #clusters = new Map<string, Cluster>();
  readonly #families = new Map<string, TaskDefinition[]>();
  readonly #tdTags = new Map<string, FakeTag[]>();
  readonly #tasks = new Map<string, Task>();
  readonly #throttle = new Map<string, number>();
  readonly #denied = new Set<string>();
  #server: Server | undefined;
  #timer: NodeJS.Timeout | undefined;
  #deploymentSeq = 1_000_000_000_000_000_000n;
  /** The fake's clock, ms since the epoch; advanced by tick(). */
  now = Date.UTC(2026, 11, 4, 12, 0, 0);
  convergeTicks: number;
  /** Images (exactly as in a container definition) whose tasks stop with exit code 1 instead of running. */
  readonly failingImages = new Set<string>();
  /** When true, running tasks report an imageDigest other than the one their image reference pins. */
  wrongDigest = false;
  /** Every action received, in order, for tests that assert what a driver did (and did not) call. */
  readonly calls: { action: string; body: Json }[] = [];
  /** Observed extremes of each service's rollout, to check the percentages held. */
  readonly extremes = new Map<string, { maxTasks: number; minRunning: number }>();
  /** Lambda functions by ARN: what a lifecycle hook naming that hookTargetArn runs. */
  readonly lambdas = new Map<string, HookFunction>();
  /** Every hook invocation, in order: the function's ARN, the payload sent, what came back (or the error). */
  readonly hookInvocations: { arn: string; payload: Json; answer?: unknown; error?: string }[] = [];
  readonly #serviceDeployments = new Map<string, ServiceDeploymentRec>();
  readonly #revisions = new Map<string, string>();
  readonly #pendingHooks = new Set<Promise<void>>();

  constructor(opts: EcsFakeOptions = {}) {
    this.region = opts.region ?? "eu-west-1";
    this.#secrets = new Map(Object.entries(opts.credentials ?? { AKIDFERRYTEST: "ferry-test-secret" }));
    this.convergeTicks = opts.convergeTicks ?? 1;
    if (opts.tickMs) {
      this.#timer = setInterval(() => this.tick(), opts.tickMs);
      this.#timer.unref();
    }
  }

  async listen(): Promise<string> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    if (!this.#server) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server!.close(() => resolve()));
  }

  /** The next `count` calls of `action` fail with ThrottlingException. */
  throttle(action: string, count: number): void {
    this.#throttle.set(action, count);
  }

  /** Calls of `action` fail with AccessDeniedException until allow(). */
  deny(action: string): void {
    this.#denied.add(action);
  }

  allow(action: string): void {
    this.#denied.delete(action);
  }

  // ── fixtures (also reachable through CreateCluster / RegisterTaskDefinition / CreateService) ─────────────────

  clusterArn(name: string): string {
    return `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:cluster/${name}`;
  }

  /** A running service at steady state, as if its first deployment completed. */
  seedService(
    cluster: string,
    service: string,
    taskDefinition: Json,
    opts: { desiredCount?: number; controller?: string; strategy?: string; deploymentConfiguration?: Json } = {},
  ): { serviceArn: string; taskDefinitionArn: string } {
    if (!this.#clusters.has(cluster)) this.#createCluster({ clusterName: cluster });
    const td = this.#register(taskDefinition);
    const svc = this.#createService({
      cluster,
      serviceName: service,
      taskDefinition: td.taskDefinitionArn,
      desiredCount: opts.desiredCount ?? 2,
      deploymentController: { type: opts.controller ?? "ECS" },
      ...(opts.strategy || opts.deploymentConfiguration ? { deploymentConfiguration: { ...(opts.deploymentConfiguration ?? {}), ...(opts.strategy ? { strategy: opts.strategy } : {}) } } : {}),
    });
    for (let i = 0; i < 100 && svc.deployments.some((d) => d.rolloutState === "IN_PROGRESS"); i++) this.#step(svc);
    return { serviceArn: svc.serviceArn, taskDefinitionArn: td.taskDefinitionArn };
  }

  service(cluster: string, name: string): Service | undefined {
    return this.#clusters.get(cluster)?.services.get(name);
  }

  tasksOf(cluster: string, name: string): Task[] {
    return [...this.#tasks.values()].filter((t) => t.clusterArn === this.clusterArn(cluster) && t.group === `service:${name}`);
  }

  /** A service deployment as the fake holds it (weights, steps taken, hooks), for tests. */
  serviceDeployment(arn: string): Readonly<ServiceDeploymentRec> | undefined {
    return this.#serviceDeployments.get(arn);
  }

  /** Resolves once no hook function is running (their answers are taken at the next tick). */
  async hooksSettled(): Promise<void> {
    while (this.#pendingHooks.size > 0) await Promise.allSettled([...this.#pendingHooks]);
  }

  /** Advances the clock one step: every service's deployments make one step of progress. */
  tick(steps = 1): void {
    for (let i = 0; i < steps; i++) {
      this.now += 1000;
      for (const c of this.#clusters.values()) for (const s of c.services.values()) this.#step(s);
    }
  }

  // ── HTTP ───────────────────────────────────────────────────────────────────────────────────────────────────

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const requestId = randomUUID();
    const send = (status: number, payload: unknown): void => {
      const text = JSON.stringify(payload);
      res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": requestId, "content-length": Buffer.byteLength(text) });
      res.end(text);
    };
    const error = (type: string, message: string, status = 400): void => send(status, { __type: type, message });
    if (req.method !== "POST" || req.url !== "/") return error("UnknownOperationException", "", 404);
    const target = req.headers["x-amz-target"];
    if (typeof target !== "string" || !target.startsWith(ECS_TARGET_PREFIX)) return error("UnknownOperationException", "");
    const sig = checkSigV4(req.method, req.url, req.headers, body, this.region, this.#secrets);
    if (sig) return error(sig.type, sig.message, sig.type === "InvalidSignatureException" || sig.type === "UnrecognizedClientException" ? 403 : 400);
    const action = target.slice(ECS_TARGET_PREFIX.length);
    let input: Json;
    try {
      const parsed: unknown = JSON.parse(body.toString("utf8") || "{}");
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
      input = parsed as Json;
    } catch {
      return error("SerializationException", "Start of structure or map found where not expected.");
    }
    this.calls.push({ action, body: input });
    const left = this.#throttle.get(action) ?? 0;
    if (left > 0) {
      this.#throttle.set(action, left - 1);
      return error("ThrottlingException", "Rate exceeded");
    }
    if (this.#denied.has(action)) {
      return error("AccessDeniedException", `User: arn:aws:iam::${FAKE_ACCOUNT}:user/ferry is not authorized to perform: ecs:${action} because no identity-based policy allows the ecs:${action} action`);
    }
    try {
      const handler = this.#actions[action];
      if (!handler) return error("UnknownOperationException", "");
      send(200, handler(input));
    } catch (err) {
      if (err instanceof EcsError) return error(err.type, err.message);
      return error("ServerException", (err as Error).message, 500);
    }
  }

  readonly #actions: Record<string, (i: Json) => Json> = {
    CreateCluster: (i) => ({ cluster: this.#viewCluster(this.#createCluster(i)) }),
    DescribeClusters: (i) => {
      const names = (i["clusters"] as string[] | undefined) ?? ["default"];
      const clusters: Json[] = [];
      const failures: Json[] = [];
      for (const n of names) {
        const c = this.#clusters.get(this.#clusterName(n));
        if (c) clusters.push(this.#viewCluster(c));
        else failures.push({ arn: n.startsWith("arn:") ? n : this.clusterArn(n), reason: "MISSING" });
      }
      return { clusters, failures };
    },
    RegisterTaskDefinition: (i) => {
      const td = this.#register(i);
      return { taskDefinition: this.#viewTd(td), tags: this.#tdTags.get(td.taskDefinitionArn) ?? [] };
    },
    DescribeTaskDefinition: (i) => {
      const td = this.#td(str(i, "taskDefinition"));
      const out: Json = { taskDefinition: this.#viewTd(td) };
      if (includes(i, "TAGS")) out["tags"] = this.#tdTags.get(td.taskDefinitionArn) ?? [];
      return out;
    },
    DeregisterTaskDefinition: (i) => {
      const td = this.#td(str(i, "taskDefinition"));
      if (td.status === "INACTIVE") throw new EcsError("ClientException", "The specified task definition is already inactive.");
      td.status = "INACTIVE";
      td["deregisteredAt"] = this.now / 1000;
      return { taskDefinition: this.#viewTd(td) };
    },
    ListTaskDefinitions: (i) => {
      const family = i["familyPrefix"] as string | undefined;
      const status = (i["status"] as string | undefined) ?? "ACTIVE";
      const all = [...this.#families.values()].flat().filter((t) => (!family || t.family === family) && t.status === status);
      all.sort((a, b) => (a.family === b.family ? a.revision - b.revision : a.family < b.family ? -1 : 1));
      if (i["sort"] === "DESC") all.reverse();
      return { taskDefinitionArns: all.map((t) => t.taskDefinitionArn) };
    },
    CreateService: (i) => ({ service: this.#viewService(this.#createService(i)) }),
    ListServices: (i) => {
      const c = this.#cluster(i["cluster"] as string | undefined);
      return { serviceArns: [...c.services.values()].filter((s) => s.status === "ACTIVE").map((s) => s.serviceArn) };
    },
    DescribeServices: (i) => {
      const c = this.#cluster(i["cluster"] as string | undefined);
      const names = i["services"];
      if (!Array.isArray(names) || names.length === 0) throw new EcsError("InvalidParameterException", "Services cannot be empty.");
      if (names.length > MAX_SERVICES_PER_DESCRIBE) throw new EcsError("InvalidParameterException", `Too many services. Maximum: ${MAX_SERVICES_PER_DESCRIBE}.`);
      const services: Json[] = [];
      const failures: Json[] = [];
      for (const n of names as string[]) {
        const s = c.services.get(serviceName(n));
        if (s) services.push(this.#viewService(s, includes(i, "TAGS")));
        else failures.push({ arn: n.startsWith("arn:") ? n : `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:service/${c.clusterName}/${n}`, reason: "MISSING" });
      }
      return { services, failures };
    },
    UpdateService: (i) => ({ service: this.#viewService(this.#updateService(i)) }),
    ListTasks: (i) => {
      const c = this.#cluster(i["cluster"] as string | undefined);
      const svc = i["serviceName"] as string | undefined;
      if (svc !== undefined && !c.services.has(serviceName(svc))) throw new EcsError("ServiceNotFoundException", "Service not found.");
      const desired = (i["desiredStatus"] as string | undefined) ?? "RUNNING";
      const tasks = [...this.#tasks.values()].filter((t) => t.clusterArn === c.clusterArn && (!svc || t.group === `service:${serviceName(svc)}`) && t.desiredStatus === desired);
      return { taskArns: tasks.map((t) => t.taskArn) };
    },
    DescribeTasks: (i) => {
      const c = this.#cluster(i["cluster"] as string | undefined);
      const arns = i["tasks"];
      if (!Array.isArray(arns) || arns.length === 0) throw new EcsError("InvalidParameterException", "Tasks cannot be empty.");
      if (arns.length > MAX_TASKS_PER_DESCRIBE) throw new EcsError("InvalidParameterException", `Too many tasks. Maximum: ${MAX_TASKS_PER_DESCRIBE}.`);
      const tasks: Json[] = [];
      const failures: Json[] = [];
      for (const a of arns as string[]) {
        const t = this.#tasks.get(a) ?? [...this.#tasks.values()].find((x) => x.taskArn.endsWith(`/${a}`));
        if (t && t.clusterArn === c.clusterArn) tasks.push(this.#viewTask(t));
        else failures.push({ arn: a, reason: "MISSING" });
      }
      return { tasks, failures };
    },
    TagResource: (i) => {
      const arn = str(i, "resourceArn");
      const tags = checkTags(i["tags"]);
      const list = this.#tagsOf(arn);
      for (const t of tags) {
        const at = list.findIndex((x) => x.key === t.key);
        if (at >= 0) list[at] = t;
        else list.push(t);
      }
      if (list.length > MAX_TAGS) throw new EcsError("InvalidParameterException", `Tag limit exceeded: a resource can have at most ${MAX_TAGS} tags.`);
      return {};
    },
    UntagResource: (i) => {
      const arn = str(i, "resourceArn");
      const keys = i["tagKeys"] as string[];
      const list = this.#tagsOf(arn);
      const kept = list.filter((t) => !keys.includes(t.key));
      list.splice(0, list.length, ...kept);
      return {};
    },
    ListTagsForResource: (i) => ({ tags: [...this.#tagsOf(str(i, "resourceArn"))] }),
    ListServiceDeployments: (i) => {
      const c = this.#cluster(i["cluster"] as string | undefined);
      const svc = c.services.get(serviceName(str(i, "service")));
      if (!svc) throw new EcsError("ServiceNotFoundException", "Service not found.");
      const statuses = i["status"];
      if (statuses !== undefined && (!Array.isArray(statuses) || statuses.some((x) => typeof x !== "string" || !DEPLOYMENT_STATUSES.has(x)))) {
        throw new EcsError("InvalidParameterException", `status must be a list of ${[...DEPLOYMENT_STATUSES].join(", ")}.`);
      }
      const max = i["maxResults"] === undefined ? 20 : i["maxResults"];
      if (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > 100) throw new EcsError("InvalidParameterException", "maxResults must be between 1 and 100.");
      const created = (i["createdAt"] ?? {}) as { before?: number; after?: number };
      const all = svc.serviceDeployments
        .map((a) => this.#serviceDeployments.get(a)!)
        .filter((d) => (!statuses || (statuses as string[]).includes(d.status)) && (created.before === undefined || d.createdAt < created.before * 1000) && (created.after === undefined || d.createdAt > created.after * 1000));
      const from = i["nextToken"] === undefined ? 0 : Number(i["nextToken"]);
      if (!Number.isInteger(from) || from < 0 || from > all.length) throw new EcsError("InvalidParameterException", "The nextToken is not valid.");
      const page = all.slice(from, from + max);
      return {
        serviceDeployments: page.map((d) => ({
          serviceDeploymentArn: d.arn,
          serviceArn: d.serviceArn,
          clusterArn: d.clusterArn,
          createdAt: d.createdAt / 1000,
          ...(d.startedAt !== undefined ? { startedAt: d.startedAt / 1000 } : {}),
          ...(d.finishedAt !== undefined ? { finishedAt: d.finishedAt / 1000 } : {}),
          targetServiceRevisionArn: d.target.revisionArn,
          status: d.status,
          statusReason: d.statusReason,
        })),
        ...(from + max < all.length ? { nextToken: String(from + max) } : {}),
      };
    },
    DescribeServiceDeployments: (i) => {
      const arns = i["serviceDeploymentArns"];
      if (!Array.isArray(arns) || arns.length === 0) throw new EcsError("InvalidParameterException", "serviceDeploymentArns can not be empty.");
      if (arns.length > 20) throw new EcsError("InvalidParameterException", "Too many serviceDeploymentArns. Maximum: 20.");
      const serviceDeployments: Json[] = [];
      const failures: Json[] = [];
      for (const a of arns as unknown[]) {
        const d = typeof a === "string" ? this.#serviceDeployments.get(a) : undefined;
        if (d) serviceDeployments.push(this.#viewServiceDeployment(d));
        else failures.push({ arn: String(a), reason: "MISSING" });
      }
      return { serviceDeployments, failures };
    },
    ContinueServiceDeployment: (i) => {
      const arn = str(i, "serviceDeploymentArn");
      const hookId = str(i, "hookId");
      const action = i["action"] ?? "CONTINUE";
      if (action !== "CONTINUE" && action !== "ROLLBACK") throw new EcsError("InvalidParameterException", "action must be one of CONTINUE, ROLLBACK.");
      const d = this.#serviceDeployments.get(arn);
      if (!d) throw new EcsError("ServiceDeploymentNotFoundException", `The service deployment ${arn} does not exist.`);
      const h = d.hooks.find((x) => x.hookId === hookId);
      if (!h) throw new EcsError("InvalidParameterException", `The lifecycle hook ${hookId} is not a hook of the service deployment's current stage.`);
      if (d.status !== "IN_PROGRESS" || h.status !== "AWAITING_ACTION") throw new EcsError("ConflictException", `The lifecycle hook is ${h.status} and the service deployment ${d.status}: only a hook in AWAITING_ACTION of an IN_PROGRESS deployment can be continued.`);
      if (action === "CONTINUE") h.status = "SUCCEEDED";
      else this.#requestRollback(d, `Service deployment rolled back by ContinueServiceDeployment at ${h.stage} (hook ${hookId}).`);
      return { serviceDeploymentArn: d.arn };
    },
    StopServiceDeployment: (i) => {
      const arn = str(i, "serviceDeploymentArn");
      const stopType = i["stopType"] ?? "ROLLBACK";
      if (stopType !== "ROLLBACK" && stopType !== "ABORT") throw new EcsError("InvalidParameterException", "stopType must be one of ABORT, ROLLBACK.");
      const d = this.#serviceDeployments.get(arn);
      if (!d) throw new EcsError("ServiceDeploymentNotFoundException", `The service deployment ${arn} does not exist.`);
      if (stopType === "ABORT") throw new EcsError("InvalidParameterException", "The ABORT stopType is not supported: the valid value is ROLLBACK.");
      if (!["PENDING", "IN_PROGRESS"].includes(d.status)) throw new EcsError("ConflictException", `The service deployment is ${d.status} and cannot be stopped.`);
      this.#requestRollback(d, "Service deployment rolled back because of a StopServiceDeployment request.");
      return { serviceDeploymentArn: d.arn };
    },
  };

  // ── model ──────────────────────────────────────────────────────────────────────────────────────────────────

  #clusterName(ref: string): string {
    return ref.startsWith("arn:") ? ref.slice(ref.lastIndexOf("/") + 1) : ref;
  }

  #cluster(ref: string | undefined): Cluster {
    const c = this.#clusters.get(this.#clusterName(ref ?? "default"));
    if (!c) throw new EcsError("ClusterNotFoundException", "Cluster not found.");
    return c;
  }

  #createCluster(i: Json): Cluster {
    const name = (i["clusterName"] as string | undefined) ?? "default";
    if (!/^[A-Za-z0-9_-]{1,255}$/.test(name)) throw new EcsError("InvalidParameterException", "Cluster name must be 1-255 letters, numbers, hyphens and underscores.");
    const existing = this.#clusters.get(name);
    if (existing) return existing;
    const c: Cluster = { clusterArn: this.clusterArn(name), clusterName: name, status: "ACTIVE", services: new Map() };
    this.#clusters.set(name, c);
    return c;
  }

  #viewCluster(c: Cluster): Json {
    const tasks = [...this.#tasks.values()].filter((t) => t.clusterArn === c.clusterArn);
    return {
      clusterArn: c.clusterArn,
      clusterName: c.clusterName,
      status: c.status,
      activeServicesCount: [...c.services.values()].filter((s) => s.status === "ACTIVE").length,
      runningTasksCount: tasks.filter((t) => t.lastStatus === "RUNNING").length,
      pendingTasksCount: tasks.filter((t) => t.lastStatus === "PENDING").length,
      registeredContainerInstancesCount: 0,
    };
  }

  #td(ref: string): TaskDefinition {
    // family, family:revision or the full ARN (ECS API Reference, DescribeTaskDefinition).
    const short = ref.startsWith("arn:") ? ref.slice(ref.lastIndexOf("/") + 1) : ref;
    const [family, rev] = short.split(":");
    const revs = this.#families.get(family ?? "");
    const td = rev === undefined ? revs?.filter((t) => t.status === "ACTIVE").at(-1) : revs?.find((t) => t.revision === Number(rev));
    if (!td) throw new EcsError("ClientException", "Unable to describe task definition.");
    return td;
  }

  #register(i: Json): TaskDefinition {
    const family = i["family"];
    if (typeof family !== "string" || !/^[A-Za-z0-9_-]{1,255}$/.test(family)) throw new EcsError("ClientException", "Family contains invalid characters or is more than 255 characters.");
    const defs = i["containerDefinitions"];
    if (!Array.isArray(defs) || defs.length === 0) throw new EcsError("ClientException", "Container list cannot be empty.");
    const names = new Set<string>();
    for (const d of defs as Json[]) {
      if (typeof d["name"] !== "string" || !/^[A-Za-z0-9_-]{1,255}$/.test(d["name"])) throw new EcsError("ClientException", "Container.name contains invalid characters.");
      if (names.has(d["name"])) throw new EcsError("ClientException", "Duplicate container names are not allowed.");
      names.add(d["name"]);
      if (typeof d["image"] !== "string" || d["image"] === "") throw new EcsError("ClientException", "Container.image should not be null or empty.");
    }
    // The read-only members of a described task definition are not RegisterTaskDefinition members in the SDK's
    // model (the SDK's serializer leaves them out; the AWS CLI refuses them with this message before sending). The
    // fake refuses them so that a client that copies a description carelessly is caught here, not in production.
    for (const k of ["taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities", "registeredAt", "registeredBy", "deregisteredAt"]) {
      if (k in i) throw new EcsError("ClientException", `Unknown parameter in input: "${k}"`);
    }
    const tags = i["tags"] === undefined ? [] : checkTags(i["tags"]);
    const revs = this.#families.get(family) ?? [];
    const revision = (revs.at(-1)?.revision ?? 0) + 1;
    const td: TaskDefinition = {
      ...structuredClone(i),
      family,
      revision,
      status: "ACTIVE",
      taskDefinitionArn: `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:task-definition/${family}:${revision}`,
      containerDefinitions: structuredClone(defs as Json[]),
      requiresAttributes: [{ name: "com.amazonaws.ecs.capability.docker-remote-api.1.18" }],
      compatibilities: ["EC2", ...((i["requiresCompatibilities"] as string[] | undefined)?.includes("FARGATE") ? ["FARGATE"] : [])],
      registeredAt: this.now / 1000,
      registeredBy: `arn:aws:iam::${FAKE_ACCOUNT}:user/ferry`,
    };
    delete td["tags"];
    revs.push(td);
    this.#families.set(family, revs);
    this.#tdTags.set(td.taskDefinitionArn, tags);
    return td;
  }

  #viewTd(td: TaskDefinition): Json {
    return structuredClone(td);
  }

  #tagsOf(arn: string): FakeTag[] {
    if (this.#tdTags.has(arn)) return this.#tdTags.get(arn)!;
    for (const c of this.#clusters.values()) for (const s of c.services.values()) if (s.serviceArn === arn) return s.tags;
    const c = [...this.#clusters.values()].find((x) => x.clusterArn === arn);
    if (c) return [];
    throw new EcsError("InvalidParameterException", "The specified resource could not be found.");
  }

  #newDeploymentId(): string {
    this.#deploymentSeq += 7919n;
    return `ecs-svc/${this.#deploymentSeq}`;
  }

  #createService(i: Json): Service {
    const c = this.#cluster(i["cluster"] as string | undefined);
    const name = str(i, "serviceName");
    if (!/^[A-Za-z0-9_-]{1,255}$/.test(name)) throw new EcsError("InvalidParameterException", "Service name must be 1-255 letters, numbers, hyphens and underscores.");
    if (c.services.get(name)?.status === "ACTIVE") throw new EcsError("InvalidParameterException", "Creation of service was not idempotent.");
    const td = this.#td(str(i, "taskDefinition"));
    if (td.status !== "ACTIVE") throw new EcsError("ClientException", "TaskDefinition is inactive");
    const controller = (i["deploymentController"] as { type?: string } | undefined)?.type ?? "ECS";
    if (!["ECS", "CODE_DEPLOY", "EXTERNAL"].includes(controller)) throw new EcsError("InvalidParameterException", `Invalid deployment controller type: ${controller}`);
    const desiredCount = (i["desiredCount"] as number | undefined) ?? 1;
    const cfg = this.#deploymentConfiguration(i["deploymentConfiguration"], undefined);
    const svc: Service = {
      serviceArn: `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:service/${c.clusterName}/${name}`,
      serviceName: name,
      clusterArn: c.clusterArn,
      taskDefinition: td.taskDefinitionArn,
      desiredCount,
      status: "ACTIVE",
      launchType: (i["launchType"] as string | undefined) ?? "EC2",
      deploymentController: { type: controller },
      deploymentConfiguration: cfg,
      deployments: [],
      events: [],
      createdAt: this.now / 1000,
      tags: i["tags"] === undefined ? [] : checkTags(i["tags"]),
      revisionArn: this.#newRevision(c.clusterName, name, td.taskDefinitionArn),
      serviceDeployments: [],
    };
    if (NATIVE.has(cfg["strategy"] as string) && controller !== "ECS") throw new EcsError("InvalidParameterException", `The ${String(cfg["strategy"])} deployment strategy requires the ECS deployment controller.`);
    svc.deployments.push(this.#deployment(svc, td.taskDefinitionArn));
    c.services.set(name, svc);
    return svc;
  }

  #deploymentConfiguration(raw: unknown, current: Service["deploymentConfiguration"] | undefined): Service["deploymentConfiguration"] {
    const given = (raw ?? {}) as Json;
    const cb = given["deploymentCircuitBreaker"] as { enable?: unknown; rollback?: unknown } | undefined;
    if (cb && (typeof cb.enable !== "boolean" || typeof cb.rollback !== "boolean")) {
      throw new EcsError("InvalidParameterException", "deploymentCircuitBreaker requires both enable and rollback.");
    }
    const out = {
      ...(current ?? {}),
      ...given,
      maximumPercent: (given["maximumPercent"] as number | undefined) ?? current?.maximumPercent ?? 200,
      minimumHealthyPercent: (given["minimumHealthyPercent"] as number | undefined) ?? current?.minimumHealthyPercent ?? 100,
      deploymentCircuitBreaker: cb ? { enable: cb.enable as boolean, rollback: cb.rollback as boolean } : (current?.deploymentCircuitBreaker ?? { enable: false, rollback: false }),
    };
    if (out.maximumPercent < 100 || out.maximumPercent > 200) throw new EcsError("InvalidParameterException", "maximumPercent must be between 100 and 200 for services with the ECS deployment controller.");
    if (out.minimumHealthyPercent < 0 || out.minimumHealthyPercent > 100) throw new EcsError("InvalidParameterException", "minimumHealthyPercent must be between 0 and 100.");
    if (out.maximumPercent === 100 && out.minimumHealthyPercent === 100) {
      throw new EcsError("InvalidParameterException", "The maximumPercent and minimumHealthyPercent cannot both be 100: no task could ever be replaced.");
    }
    checkStrategy(out);
    return out;
  }

  #deployment(svc: Service, taskDefinition: string): Deployment {
    return {
      id: this.#newDeploymentId(),
      status: "PRIMARY",
      taskDefinition,
      desiredCount: svc.desiredCount,
      pendingCount: 0,
      runningCount: 0,
      failedTasks: 0,
      createdAt: this.now / 1000,
      updatedAt: this.now / 1000,
      launchType: svc.launchType,
      rolloutState: "IN_PROGRESS",
      rolloutStateReason: "ECS deployment " + "in progress.",
    };
  }

  #updateService(i: Json): Service {
    const c = this.#cluster(i["cluster"] as string | undefined);
    const svc = c.services.get(serviceName(str(i, "service")));
    if (!svc || svc.status !== "ACTIVE") throw new EcsError(svc ? "ServiceNotActiveException" : "ServiceNotFoundException", svc ? "Service was not ACTIVE." : "Service not found.");
    const tdRef = i["taskDefinition"] as string | undefined;
    if (tdRef !== undefined && svc.deploymentController.type !== "ECS") {
      throw new EcsError("InvalidParameterException", `Unable to update task definition on services with a ${svc.deploymentController.type} deployment controller. Use AWS CodeDeploy to deploy new task definitions.`);
    }
    const td = tdRef !== undefined ? this.#td(tdRef) : undefined;
    if (td && td.status !== "ACTIVE") throw new EcsError("ClientException", "TaskDefinition is inactive");
    const cfg = this.#deploymentConfiguration(i["deploymentConfiguration"], svc.deploymentConfiguration);
    if (NATIVE.has(cfg["strategy"] as string) && svc.deploymentController.type !== "ECS") throw new EcsError("InvalidParameterException", `The ${String(cfg["strategy"])} deployment strategy requires the ECS deployment controller.`);
    svc.deploymentConfiguration = cfg;
    if (i["desiredCount"] !== undefined) svc.desiredCount = i["desiredCount"] as number;
    const changed = td !== undefined && td.taskDefinitionArn !== svc.taskDefinition;
    if ((changed || i["forceNewDeployment"] === true) && NATIVE.has(cfg["strategy"] as string)) {
      this.#startServiceDeployment(svc, td?.taskDefinitionArn ?? svc.taskDefinition);
    } else if (changed || i["forceNewDeployment"] === true) {
      if (changed) svc.revisionArn = this.#newRevision(this.#clusterName(svc.clusterArn), svc.serviceName, td.taskDefinitionArn);
      svc.taskDefinition = td?.taskDefinitionArn ?? svc.taskDefinition;
      for (const d of svc.deployments) if (d.status === "PRIMARY") d.status = "ACTIVE";
      svc.deployments.unshift(this.#deployment(svc, svc.taskDefinition));
      this.#event(svc, `(service ${svc.serviceName}) has started a deployment.`);
    } else {
      for (const d of svc.deployments) if (d.status === "PRIMARY") d.desiredCount = svc.desiredCount;
    }
    return svc;
  }

  #newRevision(cluster: string, service: string, taskDefinition: string): string {
    const arn = `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:service-revision/${cluster}/${service}/${String(this.#revisions.size + 1).padStart(19, "0")}`;
    this.#revisions.set(arn, taskDefinition);
    return arn;
  }

  /** An update of a BLUE_GREEN / LINEAR / CANARY service: a service deployment from the serving revision to a new one. */
  #startServiceDeployment(svc: Service, taskDefinition: string): void {
    const cluster = this.#clusterName(svc.clusterArn);
    // A newer update supersedes a deployment still in progress (its target's tasks go).
    for (const d of svc.serviceDeployments.map((a) => this.#serviceDeployments.get(a)!)) {
      if (!ACTIVE_STATUSES.has(d.status)) continue;
      d.status = "STOPPED";
      d.statusReason = "Service deployment stopped: a newer deployment of the service started.";
      d.stoppedAt = d.finishedAt = d.updatedAt = this.now;
      for (const t of this.#liveTasks(svc)) if (t.startedBy === d.target.deploymentId) this.#stopTask(t, "Deployment replaced", 0);
      svc.deployments = svc.deployments.filter((x) => x.id !== d.target.deploymentId);
      svc.taskDefinition = d.source.taskDefinition;
      svc.revisionArn = d.source.revisionArn;
    }
    const source = { revisionArn: svc.revisionArn, taskDefinition: svc.taskDefinition, deploymentId: svc.deployments.find((d) => d.status === "PRIMARY")?.id };
    for (const d of svc.deployments) if (d.status === "PRIMARY") d.status = "ACTIVE";
    const dep = this.#deployment(svc, taskDefinition);
    svc.deployments.unshift(dep);
    svc.taskDefinition = taskDefinition;
    svc.revisionArn = this.#newRevision(cluster, svc.serviceName, taskDefinition);
    const cfg = svc.deploymentConfiguration;
    const rec: ServiceDeploymentRec = {
      arn: `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:service-deployment/${cluster}/${svc.serviceName}/${randomUUID().replace(/-/g, "").slice(0, 22)}`,
      serviceArn: svc.serviceArn,
      clusterArn: svc.clusterArn,
      serviceName: svc.serviceName,
      strategy: cfg["strategy"] as string,
      config: structuredClone(cfg),
      createdAt: this.now,
      updatedAt: this.now,
      status: "PENDING",
      statusReason: "",
      lifecycleStage: "RECONCILE_SERVICE",
      stageSince: this.now,
      stageWorkDone: false,
      preProductionHooksDone: false,
      hooks: [],
      source,
      target: { revisionArn: svc.revisionArn, taskDefinition, deploymentId: dep.id },
      testWeight: 0,
      productionWeight: 0,
      nextShiftAt: 0,
      shifts: [],
      circuitBreaker: { status: cfg.deploymentCircuitBreaker.enable ? "MONITORING" : "DISABLED", failureCount: 0, threshold: Math.min(200, Math.max(3, Math.ceil(svc.desiredCount / 2))) },
    };
    this.#serviceDeployments.set(rec.arn, rec);
    svc.serviceDeployments.unshift(rec.arn);
    this.#event(svc, `(service ${svc.serviceName}) has started a ${rec.strategy} service deployment ${rec.arn}.`);
  }

  #liveTasks(svc: Service): Task[] {
    return [...this.#tasks.values()].filter((t) => t.group === `service:${svc.serviceName}` && t.clusterArn === svc.clusterArn && t.lastStatus !== "STOPPED");
  }

  #requestRollback(d: ServiceDeploymentRec, reason: string): void {
    d.status = "ROLLBACK_REQUESTED";
    d.statusReason = reason;
    d.updatedAt = this.now;
    d.rollback = { reason, startedAt: this.now, serviceRevisionArn: d.source.revisionArn };
    for (const h of d.hooks) if (h.status === "IN_PROGRESS" || h.status === "AWAITING_ACTION") h.busy = true; // no further invocations
  }

  /** The hooks of the service deployment that run at `stage`, started (one HookRun each); false when there are none. */
  #startHooks(d: ServiceDeploymentRec, stage: string): boolean {
    const hooks = ((d.config["lifecycleHooks"] as Json[] | undefined) ?? []).filter((h) => (h["lifecycleStages"] as string[]).includes(stage));
    d.hooks = hooks.map((h) => {
      const timeout = (h["timeoutConfiguration"] ?? {}) as { timeoutInMinutes?: number; action?: "CONTINUE" | "ROLLBACK" };
      const pause = h["targetType"] === "PAUSE";
      return {
        hookId: pause ? `ecs-pause-${randomBytes(32).toString("base64url")}` : randomUUID(),
        stage,
        targetType: pause ? "PAUSE" : "AWS_LAMBDA",
        targetArn: pause ? "" : (h["hookTargetArn"] as string),
        status: pause ? "AWAITING_ACTION" : "IN_PROGRESS",
        nextAt: this.now,
        expiresAt: this.now + (timeout.timeoutInMinutes ?? 1440) * 60_000,
        timeoutAction: timeout.action ?? "ROLLBACK",
        ...(h["hookDetails"] !== undefined ? { hookDetails: structuredClone(h["hookDetails"]) } : {}),
        invocations: 0,
        busy: false,
      };
    });
    return d.hooks.length > 0;
  }

  #weights(d: ServiceDeploymentRec, targetWeight: number): Record<string, number> {
    return { [d.source.revisionArn]: 100 - targetWeight, [d.target.revisionArn]: targetWeight };
  }

  #invoke(d: ServiceDeploymentRec, h: HookRun): void {
    const fn = this.lambdas.get(h.targetArn);
    const payload: Json = {
      executionDetails: {
        testTrafficWeights: this.#weights(d, d.testWeight),
        productionTrafficWeights: this.#weights(d, d.productionWeight),
        serviceArn: d.serviceArn,
        targetServiceRevisionArn: d.target.revisionArn,
      },
      executionId: h.hookId,
      lifecycleStage: h.stage,
      resourceArn: d.arn,
      ...(h.hookDetails !== undefined ? { hookDetails: structuredClone(h.hookDetails) } : {}),
    };
    const record: (typeof this.hookInvocations)[number] = { arn: h.targetArn, payload };
    this.hookInvocations.push(record);
    h.busy = true;
    h.invocations++;
    const run = (async () => {
      try {
        if (!fn) throw new Error(`Function not found: ${h.targetArn}`);
        const answer = (await fn(payload)) as HookAnswer | undefined;
        record.answer = answer;
        if (h.status !== "IN_PROGRESS" || d.status !== "IN_PROGRESS") return;
        const status = answer?.hookStatus;
        if (status === "SUCCEEDED" || status === "FAILED") {
          h.status = status;
          if (status === "FAILED") h.reason = "the lifecycle hook answered FAILED";
        } else if (status === "IN_PROGRESS") {
          const delay = typeof answer?.callBackDelay === "number" && answer.callBackDelay > 0 ? answer.callBackDelay : DEFAULT_CALLBACK_SECONDS;
          h.nextAt = this.now + delay * 1000;
          if (answer?.hookDetails !== undefined) h.hookDetails = answer.hookDetails;
        } else {
          h.status = "FAILED";
          h.reason = `the lifecycle hook returned no valid hookStatus (${JSON.stringify(status ?? null)})`;
        }
      } catch (err) {
        record.error = (err as Error).message;
        if (h.status === "IN_PROGRESS") {
          h.status = "FAILED";
          h.reason = `the lifecycle hook function failed: ${(err as Error).message}`;
        }
      } finally {
        h.busy = false;
      }
    })();
    this.#pendingHooks.add(run);
    void run.finally(() => this.#pendingHooks.delete(run));
  }

  /** Runs the hooks of the current stage one step; true once all of them succeeded (or timed out to CONTINUE). */
  #hooksDone(d: ServiceDeploymentRec): boolean {
    for (const h of d.hooks) {
      if (h.status === "AWAITING_ACTION" && this.now >= h.expiresAt) {
        h.status = "TIMED_OUT";
        h.reason = "nobody continued the paused deployment within the hook's timeout";
      }
      if (h.status === "IN_PROGRESS" && !h.busy && this.now >= h.expiresAt) {
        h.status = "TIMED_OUT";
        h.reason = `the lifecycle hook did not answer within its timeout`;
      }
      if (h.status === "IN_PROGRESS" && !h.busy && this.now >= h.nextAt) this.#invoke(d, h);
    }
    const failed = d.hooks.find((h) => h.status === "FAILED" || (h.status === "TIMED_OUT" && h.timeoutAction === "ROLLBACK"));
    if (failed) {
      this.#requestRollback(d, `Service deployment rolled back because the lifecycle hook ${failed.targetArn || `${failed.hookId} (PAUSE)`} at ${failed.stage} ${failed.status === "FAILED" ? "failed" : "timed out"}: ${failed.reason ?? ""}`.trim());
      return false;
    }
    return d.hooks.every((h) => h.status === "SUCCEEDED" || h.status === "TIMED_OUT");
  }

  #stepServiceDeployment(svc: Service, d: ServiceDeploymentRec): void {
    d.updatedAt = this.now;
    const target = svc.deployments.find((x) => x.id === d.target.deploymentId);
    if (d.status === "PENDING") {
      d.status = "IN_PROGRESS";
      d.startedAt = this.now;
      d.stageSince = this.now;
      return;
    }
    if (d.status === "ROLLBACK_REQUESTED") {
      d.status = "ROLLBACK_IN_PROGRESS";
      return;
    }
    if (d.status === "ROLLBACK_IN_PROGRESS") {
      // Traffic back on the source revision, the target's tasks stopped, the service on the source again.
      d.testWeight = 0;
      d.productionWeight = 0;
      for (const t of this.#liveTasks(svc)) if (t.startedBy === d.target.deploymentId) this.#stopTask(t, "Service deployment rolled back", 0);
      svc.deployments = svc.deployments.filter((x) => x.id !== d.target.deploymentId);
      let back = svc.deployments.find((x) => x.id === d.source.deploymentId);
      if (!back) {
        back = this.#deployment(svc, d.source.taskDefinition);
        svc.deployments.unshift(back);
      }
      back.status = "PRIMARY";
      back.rolloutState = "COMPLETED";
      back.rolloutStateReason = `ECS deployment ${back.id} completed.`;
      svc.deployments = [back];
      svc.taskDefinition = d.source.taskDefinition;
      svc.revisionArn = d.source.revisionArn;
      // Tasks of the source revision that went during the deployment come back.
      for (let n = this.#liveTasks(svc).length; n < svc.desiredCount; n++) this.#launch(svc, back);
      d.status = "ROLLBACK_SUCCESSFUL";
      d.finishedAt = this.now;
      this.#event(svc, `(service ${svc.serviceName}) (deployment ${d.target.deploymentId}) deployment failed and was rolled back: ${d.statusReason}`);
      return;
    }
    if (d.status !== "IN_PROGRESS" || !target) return;
    d.circuitBreaker.failureCount = target.failedTasks;
    const cb = svc.deploymentConfiguration.deploymentCircuitBreaker;
    if (cb.enable && target.failedTasks >= d.circuitBreaker.threshold) {
      d.circuitBreaker.status = "TRIGGERED";
      if (cb.rollback) {
        this.#requestRollback(d, "Service deployment rolled back because the circuit breaker threshold was exceeded.");
      } else {
        d.status = "STOPPED";
        d.statusReason = "Service deployment stopped because the circuit breaker threshold was exceeded.";
        d.stoppedAt = d.finishedAt = this.now;
        target.rolloutState = "FAILED";
        target.rolloutStateReason = "ECS deployment circuit breaker: tasks failed to start.";
      }
      return;
    }
    if (d.stageWorkDone) {
      if (!this.#hooksDone(d)) return;
      this.#nextStage(svc, d);
      return;
    }
    const cfg = d.config;
    switch (d.lifecycleStage) {
      case "SCALE_UP": {
        const mine = this.#liveTasks(svc).filter((t) => t.startedBy === target.id);
        for (let n = mine.length; n < svc.desiredCount; n++) this.#launch(svc, target);
        if (mine.length < svc.desiredCount || mine.some((t) => t.lastStatus !== "RUNNING")) return;
        break;
      }
      case "TEST_TRAFFIC_SHIFT":
        d.testWeight = 100;
        break;
      case "PRODUCTION_TRAFFIC_SHIFT": {
        if (!d.preProductionHooksDone) {
          d.preProductionHooksDone = true;
          if (this.#startHooks(d, "PRE_PRODUCTION_TRAFFIC_SHIFT")) {
            // Held before any production traffic moves; the stage's own work follows once these hooks answered.
            d.stageWorkDone = true;
            d.lifecycleStage = "PRODUCTION_TRAFFIC_SHIFT";
            return;
          }
        }
        if (this.now < d.nextShiftAt) return;
        let next = 100;
        let bakeMinutes = 0;
        if (d.strategy === "LINEAR") {
          const lc = (cfg["linearConfiguration"] ?? {}) as { stepPercent?: number; stepBakeTimeInMinutes?: number };
          next = Math.min(100, Math.round((d.productionWeight + (lc.stepPercent ?? 10)) * 10) / 10);
          bakeMinutes = lc.stepBakeTimeInMinutes ?? 6;
        } else if (d.strategy === "CANARY") {
          const cc = (cfg["canaryConfiguration"] ?? {}) as { canaryPercent?: number; canaryBakeTimeInMinutes?: number };
          next = d.productionWeight === 0 ? (cc.canaryPercent ?? 5) : 100;
          bakeMinutes = cc.canaryBakeTimeInMinutes ?? 10;
        }
        d.productionWeight = next;
        d.shifts.push([this.now, next]);
        if (next < 100) {
          d.nextShiftAt = this.now + bakeMinutes * 60_000;
          return;
        }
        break;
      }
      case "BAKE_TIME":
        if (this.now < d.stageSince + ((cfg["bakeTimeInMinutes"] as number | undefined) ?? 0) * 60_000) return;
        break;
      case "CLEAN_UP":
        for (const t of this.#liveTasks(svc)) if (t.startedBy !== target.id) this.#stopTask(t, `Scaling activity initiated by (deployment ${target.id})`, 0);
        break;
      default:
        break;
    }
    d.stageWorkDone = true;
    const hookStage = d.lifecycleStage;
    if (HOOK_STAGES.has(hookStage) && this.#startHooks(d, hookStage)) return;
    this.#nextStage(svc, d);
  }

  #nextStage(svc: Service, d: ServiceDeploymentRec): void {
    d.hooks = [];
    d.stageWorkDone = false;
    const at = LIFECYCLE_STAGES.indexOf(d.lifecycleStage);
    if (d.lifecycleStage === "PRODUCTION_TRAFFIC_SHIFT" && d.productionWeight < 100) return; // PRE_PRODUCTION hooks answered
    if (at === LIFECYCLE_STAGES.length - 1) {
      const target = svc.deployments.find((x) => x.id === d.target.deploymentId)!;
      target.rolloutState = "COMPLETED";
      target.rolloutStateReason = `ECS deployment ${target.id} completed.`;
      svc.deployments = [target];
      svc.lastCompleted = target.taskDefinition;
      d.status = "SUCCESSFUL";
      d.statusReason = "Service deployment completed successfully.";
      d.finishedAt = this.now;
      this.#event(svc, `(service ${svc.serviceName}) has reached a steady state.`);
      return;
    }
    d.lifecycleStage = LIFECYCLE_STAGES[at + 1]!;
    d.stageSince = this.now;
  }

  #viewServiceDeployment(d: ServiceDeploymentRec): Json {
    const svc = this.#clusters.get(this.#clusterName(d.clusterArn))?.services.get(d.serviceName);
    const tasks = svc ? [...this.#tasks.values()].filter((t) => t.group === `service:${svc.serviceName}` && t.clusterArn === svc.clusterArn && t.lastStatus !== "STOPPED") : [];
    const rev = (r: { revisionArn: string; deploymentId: string | undefined; taskDefinition: string }, requested: number, weights: [number, number]): Json => {
      const mine = tasks.filter((t) => t.taskDefinitionArn === r.taskDefinition && (r.deploymentId === undefined || t.startedBy === r.deploymentId || r === d.source));
      return {
        arn: r.revisionArn,
        requestedTaskCount: requested,
        runningTaskCount: mine.filter((t) => t.lastStatus === "RUNNING").length,
        pendingTaskCount: mine.filter((t) => t.lastStatus === "PENDING").length,
        requestedTestTrafficWeight: weights[0],
        requestedProductionTrafficWeight: weights[1],
      };
    };
    const desired = svc?.desiredCount ?? 0;
    const scaled = LIFECYCLE_STAGES.indexOf(d.lifecycleStage) >= LIFECYCLE_STAGES.indexOf("SCALE_UP") && !d.status.startsWith("ROLLBACK");
    const sourceGone = d.status === "SUCCESSFUL";
    const out: Json = {
      serviceDeploymentArn: d.arn,
      serviceArn: d.serviceArn,
      clusterArn: d.clusterArn,
      createdAt: d.createdAt / 1000,
      updatedAt: d.updatedAt / 1000,
      sourceServiceRevisions: [rev(d.source, sourceGone ? 0 : desired, [100 - d.testWeight, 100 - d.productionWeight])],
      targetServiceRevision: rev(d.target, scaled || d.status === "SUCCESSFUL" ? desired : 0, [d.testWeight, d.productionWeight]),
      status: d.status,
      statusReason: d.statusReason,
      lifecycleStage: d.lifecycleStage,
      deploymentConfiguration: structuredClone(d.config),
      deploymentCircuitBreaker: { ...d.circuitBreaker },
    };
    if (d.startedAt !== undefined) out["startedAt"] = d.startedAt / 1000;
    if (d.finishedAt !== undefined) out["finishedAt"] = d.finishedAt / 1000;
    if (d.stoppedAt !== undefined) out["stoppedAt"] = d.stoppedAt / 1000;
    if (d.rollback) out["rollback"] = { reason: d.rollback.reason, startedAt: d.rollback.startedAt / 1000, serviceRevisionArn: d.rollback.serviceRevisionArn };
    if (d.hooks.length > 0) {
      out["lifecycleHookDetails"] = d.hooks.map((h) => ({ hookId: h.hookId, targetType: h.targetType, ...(h.targetArn ? { targetArn: h.targetArn } : {}), status: h.status, expiresAt: h.expiresAt / 1000, timeoutAction: h.timeoutAction }));
    }
    return out;
  }

  #event(svc: Service, message: string): void {
    svc.events.unshift({ id: randomUUID(), createdAt: this.now / 1000, message });
    svc.events.splice(100);
  }

  /** One step of every deployment of a service (see the file comment for the rules). */
  #step(svc: Service): void {
    const live = () => [...this.#tasks.values()].filter((t) => t.group === `service:${svc.serviceName}` && t.clusterArn === svc.clusterArn && t.lastStatus !== "STOPPED");
    // Tasks move on.
    for (const t of live()) {
      if (t.lastStatus !== "PENDING") continue;
      t.age++;
      if (t.age < this.convergeTicks) continue;
      const dep = svc.deployments.find((d) => d.id === t.startedBy);
      if (t.willFail) {
        this.#stopTask(t, "Essential container in task exited", 1);
        if (dep) dep.failedTasks++;
      } else {
        t.lastStatus = "RUNNING";
        t.startedAt = this.now / 1000;
        for (const c of t.containers) c.lastStatus = "RUNNING";
      }
    }
    const native = svc.serviceDeployments.map((a) => this.#serviceDeployments.get(a)!).find((d) => ACTIVE_STATUSES.has(d.status));
    if (native) {
      this.#stepServiceDeployment(svc, native);
      this.#refresh(svc);
      return;
    }
    const primary = svc.deployments.find((d) => d.status === "PRIMARY");
    if (!primary) return;
    const desired = svc.desiredCount;
    const cfg = svc.deploymentConfiguration;
    const maxTasks = Math.floor((desired * cfg.maximumPercent) / 100);
    const minRunning = Math.ceil((desired * cfg.minimumHealthyPercent) / 100);
    const threshold = Math.min(200, Math.max(3, Math.ceil(desired / 2)));

    if (primary.rolloutState === "IN_PROGRESS" && cfg.deploymentCircuitBreaker.enable && primary.failedTasks >= threshold) {
      primary.rolloutState = "FAILED";
      primary.rolloutStateReason = "ECS deployment circuit breaker: tasks failed to start.";
      this.#event(svc, `(service ${svc.serviceName}) (deployment ${primary.id}) deployment failed: tasks failed to start.`);
      if (cfg.deploymentCircuitBreaker.rollback && svc.lastCompleted) {
        primary.status = "ACTIVE";
        for (const t of live()) if (t.startedBy === primary.id && t.lastStatus === "PENDING") this.#stopTask(t, "Deployment rolled back", 0);
        svc.taskDefinition = svc.lastCompleted;
        const back = this.#deployment(svc, svc.lastCompleted);
        back.rolloutStateReason = `ECS deployment circuit breaker: rolling back to deploymentId ${primary.id}.`;
        svc.deployments.unshift(back);
        this.#event(svc, `(service ${svc.serviceName}) rolling back to ${svc.lastCompleted}.`);
      }
      this.#refresh(svc);
      return;
    }
    const current = svc.deployments.find((d) => d.status === "PRIMARY")!;
    if (current.rolloutState === "IN_PROGRESS") {
      const tasks = live();
      const mine = tasks.filter((t) => t.startedBy === current.id);
      const others = tasks.filter((t) => t.startedBy !== current.id);
      const running = tasks.filter((t) => t.lastStatus === "RUNNING").length;
      const need = desired - mine.length;
      const room = maxTasks - tasks.length;
      if (need > 0 && room > 0) {
        for (let n = 0; n < Math.min(need, room); n++) this.#launch(svc, current);
      } else if (need > 0) {
        // No room to start more: stop old tasks first, as far as minimumHealthyPercent allows.
        const olds = others.filter((t) => t.lastStatus === "RUNNING");
        for (const t of olds.slice(0, Math.max(0, Math.min(need, running - minRunning)))) this.#stopTask(t, "Scaling activity initiated by (deployment " + current.id + ")", 0);
        for (const t of others.filter((x) => x.lastStatus === "PENDING")) this.#stopTask(t, "Deployment replaced", 0);
      }
      // Old tasks go once new ones run in their place, never below minimumHealthyPercent.
      const now = live();
      const mineRunning = now.filter((t) => t.startedBy === current.id && t.lastStatus === "RUNNING").length;
      const olds = now.filter((t) => t.startedBy !== current.id);
      const runningNow = now.filter((t) => t.lastStatus === "RUNNING").length;
      const excess = mineRunning + olds.length - desired;
      let stoppable = Math.min(excess, runningNow - minRunning + olds.filter((t) => t.lastStatus !== "RUNNING").length);
      for (const t of olds.sort((a, b) => (a.lastStatus === "PENDING" ? -1 : b.lastStatus === "PENDING" ? 1 : 0))) {
        if (stoppable <= 0) break;
        this.#stopTask(t, "Scaling activity initiated by (deployment " + current.id + ")", 0);
        stoppable--;
      }
      const after = live();
      if (after.every((t) => t.startedBy === current.id && t.lastStatus === "RUNNING") && after.length === desired) {
        current.rolloutState = "COMPLETED";
        current.rolloutStateReason = `ECS deployment ${current.id} completed.`;
        svc.lastCompleted = current.taskDefinition;
        svc.deployments = svc.deployments.filter((d) => d === current);
        this.#event(svc, `(service ${svc.serviceName}) has reached a steady state.`);
      }
    }
    this.#refresh(svc);
  }

  #refresh(svc: Service): void {
    const tasks = [...this.#tasks.values()].filter((t) => t.group === `service:${svc.serviceName}` && t.clusterArn === svc.clusterArn && t.lastStatus !== "STOPPED");
    for (const d of svc.deployments) {
      d.runningCount = tasks.filter((t) => t.startedBy === d.id && t.lastStatus === "RUNNING").length;
      d.pendingCount = tasks.filter((t) => t.startedBy === d.id && t.lastStatus === "PENDING").length;
      d.updatedAt = this.now / 1000;
    }
    const ex = this.extremes.get(svc.serviceArn) ?? { maxTasks: 0, minRunning: Number.MAX_SAFE_INTEGER };
    ex.maxTasks = Math.max(ex.maxTasks, tasks.length);
    if (svc.lastCompleted) ex.minRunning = Math.min(ex.minRunning, tasks.filter((t) => t.lastStatus === "RUNNING").length);
    this.extremes.set(svc.serviceArn, ex);
  }

  #launch(svc: Service, d: Deployment): void {
    const td = this.#td(d.taskDefinition);
    const id = randomUUID().replace(/-/g, "");
    const clusterName = svc.clusterArn.slice(svc.clusterArn.lastIndexOf("/") + 1);
    const taskArn = `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:task/${clusterName}/${id}`;
    const willFail = td.containerDefinitions.some((c) => this.failingImages.has(c["image"] as string));
    this.#tasks.set(taskArn, {
      taskArn,
      clusterArn: svc.clusterArn,
      taskDefinitionArn: td.taskDefinitionArn,
      startedBy: d.id,
      group: `service:${svc.serviceName}`,
      lastStatus: "PENDING",
      desiredStatus: "RUNNING",
      containers: td.containerDefinitions.map((c) => ({
        name: c["name"] as string,
        image: c["image"] as string,
        imageDigest: this.#digestOf(c["image"] as string),
        lastStatus: "PENDING",
        containerArn: `arn:aws:ecs:${this.region}:${FAKE_ACCOUNT}:container/${clusterName}/${id}/${randomUUID()}`,
        taskArn,
      })),
      createdAt: this.now / 1000,
      age: 0,
      willFail,
    });
  }

  #digestOf(image: string): string {
    const pinned = /@(sha256:[0-9a-f]{64})$/.exec(image)?.[1];
    const digest = pinned ?? `sha256:${createHash("sha256").update(`tag:${image}`).digest("hex")}`;
    return this.wrongDigest ? `sha256:${createHash("sha256").update(`moved:${digest}`).digest("hex")}` : digest;
  }

  #stopTask(t: Task, reason: string, exitCode: number): void {
    t.lastStatus = "STOPPED";
    t.desiredStatus = "STOPPED";
    t.stoppedAt = this.now / 1000;
    t.stoppedReason = reason;
    for (const c of t.containers) {
      c.lastStatus = "STOPPED";
      c.exitCode = exitCode;
    }
  }

  #viewService(s: Service, withTags = false): Json {
    const tasks = [...this.#tasks.values()].filter((t) => t.group === `service:${s.serviceName}` && t.clusterArn === s.clusterArn);
    const out: Json = {
      serviceArn: s.serviceArn,
      serviceName: s.serviceName,
      clusterArn: s.clusterArn,
      status: s.status,
      desiredCount: s.desiredCount,
      runningCount: tasks.filter((t) => t.lastStatus === "RUNNING").length,
      pendingCount: tasks.filter((t) => t.lastStatus === "PENDING").length,
      launchType: s.launchType,
      taskDefinition: s.taskDefinition,
      deploymentConfiguration: structuredClone(s.deploymentConfiguration),
      deployments: s.deployments.map((d) => ({ ...d })),
      events: s.events.slice(0, 20),
      createdAt: s.createdAt,
      deploymentController: { ...s.deploymentController },
      schedulingStrategy: "REPLICA",
    };
    if (s.serviceDeployments[0]) out["currentServiceDeployment"] = s.serviceDeployments[0];
    const revs = new Map<string, string>([[s.revisionArn, s.taskDefinition]]);
    const active = s.serviceDeployments.map((a) => this.#serviceDeployments.get(a)!).find((d) => ACTIVE_STATUSES.has(d.status));
    if (active) {
      revs.set(active.source.revisionArn, active.source.taskDefinition);
      revs.set(active.target.revisionArn, active.target.taskDefinition);
    }
    out["currentServiceRevisions"] = [...revs].map(([arn, td]) => {
      const mine = tasks.filter((t) => t.taskDefinitionArn === td && t.lastStatus !== "STOPPED");
      const requested = active ? (td === active.target.taskDefinition ? (active.lifecycleStage === "RECONCILE_SERVICE" || active.lifecycleStage === "PRE_SCALE_UP" || active.status.startsWith("ROLLBACK") ? 0 : s.desiredCount) : s.desiredCount) : s.desiredCount;
      return { arn, requestedTaskCount: requested, runningTaskCount: mine.filter((t) => t.lastStatus === "RUNNING").length, pendingTaskCount: mine.filter((t) => t.lastStatus === "PENDING").length };
    });
    if (withTags) out["tags"] = [...s.tags];
    return out;
  }

  #viewTask(t: Task): Json {
    const out: Json = {
      taskArn: t.taskArn,
      clusterArn: t.clusterArn,
      taskDefinitionArn: t.taskDefinitionArn,
      startedBy: t.startedBy,
      group: t.group,
      lastStatus: t.lastStatus,
      desiredStatus: t.desiredStatus,
      createdAt: t.createdAt,
      launchType: "EC2",
      containers: t.containers.map((c) => {
        const v: Json = { containerArn: c.containerArn, taskArn: c.taskArn, name: c.name, image: c.image, lastStatus: c.lastStatus };
        // ECS reports the digest once the image is pulled, i.e. from RUNNING on (DescribeTasks, Container.imageDigest).
        if (c.lastStatus !== "PENDING" && c.imageDigest) v["imageDigest"] = c.imageDigest;
        if (c.exitCode !== undefined) v["exitCode"] = c.exitCode;
        return v;
      }),
    };
    if (t.startedAt !== undefined) out["startedAt"] = t.startedAt;
    if (t.stoppedAt !== undefined) out["stoppedAt"] = t.stoppedAt;
    if (t.stoppedReason !== undefined) out["stoppedReason"] = t.stoppedReason;
    return out;
  }
}

function str(i: Json, key: string): string {
  const v = i[key];
  if (typeof v !== "string" || v === "") throw new EcsError("InvalidParameterException", `${key} can not be blank.`);
  return v;
}

function includes(i: Json, what: string): boolean {
  return Array.isArray(i["include"]) && (i["include"] as unknown[]).includes(what);
}

function serviceName(ref: string): string {
  return ref.startsWith("arn:") ? ref.slice(ref.lastIndexOf("/") + 1) : ref;
}

function checkTags(raw: unknown): FakeTag[] {
  if (!Array.isArray(raw)) throw new EcsError("InvalidParameterException", "Tags must be a list.");
  if (raw.length > MAX_TAGS) throw new EcsError("InvalidParameterException", `Too many tags: at most ${MAX_TAGS}.`);
  return (raw as { key?: unknown; value?: unknown }[]).map((t) => {
    if (typeof t.key !== "string" || t.key.length < 1 || t.key.length > 128) throw new EcsError("InvalidParameterException", "Tag keys must be between 1 and 128 characters.");
    if (typeof t.value !== "string" || t.value.length > 256) throw new EcsError("InvalidParameterException", "Tag values must be at most 256 characters.");
    if (t.key.toLowerCase().startsWith("aws:")) throw new EcsError("InvalidParameterException", "Tag keys may not begin with aws:, which is reserved for AWS use.");
    return { key: t.key, value: t.value };
  });
}

/** The deployment strategy settings as ECS validates them (DeploymentConfiguration, LinearConfiguration, CanaryConfiguration, DeploymentLifecycleHook). */
function checkStrategy(cfg: Json): void {
  const strategy = cfg["strategy"] ?? "ROLLING";
  if (typeof strategy !== "string" || !STRATEGIES.has(strategy)) throw new EcsError("InvalidParameterException", `Invalid deployment strategy: ${JSON.stringify(strategy)}. Valid values: ${[...STRATEGIES].join(", ")}.`);
  const minutes = (v: unknown, what: string): void => {
    if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 1440)) throw new EcsError("InvalidParameterException", `${what} must be an integer between 0 and 1440.`);
  };
  const tenths = (v: unknown, min: number, what: string): void => {
    if (v !== undefined && (typeof v !== "number" || v < min || v > 100 || Math.abs(v * 10 - Math.round(v * 10)) > 1e-9)) throw new EcsError("InvalidParameterException", `${what} must be a multiple of 0.1 from ${min} to 100.0.`);
  };
  minutes(cfg["bakeTimeInMinutes"], "bakeTimeInMinutes");
  const linear = cfg["linearConfiguration"] as Json | undefined;
  const canary = cfg["canaryConfiguration"] as Json | undefined;
  if (linear !== undefined && strategy !== "LINEAR") throw new EcsError("InvalidParameterException", "linearConfiguration is only valid with the LINEAR deployment strategy.");
  if (canary !== undefined && strategy !== "CANARY") throw new EcsError("InvalidParameterException", "canaryConfiguration is only valid with the CANARY deployment strategy.");
  if (linear) {
    tenths(linear["stepPercent"], 3, "linearConfiguration.stepPercent");
    minutes(linear["stepBakeTimeInMinutes"], "linearConfiguration.stepBakeTimeInMinutes");
  }
  if (canary) {
    tenths(canary["canaryPercent"], 0.1, "canaryConfiguration.canaryPercent");
    minutes(canary["canaryBakeTimeInMinutes"], "canaryConfiguration.canaryBakeTimeInMinutes");
  }
  const hooks = cfg["lifecycleHooks"];
  if (hooks === undefined) return;
  if (!Array.isArray(hooks)) throw new EcsError("InvalidParameterException", "lifecycleHooks must be a list.");
  if (hooks.length > 0 && !NATIVE.has(strategy)) throw new EcsError("InvalidParameterException", "Lifecycle hooks are only supported with the BLUE_GREEN, LINEAR and CANARY deployment strategies.");
  for (const h of hooks as Json[]) {
    const type = h["targetType"] ?? "AWS_LAMBDA";
    if (type !== "AWS_LAMBDA" && type !== "PAUSE") throw new EcsError("InvalidParameterException", `Invalid lifecycle hook targetType: ${JSON.stringify(type)}.`);
    if (type === "AWS_LAMBDA") {
      if (typeof h["hookTargetArn"] !== "string" || !LAMBDA_ARN.test(h["hookTargetArn"])) throw new EcsError("InvalidParameterException", "A lifecycle hook requires a hookTargetArn that is a Lambda function ARN.");
      if (typeof h["roleArn"] !== "string" || !ROLE_ARN.test(h["roleArn"])) throw new EcsError("InvalidParameterException", "A lifecycle hook requires a roleArn that is an IAM role ARN.");
    }
    const valid = type === "PAUSE" ? PAUSE_STAGES : HOOK_STAGES;
    const stages = h["lifecycleStages"];
    if (!Array.isArray(stages) || stages.length === 0) throw new EcsError("InvalidParameterException", "A lifecycle hook requires at least one lifecycle stage.");
    for (const st of stages as unknown[]) if (typeof st !== "string" || !valid.has(st)) throw new EcsError("InvalidParameterException", `Invalid lifecycle stage for a ${String(type)} hook: ${String(st)}. Valid values: ${[...valid].join(", ")}.`);
    const t = h["timeoutConfiguration"] as Json | undefined;
    if (t !== undefined) {
      const m = t["timeoutInMinutes"];
      if (m !== undefined && (typeof m !== "number" || !Number.isInteger(m) || m < 1 || m > 1440)) throw new EcsError("InvalidParameterException", "timeoutConfiguration.timeoutInMinutes must be between 1 and 1440.");
      if (t["action"] !== undefined && t["action"] !== "CONTINUE" && t["action"] !== "ROLLBACK") throw new EcsError("InvalidParameterException", "timeoutConfiguration.action must be CONTINUE or ROLLBACK.");
    }
  }
}
