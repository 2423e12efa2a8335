// Ferry's gate function on its own: what it answers ECS for each payload and tag, and that a fault reading the tag
// never turns into a rollback.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { CreateServiceCommand, ECSClient, RegisterTaskDefinitionCommand, type ListTagsForResourceCommand } from "@aws-sdk/client-ecs";

import { EcsFake } from "../../../../test/fakes/ecs/ecs-fake.js";

import { createGateHandler, DEFAULT_GATE_CALLBACK_SECONDS, GATE_TAG, gateTagValue, verdictFor } from "./gate-hook.js";

const SERVICE = "arn:aws:ecs:eu-west-1:123456789012:service/prod/web";
const SD = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/Abc123";
const event = (extra: Record<string, unknown> = {}) => ({ executionDetails: { serviceArn: SERVICE, targetServiceRevisionArn: "x" }, executionId: "e", lifecycleStage: "POST_TEST_TRAFFIC_SHIFT", resourceArn: SD, ...extra });

function handlerWith(tags: { key: string; value: string }[] | Error) {
  const asked: string[] = [];
  const handler = createGateHandler(() => ({
    send: (c: ListTagsForResourceCommand) => {
      asked.push(c.input.resourceArn ?? "");
      return tags instanceof Error ? Promise.reject(tags) : Promise.resolve({ tags });
    },
  }));
  return { handler, asked };
}

describe("Ferry's ECS gate function", () => {
  it("answers IN_PROGRESS until the tag names this deployment and stage, then the verdict", async () => {
    const none = handlerWith([{ key: "team", value: "shop" }]);
    assert.deepEqual(await none.handler(event()), { hookStatus: "IN_PROGRESS", callBackDelay: DEFAULT_GATE_CALLBACK_SECONDS });
    assert.deepEqual(none.asked, [SERVICE]);
    const otherStage = handlerWith([{ key: GATE_TAG, value: gateTagValue(SD, "POST_SCALE_UP", "SUCCEEDED") }]);
    assert.equal((await otherStage.handler(event())).hookStatus, "IN_PROGRESS");
    const otherDeployment = handlerWith([{ key: GATE_TAG, value: gateTagValue(SD.replace("Abc123", "Old999"), "POST_TEST_TRAFFIC_SHIFT", "SUCCEEDED") }]);
    assert.equal((await otherDeployment.handler(event())).hookStatus, "IN_PROGRESS");
    for (const verdict of ["SUCCEEDED", "FAILED"] as const) {
      const h = handlerWith([{ key: GATE_TAG, value: gateTagValue(SD, "POST_TEST_TRAFFIC_SHIFT", verdict) }]);
      assert.deepEqual(await h.handler(event()), { hookStatus: verdict });
    }
  });

  it("takes callBackDelay from hookDetails within 1-900 s; a fault reading tags waits rather than rolls back", async () => {
    const h = handlerWith([]);
    assert.equal((await h.handler(event({ hookDetails: { callBackDelay: 45 } }))).callBackDelay, 45);
    for (const bad of [0, 901, 2.5, "60", null]) assert.equal((await h.handler(event({ hookDetails: { callBackDelay: bad } }))).callBackDelay, DEFAULT_GATE_CALLBACK_SECONDS);
    const throttled = handlerWith(Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException" }));
    assert.deepEqual(await throttled.handler(event()), { hookStatus: "IN_PROGRESS", callBackDelay: DEFAULT_GATE_CALLBACK_SECONDS });
  });

  it("answers FAILED to what is not an ECS lifecycle-hook payload, without reading anything", async () => {
    for (const bad of [{}, { resourceArn: SD, lifecycleStage: "X" }, event({ executionDetails: {} }), event({ lifecycleStage: 7 }), event({ resourceArn: null })]) {
      const h = handlerWith([]);
      assert.deepEqual(await h.handler(bad as never), { hookStatus: "FAILED" });
      assert.deepEqual(h.asked, []);
    }
  });

  it("the installers' deployment configuration is one ECS accepts, naming the function the role may invoke", async () => {
    const dir = new URL("../../../../installers/ecs/", import.meta.url);
    const cfg = JSON.parse(readFileSync(new URL("ferry-gate-deployment-configuration.json", dir), "utf8")) as { lifecycleHooks: { hookTargetArn: string; roleArn: string }[] };
    const role = JSON.parse(readFileSync(new URL("ecs-lifecycle-hook-role.json", dir), "utf8")) as { RoleName: string; Policy: { Statement: { Action: string; Resource: string }[] } };
    const policy = JSON.parse(readFileSync(new URL("ferry-gate-hook-policy.json", dir), "utf8")) as { Statement: { Action: string | string[] }[] };
    assert.equal(role.Policy.Statement[0]!.Action, "lambda:InvokeFunction");
    assert.equal(role.Policy.Statement[0]!.Resource, cfg.lifecycleHooks[0]!.hookTargetArn);
    assert.ok(cfg.lifecycleHooks[0]!.roleArn.endsWith(`:role/${role.RoleName}`));
    assert.ok(policy.Statement.some((s) => s.Action === "ecs:ListTagsForResource"), "the function reads the service's tags");
    const fake = new EcsFake({ region: "eu-west-1" });
    const ecs = new ECSClient({ region: "eu-west-1", endpoint: await fake.listen(), credentials: { accessKeyId: "AKIDFERRYTEST", secretAccessKey: "ferry-test-secret" }, maxAttempts: 1 });
    try {
      fake.seedService("prod", "seed", { family: "x", containerDefinitions: [{ name: "app", image: "busybox:1" }] });
      await ecs.send(new RegisterTaskDefinitionCommand({ family: "web", containerDefinitions: [{ name: "app", image: "busybox:1" }] }));
      const out = await ecs.send(new CreateServiceCommand({ cluster: "prod", serviceName: "web", taskDefinition: "web", deploymentConfiguration: cfg }));
      assert.equal(out.service?.deploymentConfiguration?.strategy, "BLUE_GREEN");
    } finally {
      ecs.destroy();
      await fake.close();
    }
  });

  it("reads a verdict only from a well-formed tag value", () => {
    assert.equal(gateTagValue(SD, "BAKE", "FAILED"), "Abc123 BAKE FAILED");
    assert.equal(verdictFor(undefined, SD, "BAKE"), undefined);
    assert.equal(verdictFor("Abc123 BAKE MAYBE", SD, "BAKE"), undefined);
    assert.equal(verdictFor("Abc123 BAKE SUCCEEDED", SD, "BAKE"), "SUCCEEDED");
  });
});
