// An ECS service on ECS's own BLUE_GREEN strategy, end to end: a real `ferry server` (embedded PGlite), a real gateway
// `ferry-agent` with the ecs driver, the project's ECS fake on loopback (test/fakes/ecs) running Ferry's gate function
// (agent/src/drivers/ecs/gate-hook.ts, as shipped) as the service's lifecycle hook, and a probe server on loopback.
// Releases are resolved against a real OCI registry on loopback; the fake only sees the digest-pinned references.
//
// Covered: a deploy through every lifecycle stage, held at POST_TEST_TRAFFIC_SHIFT until the agent's gate verdict and
// checked through the bake; a deploy whose probe fails during the bake, stopped by Ferry with ROLLBACK and reported
// CANARY_ANALYSIS_FAILED with the blue revision serving; `ferry rollback` deploying the previous revision through the
// same strategy.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ECSClient } from "@aws-sdk/client-ecs";

import { createGateHandler } from "../../agent/src/drivers/ecs/gate-hook.js";
import { EcsFake } from "../fakes/ecs/ecs-fake.js";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { pushImage, registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";

const skip = registrySkipReason();
if (skip) console.warn(`\n*** ECS native-strategy deploy suite skipped: ${skip} ***\n`);

const REGION = "eu-west-1";
const GATE = `arn:aws:lambda:${REGION}:123456789012:function:ferry-gate`;
const CREDS = { accessKeyId: "AKIDFERRYTEST", secretAccessKey: "ferry-test-secret" };

interface TaskView {
  id: string;
  state: string;
  code: string | null;
  message: string | null;
}
interface DeploymentView {
  id: string;
  state: string;
  tasks: TaskView[];
}

describe("an ECS BLUE_GREEN service through a gateway agent", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let ecs: EcsFake;
  let hookClient: ECSClient;
  let probe: Server | undefined;
  let probeStatus = 200;
  let probeHits = 0;
  const agent = new TestAgent("gateway-native");
  const scratch = mkdtempSync(join(tmpdir(), "ferry-ecs-native-e2e-"));
  const refs: Record<string, string> = {};

  const cli = async (args: string[]) => {
    const r = await cp.cli([...args, "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry ${args[0]} printed no JSON: ${r.stderr}`);
    return JSON.parse(r.stdout) as DeploymentView;
  };
  const log = async (d: DeploymentView) => {
    const res = await fetch(`${cp.runtime.api}/api/v1/deployments/${d.id}/tasks/${d.tasks[0]!.id}/log`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    return res.text();
  };
  const serviceDeployments = () => ecs.service("prod", "shop")!.serviceDeployments.map((a) => ecs.serviceDeployment(a)!);

  before(async () => {
    reg = await startRegistry();
    const repo = `${reg.host}/shop/web`;
    for (const v of ["1", "2", "3"]) refs[v] = `${repo}@${(await pushImage(reg, "shop/web", v)).digest}`;
    ecs = new EcsFake({ region: REGION, tickMs: 20 });
    const endpoint = await ecs.listen();
    hookClient = new ECSClient({ region: REGION, endpoint, credentials: CREDS, maxAttempts: 1 });
    const handler = createGateHandler(() => hookClient);
    ecs.lambdas.set(GATE, (payload) => handler(payload));
    probe = createServer((_req, res) => {
      probeHits++;
      res.writeHead(probeStatus).end(probeStatus === 200 ? "ok" : "failing");
    });
    await new Promise<void>((r) => probe!.listen(0, "127.0.0.1", r));
    const probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/health`;

    cp = await TestControlPlane.start({ extraArgs: ["--task-ack-timeout", "3s", "--liveness-grace", "2s"] });
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", repo])).code, 0);
    for (const v of ["1", "2", "3"]) {
      const r = await cp.api("POST", "/api/v1/releases", { name: "shop", version: v, components: { web: refs[v] } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const e = await agent.enrol(await cp.createJoinString("dev"));
    assert.equal(e.code, 0, e.stderr);
    agent.start(
      ["--observe-interval", "1", "--driver", "docker.enabled=false", "--driver", "ecs.enabled=true", "--driver", `ecs.endpoint=${endpoint}`, "--driver", "ecs.pollIntervalMs=50"],
      { AWS_ACCESS_KEY_ID: CREDS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey, AWS_EC2_METADATA_DISABLED: "true", AWS_PROFILE: "", AWS_CONFIG_FILE: join(scratch, "none"), AWS_SHARED_CREDENTIALS_FILE: join(scratch, "none") },
    );
    const gw = await waitFor("the gateway agent online with the ecs driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((a) => a.status === "online" && a.facts.drivers?.includes("ecs"));
    }, { timeoutMs: 30_000 });

    // One minute of bake is 1.2 s here (the fake's clock: one second per 20 ms).
    ecs.seedService("prod", "shop", { family: "shop-web", containerDefinitions: [{ name: "web", image: refs["1"], essential: true }] }, {
      desiredCount: 2,
      deploymentConfiguration: {
        strategy: "BLUE_GREEN",
        bakeTimeInMinutes: 1,
        lifecycleHooks: [{ hookTargetArn: GATE, roleArn: "arn:aws:iam::123456789012:role/ecs-lifecycle-hooks", lifecycleStages: ["POST_TEST_TRAFFIC_SHIFT"], hookDetails: { callBackDelay: 5 } }],
      },
    });
    const config = { region: REGION, cluster: "prod", service: "shop", containerName: "web", steadyStateTimeoutSeconds: 60, native: { gateHookArn: GATE, gateSeconds: 1, probeUrl, probeIntervalSeconds: 1, probeTimeoutMs: 1000 } };
    const r = await cp.api("POST", "/api/v1/environments/dev/targets", { name: "ecs-bg", kind: "ecs", config, agentId: gw.id });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  });

  after(async () => {
    await agent.dispose();
    await cp?.stop();
    hookClient?.destroy();
    await ecs?.close();
    await new Promise((r) => (probe ? probe.close(r) : r(undefined)));
    await reg?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("deploys through ECS's blue/green stages, held at the gate until the agent's verdict, checked through the bake", async () => {
    // What already runs first: nothing to roll out, no service deployment; it is what a rollback goes back to.
    assert.equal((await cli(["deploy", "shop@1", "--to", "dev", "--target", "ecs-bg"])).state, "succeeded");
    assert.equal(serviceDeployments().length, 0);
    const d = await cli(["deploy", "shop@2", "--to", "dev", "--target", "ecs-bg"]);
    assert.equal(d.state, "succeeded", JSON.stringify(d.tasks));
    const [sd] = serviceDeployments();
    assert.equal(sd!.status, "SUCCESSFUL");
    assert.equal(sd!.strategy, "BLUE_GREEN");
    const svc = ecs.service("prod", "shop")!;
    assert.equal(sd!.target.taskDefinition, svc.taskDefinition);
    assert.ok(ecs.tasksOf("prod", "shop").filter((t) => t.lastStatus === "RUNNING").every((t) => t.taskDefinitionArn === svc.taskDefinition));
    const answers = ecs.hookInvocations.filter((h) => h.payload["resourceArn"] === sd!.arn).map((h) => (h.answer as { hookStatus: string }).hookStatus);
    assert.equal(answers.at(-1), "SUCCEEDED", answers.join(" "));
    assert.ok(probeHits > 0, "the gateway agent probed during the bake");
    const text = await waitFor("the task's log up to the switch", async () => {
      const body = await log(d);
      return body.includes("switch:") ? body : undefined;
    });
    assert.match(text, /IN_PROGRESS at POST_TEST_TRAFFIC_SHIFT/);
    assert.match(text, /gate POST_TEST_TRAFFIC_SHIFT passed/);
    assert.match(text, /IN_PROGRESS at BAKE_TIME/);
    assert.match(text, /BLUE_GREEN service deployment \w+ succeeded/);
  });

  it("a probe failing during the bake: Ferry stops the deployment, ECS rolls back, the blue revision serves", async () => {
    const before = ecs.service("prod", "shop")!.taskDefinition;
    // The probe fails once the new revision has production traffic, i.e. during the bake.
    const watch = setInterval(() => {
      const sd = serviceDeployments()[0];
      if (sd && sd.target.taskDefinition !== before && sd.productionWeight === 100) probeStatus = 503;
    }, 10);
    const d = await cli(["deploy", "shop@3", "--to", "dev", "--target", "ecs-bg"]).finally(() => clearInterval(watch));
    probeStatus = 200;
    assert.equal(d.state, "failed");
    assert.equal(d.tasks[0]!.code, "CANARY_ANALYSIS_FAILED", d.tasks[0]!.message ?? "");
    assert.match(d.tasks[0]!.message ?? "", /bake: the probe of .* answered .*503/);
    const [sd] = serviceDeployments();
    assert.equal(sd!.status, "ROLLBACK_SUCCESSFUL");
    assert.ok(ecs.calls.some((c) => c.action === "StopServiceDeployment" && c.body["serviceDeploymentArn"] === sd!.arn));
    assert.equal(ecs.service("prod", "shop")!.taskDefinition, before);
  });

  it("rolls back to the previous revision through the same strategy", async () => {
    const d = await cli(["rollback", "--env", "dev", "--target", "ecs-bg"]);
    assert.equal(d.state, "succeeded", JSON.stringify(d.tasks));
    assert.match(ecs.service("prod", "shop")!.taskDefinition, /shop-web:1$/, "the first revision deployed again, not a new one");
    const [sd] = serviceDeployments();
    assert.equal(sd!.status, "SUCCESSFUL");
    assert.equal(sd!.strategy, "BLUE_GREEN");
  });
});
