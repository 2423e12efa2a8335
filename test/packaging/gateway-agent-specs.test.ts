// The gateway agent's packaging: the container image definition, the ECS task definition and the Nomad job spec in
// installers/. Each is checked as far as a tool here can: the task definition is registered through
// @aws-sdk/client-ecs with the project's ECS fake; every FERRY_AGENT_DRIVER_* variable the specs set is one the
// agent's config resolver knows; the entrypoint passes `sh -n`; the Dockerfile copies files the repository has or
// builds. No image is built here (no base image can be pulled on this machine).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ECSClient, RegisterTaskDefinitionCommand, type RegisterTaskDefinitionCommandInput } from "@aws-sdk/client-ecs";

import { DRIVER_REGISTRATIONS } from "../../agent/src/drivers/index.js";
import { EcsFake } from "../fakes/ecs/ecs-fake.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const DIGEST_REF = /@sha256:[0-9a-f]{64}$/;

/** Whether FERRY_AGENT_DRIVER_<KIND>_<KEY> names a setting of a registered driver (or its "enabled" switch). */
function knownDriverVariable(name: string): boolean {
  const m = /^FERRY_AGENT_DRIVER_([A-Z0-9]+)_([A-Z0-9_]+)$/.exec(name);
  if (!m) return false;
  const reg = DRIVER_REGISTRATIONS.find((r) => r.descriptor.kind.toUpperCase() === m[1]);
  if (!reg) return false;
  const keys = ["enabled", ...Object.keys(reg.settings.fields)];
  return keys.some((k) => k.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase() === m[2]);
}

describe("gateway agent packaging", () => {
  let fake: EcsFake;
  let ecs: ECSClient;

  before(async () => {
    fake = new EcsFake({ region: "eu-west-1" });
    ecs = new ECSClient({ region: "eu-west-1", endpoint: await fake.listen(), credentials: { accessKeyId: "AKIDFERRYTEST", secretAccessKey: "ferry-test-secret" }, maxAttempts: 1 });
  });

  after(async () => {
    ecs.destroy();
    await fake.close();
  });

  it("the ECS task definition registers, pins the image by digest and keeps the join string out of plain environment", async () => {
    const td = JSON.parse(read("installers/ecs/ferry-agent-task-definition.json")) as RegisterTaskDefinitionCommandInput;
    const out = await ecs.send(new RegisterTaskDefinitionCommand(td));
    assert.equal(out.taskDefinition?.revision, 1);
    const c = td.containerDefinitions![0]!;
    assert.match(c.image!, DIGEST_REF);
    assert.equal(c.user, "10001:10001");
    assert.ok(c.secrets?.some((s) => s.name === "FERRY_JOIN"), "the join string comes from a secret");
    for (const e of c.environment ?? []) {
      assert.doesNotMatch(e.name!, /JOIN|TOKEN|SECRET|ACCESS_KEY/, `${e.name} must not be plain environment`);
      if (e.name!.startsWith("FERRY_AGENT_DRIVER_")) assert.ok(knownDriverVariable(e.name!), `${e.name} is not an agent setting`);
    }
    assert.ok(td.taskRoleArn, "credentials come from the task role through the AWS chain");
    assert.equal(c.mountPoints?.[0]?.containerPath, "/var/lib/ferry-agent");
  });

  it("the Nomad job spec pins the image, reads the token from a file, and sets only known agent settings", () => {
    const hcl = read("installers/nomad/ferry-agent.nomad.hcl");
    const image = /image\s*=\s*"([^"]+)"/.exec(hcl)?.[1] ?? "";
    assert.match(image, DIGEST_REF);
    const vars = [...hcl.matchAll(/^\s*(FERRY_AGENT_[A-Z0-9_]+)\s*=/gm)].map((m) => m[1]!);
    assert.ok(vars.length >= 3);
    for (const v of vars.filter((x) => x.startsWith("FERRY_AGENT_DRIVER_"))) assert.ok(knownDriverVariable(v), `${v} is not an agent setting`);
    assert.match(hcl, /FERRY_AGENT_DRIVER_NOMAD_TOKEN_FILE\s*=\s*"\/secrets\/nomad-token"/);
    assert.match(hcl, /destination\s*=\s*"secrets\/nomad-token"/);
    assert.doesNotMatch(hcl, /NOMAD_TOKEN\s*=/, "no token inline");
    // Braces balance: the spec is at least well-formed as blocks.
    assert.equal((hcl.match(/{/g) ?? []).length, (hcl.match(/}/g) ?? []).length);
  });

  it("the container image copies what the repository builds, runs unprivileged, and its entrypoint is valid sh", () => {
    const df = read("installers/container/Dockerfile");
    const copies = [...df.matchAll(/^COPY(?: --\S+)* (\S+) \S+$/gm)].map((m) => m[1]!);
    assert.deepEqual(copies, ["installers/dist/ferry-agent/", "installers/container/entrypoint.sh"]);
    assert.match(df, /^COPY(?: --\S+)* installers\/dist\/ferry-agent\/ \/opt\/ferry-agent\/$/m, "the bundle's directory, chunks and all");
    assert.ok(existsSync(join(ROOT, "installers/container/entrypoint.sh")));
    const bundler = read("scripts/bundle-agent.mjs");
    assert.match(bundler, /`\$\{root\}\/installers\/dist\/ferry-agent`/, "the bundle script writes what the image copies");
    assert.match(bundler, /"ferry-agent": /, "its entry point is ferry-agent.mjs, which the entry point script runs");
    assert.match(df, /^USER 10001:10001$/m);
    assert.match(df, /^ENTRYPOINT \[/m, "exec form, so signals reach tini and the agent");
    execFileSync("sh", ["-n", join(ROOT, "installers/container/entrypoint.sh")]);
  });
});
