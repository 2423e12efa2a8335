// The fleet lifecycle, end to end: real `ferry server` and `ferry-agent` processes over real mTLS on loopback.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { waitFor } from "../helpers/wait.js";

interface Agent {
  id: string;
  name: string;
  environment: string;
  labels: Record<string, string>;
  status: string;
  connected: boolean;
  lastHeartbeatAt: string | null;
  clockSkewMs: number | null;
  facts: { hostname?: string; os?: string; arch?: string; agentVersion?: string; drivers?: string[] };
  certificate: { serial: string | null; notAfter: string | null };
}

const agentId = (a: TestAgent): string =>
  (JSON.parse(readFileSync(join(a.stateDir, "identity.json"), "utf8")) as { agentId: string }).agentId;

describe("fleet: enrol, live status, offline, restart, renewal, revocation", () => {
  let cp: TestControlPlane;
  const agents: TestAgent[] = [];

  before(async () => {
    // A 5 s grace: long enough for an agent to come back through its reconnect backoff after a restart. A 2 min
    // certificate lifetime makes the agent renew within the test while outliving slow restarts on a loaded machine.
    cp = await TestControlPlane.start({ extraArgs: ["--cert-lifetime", "2m", "--liveness-grace", "5s"] });
    await cp.ensureEnvironment("staging");
  });
  after(async () => {
    for (const a of agents) await a.dispose();
    await cp.stop();
  });

  const getAgent = async (id: string) => (await cp.api<Agent>("GET", `/api/v1/agents/${id}`)).body;

  it("enrols an agent with a join token and shows it online with its facts", async () => {
    const join1 = (await cp.cli(["token", "create", "--env", "staging", "--label", "region=eu", "--json"]));
    assert.equal(join1.code, 0, join1.stderr);
    const { joinString } = JSON.parse(join1.stdout) as { joinString: string };
    const a = new TestAgent("web-1");
    agents.push(a);
    const enrolled = await a.enrol(joinString);
    assert.equal(enrolled.code, 0, enrolled.stderr + enrolled.stdout);
    const id = agentId(a);
    a.start();
    const online = await waitFor("the agent to be online", async () => {
      const v = await getAgent(id);
      return v.status === "online" && v.connected && v.lastHeartbeatAt ? v : undefined;
    });
    assert.equal(online.name, "web-1");
    assert.equal(online.environment, "staging");
    assert.deepEqual(online.labels, { region: "eu" });
    assert.ok(online.facts.hostname && online.facts.os && online.facts.arch && online.facts.agentVersion);
    assert.ok(online.certificate.serial && /^[0-9a-f]+$/.test(online.certificate.serial));
    assert.ok(Date.parse(online.certificate.notAfter ?? "") > Date.now());

    const listed = await cp.cli(["agents", "--json"]);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as Agent[];
    assert.ok(rows.some((r) => r.id === id && r.status === "online"));
    const human = await cp.cli(["agents"]);
    assert.match(human.stdout, /web-1/);
    assert.match(human.stdout, /online/);

    // Clock skew is measured once heartbeats flow; both processes share this machine's clock.
    const skewed = await waitFor("a clock skew reading", async () => {
      const v = await getAgent(id);
      return v.clockSkewMs !== null ? v : undefined;
    });
    assert.ok(Math.abs(skewed.clockSkewMs ?? 99999) < 1000, `skew ${skewed.clockSkewMs}`);
  });

  it("renews the certificate at half-life without dropping the stream", async () => {
    const a = agents[0] as TestAgent;
    const id = agentId(a);
    const before = (await getAgent(id)).certificate.serial;
    const connectsBefore = (a.proc?.logs() ?? []).filter((l) => l["msg"] === "connected").length;
    const renewed = await waitFor(
      "a renewed certificate",
      async () => {
        const v = await getAgent(id);
        return v.certificate.serial !== before ? v : undefined;
      },
      // The agent renews no sooner than 30 s after it starts (its floor against renewal loops), then at half-life.
      { timeoutMs: 75_000 },
    );
    assert.ok(Date.parse(renewed.certificate.notAfter ?? "") > Date.now());
    const audit = await cp.api<{ records: Array<{ action: string; object: string }> }>("GET", "/api/v1/audit?limit=1000");
    assert.ok(audit.body.records.some((r) => r.action === "agent.certificate.renew" && r.object === id));
    // The stream the agent had open is the one it still uses: no reconnect was logged since.
    const connectsAfter = (a.proc?.logs() ?? []).filter((l) => l["msg"] === "connected").length;
    assert.equal(connectsAfter, connectsBefore);
    assert.equal((await getAgent(id)).status, "online");
  });

  it("marks a killed agent offline, and online again when it comes back", async () => {
    const a = agents[0] as TestAgent;
    const id = agentId(a);
    await a.stop("SIGKILL");
    await waitFor("the agent to be offline", async () => ((await getAgent(id)).status === "offline" ? true : undefined), { timeoutMs: 15_000 });
    a.start();
    await waitFor("the agent to be online again", async () => ((await getAgent(id)).status === "online" ? true : undefined));
  });

  it("keeps agents through a control-plane restart and a kill -9, and does not mark them offline meanwhile", async () => {
    const a = agents[0] as TestAgent;
    const id = agentId(a);
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const connectsBefore = (a.proc?.logs() ?? []).filter((l) => l["msg"] === "connected").length;
      await cp.restart(signal);
      // Offline decisions are frozen for a grace period after the start, and the agent's silence counts from then.
      const right = await getAgent(id);
      assert.notEqual(right.status, "offline", `status right after the ${signal} restart`);
      await waitFor(`the agent to reconnect after ${signal}`, () =>
        (a.proc?.logs() ?? []).filter((l) => l["msg"] === "connected").length > connectsBefore ? true : undefined,
        // The agent's reconnect backoff is capped at 30 s (with full jitter), so allow a full cap after the restart.
        { timeoutMs: 60_000 },
      );
      await waitFor("the agent to be online and connected", async () => {
        const v = await getAgent(id);
        return v.status === "online" && v.connected ? true : undefined;
      });
    }
  });

  it("revocation closes the live stream at once and the agent stops", async () => {
    const a = agents[0] as TestAgent;
    const id = agentId(a);
    const t0 = Date.now();
    const r = await cp.cli(["agent", "revoke", id, "--reason", "host decommissioned"]);
    assert.equal(r.code, 0, r.stderr);
    const exit = await a.proc?.exited;
    const elapsed = Date.now() - t0;
    assert.equal(exit?.code, 4, "a revoked agent exits with code 4");
    assert.ok(elapsed < 3000, `the stream closed ${elapsed} ms after the revoke call returned`);
    const v = await getAgent(id);
    assert.equal(v.status, "revoked");
    // It cannot come back with its certificate.
    const again = a.start();
    const second = await again.exited;
    assert.equal(second.code, 4);
    assert.match(again.stdout + again.stderr, /AGENT_REVOKED|CERT_REVOKED/);
  });
});
