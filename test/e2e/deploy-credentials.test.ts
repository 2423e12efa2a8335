// Registry credentials travelling in a task, end to end: a registry that refuses anonymous pulls (Debian's
// docker-registry with htpasswd Basic auth), a component naming credentials in the control plane's secret store
// (a 0600 JSON file), and a real agent on the real Docker Engine that has no credentials of its own. The control
// plane puts the credentials in the task offer (over mTLS, outside the signed payload); the agent hands them to the
// engine for the pull and keeps them nowhere.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker, type TestImage } from "../helpers/docker.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";
import { freePort, httpGet as probe } from "../helpers/net.js";

const skip = (await dockerSkipReason("registry-credentials deployment suite")) || registrySkipReason();
if (skip) console.warn(`\n*** deploy-credentials suite skipped: ${skip} ***\n`);

interface DeploymentView {
  id: string;
  state: string;
  tasks: { id: string; state: string; code: string | null; message: string | null }[];
}

/** Every file under dir, recursively (the agent's state directory). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

/** The body of a 2xx answer, or null. */
async function httpGet(port: number, path: string): Promise<string | null> {
  const r = await probe(port, path);
  return r && r.status >= 200 && r.status < 300 ? r.body : null;
}

describe("deploying from a registry that needs credentials", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let socket: string;
  const agent = new TestAgent("vault-1");
  const scratch = mkdtempSync(join(tmpdir(), "ferry-deploy-creds-"));
  const credsFile = join(scratch, "registry-credentials.json");
  const container = `ferry-e2e-vault-${randomBytes(3).toString("hex")}`;
  let port = 0;
  let user: { username: string; password: string };
  const images: Record<string, TestImage> = {};

  const writeCredentials = (password: string) =>
    writeFileSync(credsFile, JSON.stringify({ "vault-pull": { username: user.username, password } }), { mode: 0o600 });
  const deploy = async (release: string) => {
    const r = await cp.cli(["deploy", release, "--to", "dev", "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry deploy printed no JSON: ${r.stderr}`);
    return { code: r.code, d: JSON.parse(r.stdout) as DeploymentView, stderr: r.stderr };
  };

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    reg = await startRegistry({ auth: "basic" });
    user = reg.users[0] as { username: string; password: string };
    writeCredentials(user.password);
    port = await freePort();
    for (const v of ["1", "2"]) {
      // Pushed with the registry's credentials, then removed from the engine: the agent has to pull it.
      images[v] = await buildTestImage({ registry: reg.host, repository: "vault/web", tag: v, version: `vault ${v}`, port, auth: user, socketPath: socket });
    }
    cp = await TestControlPlane.start({ extraArgs: ["--registry-credentials", credsFile, "--task-ack-timeout", "3s", "--liveness-grace", "2s"] });
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    const comp = await cp.cli(["component", "create", "vault", "--repository", `${reg.host}/vault/web`, "--credentials", "vault-pull"]);
    assert.equal(comp.code, 0, comp.stderr);
    const e = await agent.enrol(await cp.createJoinString("dev"));
    assert.equal(e.code, 0, e.stderr);
    // No --registry-auth: whatever the agent pulls with must come in the task.
    agent.start(["--docker-socket", socket, "--observe-interval", "1"]);
    const online = await waitFor("the agent online with the docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((a) => a.status === "online" && a.facts.drivers?.includes("docker"));
    });
    const t = await cp.api("POST", "/api/v1/environments/dev/targets", {
      name: "vault",
      kind: "docker",
      agentId: online.id,
      config: { container, component: "vault", healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 8, intervalSeconds: 1 } },
    });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    for (const v of ["1", "2"]) {
      const r = await cp.api("POST", "/api/v1/releases", { name: "vault", version: v, components: { vault: `:${v}` } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });

  after(async () => {
    await agent.dispose();
    await cp?.stop();
    await reg?.stop();
    if (socket) {
      await runDocker(socket, ["rm", "-f", container]).catch(() => "");
      for (const img of Object.values(images)) await runDocker(socket, ["image", "rm", "-f", img.pinned]).catch(() => "");
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  it("pulls with the credentials the control plane puts in the task, and the agent keeps them nowhere", async () => {
    const { code, d, stderr } = await deploy("vault@1");
    assert.equal(code, 0, stderr);
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    // The progress shows the phases; that the image came from the credentialled registry is checked just below.
    assert.match(stderr, /vault: prepare/);
    assert.equal(await httpGet(port, "/version"), "vault 1");
    const image = (JSON.parse(await runDocker(socket, ["image", "inspect", images["1"]!.pinned])) as { RepoDigests: string[] }[])[0]!;
    assert.ok(image.RepoDigests.includes(images["1"]!.pinned));
    // Not in the agent's state (journal, spool, stickers, identity), nor in either side's logs.
    for (const f of filesUnder(agent.stateDir)) {
      if (statSync(f).size > 50_000_000) continue;
      assert.ok(!readFileSync(f).includes(user.password), `${f} holds the registry password`);
    }
    assert.ok(!agent.proc!.stdout.includes(user.password) && !agent.proc!.stderr.includes(user.password), "the agent logged the registry password");
    assert.ok(!cp.proc.stdout.includes(user.password) && !cp.proc.stderr.includes(user.password), "the control plane logged the registry password");
    const shown = await cp.cli(["deployment", "show", d.id, "--logs", "--json"]);
    assert.ok(!shown.stdout.includes(user.password) && !shown.stderr.includes(user.password), "the deployment's record shows the password");
  });

  it("fails the pull as IMAGE_PULL_FAILED when the secret store's password is wrong, leaving the running release alone", async () => {
    writeCredentials("not-the-password");
    const { code, d } = await deploy("vault@2");
    assert.notEqual(code, 0);
    assert.equal(d.state, "failed", JSON.stringify(d));
    assert.equal(d.tasks[0]?.code, "IMAGE_PULL_FAILED", JSON.stringify(d.tasks[0]));
    assert.ok(!(d.tasks[0]?.message ?? "").includes("not-the-password"), "the error quotes the password");
    assert.equal(await httpGet(port, "/version"), "vault 1", "release 1 still serves");
  });

  it("deploys once the password in the secret store is put right, without a restart", async () => {
    writeCredentials(user.password);
    const { code, d, stderr } = await deploy("vault@2");
    assert.equal(code, 0, stderr);
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.equal(await httpGet(port, "/version"), "vault 2");
  });
});
