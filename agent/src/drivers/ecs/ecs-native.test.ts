// The ECS driver on services that use ECS's own BLUE_GREEN, LINEAR and CANARY strategies, through @aws-sdk/client-ecs
// and real HTTP against the project's ECS fake, with Ferry's gate function (gate-hook.ts) running inside the fake as
// the lifecycle hook and a probe server on loopback: success through every stage, a failed bake and a failed gate
// rolled back by Ferry, a hook and the circuit breaker rolling back by themselves, LINEAR and CANARY steps, throttling
// and slow tasks, a finished deployment restored through the same strategy, and the config checks.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";

import { ECSClient } from "@aws-sdk/client-ecs";
import type { EcsTargetConfig, ImagePin } from "@ferry/contract";
import { pino } from "pino";

import { EcsFake, type HookFunction } from "../../../../test/fakes/ecs/ecs-fake.js";
import { runPhases } from "../../core/phase-runner.js";
import { driverFailure, phaseContext } from "../../test-support/phase-context.js";
import type { DriverError, PhaseContext, TargetRef } from "../driver.js";
import { EcsDriver, ecsConfig } from "./ecs-driver.js";
import { createGateHandler, GATE_TAG } from "./gate-hook.js";

const REGION = "eu-west-1";
process.env["AWS_ACCESS_KEY_ID"] = "AKIDFERRYTEST";
process.env["AWS_SECRET_ACCESS_KEY"] = "ferry-test-secret";
delete process.env["AWS_PROFILE"];
delete process.env["AWS_SESSION_TOKEN"];

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const pin = (c: string): ImagePin => ({ component: "web", repository: "registry.example/shop/web", digest: digest(c), ref: `registry.example/shop/web@${digest(c)}` });
const V1 = pin("1");
const V2 = pin("2");
const GATE = `arn:aws:lambda:${REGION}:123456789012:function:ferry-gate`;
const ROLE = "arn:aws:iam::123456789012:role/ecs-lifecycle-hooks";
const TASK_DEF = { family: "shop-web", containerDefinitions: [{ name: "web", image: V1.ref, essential: true }] };

let fake: EcsFake;
let endpoint: string;
let driver: EcsDriver;
let hookClient: ECSClient;
let probe: Server;
let probeUrl: string;
/** What the probe server answers, by path. */
const answers = new Map<string, number>();

function target(config: Partial<EcsTargetConfig>): TargetRef {
  return { id: "t-1", name: "shop-web", kind: "ecs", config: { region: REGION, cluster: "prod", containerName: "web", steadyStateTimeoutSeconds: 30, ...config } };
}

function ctx(images: ImagePin[], config: Partial<EcsTargetConfig>): PhaseContext<EcsTargetConfig> & { lines: string[] } {
  return phaseContext(target(config), ecsConfig, images);
}

const run = (c: PhaseContext<EcsTargetConfig>) => runPhases(driver, c, { logger: pino({ level: "silent" }) });

const failure = driverFailure;

function seed(service: string, deploymentConfiguration: Record<string, unknown>): void {
  fake.seedService("prod", service, TASK_DEF, { desiredCount: 2, deploymentConfiguration });
}

const gateHook = (stages: string[]) => ({ hookTargetArn: GATE, roleArn: ROLE, lifecycleStages: stages, hookDetails: { callBackDelay: 3 } });
const sds = (service: string) => fake.service("prod", service)!.serviceDeployments.map((a) => fake.serviceDeployment(a)!);

before(async () => {
  fake = new EcsFake({ region: REGION, tickMs: 15 });
  endpoint = await fake.listen();
  driver = new EcsDriver({ settings: { endpoint, pollIntervalMs: 20, maxAttempts: 4 } });
  // Ferry's gate function, as shipped, is the Lambda the fake runs for GATE; it reads the service's tags from the fake.
  hookClient = new ECSClient({ region: REGION, endpoint, maxAttempts: 1 });
  const handler = createGateHandler(() => hookClient);
  fake.lambdas.set(GATE, ((payload) => handler(payload)) satisfies HookFunction);
  probe = createServer((req, res) => {
    res.writeHead(answers.get(req.url ?? "/") ?? 200);
    res.end("ok");
  });
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
});

after(async () => {
  hookClient.destroy();
  probe.closeAllConnections();
  await new Promise((r) => probe.close(r));
  await fake.close();
});

beforeEach(() => {
  answers.clear();
  fake.failingImages.clear();
  fake.wrongDigest = false;
  fake.convergeTicks = 1;
});

describe("ECS driver: ECS's own deployment strategies", () => {
  it("BLUE_GREEN: follows every stage, holds the gate until Ferry's checks pass, checks the bake, and succeeds", async () => {
    seed("bg", { strategy: "BLUE_GREEN", bakeTimeInMinutes: 1, lifecycleHooks: [gateHook(["POST_TEST_TRAFFIC_SHIFT"])] });
    const before = fake.service("prod", "bg")!.taskDefinition;
    const c = ctx([V2], { service: "bg", native: { gateHookArn: GATE, gateSeconds: 1, probeUrl: `${probeUrl}/prod`, testProbeUrl: `${probeUrl}/test`, probeIntervalSeconds: 1 } });
    const outcome = await run(c);
    const svc = fake.service("prod", "bg")!;
    assert.notEqual(svc.taskDefinition, before);
    const [sd] = sds("bg");
    assert.equal(sd!.status, "SUCCESSFUL");
    assert.equal(outcome.details?.["serviceDeploymentArn"], sd!.arn);
    assert.equal(outcome.details?.["strategy"], "BLUE_GREEN");
    // The update sent the service's own strategy, bake time and hooks back, with the circuit breaker on.
    const upd = fake.calls.filter((x) => x.action === "UpdateService").at(-1)!.body["deploymentConfiguration"] as Record<string, unknown>;
    assert.equal(upd["strategy"], "BLUE_GREEN");
    assert.equal(upd["bakeTimeInMinutes"], 1);
    assert.deepEqual((upd["lifecycleHooks"] as { hookTargetArn: string }[]).map((h) => h.hookTargetArn), [GATE]);
    assert.deepEqual(upd["deploymentCircuitBreaker"], { enable: true, rollback: true });
    // Every stage was logged, in order.
    const stages = [...new Set(c.lines.map((l) => /^health: service deployment \w+: IN_PROGRESS at (\w+)/.exec(l)?.[1]).filter(Boolean))];
    assert.deepEqual(stages, ["RECONCILE_SERVICE", "PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"].filter((s) => stages.includes(s)));
    assert.ok(stages.includes("POST_TEST_TRAFFIC_SHIFT") && stages.includes("BAKE_TIME"), stages.join(" "));
    // The gate: the shipped function answered IN_PROGRESS until the agent's verdict, then SUCCEEDED.
    const answered = fake.hookInvocations.filter((h) => h.payload["resourceArn"] === sd!.arn).map((h) => (h.answer as { hookStatus: string }).hookStatus);
    assert.equal(answered.at(-1), "SUCCEEDED");
    assert.ok(answered.slice(0, -1).length > 0 && answered.slice(0, -1).every((a) => a === "IN_PROGRESS"), answered.join(" "));
    assert.ok(svc.tags.some((t) => t.key === GATE_TAG && t.value.endsWith("POST_TEST_TRAFFIC_SHIFT SUCCEEDED")));
    assert.ok(c.lines.some((l) => /gate POST_TEST_TRAFFIC_SHIFT passed/.test(l)));
    assert.ok(c.lines.some((l) => /health: bake: the target revision's tasks must keep running, probing .*\/prod/.test(l)));
    // After the bake the blue tasks went; the green ones run the pinned digest.
    const running = fake.tasksOf("prod", "bg").filter((t) => t.lastStatus === "RUNNING");
    assert.equal(running.length, 2);
    assert.ok(running.every((t) => t.taskDefinitionArn === svc.taskDefinition));
    assert.equal((await driver.readSticker(target({ service: "bg" })))?.taskId, c.taskId);
    const seen = await driver.inspect(target({ service: "bg", native: { gateHookArn: GATE } }));
    assert.equal(seen.details["strategy"], "BLUE_GREEN");
    assert.equal(seen.details["currentServiceDeployment"], sd!.arn);
    assert.equal(seen.details["check"], undefined);
  });

  it("a probe failing during the bake: Ferry stops the deployment with ROLLBACK, CANARY_ANALYSIS_FAILED, the blue revision serves", async () => {
    seed("bake-fail", { strategy: "BLUE_GREEN", bakeTimeInMinutes: 2 });
    const before = fake.service("prod", "bake-fail")!.taskDefinition;
    answers.set("/prod", 503);
    const c = ctx([V2], { service: "bake-fail", native: { probeUrl: `${probeUrl}/prod`, probeIntervalSeconds: 1 } });
    const err = await failure(run(c));
    assert.equal(err.code, "CANARY_ANALYSIS_FAILED");
    assert.match(err.message, /bake: the probe of .*\/prod answered \{"status":503/);
    assert.equal(err.restored, true);
    const [sd] = sds("bake-fail");
    assert.equal(sd!.status, "ROLLBACK_SUCCESSFUL");
    assert.match(sd!.rollback!.reason, /StopServiceDeployment/);
    assert.ok(fake.calls.some((x) => x.action === "StopServiceDeployment" && x.body["serviceDeploymentArn"] === sd!.arn && x.body["stopType"] === "ROLLBACK"));
    assert.equal(fake.service("prod", "bake-fail")!.taskDefinition, before);
    assert.ok(fake.tasksOf("prod", "bake-fail").filter((t) => t.lastStatus !== "STOPPED").every((t) => t.taskDefinitionArn === before));
    assert.ok(c.lines.some((l) => /restore: service deployment \w+: ROLLBACK_SUCCESSFUL/.test(l)), c.lines.join("\n"));
  });

  it("the gate's checks failing: Ferry's verdict is FAILED, the gate function answers it, ECS rolls back", async () => {
    seed("gate-fail", { strategy: "BLUE_GREEN", lifecycleHooks: [gateHook(["POST_TEST_TRAFFIC_SHIFT"])] });
    const before = fake.service("prod", "gate-fail")!.taskDefinition;
    answers.set("/test", 500);
    const c = ctx([V2], { service: "gate-fail", native: { gateHookArn: GATE, gateSeconds: 1, probeUrl: `${probeUrl}/prod`, testProbeUrl: `${probeUrl}/test` } });
    const err = await failure(run(c));
    assert.equal(err.code, "CANARY_ANALYSIS_FAILED");
    assert.match(err.message, /gate POST_TEST_TRAFFIC_SHIFT: the probe of .*\/test answered/);
    assert.equal(err.restored, true);
    const [sd] = sds("gate-fail");
    assert.equal(sd!.status, "ROLLBACK_SUCCESSFUL");
    assert.match(sd!.statusReason, /ferry-gate at POST_TEST_TRAFFIC_SHIFT failed/);
    assert.ok(!fake.calls.some((x) => x.action === "StopServiceDeployment" && x.body["serviceDeploymentArn"] === sd!.arn), "ECS rolled back on the hook's answer");
    assert.equal(fake.service("prod", "gate-fail")!.taskDefinition, before);
  });

  it("PAUSE hooks as Ferry's gates: checked, then continued; a failed check rolls the deployment back through the hook", async () => {
    seed("paused", { strategy: "BLUE_GREEN", lifecycleHooks: [{ targetType: "PAUSE", lifecycleStages: ["POST_SCALE_UP", "PRE_PRODUCTION_TRAFFIC_SHIFT"] }] });
    const c = ctx([V2], { service: "paused", native: { pauseGate: true, gateSeconds: 1, testProbeUrl: `${probeUrl}/test` } });
    await run(c);
    assert.equal(sds("paused")[0]!.status, "SUCCESSFUL");
    const continued = fake.calls.filter((x) => x.action === "ContinueServiceDeployment" && x.body["serviceDeploymentArn"] === sds("paused")[0]!.arn);
    assert.deepEqual(continued.map((x) => x.body["action"]), ["CONTINUE", "CONTINUE"], "one verdict per pause");
    assert.ok(c.lines.some((l) => /gate POST_SCALE_UP \(pause\)/.test(l)) && c.lines.some((l) => /gate PRODUCTION_TRAFFIC_SHIFT \(pause\)/.test(l)), c.lines.join("\n"));

    seed("paused-no", { strategy: "LINEAR", lifecycleHooks: [{ targetType: "PAUSE", lifecycleStages: ["POST_TEST_TRAFFIC_SHIFT"] }] });
    const before = fake.service("prod", "paused-no")!.taskDefinition;
    answers.set("/test", 502);
    const err = await failure(run(ctx([V2], { service: "paused-no", native: { pauseGate: true, gateSeconds: 1, testProbeUrl: `${probeUrl}/test` } })));
    assert.equal(err.code, "CANARY_ANALYSIS_FAILED");
    assert.match(err.message, /gate POST_TEST_TRAFFIC_SHIFT \(pause\): the probe of .*\/test answered/);
    assert.equal(err.restored, true);
    const [sd] = sds("paused-no");
    assert.equal(sd!.status, "ROLLBACK_SUCCESSFUL");
    assert.ok(fake.calls.some((x) => x.action === "ContinueServiceDeployment" && x.body["serviceDeploymentArn"] === sd!.arn && x.body["action"] === "ROLLBACK"));
    assert.equal(fake.service("prod", "paused-no")!.taskDefinition, before);

    seed("no-pause", { strategy: "BLUE_GREEN" });
    const refused = await failure(run(ctx([V2], { service: "no-pause", native: { pauseGate: true } })));
    assert.equal(refused.code, "INVALID_TARGET_CONFIG");
    assert.match(refused.message, /has no PAUSE lifecycle hook/);
  });

  it("a hook of the service answering FAILED, or the circuit breaker, rolls back by itself: a failed task, restored", async () => {
    const veto = `arn:aws:lambda:${REGION}:123456789012:function:image-policy`;
    fake.lambdas.set(veto, () => ({ hookStatus: "FAILED" }));
    seed("vetoed", { strategy: "CANARY", lifecycleHooks: [{ hookTargetArn: veto, roleArn: ROLE, lifecycleStages: ["PRE_SCALE_UP"] }] });
    const before = fake.service("prod", "vetoed")!.taskDefinition;
    const err = await failure(run(ctx([V2], { service: "vetoed" })));
    assert.equal(err.code, "HEALTH_CHECK_FAILED");
    assert.match(err.message, /ECS rolled back service deployment \w+: .*image-policy at PRE_SCALE_UP failed/);
    assert.equal(err.restored, true);
    assert.equal(fake.service("prod", "vetoed")!.taskDefinition, before);

    seed("breaker", { strategy: "BLUE_GREEN" });
    const bad = pin("b");
    fake.failingImages.add(bad.ref);
    const err2 = await failure(run(ctx([bad], { service: "breaker" })));
    assert.equal(err2.code, "INSTANCE_CRASHED");
    assert.match(err2.message, /circuit breaker/);
    assert.equal(err2.restored, true);
    assert.equal(sds("breaker")[0]!.status, "ROLLBACK_SUCCESSFUL");
  });

  it("LINEAR and CANARY: production traffic moves in steps, and every step's bake is checked", async () => {
    seed("lin", { strategy: "LINEAR", linearConfiguration: { stepPercent: 50, stepBakeTimeInMinutes: 1 } });
    const c = ctx([V2], { service: "lin", native: { probeUrl: `${probeUrl}/prod`, probeIntervalSeconds: 1 } });
    await run(c);
    assert.deepEqual(sds("lin")[0]!.shifts.map(([, w]) => w), [50, 100]);
    assert.ok(c.lines.some((l) => /health: step bake at 50% of production traffic: .*probing/.test(l)), c.lines.join("\n"));
    assert.ok(c.lines.some((l) => /production 50%/.test(l)));

    seed("can", { strategy: "CANARY", canaryConfiguration: { canaryPercent: 10, canaryBakeTimeInMinutes: 1 } });
    answers.set("/canary", 500);
    const before = fake.service("prod", "can")!.taskDefinition;
    const c2 = ctx([V2], { service: "can", native: { probeUrl: `${probeUrl}/canary`, probeIntervalSeconds: 1 } });
    const err = await failure(run(c2));
    assert.equal(err.code, "CANARY_ANALYSIS_FAILED");
    assert.match(err.message, /step bake at 10% of production traffic: the probe/);
    assert.equal(err.restored, true);
    assert.deepEqual(sds("can")[0]!.shifts.map(([, w]) => w), [10], "the rest of the traffic never moved");
    assert.equal(fake.service("prod", "can")!.taskDefinition, before);
  });

  it("rides out throttling of DescribeServiceDeployments and slow tasks", async () => {
    seed("slow", { strategy: "BLUE_GREEN" });
    // Tasks take 250 fake seconds (about 4 s here) to start; the SDK's backoff rides out the throttled calls meanwhile.
    fake.convergeTicks = 250;
    fake.throttle("DescribeServiceDeployments", 2);
    const c = ctx([V2], { service: "slow" });
    await run(c);
    assert.equal(sds("slow")[0]!.status, "SUCCESSFUL");
    assert.ok(c.lines.some((l) => /target 0\/2 running/.test(l)), c.lines.join("\n"));
  });

  it("a failure after the deployment succeeded deploys the previous revision again through the same strategy, its gate passed", async () => {
    seed("moved", { strategy: "BLUE_GREEN", lifecycleHooks: [gateHook(["POST_TEST_TRAFFIC_SHIFT"])] });
    const before = fake.service("prod", "moved")!.taskDefinition;
    fake.wrongDigest = true;
    const c = ctx([V2], { service: "moved", native: { gateHookArn: GATE, gateSeconds: 1 } });
    const p = run(c);
    // The digest is wrong only on the new revision's tasks: the way back runs clean.
    while (!fake.calls.some((x) => x.action === "UpdateService" && x.body["service"] === "moved")) await new Promise((r) => setTimeout(r, 5));
    const err = await failure(p);
    fake.wrongDigest = false;
    assert.equal(err.code, "DIGEST_MISMATCH");
    assert.equal(err.restored, true);
    const [back, first] = sds("moved");
    assert.equal(first!.status, "SUCCESSFUL");
    assert.equal(back!.status, "SUCCESSFUL");
    assert.equal(back!.strategy, "BLUE_GREEN");
    assert.equal(back!.target.taskDefinition, before);
    assert.equal(fake.service("prod", "moved")!.taskDefinition, before);
    // Ferry's gate let the way back through rather than holding it.
    assert.ok(c.lines.some((l) => /restore: Ferry's gate at POST_TEST_TRAFFIC_SHIFT lets the way back through/.test(l)), c.lines.join("\n"));
    assert.ok(fake.service("prod", "moved")!.tags.some((t) => t.key === GATE_TAG && t.value.startsWith(back!.arn.split("/").at(-1)!)));
  });

  it("a task cancelled during the bake stops the deployment with ROLLBACK and reports restored", async () => {
    seed("cancel", { strategy: "BLUE_GREEN", bakeTimeInMinutes: 30 });
    const before = fake.service("prod", "cancel")!.taskDefinition;
    const ac = new AbortController();
    const c = { ...ctx([V2], { service: "cancel" }), signal: ac.signal };
    const p = run(c);
    while (!c.lines.some((l) => /IN_PROGRESS at BAKE_TIME/.test(l))) await new Promise((r) => setTimeout(r, 10));
    ac.abort(new Error("cancelled"));
    const err = await failure(p);
    assert.equal(err.code, "ABORTED");
    assert.equal(err.restored, true);
    assert.equal(sds("cancel")[0]!.status, "ROLLBACK_SUCCESSFUL");
    assert.equal(fake.service("prod", "cancel")!.taskDefinition, before);
  });

  it("checks the native block of the target config: bounded, typed, and nothing unknown", () => {
    const base = { region: REGION, cluster: "prod", service: "web" };
    assert.deepEqual(ecsConfig({ ...base, native: { gateHookArn: `${GATE}:live`, pauseGate: true, gateSeconds: 3600, probeUrl: "http://127.0.0.1:1/h", testProbeUrl: "https://x.example/t", probeTimeoutMs: 100, probeIntervalSeconds: 300 } }).native?.gateSeconds, 3600);
    for (const [native, field] of [
      [{ gateHookArn: "arn:aws:sns:eu-west-1:123456789012:topic" }, "config.native.gateHookArn"],
      [{ gateSeconds: 0 }, "config.native.gateSeconds"],
      [{ gateSeconds: 3601 }, "config.native.gateSeconds"],
      [{ probeUrl: "ftp://x" }, "config.native.probeUrl"],
      [{ testProbeUrl: "not a url" }, "config.native.testProbeUrl"],
      [{ probeTimeoutMs: 50 }, "config.native.probeTimeoutMs"],
      [{ probeIntervalSeconds: 301 }, "config.native.probeIntervalSeconds"],
      [{ pauseGate: "yes" }, "config.native.pauseGate"],
      [{ bakeSeconds: 5 }, "config.native.bakeSeconds"],
    ] as [Record<string, unknown>, string][]) {
      assert.throws(() => ecsConfig({ ...base, native }), (e: DriverError) => e.code === "INVALID_TARGET_CONFIG" && e.details["field"] === field, JSON.stringify(native));
    }
  });

  it("refuses a gate the service does not have, a deployment in progress, and reports them as target checks", async () => {
    seed("nogate", { strategy: "BLUE_GREEN" });
    const check = await driver.inspect(target({ service: "nogate", native: { gateHookArn: GATE } }));
    assert.equal((check.details["check"] as { code: string }).code, "INVALID_TARGET_CONFIG");
    assert.match((check.details["check"] as { message: string }).message, /is not a lifecycle hook of ECS service nogate \(its hooks: none\)/);
    const calls = fake.calls.length;
    assert.equal((await failure(run(ctx([V2], { service: "nogate", native: { gateHookArn: GATE } })))).code, "INVALID_TARGET_CONFIG");
    seed("rolling-gate", {});
    assert.match((await failure(run(ctx([V2], { service: "rolling-gate", native: { gateHookArn: GATE } })))).message, /deploys by ROLLING/);
    seed("preprod", { strategy: "BLUE_GREEN", lifecycleHooks: [gateHook(["PRE_PRODUCTION_TRAFFIC_SHIFT"])] });
    assert.equal((await failure(run(ctx([V2], { service: "preprod", native: { gateHookArn: GATE } })))).code, "TARGET_UNSUPPORTED");
    assert.ok(!fake.calls.slice(calls).some((x) => x.action === "RegisterTaskDefinition" || x.action === "UpdateService"), "nothing registered or updated");

    seed("busy", { strategy: "BLUE_GREEN", bakeTimeInMinutes: 30 });
    const first = run(ctx([V2], { service: "busy" }));
    while (!sds("busy")[0] || sds("busy")[0]!.lifecycleStage !== "BAKE_TIME") await new Promise((r) => setTimeout(r, 10));
    const err = await failure(run(ctx([pin("3")], { service: "busy" })));
    assert.equal(err.code, "PLATFORM_BUSY");
    assert.match(err.message, /service deployment .* \(IN_PROGRESS, BAKE_TIME\)/);
    // End the first one: a stop from outside is a native rollback for the task that follows it.
    await fake.hooksSettled();
    const arn = sds("busy")[0]!.arn;
    const stop = await fetchStop(arn);
    assert.equal(stop, 200);
    const e2 = await failure(first);
    assert.equal(e2.code, "HEALTH_CHECK_FAILED");
    assert.equal(e2.restored, true);
  });
});

/** StopServiceDeployment from outside Ferry (an operator in the console), through the SDK. */
async function fetchStop(arn: string): Promise<number> {
  const { StopServiceDeploymentCommand } = await import("@aws-sdk/client-ecs");
  const out = await hookClient.send(new StopServiceDeploymentCommand({ serviceDeploymentArn: arn, stopType: "ROLLBACK" }));
  return out.$metadata.httpStatusCode ?? 0;
}
