// Modelling the estate through the real CLI against a real server: environments in order, targets bound to agents
// of their environment, refusals with stable codes.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";

describe("estate model through the CLI", () => {
  let cp: TestControlPlane;
  const agent = new TestAgent("stg-host");
  let agentId = "";

  before(async () => {
    cp = await TestControlPlane.start();
    for (const env of ["dev", "staging", "prod"]) assert.equal((await cp.cli(["env", "create", env])).code, 0);
    assert.equal((await agent.enrol(await cp.createJoinString("staging"))).code, 0);
    agentId = (JSON.parse(readFileSync(join(agent.stateDir, "identity.json"), "utf8")) as { agentId: string }).agentId;
  });
  after(async () => {
    await agent.dispose();
    await cp.stop();
  });

  it("lists environments in order", async () => {
    const r = await cp.cli(["env", "list", "--json"]);
    assert.deepEqual((JSON.parse(r.stdout) as Array<{ name: string }>).map((e) => e.name), ["dev", "staging", "prod"]);
    const human = await cp.cli(["env", "list"]);
    assert.match(human.stdout, /1\s+dev[\s\S]*2\s+staging[\s\S]*3\s+prod/);
  });

  it("creates a docker target served by an agent of its environment", async () => {
    const r = await cp.cli(["target", "create", "web", "--env", "staging", "--kind", "docker", "--agent", agentId, "--config", '{"container":"shop-web","healthCheck":{"type":"http","url":"http://127.0.0.1:8080/health"}}', "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const t = JSON.parse(r.stdout) as { kind: string; agentId: string };
    assert.deepEqual([t.kind, t.agentId], ["docker", agentId]);
    const list = await cp.cli(["target", "list", "--env", "staging"]);
    assert.match(list.stdout, new RegExp(`staging\\s+web\\s+docker\\s+${agentId}`));
  });

  it("refuses targets of an unknown kind, with invalid config, or bound to an agent of another environment", async () => {
    const kind = await cp.cli(["target", "create", "x", "--env", "staging", "--kind", "kubernetes"]);
    assert.equal(kind.code, 1);
    assert.match(kind.stderr, /UNKNOWN_TARGET_KIND/);
    const cfg = await cp.cli(["target", "create", "x", "--env", "staging", "--kind", "docker", "--config", '{"contianer":"x"}']);
    assert.match(cfg.stderr, /VALIDATION_FAILED: config.contianer: unknown field/);
    const other = await cp.cli(["target", "create", "x", "--env", "prod", "--kind", "docker", "--agent", agentId, "--config", '{"container":"x"}']);
    assert.match(other.stderr, /TARGET_AGENT_MISMATCH: agent .* belongs to environment staging, not prod/);
    const badJson = await cp.cli(["target", "create", "x", "--env", "prod", "--kind", "docker", "--config", "{nope"]);
    assert.equal(badJson.code, 2);
    const list = await cp.cli(["target", "list", "--json"]);
    assert.equal((JSON.parse(list.stdout) as unknown[]).length, 1);
  });

  it("refuses a request body over the limit and one that is not JSON", async () => {
    const big = await fetch(`${cp.runtime.api}/api/v1/components`, {
      method: "POST",
      headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "big", repository: "r/x", description: "x".repeat(2 * 1024 * 1024) }),
    });
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { code: string } }).error.code, "BODY_TOO_LARGE");
    const garbage = await fetch(`${cp.runtime.api}/api/v1/components`, {
      method: "POST",
      headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(garbage.status, 400);
    assert.equal(((await garbage.json()) as { error: { code: string } }).error.code, "MALFORMED_JSON");
  });
});
