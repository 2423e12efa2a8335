// ECS and Nomad targets end to end: a real `ferry server` (embedded PGlite), one real gateway `ferry-agent` serving
// both kinds (no host of its own), and the project's protocol-faithful fakes of the ECS and Nomad APIs on loopback
// (test/fakes), which run in this test process. Releases are resolved against a real OCI registry on loopback; the
// fakes never pull, they only see the digest-pinned references.
//
// Covered: deploy, a circuit breaker / unhealthy allocations failing the deploy with what ran before serving, a
// rollback to the exact previous digests, drift reported after an out-of-band change, a canary on Nomad promoted by
// Ferry once its health passed, a canary promoted after Ferry's analysis passed and one refused, the checks of targets at creation, and refusals at deploy time for a service or job
// that does not exist.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { pushImage, registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";
import { EcsFake } from "../fakes/ecs/ecs-fake.js";
import { NomadFake } from "../fakes/nomad/nomad-fake.js";

const skip = registrySkipReason();
if (skip) console.warn(`\n*** gateway deploy suite skipped: ${skip} ***\n`);

const NS = 1_000_000;
const NOMAD_TOKEN = "5e1f3c2a-9d0b-4c7e-8a6f-1b2c3d4e5f60";

interface TaskView {
  id: string;
  state: string;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  target: { name: string };
}
interface DeploymentView {
  id: string;
  state: string;
  tasks: TaskView[];
}
interface StatusView {
  target: string;
  sync: string;
  drift: string[];
}

describe("ECS and Nomad targets through a gateway agent", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let ecs: EcsFake;
  let nomad: NomadFake;
  let ecsEndpoint = "";
  let nomadAddress = "";
  const agent = new TestAgent("gateway-1");
  const scratch = mkdtempSync(join(tmpdir(), "ferry-gateway-e2e-"));
  const refs: Record<string, string> = {};
  let repo = "";
  // The canary analysis probe (on loopback): what it answers is set by the test.
  let probeStatus = 200;
  let probeHits = 0;
  let probe: Server | undefined;

  const deploy = async (release: string, target: string) => {
    const r = await cp.cli(["deploy", release, "--to", "dev", "--target", target, "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry deploy printed no JSON: ${r.stderr}`);
    return { code: r.code, d: JSON.parse(r.stdout) as DeploymentView, stderr: r.stderr };
  };
  const rollback = async (target: string) => {
    const r = await cp.cli(["rollback", "--env", "dev", "--target", target, "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry rollback printed no JSON: ${r.stderr}`);
    return { code: r.code, d: JSON.parse(r.stdout) as DeploymentView };
  };
  const status = async (target: string) => (await cp.api<{ targets: StatusView[] }>("GET", "/api/v1/status?environment=dev")).body.targets.find((t) => t.target === target);
  const nomadImage = (job: string) => ((nomad.job(job)!["TaskGroups"] as { Tasks: { Config: { image: string } }[] }[])[0]!.Tasks[0]!.Config.image);

  before(async () => {
    reg = await startRegistry();
    repo = `${reg.host}/shop/web`;
    for (const v of ["1", "2", "3"]) refs[v] = `${repo}@${(await pushImage(reg, "shop/web", v)).digest}`;
    ecs = new EcsFake({ region: "eu-west-1", tickMs: 20 });
    ecsEndpoint = await ecs.listen();
    nomad = new NomadFake({ tokens: { [NOMAD_TOKEN]: "write" }, tickMs: 20 });
    nomadAddress = await nomad.listen();
    probe = createServer((_req, res) => {
      probeHits++;
      res.writeHead(probeStatus).end(probeStatus === 200 ? "ok" : "failing");
    });
    await new Promise<void>((r) => probe!.listen(0, "127.0.0.1", r));
    const probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/health`;
    const tokenFile = join(scratch, "nomad-token");
    writeFileSync(tokenFile, NOMAD_TOKEN, { mode: 0o600 });

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
      [
        "--observe-interval", "1",
        "--driver", "docker.enabled=false",
        "--driver", "ecs.enabled=true",
        "--driver", `ecs.endpoint=${ecsEndpoint}`,
        "--driver", "ecs.pollIntervalMs=50",
        "--driver", "nomad.enabled=true",
        "--driver", `nomad.address=${nomadAddress}`,
        "--driver", `nomad.tokenFile=${tokenFile}`,
        "--driver", "nomad.blockingWaitSeconds=2",
      ],
      // The standard AWS chain: the environment. Instance metadata is off, there is no instance here.
      { AWS_ACCESS_KEY_ID: "AKIDFERRYTEST", AWS_SECRET_ACCESS_KEY: "ferry-test-secret", AWS_EC2_METADATA_DISABLED: "true", AWS_PROFILE: "", AWS_CONFIG_FILE: join(scratch, "none"), AWS_SHARED_CREDENTIALS_FILE: join(scratch, "none") },
    );
    const gw = await waitFor("the gateway agent online with the ecs and nomad drivers", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((a) => a.status === "online" && a.facts.drivers?.includes("ecs") && a.facts.drivers.includes("nomad"));
    }, { timeoutMs: 30_000 });

    ecs.seedService("prod", "web", { family: "shop-web", containerDefinitions: [{ name: "web", image: refs["1"], essential: true }] }, { desiredCount: 2 });
    const job = (id: string, update: Record<string, unknown>) => ({
      ID: id,
      Type: "service",
      Update: { MaxParallel: 1, ProgressDeadline: 60_000 * NS, ...update },
      TaskGroups: [{ Name: "web", Count: 2, Tasks: [{ Name: "server", Driver: "docker", Config: { image: refs["1"] } }] }],
    });
    nomad.seedJob(job("shop", { AutoRevert: false }));
    nomad.seedJob(job("shop-canary", { Canary: 1 }));
    nomad.seedJob(job("shop-analysed", { Canary: 1 }));
    const targets = [
      { name: "ecs-web", kind: "ecs", config: { region: "eu-west-1", cluster: "prod", service: "web", containerName: "web", steadyStateTimeoutSeconds: 60 } },
      { name: "ecs-missing", kind: "ecs", config: { region: "eu-west-1", cluster: "prod", service: "ghost" } },
      { name: "nomad-web", kind: "nomad", config: { job: "shop", group: "web", task: "server", deploymentTimeoutSeconds: 60 } },
      { name: "nomad-canary", kind: "nomad", config: { job: "shop-canary", deploymentTimeoutSeconds: 60 } },
      { name: "nomad-missing", kind: "nomad", config: { job: "ghost" } },
      { name: "nomad-analysed", kind: "nomad", config: { job: "shop-analysed", deploymentTimeoutSeconds: 60, canaryAnalysis: { bakeSeconds: 1, probeUrl, probeIntervalSeconds: 1, probeTimeoutMs: 1000 } } },
    ];
    for (const t of targets) {
      const r = await cp.api("POST", "/api/v1/environments/dev/targets", { ...t, agentId: gw.id });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });

  after(async () => {
    await agent.dispose();
    await cp?.stop();
    await ecs?.close();
    await nomad?.close();
    await new Promise((r) => (probe ? probe.close(r) : r(undefined)));
    await reg?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("checks each target when it is created: what exists is ok, a missing service, cluster or job is TARGET_NOT_FOUND", async () => {
    interface Checked { name: string; check: { state: string; code: string | null; message: string } | null }
    const checkOf = async (name: string) =>
      waitFor(`${name}'s check answered`, async () => {
        const r = await cp.api<Checked>("GET", `/api/v1/environments/dev/targets/${name}`);
        return r.body.check && r.body.check.state !== "pending" ? r.body.check : undefined;
      }, { timeoutMs: 30_000 });
    for (const t of ["ecs-web", "nomad-web", "nomad-canary", "nomad-analysed"]) assert.equal((await checkOf(t)).state, "ok", t);
    const ecsMissing = await checkOf("ecs-missing");
    assert.deepEqual([ecsMissing.state, ecsMissing.code], ["failed", "TARGET_NOT_FOUND"]);
    assert.match(ecsMissing.message, /ECS service ghost in cluster prod \(eu-west-1\) does not exist/);
    const nomadMissing = await checkOf("nomad-missing");
    assert.deepEqual([nomadMissing.state, nomadMissing.code], ["failed", "TARGET_NOT_FOUND"]);
    // The CLI waits for the check of a target it creates, and shows it.
    const gw = (await cp.api<{ targets: { agentId: string }[] }>("GET", "/api/v1/targets?environment=dev")).body.targets[0]!.agentId;
    const config = JSON.stringify({ region: "eu-west-1", cluster: "nowhere", service: "web" });
    const r = await cp.cli(["target", "create", "ecs-nowhere", "--env", "dev", "--kind", "ecs", "--agent", gw, "--config", config, "--wait", "30"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /check: FAILED TARGET_NOT_FOUND: ECS cluster nowhere \(eu-west-1\) does not exist/);
    const list = await cp.cli(["target", "list", "--env", "dev"]);
    assert.match(list.stdout, /ecs-missing\s+ecs\s+\S+\s+failed TARGET_NOT_FOUND/);
    // A failed check does not refuse a deploy: its own prepare checks again (the last test of this suite).
    assert.equal((await cp.cli(["target", "delete", "ecs-nowhere", "--env", "dev"])).code, 0);
  });

  it("deploys a release to an ECS service and a Nomad job from one gateway agent", async () => {
    // What already runs first: nothing is registered, the sticker is written.
    const calls = ecs.calls.length;
    for (const t of ["ecs-web", "nomad-web"]) assert.equal((await deploy("shop@1", t)).d.state, "succeeded");
    assert.ok(!ecs.calls.slice(calls).some((c) => c.action === "RegisterTaskDefinition"));
    const a = await deploy("shop@2", "ecs-web");
    assert.equal(a.d.state, "succeeded", JSON.stringify(a.d.tasks));
    const svc = ecs.service("prod", "web")!;
    const reg2 = ecs.calls.filter((c) => c.action === "RegisterTaskDefinition").at(-1)!.body;
    assert.equal((reg2["containerDefinitions"] as { image: string }[])[0]!.image, refs["2"]);
    assert.ok(ecs.tasksOf("prod", "web").filter((t) => t.lastStatus === "RUNNING").every((t) => t.taskDefinitionArn === svc.taskDefinition));
    const b = await deploy("shop@2", "nomad-web");
    assert.equal(b.d.state, "succeeded", JSON.stringify(b.d.tasks));
    assert.equal(nomadImage("shop"), refs["2"]);
    for (const t of ["ecs-web", "nomad-web"]) {
      await waitFor(`${t} reported in sync`, async () => (await status(t))?.sync === "in-sync");
    }
  });

  it("a circuit breaker on ECS and unhealthy allocations on Nomad fail the deploy; what ran before serves", async () => {
    const before = ecs.service("prod", "web")!.taskDefinition;
    ecs.failingImages.add(refs["3"]!);
    nomad.failingImages.add(refs["3"]!);
    const a = await deploy("shop@3", "ecs-web");
    assert.equal(a.d.state, "failed");
    assert.equal(a.d.tasks[0]!.code, "INSTANCE_CRASHED", a.d.tasks[0]!.message ?? "");
    assert.match(a.d.tasks[0]!.message ?? "", /circuit breaker|tasks failed to start/);
    assert.equal(ecs.service("prod", "web")!.taskDefinition, before);
    const b = await deploy("shop@3", "nomad-web");
    assert.equal(b.d.state, "failed");
    assert.equal(b.d.tasks[0]!.code, "INSTANCE_CRASHED");
    assert.match(b.d.tasks[0]!.message ?? "", /unhealthy allocations/);
    assert.equal(nomadImage("shop"), refs["2"]);
    ecs.failingImages.clear();
    nomad.failingImages.clear();
  });

  it("rolls back to the exact previous digests: the previous ECS revision, the previous Nomad version's image", async () => {
    const a = await rollback("ecs-web");
    assert.equal(a.d.state, "succeeded", JSON.stringify(a.d.tasks));
    assert.match(ecs.service("prod", "web")!.taskDefinition, /shop-web:1$/, "the first revision deployed again, not a new one");
    const b = await rollback("nomad-web");
    assert.equal(b.d.state, "succeeded", JSON.stringify(b.d.tasks));
    assert.equal(nomadImage("shop"), refs["1"]);
  });

  it("reports drift when what runs differs from the sticker", async () => {
    await deploy("shop@2", "ecs-web");
    await deploy("shop@2", "nomad-web");
    await waitFor("both in sync", async () => (await status("ecs-web"))?.sync === "in-sync" && (await status("nomad-web"))?.sync === "in-sync");
    // Out of band: ECS back to revision 1, Nomad's image edited by hand.
    const { ECSClient, UpdateServiceCommand } = await import("@aws-sdk/client-ecs");
    const client = new ECSClient({ region: "eu-west-1", endpoint: ecsEndpoint, credentials: { accessKeyId: "AKIDFERRYTEST", secretAccessKey: "ferry-test-secret" } });
    await client.send(new UpdateServiceCommand({ cluster: "prod", service: "web", taskDefinition: "shop-web:1" }));
    client.destroy();
    const edited = structuredClone(nomad.job("shop")!) as { TaskGroups: { Tasks: { Config: { image: string } }[] }[] };
    edited.TaskGroups[0]!.Tasks[0]!.Config.image = refs["1"]!;
    const res = await fetch(`${nomadAddress}/v1/job/shop`, { method: "POST", headers: { "x-nomad-token": NOMAD_TOKEN }, body: JSON.stringify({ Job: edited }) });
    assert.equal(res.status, 200);
    const digest1 = refs["1"]!.split("@")[1]!;
    for (const t of ["ecs-web", "nomad-web"]) {
      const s = await waitFor(`${t} reported drifting`, async () => {
        const v = await status(t);
        return v?.sync === "drift" ? v : undefined;
      }, { timeoutMs: 30_000 });
      assert.ok(s.drift.some((l) => l.includes(`running ${digest1}`)), JSON.stringify(s.drift));
    }
  });

  it("runs a Nomad canary: health stops at the healthy canary, and Ferry promotes it", async () => {
    const r = await deploy("shop@2", "nomad-canary");
    assert.equal(r.d.state, "succeeded", JSON.stringify(r.d.tasks));
    const dep = nomad.deployments("shop-canary").at(-1)!;
    assert.equal(dep.Status, "successful");
    assert.equal(dep.TaskGroups["web"]!.DesiredCanaries, 1);
    assert.equal(dep.TaskGroups["web"]!.Promoted, true);
    assert.ok(nomad.calls.some((c) => c.path === `/v1/deployment/promote/${dep.ID}`), "Ferry promoted the canary through the API");
    const text = await waitFor("the task's log up to the promotion", async () => {
      const res = await fetch(`${cp.runtime.api}/api/v1/deployments/${r.d.id}/tasks/${r.d.tasks[0]!.id}/log`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
      const body = await res.text();
      return body.includes("switch: promoted") ? body : undefined;
    });
    assert.match(text, /canar.*wait for promotion/);
    assert.match(text, /switch: promoted the canaries/);
  });

  it("promotes a Nomad canary only after Ferry's analysis passes, and refuses one whose probe fails", async () => {
    const a = await deploy("shop@2", "nomad-analysed");
    assert.equal(a.d.state, "succeeded", JSON.stringify(a.d.tasks));
    assert.ok(probeHits > 0, "the gateway agent probed the canary");
    const promoted = nomad.deployments("shop-analysed").at(-1)!;
    assert.equal(promoted.Status, "successful");
    assert.ok(nomad.calls.some((c) => c.path === `/v1/deployment/promote/${promoted.ID}`));
    const log = await waitFor("the task's log with the analysis", async () => {
      const res = await fetch(`${cp.runtime.api}/api/v1/deployments/${a.d.id}/tasks/${a.d.tasks[0]!.id}/log`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
      const body = await res.text();
      return body.includes("switch: promoted") ? body : undefined;
    });
    assert.match(log, /health: analysis: passed: the canaries stayed healthy/);

    probeStatus = 503;
    const b = await deploy("shop@3", "nomad-analysed");
    assert.equal(b.d.state, "failed");
    assert.equal(b.d.tasks[0]!.code, "CANARY_ANALYSIS_FAILED", b.d.tasks[0]!.message ?? "");
    assert.match(b.d.tasks[0]!.message ?? "", /the probe of .* answered .*503/);
    const refused = nomad.deployments("shop-analysed").find((d) => d.JobVersion === promoted.JobVersion + 1);
    assert.ok(refused, "the refused version had a deployment");
    assert.equal(refused.Status, "failed");
    assert.ok(!nomad.calls.some((c) => c.path === `/v1/deployment/promote/${refused.ID}`), "the refused canary was never promoted");
    assert.equal(nomadImage("shop-analysed"), refs["2"], "the version that served is back");
    probeStatus = 200;
  });

  it("fails at deploy time, touching nothing, for a service or job that does not exist", async () => {
    const a = await deploy("shop@2", "ecs-missing");
    assert.equal(a.d.state, "failed");
    assert.equal(a.d.tasks[0]!.code, "TARGET_NOT_FOUND");
    assert.match(a.d.tasks[0]!.message ?? "", /service ghost in cluster prod .*does not exist/);
    const b = await deploy("shop@2", "nomad-missing");
    assert.equal(b.d.tasks[0]!.code, "TARGET_NOT_FOUND");
    assert.match(b.d.tasks[0]!.message ?? "", /Nomad job ghost does not exist/);
  });
});
