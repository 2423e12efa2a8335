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
import { createHash, randomUUID } from "node:crypto";
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
  seedService(cluster: string, service: string, taskDefinition: Json, opts: { desiredCount?: number; controller?: string; strategy?: string } = {}): { serviceArn: string; taskDefinitionArn: string } {
    if (!this.#clusters.has(cluster)) this.#createCluster({ clusterName: cluster });
    const td = this.#register(taskDefinition);
    const svc = this.#createService({
      cluster,
      serviceName: service,
      taskDefinition: td.taskDefinitionArn,
      desiredCount: opts.desiredCount ?? 2,
      deploymentController: { type: opts.controller ?? "ECS" },
      ...(opts.strategy ? { deploymentConfiguration: { strategy: opts.strategy } } : {}),
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
    };
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
    svc.deploymentConfiguration = this.#deploymentConfiguration(i["deploymentConfiguration"], svc.deploymentConfiguration);
    if (i["desiredCount"] !== undefined) svc.desiredCount = i["desiredCount"] as number;
    const changed = td !== undefined && td.taskDefinitionArn !== svc.taskDefinition;
    if (changed || i["forceNewDeployment"] === true) {
      svc.taskDefinition = td?.taskDefinitionArn ?? svc.taskDefinition;
      for (const d of svc.deployments) if (d.status === "PRIMARY") d.status = "ACTIVE";
      svc.deployments.unshift(this.#deployment(svc, svc.taskDefinition));
      this.#event(svc, `(service ${svc.serviceName}) has started a deployment.`);
    } else {
      for (const d of svc.deployments) if (d.status === "PRIMARY") d.desiredCount = svc.desiredCount;
    }
    return svc;
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
