// The gateway agent of bench:footprint: one real agent serving `count` ECS services and `count` Nomad jobs (no Docker
// driver), against the project's protocol-faithful fakes of both APIs (test/fakes), which run in the bench process on
// loopback. The targets exist on the control plane from the start (the "idle" figure is an agent with 2 × count
// targets configured and both drivers loaded); deployAll() then deploys a release to every target, through the
// control plane, the agent, the AWS SDK and the Nomad client — the "after deploys" figure adds what the agent keeps
// per target (a sticker, an observation) and what running each path once costs.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pushImage, type TestRegistry } from "../../test/helpers/registry.js";
import { EcsFake } from "../../test/fakes/ecs/ecs-fake.js";
import { NomadFake } from "../../test/fakes/nomad/nomad-fake.js";
import type { DeploymentView, FerryApi } from "../deploy/ferry-api.js";

const NS = 1_000_000;
const NOMAD_TOKEN = "0f4c2d8e-3b1a-4e6f-9c7d-2a5b8e1f4c3d";
const DONE = ["succeeded", "failed", "errored", "expired", "cancelled"];

export interface Gateway {
  /** `ferry-agent run` arguments and environment for the gateway agent. */
  runArgs: string[];
  env: Record<string, string>;
  /** Creates the targets (2 × count) on the control plane for the agent. */
  addTargets(agentId: string): Promise<void>;
  /** Deploys `version` to every target, `inFlight` deployments at a time; resolves with the outcome counts. */
  deployAll(version: "1" | "2", inFlight: number): Promise<{ deploys: number; outcomes: Record<string, number>; seconds: number }>;
  close(): Promise<void>;
}

export async function startGateway(api: FerryApi, reg: TestRegistry, environment: string, count: number, workDir: string): Promise<Gateway> {
  const refs: Record<string, string> = {};
  for (const v of ["1", "2"]) refs[v] = `${reg.host}/bench-gateway/web@${(await pushImage(reg, "bench-gateway/web", v)).digest}`;
  await api.ensure("/components", { name: "gw", repository: `${reg.host}/bench-gateway/web` });
  const releases: Record<string, string> = {};
  for (const v of ["1", "2"]) releases[v] = (await api.call<{ id: string }>("POST", "/releases", { name: "footprint-gateway", version: v, components: { gw: refs[v] } })).id;

  // tickMs: the fakes' clocks run on their own, a new task or allocation is up one tick later.
  const ecs = new EcsFake({ region: "eu-west-1", tickMs: 50 });
  const nomad = new NomadFake({ tokens: { [NOMAD_TOKEN]: "write" }, tickMs: 50 });
  const [ecsEndpoint, nomadAddress] = await Promise.all([ecs.listen(), nomad.listen()]);
  for (let i = 0; i < count; i++) {
    ecs.seedService("bench", `svc-${i}`, { family: `gw-${i}`, containerDefinitions: [{ name: "web", image: refs["1"], essential: true }] }, { desiredCount: 1 });
    nomad.seedJob({
      ID: `job-${i}`,
      Type: "service",
      Update: { MaxParallel: 1, ProgressDeadline: 60_000 * NS, AutoRevert: false },
      TaskGroups: [{ Name: "web", Count: 1, Tasks: [{ Name: "server", Driver: "docker", Config: { image: refs["1"] } }] }],
    });
  }
  const tokenFile = join(workDir, "nomad-token");
  writeFileSync(tokenFile, NOMAD_TOKEN, { mode: 0o600 });
  const targets: string[] = [];
  return {
    runArgs: [
      "--driver", "docker.enabled=false",
      "--driver", "ecs.enabled=true",
      "--driver", `ecs.endpoint=${ecsEndpoint}`,
      "--driver", "ecs.pollIntervalMs=250",
      "--driver", "nomad.enabled=true",
      "--driver", `nomad.address=${nomadAddress}`,
      "--driver", `nomad.tokenFile=${tokenFile}`,
    ],
    // The standard AWS chain, from the environment; no instance metadata here.
    env: {
      AWS_ACCESS_KEY_ID: "AKIDFERRYTEST",
      AWS_SECRET_ACCESS_KEY: "ferry-test-secret",
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_PROFILE: "",
      AWS_CONFIG_FILE: join(workDir, "none"),
      AWS_SHARED_CREDENTIALS_FILE: join(workDir, "none"),
    },
    async addTargets(agentId) {
      for (let i = 0; i < count; i++) {
        for (const t of [
          { name: `ecs-${i}`, kind: "ecs", config: { region: "eu-west-1", cluster: "bench", service: `svc-${i}`, containerName: "web", steadyStateTimeoutSeconds: 120 } },
          { name: `nomad-${i}`, kind: "nomad", config: { job: `job-${i}`, group: "web", task: "server", deploymentTimeoutSeconds: 120 } },
        ]) {
          await api.call("POST", `/environments/${environment}/targets`, { ...t, agentId });
          targets.push(t.name);
        }
      }
    },
    async deployAll(version, inFlight) {
      const t0 = Date.now();
      const outcomes: Record<string, number> = {};
      let next = 0;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < targets.length) {
            const target = targets[next++] as string;
            const d = await api.call<DeploymentView>("POST", "/deployments", { release: releases[version], environment, targets: [target] });
            for (const deadline = Date.now() + 180_000; ; ) {
              const v = await api.call<DeploymentView>("GET", `/deployments/${d.id}`);
              const task = v.tasks[0];
              if (task && DONE.includes(task.state)) {
                const key = `${task.state}${task.code ? ` ${task.code}` : ""}`;
                outcomes[key] = (outcomes[key] ?? 0) + 1;
                break;
              }
              if (Date.now() > deadline) throw new Error(`gateway deployment ${d.id} to ${target} did not finish within 180 s`);
              await new Promise((r) => setTimeout(r, 200));
            }
          }
        }),
      );
      return { deploys: targets.length, outcomes, seconds: (Date.now() - t0) / 1000 };
    },
    async close() {
      await Promise.all([ecs.close(), nomad.close()]);
    },
  };
}
