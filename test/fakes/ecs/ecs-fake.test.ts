// The ECS fake's contract, pinned with @aws-sdk/client-ecs — including commands the driver never sends — and with
// raw HTTP where the wire itself is the point (the ECS API Reference's request and error shapes).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  ClusterNotFoundException,
  CreateClusterCommand,
  CreateServiceCommand,
  DeregisterTaskDefinitionCommand,
  DescribeClustersCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ECSClient,
  InvalidParameterException,
  ListServicesCommand,
  ListTagsForResourceCommand,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  ServiceNotFoundException,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateServiceCommand,
} from "@aws-sdk/client-ecs";

import { ECS_TARGET_PREFIX, EcsFake } from "./ecs-fake.js";

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
});
