// Agentless SSH targets end to end: a `ferry server` on PostgreSQL, a gateway `ferry-agent` that runs only the ssh
// driver (its Docker driver off: it never touches an engine of its own), a real OpenSSH server on a loopback port
// (test/helpers/sshd.ts) and, behind it, the real test Docker Engine and a real registry. The control plane never
// dials the host; the gateway agent does, with a key only it holds.
//
// Covered: a deploy to a Docker host over SSH (pull by digest and verify, health through the SSH connection, labels
// and the sticker file on the host), a release that never becomes healthy (the previous container restored), a
// rollback to the exact previous digest, the sticker read back into `ferry status`, a target whose pinned host key
// is wrong (refused, nothing touched), a script target whose deploy script fails (rollback script run), and a deploy
// through sudo: the login user `ferry-sudo` (scripts/test-env.sh; not in the docker group) reaches the engine only
// through the sudoers rule docs/drivers/ssh.md recommends, and the sticker goes to the default directory as root.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker, TEST_DOCKER_SOCKET, type TestImage } from "../helpers/docker.js";
import { freePort, httpGet } from "../helpers/net.js";
import { POSTGRES_SKIP_REASON, createDatabase, testDatabaseUrl } from "../helpers/postgres.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { makeKey, sshdSkipReason, startSshd, type TestSshd } from "../helpers/sshd.js";
import { waitFor } from "../helpers/wait.js";

const dbUrl = testDatabaseUrl();
const skip = (await dockerSkipReason("ssh end-to-end suite")) || registrySkipReason() || sshdSkipReason() || (dbUrl ? false : POSTGRES_SKIP_REASON);
if (skip) console.warn(`\n*** ssh deploy suite skipped: ${skip} ***\n`);
// The sudo case needs Debian's sudo, the user ferry-sudo and its sudoers rule (scripts/test-env.sh), which names the
// test engine's socket.
const sudoSkip =
  skip ||
  (spawnSync("sudo", ["-V"]).status !== 0 || spawnSync("id", ["ferry-sudo"]).status !== 0
    ? "sudo or the user ferry-sudo is missing (scripts/test-env.sh sets them up)"
    : (await dockerEngine()).socketPath !== TEST_DOCKER_SOCKET
      ? `the sudoers rule names ${TEST_DOCKER_SOCKET}, the suite uses another engine`
      : false);
if (sudoSkip && !skip) {
  if (process.env["CI"] === "true") throw new Error(`ssh deploy suite, sudo case: ${sudoSkip}`);
  console.warn(`\n*** ssh deploy suite, sudo case skipped: ${sudoSkip} ***\n`);
}

interface TaskView {
  id: string;
  state: string;
  code: string | null;
  message: string | null;
  details: Record<string, unknown> | null;
  images: { component: string; digest: string }[];
  target: { name: string };
}
interface DeploymentView {
  id: string;
  state: string;
  action: string;
  tasks: TaskView[];
}

describe("agentless SSH targets through a gateway agent", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let db: { url: string; drop: () => Promise<void> };
  let sshd: TestSshd;
  let socket: string;
  let port = 0;
  const gateway = new TestAgent("gateway-1");
  const suffix = randomBytes(3).toString("hex");
  const container = `ferry-e2e-ssh-${suffix}`;
  const scratch = mkdtempSync(join(tmpdir(), "ferry-ssh-e2e-"));
  const images: Record<string, TestImage> = {};

  // One environment, one gateway agent, three targets; each deploy names its target.
  const deploy = async (release: string, target: string) => {
    const r = await cp.cli(["deploy", release, "--to", "dev", "--target", target, "--wait", "--timeout", "120", "--json"]);
    assert.ok(r.stdout.trim().startsWith("{"), `ferry deploy printed no JSON: ${r.stderr}`);
    return { code: r.code, d: JSON.parse(r.stdout) as DeploymentView, stderr: r.stderr };
  };
  const release = async (version: string, ref: string) => {
    const r = await cp.api<{ id: string }>("POST", "/api/v1/releases", { name: "shop", version, components: { web: ref } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id;
  };
  const sshTarget = (extra: Record<string, unknown>) => ({ host: "127.0.0.1", port: sshd.port, user: sshd.user, hostKey: sshd.hostKey, ...extra });
  const stickerFile = join(scratch, "web.sticker.json");
  // The sudo target: its own port (host networking) and the default sticker path, /var/lib/ferry/stickers/<id>.json.
  let sudoPort = 0;
  let sudoTargetId = "";
  const keys = mkdtempSync(join(tmpdir(), "ferry-ssh-e2e-keys-"));

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    db = await createDatabase(dbUrl!);
    reg = await startRegistry();
    // ferry-sudo reads its authorized keys from a directory it can enter (sshd reads the file as the user).
    chmodSync(keys, 0o755);
    sshd = await startSshd({ extraConfig: ["Match User ferry-sudo", `  AuthorizedKeysFile ${join(keys, "authorized_keys")}`] });
    writeFileSync(join(keys, "authorized_keys"), `${sshd.clientKey.publicLine}\n`, { mode: 0o644 });
    port = await freePort();
    sudoPort = await freePort();
    cp = await TestControlPlane.start({ databaseUrl: db.url, extraArgs: ["--task-ack-timeout", "3s", "--liveness-grace", "2s"] });
    for (const [name, version, healthy] of [["v1", "1", true], ["v2", "2", true], ["bad", "bad", false]] as const) {
      images[name] = await buildTestImage({ registry: reg.host, repository: "shop/web", tag: version, version: `web ${version}`, port, healthy });
    }
    if (!sudoSkip) images["sudo"] = await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "sudo", version: "web sudo", port: sudoPort, healthy: true });
    assert.equal((await cp.cli(["env", "create", "dev"])).code, 0);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${reg.host}/shop/web`])).code, 0);
    const enrolled = await gateway.enrol(await cp.createJoinString("dev"), ["--docker-socket", "off", "--driver", `ssh.keyFile=${sshd.clientKey.file}`]);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    gateway.start(["--docker-socket", "off", "--driver", `ssh.keyFile=${sshd.clientKey.file}`, "--observe-interval", "1"]);
    const agent = await waitFor("the gateway agent online with the ssh driver only", async () => {
      const r = await cp.api<{ agents: { id: string; name: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((x) => x.name === "gateway-1" && x.status === "online" && x.facts.drivers?.join(",") === "ssh");
    });
    const targets: Array<[string, string, Record<string, unknown>]> = [
      ["dev", "web", sshTarget({ mode: "docker", stickerPath: stickerFile, docker: { container, socketPath: socket, healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 6, intervalSeconds: 1, settleSeconds: 1 } } })],
      ["dev", "job", sshTarget({ mode: "script", stickerPath: join(scratch, "job.sticker.json"), script: { workDir: scratch, deploy: `echo "deploying $FERRY_IMAGE"; [ "$FERRY_RELEASE_VERSION" != 2 ] || { echo "migration failed" >&2; exit 4; }; echo "$FERRY_DIGEST" > ${scratch}/job.current`, rollback: `echo "$FERRY_PREVIOUS_DIGEST" > ${scratch}/job.rolled-back` } })],
      ["dev", "imposter", sshTarget({ hostKey: makeKey(scratch, "imposter").publicLine, mode: "docker", docker: { container: `${container}-imposter`, socketPath: socket } })],
      ["dev", "sudo-web", sshTarget({ user: "ferry-sudo", sudo: true, mode: "docker", docker: { container: `${container}-sudo`, socketPath: socket, healthCheck: { type: "tcp", port: sudoPort, timeoutSeconds: 6, settleSeconds: 1 } } })],
    ];
    for (const [env, name, config] of targets) {
      const t = await cp.api<{ id: string }>("POST", `/api/v1/environments/${env}/targets`, { name, kind: "ssh", agentId: agent.id, config });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      if (name === "sudo-web") sudoTargetId = t.body.id;
    }
  });

  after(async () => {
    await gateway.dispose();
    await cp?.stop();
    await reg?.stop();
    await sshd?.stop();
    if (socket) {
      const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith(container));
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
    await db?.drop();
    rmSync(scratch, { recursive: true, force: true });
    rmSync(keys, { recursive: true, force: true });
    if (sudoTargetId) rmSync(sudoStickerFile(), { force: true });
  });

  const sudoStickerFile = () => `/var/lib/ferry/stickers/${sudoTargetId.replace(/[^A-Za-z0-9_.-]/g, "_")}.json`;

  it("deploys to a Docker host over SSH: verified digest, healthy, labelled, sticker on the host and in status", async () => {
    await release("1", ":1");
    const { code, d, stderr } = await deploy("shop@1", "web");
    assert.equal(code, 0, stderr);
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" });
    const labels = JSON.parse(await runDocker(socket, ["inspect", "--format", "{{json .Config.Labels}}", container])) as Record<string, string>;
    assert.equal(labels["ferry.digest"], images.v1!.digest);
    const sticker = JSON.parse(readFileSync(stickerFile, "utf8")) as { deploymentId: string; images: { digest: string }[] };
    assert.equal(sticker.deploymentId, d.id);
    assert.equal(sticker.images[0]?.digest, images.v1!.digest);
    const log = await cp.cli(["deployment", "show", d.id, "--logs"]);
    assert.match(log.stdout, /connected to .*127\.0\.0\.1:\d+ \(host key SHA256:/);
    assert.match(log.stdout, /prepare: verified: image/);
    assert.match(log.stdout, /forwarded through the SSH connection/);
    const status = await waitFor("status in sync from the sticker read over SSH", async () => {
      const r = await cp.cli(["status", "--env", "dev", "--json"]);
      const s = JSON.parse(r.stdout) as { targets: { target: string; sync: string; deployed: { images: { digest: string }[] } | null }[] };
      const t = s.targets.find((x) => x.target === "web");
      return t?.sync === "in-sync" ? t : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(status.deployed?.images[0]?.digest, images.v1!.digest);
  });

  it("restores the previous container when a release never becomes healthy, and rolls back to the exact previous digest", async () => {
    await release("bad", ":bad");
    const bad = await deploy("shop@bad", "web");
    assert.equal(bad.d.state, "failed", JSON.stringify(bad.d));
    assert.equal(bad.d.tasks[0]?.code, "HEALTH_CHECK_FAILED", JSON.stringify(bad.d.tasks[0]));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" }, "the previous container serves again");
    assert.equal((JSON.parse(readFileSync(stickerFile, "utf8")) as { images: { digest: string }[] }).images[0]?.digest, images.v1!.digest);

    await release("2", ":2");
    const v2 = await deploy("shop@2", "web");
    assert.equal(v2.d.state, "succeeded", JSON.stringify(v2.d));
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 2" });
    const rb = await cp.cli(["rollback", "--env", "dev", "--target", "web", "--wait", "--json"]);
    assert.equal(rb.code, 0, rb.stderr);
    const d = JSON.parse(rb.stdout) as DeploymentView;
    assert.equal(d.action, "rollback");
    assert.equal(d.tasks[0]?.images[0]?.digest, images.v1!.digest);
    assert.deepEqual(await httpGet(port, "/version"), { status: 200, body: "web 1" });
    assert.equal((JSON.parse(readFileSync(stickerFile, "utf8")) as { images: { digest: string }[] }).images[0]?.digest, images.v1!.digest);
  });

  it("refuses a host whose key is not the pinned one, touching nothing", async () => {
    const { d } = await deploy("shop@1", "imposter");
    assert.equal(d.state, "failed", JSON.stringify(d));
    const task = d.tasks[0]!;
    assert.equal(task.code, "HOST_KEY_MISMATCH", JSON.stringify(task));
    assert.equal(task.details?.["presentedFingerprint"], sshd.hostFingerprint);
    const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"])).split("\n");
    assert.ok(!names.includes(`${container}-imposter`));
  });

  it("runs a script target: a passing deploy, then a failing script that is rolled back", async () => {
    const ok = await deploy("shop@1", "job");
    assert.equal(ok.d.state, "succeeded", JSON.stringify(ok.d));
    assert.equal(readFileSync(join(scratch, "job.current"), "utf8").trim(), images.v1!.digest);
    const failed = await deploy("shop@2", "job");
    assert.equal(failed.d.state, "failed", JSON.stringify(failed.d));
    const task = failed.d.tasks[0]!;
    assert.equal(task.code, "SCRIPT_FAILED", JSON.stringify(task));
    assert.equal(task.details?.["exitCode"], 4);
    assert.ok(existsSync(join(scratch, "job.rolled-back")));
    assert.equal(readFileSync(join(scratch, "job.rolled-back"), "utf8").trim(), images.v1!.digest, "the rollback script got the previous digest");
    const log = await cp.cli(["deployment", "show", failed.d.id, "--logs"]);
    assert.match(log.stdout, /deploy: ! migration failed/);
  });

  it("deploys through sudo as a login user outside the docker group, the sticker written as root", { skip: sudoSkip }, async () => {
    await release("sudo", ":sudo");
    const { code, d, stderr } = await deploy("shop@sudo", "sudo-web");
    assert.equal(code, 0, stderr);
    assert.equal(d.state, "succeeded", JSON.stringify(d));
    assert.deepEqual(await httpGet(sudoPort, "/version"), { status: 200, body: "web sudo" });
    const labels = JSON.parse(await runDocker(socket, ["inspect", "--format", "{{json .Config.Labels}}", `${container}-sudo`])) as Record<string, string>;
    assert.equal(labels["ferry.digest"], images["sudo"]!.digest);
    assert.equal(statSync(sudoStickerFile()).uid, 0);
    const sticker = JSON.parse(readFileSync(sudoStickerFile(), "utf8")) as { deploymentId: string; images: { digest: string }[] };
    assert.equal(sticker.deploymentId, d.id);
    const log = await cp.cli(["deployment", "show", d.id, "--logs"]);
    assert.match(log.stdout, /connected to ferry-sudo@127\.0\.0\.1:\d+/);
    const status = await waitFor("status in sync from the sticker read through sudo", async () => {
      const r = await cp.cli(["status", "--env", "dev", "--json"]);
      const s = JSON.parse(r.stdout) as { targets: { target: string; sync: string; deployed: { images: { digest: string }[] } | null }[] };
      const t = s.targets.find((x) => x.target === "sudo-web");
      return t?.sync === "in-sync" ? t : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(status.deployed?.images[0]?.digest, images["sudo"]!.digest);
  });
});
