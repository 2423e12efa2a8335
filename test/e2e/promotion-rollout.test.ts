// A promotion through the rollout engine, end to end: a real `ferry server` on PostgreSQL, a real agent on the real
// Docker Engine serving two targets, a real registry. A promotion with a rolling strategy (the request's own)
// deploys batch by batch and succeeds with its rollout; a promotion of an unhealthy release through the environment's
// rolling strategy fails with its rollout's reason, and the targets keep the release they ran; a rolling deploy whose
// second batch fails rolls the first batch back too (fleet-wide rollback), so no target is left on the new release.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker } from "../helpers/docker.js";
import { freePort } from "../helpers/net.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";

const dbUrl = testDatabaseUrl();
const skip = (await dockerSkipReason("promotion rollout end-to-end suite")) || registrySkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON);
if (skip) console.warn(`\n*** promotion rollout suite skipped: ${skip} ***\n`);

interface Promotion {
  id: string;
  state: string;
  reason: string | null;
  strategy: { kind: string };
  strategySource: string;
  deploymentId: string | null;
  rolloutId: string | null;
  evidence?: { id: string; kind: string }[];
}
interface Rollout {
  id: string;
  state: string;
  requestedBy: string;
  steps: { kind: string; phase: string; state: string }[];
}

describe("promotions through the rollout engine", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let db: { url: string; drop: () => Promise<void> };
  let socket: string;
  const agent = new TestAgent("p-roll");
  const suffix = randomBytes(3).toString("hex");
  const ports: Record<string, number> = {};
  const version = async (target: string) => (await fetch(`http://127.0.0.1:${ports[target]!}/version`)).text();

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    db = await createDatabase(dbUrl!);
    reg = await startRegistry();
    cp = await TestControlPlane.start({ databaseUrl: db.url });
    // Release 1 serves /health; release 2 starts but never becomes healthy.
    await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "1", version: "web 1", port: 1 });
    await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "2", version: "web 2", port: 1, healthy: false });
    assert.equal((await cp.api("POST", "/api/v1/environments", { name: "dev" })).status, 201);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${reg.host}/shop/web`])).code, 0);
    assert.equal((await agent.enrol(await cp.createJoinString("dev"))).code, 0);
    agent.start(["--docker-socket", socket]);
    const agentId = await waitFor("the agent online with the docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((x) => x.status === "online" && x.facts.drivers?.includes("docker"))?.id;
    });
    for (const name of ["web-a", "web-b"]) {
      const port = (ports[name] = await freePort());
      const r = await cp.api("POST", "/api/v1/environments/dev/targets", {
        name,
        kind: "docker",
        agentId,
        config: {
          container: `ferry-roll-${name}-${suffix}`,
          command: ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/www"],
          healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 5, intervalSeconds: 1 },
        },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "3", version: "web 3", port: 1 });
    for (const v of ["1", "2", "3"]) assert.equal((await cp.api("POST", "/api/v1/releases", { name: "shop", version: v, components: { web: `:${v}` } })).status, 201);
  });

  after(async () => {
    await agent.dispose();
    await cp?.stop();
    await reg?.stop();
    if (socket) {
      const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith("ferry-roll-") && n.endsWith(suffix));
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
    await db?.drop();
  });

  it("promotes with a rolling strategy given with the request: one batch at a time, and succeeds with its rollout", async () => {
    const r = await cp.cli(["promote", "shop@1", "--to", "dev", "--strategy", '{"kind":"rolling","batch":1}', "--wait", "--timeout", "180", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout) as Promotion;
    assert.equal(p.state, "succeeded");
    assert.equal(p.strategy.kind, "rolling");
    assert.equal(p.strategySource, "request");
    assert.match(p.rolloutId ?? "", /^rol_/);
    assert.match(r.stderr, new RegExp(`"rollout":"${p.rolloutId!}"`), "--wait names the rollout it follows");
    const rollout = (await cp.api<Rollout>("GET", `/api/v1/rollouts/${p.rolloutId!}`)).body;
    assert.equal(rollout.state, "succeeded");
    assert.equal(rollout.requestedBy, `promotion:${p.id}`);
    assert.deepEqual(rollout.steps.map((s) => `${s.kind}:${s.state}`), ["wave:succeeded", "wave:succeeded"]);
    assert.equal(await version("web-a"), "web 1\n");
    assert.equal(await version("web-b"), "web 1\n");
    // The deployment packet names the rollout and its outcome.
    const shown = (await cp.api<Promotion>("GET", `/api/v1/promotions/${p.id}`)).body;
    const packet = shown.evidence!.find((e) => e.kind === "promotion.deployment")!;
    const rec = (await cp.api<{ envelope: { payload: string } }>("GET", `/api/v1/evidence/${packet.id}`)).body;
    const doc = JSON.parse(Buffer.from(rec.envelope.payload, "base64").toString("utf8")) as { outcome: string; rollout: { id: string; state: string } };
    assert.deepEqual([doc.outcome, doc.rollout.id, doc.rollout.state], ["succeeded", p.rolloutId, "succeeded"]);
  });

  it("a promotion through the environment's rolling strategy fails with its rollout's reason; the targets keep release 1", async () => {
    const set = await cp.cli(["env", "update", "dev", "--settings", '{"strategy": {"kind": "rolling", "batch": 1}}']);
    assert.equal(set.code, 0, set.stderr);
    const r = await cp.cli(["promote", "shop@2", "--to", "dev", "--wait", "--timeout", "180", "--json"]);
    assert.equal(r.code, 1, r.stderr);
    const p = JSON.parse(r.stdout) as Promotion;
    assert.equal(p.state, "failed");
    assert.equal(p.strategySource, "environment");
    assert.match(p.reason ?? "", new RegExp(`^rollout ${p.rolloutId!} rolled_back: batch 1 of 2: 1 of 1 targets failed`));
    const rollout = (await cp.api<Rollout>("GET", `/api/v1/rollouts/${p.rolloutId!}`)).body;
    assert.deepEqual(rollout.steps.map((s) => `${s.kind}:${s.state}`), ["wave:failed", "wave:skipped"]);
    assert.equal(await version("web-a"), "web 1\n", "the failed batch's target was restored by its agent");
    assert.equal(await version("web-b"), "web 1\n", "the second batch never started");
  });

  it("a rolling deploy whose second batch fails rolls the first batch back: no target is left on the new release", async () => {
    // Release 3 is healthy, but web-b's own command refuses to run it: batch 1 (web-a) succeeds, batch 2 (web-b) fails.
    const port = ports["web-b"]!;
    const cfg = {
      container: `ferry-roll-web-b-${suffix}`,
      command: ["sh", "-c", `if grep -q "web 3" /www/version; then echo "web-b cannot run web 3" >&2; exit 3; fi; exec httpd -f -p 127.0.0.1:${port} -h /www`],
      healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 5, intervalSeconds: 1 },
    };
    const patched = await cp.api("PATCH", "/api/v1/environments/dev/targets/web-b", { config: cfg });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const d = await cp.cli(["deploy", "shop@3", "--to", "dev", "--strategy", '{"kind":"rolling","batch":1}', "--json"]);
    assert.equal(d.code, 0, d.stderr);
    const id = (JSON.parse(d.stdout) as { rollout?: { id: string } }).rollout?.id;
    assert.match(id ?? "", /^rol_/, d.stdout);
    const rollout = await waitFor("the rollout to end", async () => {
      const r = (await cp.api<Rollout & { reason: Record<string, unknown> | null }>("GET", `/api/v1/rollouts/${id}`)).body;
      return ["rolled_back", "failed", "succeeded"].includes(r.state) ? r : undefined;
    }, { timeoutMs: 120_000 });
    assert.equal(rollout.state, "rolled_back", JSON.stringify(rollout));
    assert.deepEqual(rollout.steps.map((s) => `${s.phase === "rollback" ? "rb:" : ""}${s.kind}:${s.state}`), ["wave:succeeded", "wave:failed", "rb:wave:succeeded"]);
    assert.equal(await version("web-a"), "web 1\n", "the first batch was rolled back to its previous release");
    assert.equal(await version("web-b"), "web 1\n", "the failed batch's target was restored by its agent");
    const status = JSON.parse((await cp.cli(["status", "--env", "dev", "--json"])).stdout) as { targets: { deployed: { release: string } | null }[] };
    assert.deepEqual(status.targets.map((t) => t.deployed?.release), ["shop@1", "shop@1"], "Ferry's record: both targets run release 1");
  });
});
