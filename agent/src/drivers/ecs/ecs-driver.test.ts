// The ECS driver through @aws-sdk/client-ecs and real HTTP against the project's ECS fake (test/fakes/ecs): the
// phases as the agent runs them, the circuit breaker with and without rollback, a wrong digest, refusals that touch
// nothing, throttling, access denial, a rollback that reuses the previous revision, drift, and the percentages.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";

import { DescribeServicesCommand, ECSClient, UpdateServiceCommand } from "@aws-sdk/client-ecs";
import { checkObject, type EcsTargetConfig, type ImagePin } from "@ferry/contract";
import { pino } from "pino";

import { EcsFake } from "../../../../test/fakes/ecs/ecs-fake.js";
import { runPhases } from "../../core/phase-runner.js";
import { driverFailure, phaseContext } from "../../test-support/phase-context.js";
import type { PhaseContext, TargetRef } from "../driver.js";
import { EcsDriver, ecsConfig } from "./ecs-driver.js";
import { ecsRegistration, ecsSettings } from "./index.js";

const REGION = "eu-west-1";
// The standard AWS chain reads these; the fake knows this key and verifies every request's signature with it.
process.env["AWS_ACCESS_KEY_ID"] = "AKIDFERRYTEST";
process.env["AWS_SECRET_ACCESS_KEY"] = "ferry-test-secret";
delete process.env["AWS_PROFILE"];
delete process.env["AWS_SESSION_TOKEN"];

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const pin = (component: string, repository: string, c: string): ImagePin => ({ component, repository, digest: digest(c), ref: `${repository}@${digest(c)}` });
const WEB_V1 = pin("web", "registry.example/shop/web", "1");
const WEB_V2 = pin("web", "registry.example/shop/web", "2");
const LOGS_V2 = pin("logs", "registry.example/shop/logs", "3");

const TASK_DEF = {
  family: "shop-web",
  cpu: "256",
  memory: "512",
  networkMode: "awsvpc",
  requiresCompatibilities: ["FARGATE"],
  executionRoleArn: "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
  containerDefinitions: [
    { name: "web", image: WEB_V1.ref, essential: true, portMappings: [{ containerPort: 8080 }], environment: [{ name: "MODE", value: "prod" }] },
    { name: "log-router", image: "registry.example/shop/logs:stable", essential: false },
  ],
  tags: [{ key: "team", value: "shop" }],
};

let fake: EcsFake;
let endpoint: string;
let driver: EcsDriver;
let sdk: ECSClient;

function target(config: Partial<EcsTargetConfig> = {}): TargetRef {
  const merged: Record<string, unknown> = { region: REGION, cluster: "prod", service: "web", ...(config.containers ? {} : { containerName: "web" }), steadyStateTimeoutSeconds: 30, ...config };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
  return { id: "t-1", name: "shop-web", kind: "ecs", config: merged };
}

function ctx(images: ImagePin[], config: Partial<EcsTargetConfig> = {}, signal = new AbortController().signal, action: "deploy" | "rollback" = "deploy"): PhaseContext<EcsTargetConfig> & { lines: string[] } {
  return phaseContext(target(config), ecsConfig, images, { signal, action });
}

const run = (c: PhaseContext<EcsTargetConfig>) => runPhases(driver, c, { logger: pino({ level: "silent" }) });

const failure = driverFailure;

before(async () => {
  fake = new EcsFake({ region: REGION, tickMs: 15 });
  endpoint = await fake.listen();
  driver = new EcsDriver({ settings: { endpoint, pollIntervalMs: 20, maxAttempts: 4 } });
  sdk = new ECSClient({ region: REGION, endpoint });
});

after(async () => {
  sdk.destroy();
  await fake.close();
});

beforeEach(() => {
  fake.failingImages.clear();
  fake.wrongDigest = false;
  fake.convergeTicks = 1;
});

function seed(service = "web", desiredCount = 2, opts: { controller?: string; strategy?: string } = {}): void {
  fake.seedService("prod", service, TASK_DEF, { desiredCount, ...opts });
}

describe("ECS driver against the ECS fake", () => {
  it("registers a revision with only the mapped image pinned, follows its deployment and checks the running tasks", async () => {
    seed("web");
    const before = fake.service("prod", "web")!.taskDefinition;
    const c = ctx([WEB_V2]);
    const outcome = await run(c);
    const svc = fake.service("prod", "web")!;
    assert.notEqual(svc.taskDefinition, before);
    assert.match(svc.taskDefinition, /task-definition\/shop-web:\d+$/);
    assert.deepEqual(outcome.running, [{ component: "web", repository: WEB_V2.repository, digest: WEB_V2.digest, containerName: "web" }]);
    assert.equal(outcome.details?.["previousTaskDefinition"], before);
    // The new revision is the old one with one image changed; every other setting and tag kept, the sticker added.
    const reg = fake.calls.filter((x) => x.action === "RegisterTaskDefinition").at(-1)!.body;
    for (const k of ["taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities", "registeredAt", "registeredBy"]) assert.ok(!(k in reg), `${k} must not be sent`);
    const defs = reg["containerDefinitions"] as { name: string; image: string; environment?: unknown }[];
    assert.equal(defs.find((d) => d.name === "web")!.image, WEB_V2.ref);
    assert.equal(defs.find((d) => d.name === "log-router")!.image, "registry.example/shop/logs:stable");
    assert.deepEqual(defs.find((d) => d.name === "web")!.environment, [{ name: "MODE", value: "prod" }]);
    assert.equal(reg["executionRoleArn"], TASK_DEF.executionRoleArn);
    const tags = reg["tags"] as { key: string; value: string }[];
    assert.ok(tags.some((t) => t.key === "team" && t.value === "shop"));
    assert.ok(tags.some((t) => t.key === "ferry.image.1" && t.value === `web=${WEB_V2.digest}`));
    // The update asked for the circuit breaker with rollback; health never used a waiter.
    const upd = fake.calls.filter((x) => x.action === "UpdateService").at(-1)!.body;
    assert.deepEqual((upd["deploymentConfiguration"] as Record<string, unknown>)["deploymentCircuitBreaker"], { enable: true, rollback: true });
    // Every running task runs the new revision and the pinned digest.
    const running = fake.tasksOf("prod", "web").filter((t) => t.lastStatus === "RUNNING");
    assert.equal(running.length, 2);
    for (const t of running) assert.equal(t.taskDefinitionArn, svc.taskDefinition);
    // The sticker is on the service; inspect and readSticker read it back.
    const sticker = await driver.readSticker(target());
    assert.deepEqual(sticker, { deploymentId: c.deploymentId, taskId: c.taskId, releaseId: c.release.id, images: [{ component: "web", digest: WEB_V2.digest }] });
    const seen = await driver.inspect(target());
    assert.equal(seen.state, "running");
    assert.deepEqual(seen.running.map((r) => r.digest), [WEB_V2.digest]);
    assert.equal(seen.labels["ferry.task"], c.taskId);
    assert.equal(seen.details["drift"], undefined);
  });

  it("keeps the rollout within maximumPercent and minimumHealthyPercent", async () => {
    seed("pct", 4);
    fake.extremes.clear();
    fake.convergeTicks = 3;
    await run(ctx([WEB_V2], { service: "pct", deployment: { maximumPercent: 150, minimumHealthyPercent: 50 } }));
    const ex = fake.extremes.get(fake.service("prod", "pct")!.serviceArn)!;
    assert.ok(ex.maxTasks <= 6, `at most 150% of 4 tasks at once, saw ${ex.maxTasks}`);
    assert.ok(ex.minRunning >= 2, `at least 50% of 4 tasks running, saw ${ex.minRunning}`);
  });

  it("a deploy of what already runs registers nothing and succeeds", async () => {
    seed("same");
    const calls = fake.calls.length;
    const outcome = await run(ctx([WEB_V1], { service: "same" }));
    assert.equal(outcome.details?.["alreadyDeployed"], true);
    assert.ok(!fake.calls.slice(calls).some((x) => x.action === "RegisterTaskDefinition" || x.action === "UpdateService"));
  });

  it("fails when the circuit breaker trips and ECS rolls back; the previous revision serves", async () => {
    seed("cb");
    const before = fake.service("prod", "cb")!.taskDefinition;
    const bad = pin("web", "registry.example/shop/web", "d");
    fake.failingImages.add(bad.ref);
    const err = await failure(run(ctx([bad], { service: "cb" })));
    assert.equal(err.code, "INSTANCE_CRASHED");
    assert.equal(err.restored, true);
    assert.match(err.message, /circuit breaker/);
    const svc = fake.service("prod", "cb")!;
    assert.equal(svc.taskDefinition, before);
    assert.equal(svc.deployments.length, 1);
    assert.equal(svc.deployments[0]!.rolloutState, "COMPLETED");
    // ECS went back by itself: the driver followed that deployment and did not start another.
    assert.equal(fake.calls.filter((x) => x.action === "UpdateService" && (x.body["service"] as string) === "cb").length, 1);
  });

  it("fails when the circuit breaker trips without rollback; restore deploys the previous revision", async () => {
    seed("cbn");
    const before = fake.service("prod", "cbn")!.taskDefinition;
    const bad = pin("web", "registry.example/shop/web", "e");
    fake.failingImages.add(bad.ref);
    const err = await failure(run(ctx([bad], { service: "cbn", deployment: { circuitBreakerRollback: false } })));
    assert.equal(err.code, "INSTANCE_CRASHED");
    assert.equal(err.restored, true);
    const svc = fake.service("prod", "cbn")!;
    assert.equal(svc.taskDefinition, before);
    assert.equal(svc.deployments[0]!.rolloutState, "COMPLETED");
    const updates = fake.calls.filter((x) => x.action === "UpdateService" && x.body["service"] === "cbn");
    assert.equal(updates.length, 2);
    assert.equal(updates[1]!.body["taskDefinition"], before);
  });

  it("fails with DIGEST_MISMATCH when the running tasks carry another digest, and restores", async () => {
    seed("moved");
    const before = fake.service("prod", "moved")!.taskDefinition;
    fake.wrongDigest = true;
    const err = await failure(run(ctx([WEB_V2], { service: "moved" })));
    fake.wrongDigest = false;
    assert.equal(err.code, "DIGEST_MISMATCH");
    assert.equal(err.restored, true);
    assert.equal(err.details["expected"], WEB_V2.digest);
    assert.equal(fake.service("prod", "moved")!.taskDefinition, before);
  });

  it("refuses an unknown service, an unknown cluster, an unknown container and a non-ECS controller before changing anything", async () => {
    seed("known");
    const cases: [Partial<EcsTargetConfig>, string, RegExp][] = [
      [{ service: "nope" }, "TARGET_NOT_FOUND", /service nope in cluster prod .*does not exist \(MISSING\)/],
      [{ cluster: "staging" }, "TARGET_NOT_FOUND", /ECS cluster staging \(eu-west-1\) does not exist/],
      [{ service: "known", containerName: "api" }, "TARGET_NOT_FOUND", /has no container api \(it has web, log-router\)/],
      [{ service: "known", containerName: undefined }, "INVALID_TARGET_CONFIG", /several containers/],
    ];
    for (const [config, code, message] of cases) {
      const calls = fake.calls.length;
      const c = ctx([WEB_V2], config);
      const err = await failure(run(c));
      assert.equal(err.code, code, JSON.stringify(config));
      assert.match(err.message, message);
      assert.equal(err.restored, true);
      assert.ok(!fake.calls.slice(calls).some((x) => x.action === "RegisterTaskDefinition" || x.action === "UpdateService"), "nothing registered or updated");
    }
    seed("blue", 2, { controller: "CODE_DEPLOY" });
    const err = await failure(run(ctx([WEB_V2], { service: "blue" })));
    assert.equal(err.code, "TARGET_UNSUPPORTED");
    assert.match(err.message, /CODE_DEPLOY deployment controller/);
  });

  it("sets several containers to several components", async () => {
    seed("both");
    const c = ctx([WEB_V2, LOGS_V2], { service: "both", containers: { web: "web", "log-router": "logs" } });
    const outcome = await run(c);
    assert.deepEqual(outcome.running.map((r) => `${r.containerName}=${r.digest}`).sort(), [`log-router=${LOGS_V2.digest}`, `web=${WEB_V2.digest}`]);
    const td = fake.calls.filter((x) => x.action === "RegisterTaskDefinition").at(-1)!.body["containerDefinitions"] as { name: string; image: string }[];
    assert.equal(td.find((d) => d.name === "log-router")!.image, LOGS_V2.ref);
  });

  it("rides out throttling through the SDK's retries, and reports access denied as such", async () => {
    seed("thr");
    fake.throttle("DescribeServices", 2);
    await run(ctx([WEB_V2], { service: "thr" }));
    seed("deny");
    fake.deny("UpdateService");
    try {
      const err = await failure(run(ctx([WEB_V2], { service: "deny" })));
      assert.equal(err.code, "PLATFORM_ACCESS_DENIED");
      assert.match(err.message, /UpdateService/);
      assert.doesNotMatch(JSON.stringify(err), /ferry-test-secret/);
    } finally {
      fake.allow("UpdateService");
    }
    fake.throttle("DescribeServices", 10);
    const err = await failure(run(ctx([WEB_V2], { service: "thr" })));
    assert.equal(err.code, "PLATFORM_UNAVAILABLE");
    fake.throttle("DescribeServices", 0);
  });

  it("a rollback to what ran before deploys the previous revision again instead of registering a new one", async () => {
    seed("rb");
    const first = fake.service("prod", "rb")!.taskDefinition;
    await run(ctx([WEB_V2], { service: "rb" }));
    const calls = fake.calls.length;
    const outcome = await run(ctx([WEB_V1], { service: "rb" }, undefined, "rollback"));
    assert.equal(fake.service("prod", "rb")!.taskDefinition, first);
    assert.equal(outcome.details?.["taskDefinition"], first);
    assert.ok(!fake.calls.slice(calls).some((x) => x.action === "RegisterTaskDefinition"));
  });

  it("inspect reports drift when the service runs something else than its sticker says", async () => {
    seed("drift");
    const first = fake.service("prod", "drift")!.taskDefinition;
    await run(ctx([WEB_V2], { service: "drift" }));
    await sdk.send(new UpdateServiceCommand({ cluster: "prod", service: "drift", taskDefinition: first }));
    const deadline = Date.now() + 10_000;
    while (fake.service("prod", "drift")!.deployments.length > 1 || fake.service("prod", "drift")!.deployments[0]!.rolloutState !== "COMPLETED") {
      assert.ok(Date.now() < deadline, "the out-of-band deployment completes");
      await new Promise((r) => setTimeout(r, 20));
    }
    const seen = await driver.inspect(target({ service: "drift" }));
    assert.deepEqual(seen.running.map((r) => r.digest), [WEB_V1.digest]);
    const drift = seen.details["drift"] as string[];
    assert.ok(drift.some((l) => l.includes(`the sticker says ${WEB_V2.digest}`)), JSON.stringify(drift));
    assert.equal((await driver.inspect(target({ service: "gone" }))).state, "missing");
  });

  it("inspect as a target check: a missing cluster or service, a container the definition lacks, another controller", async () => {
    seed("checked");
    const ok = await driver.inspect(target({ service: "checked" }));
    assert.equal(ok.details["check"], undefined);
    assert.equal(ok.state, "running");

    const noCluster = await driver.inspect(target({ cluster: "nope", service: "checked" }));
    assert.equal(noCluster.state, "missing");
    assert.equal(noCluster.details["error"], `ECS cluster nope (${REGION}) does not exist`);
    const noService = await driver.inspect(target({ service: "absent" }));
    assert.equal(noService.state, "missing");
    assert.match(noService.details["error"] as string, /ECS service absent in cluster prod \(eu-west-1\) does not exist \(MISSING\)/);

    const noContainer = await driver.inspect(target({ service: "checked", containerName: "api" }));
    assert.equal((noContainer.details["check"] as { code: string }).code, "TARGET_NOT_FOUND");
    assert.match((noContainer.details["check"] as { message: string }).message, /^task definition shop-web:\d+ has no container api \(it has web, log-router\)$/);
    const mapped = await driver.inspect(target({ service: "checked", containerName: undefined, containers: { web: "web", metrics: "metrics" } }));
    assert.equal((mapped.details["check"] as { code: string }).code, "TARGET_NOT_FOUND");
    assert.match((mapped.details["check"] as { message: string }).message, /has no container metrics/);
    const ambiguous = await driver.inspect(target({ service: "checked", containerName: undefined }));
    assert.equal((ambiguous.details["check"] as { code: string }).code, "INVALID_TARGET_CONFIG");

    seed("blue-check", 2, { controller: "CODE_DEPLOY" });
    const codeDeploy = await driver.inspect(target({ service: "blue-check" }));
    assert.equal((codeDeploy.details["check"] as { code: string }).code, "TARGET_UNSUPPORTED");
    assert.match((codeDeploy.details["check"] as { message: string }).message, /uses the CODE_DEPLOY deployment controller/);
    // The same refusal in prepare, before anything changes.
    const calls = fake.calls.length;
    assert.equal((await failure(run(ctx([WEB_V2], { service: "blue-check" })))).code, "TARGET_UNSUPPORTED");
    assert.ok(!fake.calls.slice(calls).some((x) => x.action === "RegisterTaskDefinition" || x.action === "UpdateService"));
  });

  it("an abort while following the deployment restores the previous revision", async () => {
    seed("abort");
    const before = fake.service("prod", "abort")!.taskDefinition;
    fake.convergeTicks = 1_000_000;
    const ac = new AbortController();
    const c = ctx([WEB_V2], { service: "abort" }, ac.signal);
    const p = run(c);
    while (!c.lines.some((l) => l.startsWith("health:"))) await new Promise((r) => setTimeout(r, 10));
    fake.convergeTicks = 1;
    ac.abort(new Error("stop"));
    const err = await failure(p);
    assert.equal(err.code, "ABORTED");
    assert.equal(err.restored, true);
    assert.equal(fake.service("prod", "abort")!.taskDefinition, before);
  });

  it("slow convergence past the steady-state timeout fails the task and restores", async () => {
    seed("slow");
    const before = fake.service("prod", "slow")!.taskDefinition;
    fake.convergeTicks = 1_000_000;
    const c = ctx([WEB_V2], { service: "slow", steadyStateTimeoutSeconds: 30 });
    const d = new EcsDriver({ settings: { endpoint, pollIntervalMs: 20 } });
    // The timeout is the config's; the test shortens the wall clock by failing over the deadline quickly.
    const realNow = Date.now;
    let skew = 0;
    Date.now = () => realNow() + skew;
    try {
      const p = runPhases(d, c, { logger: pino({ level: "silent" }) });
      while (!c.lines.some((l) => l.startsWith("health:"))) await new Promise((r) => setTimeout(r, 10));
      skew = 31_000;
      // The tasks of the return to the previous revision start at the usual pace.
      while (!c.lines.some((l) => l.startsWith("restore:"))) await new Promise((r) => setTimeout(r, 10));
      fake.convergeTicks = 1;
      const err = await failure(p);
      assert.equal(err.code, "HEALTH_CHECK_FAILED");
      assert.match(err.message, /did not complete within 30 s/);
    } finally {
      Date.now = realNow;
    }
    assert.equal(fake.service("prod", "slow")!.taskDefinition, before);
  });

  it("registers with a settings schema every value of which is bounded, loading the SDK only when created", async () => {
    checkObject({ profile: "prod", endpoint: "https://ecs.eu-west-1.amazonaws.com", pollIntervalMs: 1000, maxAttempts: 3 }, ecsSettings, "drivers.ecs");
    assert.throws(() => checkObject({ accessKeyId: "AKIA" }, ecsSettings, "drivers.ecs"), /drivers.ecs.accessKeyId/);
    assert.equal(ecsRegistration.enabledByDefault, false);
    const d = await ecsRegistration.create({ logger: pino({ level: "silent" }), settings: { endpoint } });
    const up = await d.available();
    assert.equal(up.ok, true);
    assert.doesNotMatch(up.detail, /ferry-test-secret/);
    const svc = await sdk.send(new DescribeServicesCommand({ cluster: "prod", services: ["web"] }));
    assert.equal(svc.services?.[0]?.serviceName, "web");
  });
});
