// The ECS fake's contract, pinned with @aws-sdk/client-ecs — including commands the driver never sends — and with
// raw HTTP where the wire itself is the point (the ECS API Reference's request and error shapes).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  ClusterNotFoundException,
  CreateClusterCommand,
  ConflictException,
  ContinueServiceDeploymentCommand,
  CreateServiceCommand,
  DeregisterTaskDefinitionCommand,
  DescribeServiceDeploymentsCommand,
  DescribeClustersCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ECSClient,
  InvalidParameterException,
  ListServiceDeploymentsCommand,
  ListServicesCommand,
  ListTagsForResourceCommand,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  ServiceDeploymentNotFoundException,
  ServiceNotFoundException,
  StopServiceDeploymentCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateServiceCommand,
} from "@aws-sdk/client-ecs";

import { ECS_TARGET_PREFIX, EcsFake, LIFECYCLE_STAGES } from "./ecs-fake.js";

const REGION = "eu-west-1";
const creds = { accessKeyId: "AKIDFERRYTEST", secretAccessKey: "ferry-test-secret" };
let fake: EcsFake;
let endpoint: string;
let ecs: ECSClient;

const def = (family: string, image: string) => ({ family, containerDefinitions: [{ name: "app", image, essential: true, memory: 128 }] });

before(async () => {
  fake = new EcsFake({ region: REGION });
  endpoint = await fake.listen();
  ecs = new ECSClient({ region: REGION, endpoint, credentials: creds, maxAttempts: 1 });
});

after(async () => {
  ecs.destroy();
  await fake.close();
});

describe("ECS fake: the contract", () => {
  it("creates and describes clusters; an unknown cluster is a failure, not an error", async () => {
    const c = await ecs.send(new CreateClusterCommand({ clusterName: "contract" }));
    assert.equal(c.cluster?.clusterArn, `arn:aws:ecs:${REGION}:123456789012:cluster/contract`);
    const d = await ecs.send(new DescribeClustersCommand({ clusters: ["contract", "absent"] }));
    assert.equal(d.clusters?.[0]?.status, "ACTIVE");
    assert.deepEqual(d.failures, [{ arn: `arn:aws:ecs:${REGION}:123456789012:cluster/absent`, reason: "MISSING" }]);
  });

  it("registers revisions that only increase, with epoch timestamps and read-only members added", async () => {
    const a = await ecs.send(new RegisterTaskDefinitionCommand({ ...def("fam", "busybox:1"), tags: [{ key: "k", value: "v" }] }));
    const b = await ecs.send(new RegisterTaskDefinitionCommand(def("fam", "busybox:2")));
    assert.equal(a.taskDefinition?.revision, 1);
    assert.equal(b.taskDefinition?.revision, 2);
    assert.ok(a.taskDefinition?.registeredAt instanceof Date, "the SDK parsed an epoch-seconds timestamp");
    assert.equal(a.taskDefinition?.status, "ACTIVE");
    assert.ok((a.taskDefinition?.requiresAttributes?.length ?? 0) > 0);
    await ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition: "fam:2" }));
    const c = await ecs.send(new RegisterTaskDefinitionCommand(def("fam", "busybox:3")));
    assert.equal(c.taskDefinition?.revision, 3, "a deregistered revision number is never reused");
    const inactive = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: "fam:2" }));
    assert.equal(inactive.taskDefinition?.status, "INACTIVE");
    const latest = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: "fam", include: ["TAGS"] }));
    assert.equal(latest.taskDefinition?.revision, 3);
    assert.deepEqual(latest.tags, []);
    const tagged = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: a.taskDefinition.taskDefinitionArn!, include: ["TAGS"] }));
    assert.deepEqual(tagged.tags, [{ key: "k", value: "v" }]);
    const noTags = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: "fam:1" }));
    assert.equal(noTags.tags, undefined, "tags only when asked for");
    const list = await ecs.send(new ListTaskDefinitionsCommand({ familyPrefix: "fam" }));
    assert.deepEqual(list.taskDefinitionArns?.map((x) => x.split(":").at(-1)), ["1", "3"]);
    await assert.rejects(ecs.send(new RegisterTaskDefinitionCommand({ family: "fam", containerDefinitions: [] })), (e: Error) => e.name === "ClientException");
    await assert.rejects(ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: "nope:9" })), (e: Error) => e.name === "ClientException");
  });

  it("creates, lists, describes, tags and updates services; a missing service is in failures[] as MISSING", async () => {
    await ecs.send(new RegisterTaskDefinitionCommand(def("svc", "busybox:1")));
    const created = await ecs.send(new CreateServiceCommand({ cluster: "contract", serviceName: "api", taskDefinition: "svc", desiredCount: 2, tags: [{ key: "team", value: "a" }] }));
    const arn = created.service!.serviceArn!;
    assert.equal(created.service?.deployments?.[0]?.rolloutState, "IN_PROGRESS");
    assert.match(created.service.deployments[0].id!, /^ecs-svc\/\d{19}$/);
    const list = await ecs.send(new ListServicesCommand({ cluster: "contract" }));
    assert.deepEqual(list.serviceArns, [arn]);
    const d = await ecs.send(new DescribeServicesCommand({ cluster: "contract", services: ["api", "ghost"], include: ["TAGS"] }));
    assert.equal(d.services?.length, 1);
    assert.deepEqual(d.services?.[0]?.tags, [{ key: "team", value: "a" }]);
    assert.equal(d.failures?.[0]?.reason, "MISSING");
    assert.match(d.failures?.[0]?.arn ?? "", /service\/contract\/ghost$/);
    await ecs.send(new TagResourceCommand({ resourceArn: arn, tags: [{ key: "x", value: "1" }] }));
    await ecs.send(new UntagResourceCommand({ resourceArn: arn, tagKeys: ["team"] }));
    assert.deepEqual((await ecs.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags, [{ key: "x", value: "1" }]);
    await assert.rejects(ecs.send(new TagResourceCommand({ resourceArn: arn, tags: [{ key: "aws:x", value: "1" }] })), InvalidParameterException);
    await assert.rejects(ecs.send(new UpdateServiceCommand({ cluster: "contract", service: "ghost", taskDefinition: "svc" })), ServiceNotFoundException);
    await assert.rejects(ecs.send(new DescribeServicesCommand({ cluster: "nowhere", services: ["api"] })), ClusterNotFoundException);
    await assert.rejects(ecs.send(new UpdateServiceCommand({ cluster: "contract", service: "api", deploymentConfiguration: { maximumPercent: 90 } })), InvalidParameterException);
  });

  it("runs a deployment within the percentages, to COMPLETED as the only deployment", async () => {
    await ecs.send(new RegisterTaskDefinitionCommand(def("roll", "busybox:1")));
    await ecs.send(new CreateServiceCommand({ cluster: "contract", serviceName: "roll", taskDefinition: "roll:1", desiredCount: 4, deploymentConfiguration: { maximumPercent: 150, minimumHealthyPercent: 75 } }));
    fake.tick(10);
    await ecs.send(new RegisterTaskDefinitionCommand(def("roll", "busybox:2")));
    const up = await ecs.send(new UpdateServiceCommand({ cluster: "contract", service: "roll", taskDefinition: "roll:2" }));
    const ours = up.service!.deployments!.find((x) => x.status === "PRIMARY")!;
    assert.equal(up.service!.deployments!.length, 2);
    const arn = up.service!.serviceArn!;
    fake.extremes.delete(arn);
    for (let i = 0; i < 20; i++) {
      fake.tick();
      const ex = fake.extremes.get(arn)!;
      assert.ok(ex.maxTasks <= 6 && ex.minRunning >= 3, JSON.stringify(ex));
    }
    const done = await ecs.send(new DescribeServicesCommand({ cluster: "contract", services: ["roll"] }));
    assert.deepEqual(done.services?.[0]?.deployments?.map((x) => [x.id, x.status, x.rolloutState]), [[ours.id, "PRIMARY", "COMPLETED"]]);
  });

  it("the circuit breaker fails a deployment and, with rollback, starts one of the last completed definition", async () => {
    await ecs.send(new RegisterTaskDefinitionCommand(def("cb", "busybox:1")));
    await ecs.send(new CreateServiceCommand({ cluster: "contract", serviceName: "cb", taskDefinition: "cb:1", desiredCount: 2, deploymentConfiguration: { deploymentCircuitBreaker: { enable: true, rollback: true } } }));
    fake.tick(10);
    await ecs.send(new RegisterTaskDefinitionCommand(def("cb", "busybox:bad")));
    fake.failingImages.add("busybox:bad");
    const up = await ecs.send(new UpdateServiceCommand({ cluster: "contract", service: "cb", taskDefinition: "cb:2" }));
    const ours = up.service!.deployments!.find((x) => x.status === "PRIMARY")!.id;
    fake.tick(8);
    const s = (await ecs.send(new DescribeServicesCommand({ cluster: "contract", services: ["cb"] }))).services![0]!;
    const failed = s.deployments?.find((x) => x.id === ours);
    // Either still listed as FAILED, or already gone once the rollback completed: never COMPLETED.
    assert.ok(!failed || failed.rolloutState === "FAILED");
    assert.match(s.taskDefinition!, /cb:1$/);
    assert.match(s.events?.map((e) => e.message).join("\n") ?? "", /deployment failed: tasks failed to start/);
  });

  it("answers on the wire as the JSON 1.1 protocol does: request ids, {__type, message} errors, SigV4 checked", async () => {
    const raw = await fetch(endpoint, { method: "POST", headers: { "x-amz-target": `${ECS_TARGET_PREFIX}ListClusters`, "content-type": "application/x-amz-json-1.1" }, body: "{}" });
    assert.equal(raw.status, 400);
    assert.ok(raw.headers.get("x-amzn-requestid"));
    assert.deepEqual(await raw.json(), { __type: "MissingAuthenticationTokenException", message: "Missing Authentication Token" });
    const wrongSecret = new ECSClient({ region: REGION, endpoint, credentials: { ...creds, secretAccessKey: "wrong" }, maxAttempts: 1 });
    await assert.rejects(wrongSecret.send(new ListServicesCommand({ cluster: "contract" })), (e: Error) => e.name === "InvalidSignatureException");
    const wrongRegion = new ECSClient({ region: "us-east-1", endpoint, credentials: creds, maxAttempts: 1 });
    await assert.rejects(wrongRegion.send(new ListServicesCommand({ cluster: "contract" })), (e: Error) => e.name === "InvalidSignatureException" && /scoped to a valid region/.test(e.message));
    const unknownKey = new ECSClient({ region: REGION, endpoint, credentials: { accessKeyId: "AKIDUNKNOWN", secretAccessKey: "x" }, maxAttempts: 1 });
    await assert.rejects(unknownKey.send(new ListServicesCommand({ cluster: "contract" })), (e: Error) => e.name === "UnrecognizedClientException");
    for (const c of [wrongSecret, wrongRegion, unknownKey]) c.destroy();
    fake.throttle("ListServices", 1);
    await assert.rejects(ecs.send(new ListServicesCommand({ cluster: "contract" })), (e: Error & { $metadata?: { requestId?: string } }) => e.name === "ThrottlingException" && !!e.$metadata?.requestId);
    fake.deny("ListServices");
    await assert.rejects(ecs.send(new ListServicesCommand({ cluster: "contract" })), (e: Error) => e.name === "AccessDeniedException" && /not authorized to perform: ecs:ListServices/.test(e.message));
    fake.allow("ListServices");
  });

  describe("service deployments of ECS's own strategies", () => {
    const HOOK = `arn:aws:lambda:${REGION}:123456789012:function:gate`;
    const ROLE = "arn:aws:iam::123456789012:role/ecs-hooks";

    async function nativeService(name: string, deploymentConfiguration: Record<string, unknown>, desiredCount = 2): Promise<string> {
      await ecs.send(new RegisterTaskDefinitionCommand(def(name, "busybox:1")));
      await ecs.send(new RegisterTaskDefinitionCommand(def(name, "busybox:2")));
      await ecs.send(new CreateServiceCommand({ cluster: "contract", serviceName: name, taskDefinition: `${name}:1`, desiredCount, deploymentConfiguration: { deploymentCircuitBreaker: { enable: true, rollback: true }, ...deploymentConfiguration } }));
      fake.tick(5);
      const up = await ecs.send(new UpdateServiceCommand({ cluster: "contract", service: name, taskDefinition: `${name}:2` }));
      assert.match(up.service?.currentServiceDeployment ?? "", new RegExp(`^arn:aws:ecs:${REGION}:123456789012:service-deployment/contract/${name}/\\w+$`));
      return up.service!.currentServiceDeployment!;
    }
    const describeSd = async (arn: string) => (await ecs.send(new DescribeServiceDeploymentsCommand({ serviceDeploymentArns: [arn] }))).serviceDeployments![0]!;
    /** Ticks (letting hook functions answer in between) until `done`, recording each stage and status seen. */
    async function walk(arn: string, done: (status: string) => boolean, max = 400): Promise<string[]> {
      const seen: string[] = [];
      for (let i = 0; i < max; i++) {
        const d = await describeSd(arn);
        const line = `${d.status} ${d.lifecycleStage}`;
        if (seen.at(-1) !== line) seen.push(line);
        if (done(d.status!)) return seen;
        fake.tick();
        await fake.hooksSettled();
      }
      assert.fail(`no end after ${max} ticks: ${seen.join(" / ")}`);
    }

    it("BLUE_GREEN walks every lifecycle stage; the source runs through the bake; a hook asked again after IN_PROGRESS", async () => {
      let asked = 0;
      fake.lambdas.set(HOOK, () => (++asked < 3 ? { hookStatus: "IN_PROGRESS", callBackDelay: 5 } : { hookStatus: "SUCCEEDED" }));
      const arn = await nativeService("bg", { strategy: "BLUE_GREEN", bakeTimeInMinutes: 1, lifecycleHooks: [{ hookTargetArn: HOOK, roleArn: ROLE, lifecycleStages: ["POST_TEST_TRAFFIC_SHIFT"], hookDetails: { team: "a" } }] });
      const first = await describeSd(arn);
      assert.equal(first.status, "PENDING");
      assert.match(first.sourceServiceRevisions?.[0]?.arn ?? "", /service-revision\/contract\/bg\/\d{19}$/);
      let sourceDuringBake = -1;
      const seen: string[] = [];
      for (let i = 0; i < 200; i++) {
        const d = await describeSd(arn);
        if (seen.at(-1) !== d.lifecycleStage) seen.push(d.lifecycleStage!);
        if (d.lifecycleStage === "BAKE_TIME") {
          sourceDuringBake = d.sourceServiceRevisions![0]!.runningTaskCount!;
          assert.equal(d.targetServiceRevision?.requestedProductionTrafficWeight, 100);
        }
        if (d.status === "SUCCESSFUL") break;
        fake.tick();
        await fake.hooksSettled();
      }
      assert.deepEqual(seen, [...LIFECYCLE_STAGES]);
      assert.equal(sourceDuringBake, 2, "the blue tasks keep running until the bake time is over");
      const done = await describeSd(arn);
      assert.equal(done.status, "SUCCESSFUL");
      assert.ok(done.finishedAt instanceof Date);
      assert.equal(done.targetServiceRevision?.runningTaskCount, 2);
      assert.equal(done.sourceServiceRevisions?.[0]?.runningTaskCount, 0);
      // The hook got ECS's payload three times, 5 s apart on the fake's clock.
      const calls = fake.hookInvocations.filter((c) => (c.payload["resourceArn"] as string) === arn);
      assert.equal(calls.length, 3);
      const p = calls[0]!.payload as { executionDetails: Record<string, unknown>; lifecycleStage: string; hookDetails: unknown };
      assert.equal(p.lifecycleStage, "POST_TEST_TRAFFIC_SHIFT");
      assert.equal(p.executionDetails["serviceArn"], `arn:aws:ecs:${REGION}:123456789012:service/contract/bg`);
      assert.equal(p.executionDetails["targetServiceRevisionArn"], done.targetServiceRevision?.arn);
      assert.deepEqual(p.executionDetails["testTrafficWeights"], { [done.sourceServiceRevisions[0].arn!]: 0, [done.targetServiceRevision.arn!]: 100 });
      assert.deepEqual(p.executionDetails["productionTrafficWeights"], { [done.sourceServiceRevisions[0].arn!]: 100, [done.targetServiceRevision.arn!]: 0 });
      assert.deepEqual(p.hookDetails, { team: "a" });
      const list = await ecs.send(new ListServiceDeploymentsCommand({ cluster: "contract", service: "bg" }));
      assert.deepEqual(list.serviceDeployments?.map((x) => [x.serviceDeploymentArn, x.status]), [[arn, "SUCCESSFUL"]]);
      const svc = (await ecs.send(new DescribeServicesCommand({ cluster: "contract", services: ["bg"] }))).services![0]!;
      assert.match(svc.taskDefinition!, /bg:2$/);
      assert.equal(svc.currentServiceDeployment, arn);
      assert.deepEqual(svc.deployments?.map((x) => x.rolloutState), ["COMPLETED"]);
    });

    it("StopServiceDeployment rolls back to the source revision; a finished or unknown deployment is refused", async () => {
      const arn = await nativeService("stop", { strategy: "BLUE_GREEN", bakeTimeInMinutes: 5 });
      fake.tick(12);
      const mid = await describeSd(arn);
      assert.equal(mid.status, "IN_PROGRESS");
      await ecs.send(new StopServiceDeploymentCommand({ serviceDeploymentArn: arn, stopType: "ROLLBACK" }));
      assert.equal((await describeSd(arn)).status, "ROLLBACK_REQUESTED");
      const seen = await walk(arn, (s) => s === "ROLLBACK_SUCCESSFUL");
      assert.ok(seen.some((x) => x.startsWith("ROLLBACK_IN_PROGRESS")), seen.join(" / "));
      const d = await describeSd(arn);
      assert.equal(d.rollback?.serviceRevisionArn, d.sourceServiceRevisions?.[0]?.arn);
      assert.match(d.rollback?.reason ?? "", /StopServiceDeployment/);
      const svc = (await ecs.send(new DescribeServicesCommand({ cluster: "contract", services: ["stop"] }))).services![0]!;
      assert.match(svc.taskDefinition!, /stop:1$/);
      assert.ok(fake.tasksOf("contract", "stop").filter((t) => t.lastStatus !== "STOPPED").every((t) => /stop:1$/.test(t.taskDefinitionArn)));
      await assert.rejects(ecs.send(new StopServiceDeploymentCommand({ serviceDeploymentArn: arn, stopType: "ROLLBACK" })), ConflictException);
      const ghost = arn.replace(/\/\w+$/, "/nosuchdeployment");
      await assert.rejects(ecs.send(new StopServiceDeploymentCommand({ serviceDeploymentArn: ghost })), ServiceDeploymentNotFoundException);
      const missing = await ecs.send(new DescribeServiceDeploymentsCommand({ serviceDeploymentArns: [ghost] }));
      assert.deepEqual(missing.failures, [{ arn: ghost, reason: "MISSING" }]);
      await assert.rejects(ecs.send(new DescribeServiceDeploymentsCommand({ serviceDeploymentArns: [] })), InvalidParameterException);
      const rolledBack = await ecs.send(new ListServiceDeploymentsCommand({ cluster: "contract", service: "stop", status: ["ROLLBACK_SUCCESSFUL"] }));
      assert.equal(rolledBack.serviceDeployments?.length, 1);
      await assert.rejects(ecs.send(new ListServiceDeploymentsCommand({ cluster: "contract", service: "stop", status: ["DONE" as never] })), InvalidParameterException);
    });

    it("a hook answering FAILED, a missing hook function or the circuit breaker roll back", async () => {
      const failing = `arn:aws:lambda:${REGION}:123456789012:function:says-no`;
      fake.lambdas.set(failing, () => ({ hookStatus: "FAILED" }));
      const a = await nativeService("hookno", { strategy: "BLUE_GREEN", lifecycleHooks: [{ hookTargetArn: failing, roleArn: ROLE, lifecycleStages: ["POST_SCALE_UP"] }] });
      await walk(a, (s) => s === "ROLLBACK_SUCCESSFUL");
      assert.match((await describeSd(a)).statusReason ?? "", /says-no at POST_SCALE_UP failed/);
      const b = await nativeService("hookgone", { strategy: "CANARY", lifecycleHooks: [{ hookTargetArn: `arn:aws:lambda:${REGION}:123456789012:function:nowhere`, roleArn: ROLE, lifecycleStages: ["PRE_SCALE_UP"] }] });
      await walk(b, (s) => s === "ROLLBACK_SUCCESSFUL");
      assert.match((await describeSd(b)).statusReason ?? "", /Function not found/);
      await ecs.send(new RegisterTaskDefinitionCommand(def("cbn", "busybox:1")));
      await ecs.send(new RegisterTaskDefinitionCommand(def("cbn", "busybox:cbn-bad")));
      fake.failingImages.add("busybox:cbn-bad");
      await ecs.send(new CreateServiceCommand({ cluster: "contract", serviceName: "cbn", taskDefinition: "cbn:1", desiredCount: 2, deploymentConfiguration: { strategy: "BLUE_GREEN", deploymentCircuitBreaker: { enable: true, rollback: true } } }));
      fake.tick(5);
      const c = (await ecs.send(new UpdateServiceCommand({ cluster: "contract", service: "cbn", taskDefinition: "cbn:2" }))).service!.currentServiceDeployment!;
      await walk(c, (s) => s === "ROLLBACK_SUCCESSFUL");
      const d = await describeSd(c);
      assert.match(d.statusReason ?? "", /circuit breaker/);
      assert.equal(d.deploymentCircuitBreaker?.status, "TRIGGERED");
      fake.failingImages.delete("busybox:cbn-bad");
    });

    it("LINEAR shifts production traffic by stepPercent per step bake; CANARY by canaryPercent, then the rest", async () => {
      const lin = await nativeService("lin", { strategy: "LINEAR", linearConfiguration: { stepPercent: 25, stepBakeTimeInMinutes: 1 } });
      await walk(lin, (s) => s === "SUCCESSFUL");
      const l = fake.serviceDeployment(lin)!;
      assert.deepEqual(l.shifts.map(([, w]) => w), [25, 50, 75, 100]);
      assert.deepEqual(l.shifts.slice(1).map(([t], i) => (t - l.shifts[i]![0]) / 1000), [60, 60, 60]);
      const can = await nativeService("can", { strategy: "CANARY", canaryConfiguration: { canaryPercent: 10, canaryBakeTimeInMinutes: 2 } });
      let seenCanary = false;
      for (let i = 0; i < 300 && (await describeSd(can)).status !== "SUCCESSFUL"; i++) {
        const d = await describeSd(can);
        if (d.targetServiceRevision?.requestedProductionTrafficWeight === 10) seenCanary = d.sourceServiceRevisions?.[0]?.requestedProductionTrafficWeight === 90;
        fake.tick();
      }
      assert.ok(seenCanary, "10% on the target and 90% on the source during the canary bake");
      const c = fake.serviceDeployment(can)!;
      assert.deepEqual(c.shifts.map(([, w]) => w), [10, 100]);
      assert.equal((c.shifts[1]![0] - c.shifts[0]![0]) / 1000, 120);
    });

    it("a PAUSE hook holds the deployment in AWAITING_ACTION until ContinueServiceDeployment, or its timeout", async () => {
      const arn = await nativeService("paused", { strategy: "BLUE_GREEN", lifecycleHooks: [{ targetType: "PAUSE", lifecycleStages: ["POST_TEST_TRAFFIC_SHIFT"] }] });
      for (let i = 0; i < 40; i++) fake.tick(); // far longer than the stages before it take
      const held = await describeSd(arn);
      assert.equal(held.lifecycleStage, "POST_TEST_TRAFFIC_SHIFT");
      const hook = held.lifecycleHookDetails![0]!;
      assert.equal(hook.targetType, "PAUSE");
      assert.equal(hook.status, "AWAITING_ACTION");
      assert.equal(hook.targetArn, undefined);
      assert.match(hook.hookId!, /^ecs-pause-[\w-]{43}$/);
      await assert.rejects(ecs.send(new ContinueServiceDeploymentCommand({ serviceDeploymentArn: arn, hookId: "ecs-pause-nope" })), InvalidParameterException);
      await assert.rejects(ecs.send(new ContinueServiceDeploymentCommand({ serviceDeploymentArn: arn, hookId: hook.hookId, action: "LATER" as never })), InvalidParameterException);
      await ecs.send(new ContinueServiceDeploymentCommand({ serviceDeploymentArn: arn, hookId: hook.hookId }));
      await assert.rejects(ecs.send(new ContinueServiceDeploymentCommand({ serviceDeploymentArn: arn, hookId: hook.hookId })), ConflictException);
      await walk(arn, (st) => st === "SUCCESSFUL");

      const back = await nativeService("paused-back", { strategy: "LINEAR", lifecycleHooks: [{ targetType: "PAUSE", lifecycleStages: ["POST_SCALE_UP"] }] });
      for (let i = 0; i < 30 && (await describeSd(back)).lifecycleHookDetails === undefined; i++) fake.tick();
      const h2 = (await describeSd(back)).lifecycleHookDetails![0]!;
      await ecs.send(new ContinueServiceDeploymentCommand({ serviceDeploymentArn: back, hookId: h2.hookId, action: "ROLLBACK" }));
      await walk(back, (st) => st === "ROLLBACK_SUCCESSFUL");
      assert.match((await describeSd(back)).rollback?.reason ?? "", /ContinueServiceDeployment at POST_SCALE_UP/);

      const timed = await nativeService("paused-timeout", { strategy: "CANARY", lifecycleHooks: [{ targetType: "PAUSE", lifecycleStages: ["PRE_SCALE_UP"], timeoutConfiguration: { timeoutInMinutes: 1, action: "CONTINUE" } }] });
      await walk(timed, (st) => st === "SUCCESSFUL", 1200);
      await assert.rejects(ecs.send(new ContinueServiceDeploymentCommand({ serviceDeploymentArn: timed.replace(/\/\w+$/, "/gone"), hookId: "x" })), ServiceDeploymentNotFoundException);
    });

    it("refuses what ECS refuses in a deployment configuration", async () => {
      await ecs.send(new RegisterTaskDefinitionCommand(def("bad", "busybox:1")));
      const create = (deploymentConfiguration: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
        ecs.send(new CreateServiceCommand({ cluster: "contract", serviceName: "bad", taskDefinition: "bad:1", deploymentConfiguration, ...extra }));
      const hook = { hookTargetArn: HOOK, roleArn: ROLE, lifecycleStages: ["POST_SCALE_UP"] };
      for (const [cfg, why] of [
        [{ strategy: "RED_BLACK" }, /Invalid deployment strategy/],
        [{ strategy: "BLUE_GREEN", bakeTimeInMinutes: 1441 }, /bakeTimeInMinutes/],
        [{ strategy: "BLUE_GREEN", bakeTimeInMinutes: -1 }, /bakeTimeInMinutes/],
        [{ strategy: "BLUE_GREEN", linearConfiguration: { stepPercent: 10 } }, /only valid with the LINEAR/],
        [{ strategy: "LINEAR", linearConfiguration: { stepPercent: 2.5 } }, /stepPercent/],
        [{ strategy: "LINEAR", linearConfiguration: { stepPercent: 10.05 } }, /stepPercent/],
        [{ strategy: "CANARY", canaryConfiguration: { canaryPercent: 0.05 } }, /canaryPercent/],
        [{ strategy: "CANARY", canaryConfiguration: { canaryBakeTimeInMinutes: 2000 } }, /canaryBakeTimeInMinutes/],
        [{ strategy: "ROLLING", lifecycleHooks: [hook] }, /only supported with the BLUE_GREEN/],
        [{ strategy: "BLUE_GREEN", lifecycleHooks: [{ ...hook, roleArn: undefined }] }, /roleArn/],
        [{ strategy: "BLUE_GREEN", lifecycleHooks: [{ ...hook, hookTargetArn: "arn:aws:sns:eu-west-1:123456789012:topic" }] }, /Lambda function ARN/],
        [{ strategy: "BLUE_GREEN", lifecycleHooks: [{ ...hook, lifecycleStages: ["BAKE_TIME"] }] }, /Invalid lifecycle stage/],
        [{ strategy: "BLUE_GREEN", lifecycleHooks: [{ ...hook, lifecycleStages: [] }] }, /at least one lifecycle stage/],
        [{ strategy: "BLUE_GREEN", lifecycleHooks: [{ ...hook, timeoutConfiguration: { timeoutInMinutes: 0 } }] }, /timeoutInMinutes/],
        [{ strategy: "BLUE_GREEN", lifecycleHooks: [{ targetType: "PAUSE", lifecycleStages: ["TEST_TRAFFIC_SHIFT"] }] }, /Invalid lifecycle stage for a PAUSE hook/],
        [{ strategy: "BLUE_GREEN", lifecycleHooks: [{ ...hook, targetType: "SNS" }] }, /Invalid lifecycle hook targetType/],
      ] as [Record<string, unknown>, RegExp][]) {
        await assert.rejects(create(cfg), (e: Error) => e.name === "InvalidParameterException" && why.test(e.message), JSON.stringify(cfg));
      }
      await assert.rejects(create({ strategy: "BLUE_GREEN" }, { deploymentController: { type: "CODE_DEPLOY" } }), (e: Error) => /requires the ECS deployment controller/.test(e.message));
    });
  });
});
