// WinRM targets end to end: a `ferry server` on PostgreSQL and a gateway `ferry-agent` (Docker driver off, winrm
// driver on, credentials and CA in its own files) against the project's WinRM fake over HTTPS with NTLM
// (test/fakes/winrm). No Windows host runs here: the fake plays it, and this suite checks the path from a signed task
// to WS-Man and back — the task's result codes, the log, the sticker on the "host" read back into `ferry status`.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { startFakeWinrm, type FakeBehaviour, type FakeWinrm } from "../fakes/winrm/fake-winrm.js";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { pushImage, registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";

const dbUrl = testDatabaseUrl();
const skip = registrySkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON);
if (skip) console.warn(`\n*** winrm deploy suite skipped: ${skip} ***\n`);

interface DeploymentView {
  id: string;
  state: string;
  tasks: { code: string | null; details: Record<string, unknown> | null }[];
}


describe("WinRM targets through a gateway agent (against the WinRM fake)", { skip }, () => {
  let cp: TestControlPlane;
  let db: { url: string; drop: () => Promise<void> };
  let fake: FakeWinrm;
  let reg: TestRegistry;
  // Two Windows images pushed to a real registry on loopback (the release resolves and checks its pins there).
  let DIGEST = "";
  let DIGEST2 = "";
  let REPO = "";
  let sticker: string | undefined;
  const ran: string[] = [];
  const gateway = new TestAgent("win-gateway");
  const scratch = mkdtempSync(join(tmpdir(), "ferry-winrm-e2e-"));

  // The Windows host the fake stands for: a sticker file and the operator's scripts.
  const host = (script: string): FakeBehaviour => {
    if (script.includes("Test-Path -LiteralPath")) return { output: sticker ? [{ stream: "stdout", text: sticker }] : [], exitCode: 0 };
    const written = /FromBase64String\('([^']+)'\)\); Move-Item/.exec(script);
    if (written) {
      sticker = Buffer.from(written[1]!, "base64").toString("utf8");
      return { exitCode: 0 };
    }
    ran.push(script);
    if (script.includes("Deploy-Shop") && script.includes(DIGEST2)) return { output: [{ stream: "stderr", text: "Deploy-Shop : the site did not start\r\n" }], exitCode: 5 };
    return { output: [{ stream: "stdout", text: "deployed\r\n" }], exitCode: 0 };
  };

  const deploy = async (release: string) => {
    const r = await cp.cli(["deploy", release, "--to", "dev", "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry deploy printed no JSON: ${r.stderr}`);
    return JSON.parse(r.stdout) as DeploymentView;
  };

  before(async () => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(scratch, "key.pem"), "-out", join(scratch, "cert.pem")], { stdio: "ignore" });
    fake = await startFakeWinrm({
      tls: { key: readFileSync(join(scratch, "key.pem"), "utf8"), cert: readFileSync(join(scratch, "cert.pem"), "utf8") },
      accounts: [{ username: "deploy", ntHash: "8846f7eaee8fb117ad06bdd830b7586c", domain: "SHOP" }],
      auth: ["ntlm"],
      run: host,
    });
    reg = await startRegistry();
    REPO = `${reg.host}/shop/web`;
    DIGEST = (await pushImage(reg, "shop/web", "1", { platform: { os: "windows", architecture: "amd64" } })).digest;
    DIGEST2 = (await pushImage(reg, "shop/web", "2", { platform: { os: "windows", architecture: "amd64" } })).digest;
    const credentials = join(scratch, "winrm-credentials.json");
    writeFileSync(credentials, JSON.stringify({ default: { username: "SHOP\\deploy", password: "password" } }), { mode: 0o600 });
    db = await createDatabase(dbUrl!);
    cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--task-ack-timeout", "3s", "--liveness-grace", "2s"] });
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", REPO])).code, 0);
    const flags = ["--docker-socket", "off", "--driver", `winrm.credentialsFile=${credentials}`, "--driver", `winrm.caFile=${join(scratch, "cert.pem")}`];
    const enrolled = await gateway.enrol(await cp.createJoinString("dev"), flags);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    gateway.start([...flags, "--observe-interval", "1"]);
    const agent = await waitFor("the gateway agent online with the winrm driver", async () => {
      const r = await cp.api<{ agents: { id: string; name: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((x) => x.name === "win-gateway" && x.status === "online" && x.facts.drivers?.join(",") === "winrm");
    });
    const t = await cp.api("POST", "/api/v1/environments/dev/targets", {
      name: "iis",
      kind: "winrm",
      agentId: agent.id,
      config: { host: "127.0.0.1", port: fake.port, script: { deploy: "Deploy-Shop -Image $env:FERRY_IMAGE", rollback: "Restore-Shop -Image $env:FERRY_PREVIOUS_IMAGE" } },
    });
    assert.equal(t.status, 201, JSON.stringify(t.body));
  });

  after(async () => {
    await gateway.dispose();
    await cp?.stop();
    await fake?.stop();
    await reg?.stop();
    await db?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("deploys over WinRM (HTTPS, NTLMv2): the release in the script's environment, the sticker in status", async () => {
    const r = await cp.api<{ id: string }>("POST", "/api/v1/releases", { name: "shop", version: "1", components: { web: `@${DIGEST}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const d = await deploy("shop@1");
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.ok(ran.some((s) => s.includes(`$env:FERRY_IMAGE = '${REPO}@${DIGEST}'`)), ran.join("\n---\n"));
    const log = await cp.cli(["deployment", "show", d.id, "--logs"]);
    assert.match(log.stdout, /deploy: \| deployed/);
    const status = await waitFor("status in sync from the sticker read over WinRM", async () => {
      const s = JSON.parse((await cp.cli(["status", "--env", "dev", "--json"])).stdout) as { targets: { target: string; sync: string; deployed: { images: { digest: string }[] } | null }[] };
      const t = s.targets.find((x) => x.target === "iis");
      return t?.sync === "in-sync" ? t : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(status.deployed?.images[0]?.digest, DIGEST);
  });

  it("fails a deploy script with a non-zero exit and runs the rollback script with the previous image", async () => {
    const r = await cp.api<{ id: string }>("POST", "/api/v1/releases", { name: "shop", version: "2", components: { web: `@${DIGEST2}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const d = await deploy("shop@2");
    assert.equal(d.state, "failed", JSON.stringify(d));
    assert.equal(d.tasks[0]?.code, "SCRIPT_FAILED", JSON.stringify(d.tasks[0]));
    assert.equal(d.tasks[0]?.details?.["exitCode"], 5);
    assert.ok(ran.some((s) => s.includes("Restore-Shop") && s.includes(`$env:FERRY_PREVIOUS_IMAGE = '${REPO}@${DIGEST}'`)));
    assert.equal((JSON.parse(sticker!) as { images: { digest: string }[] }).images[0]?.digest, DIGEST, "the sticker still names the release that passed");
  });
});
