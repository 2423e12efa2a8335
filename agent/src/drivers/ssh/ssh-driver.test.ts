// The ssh driver against a real OpenSSH server (test/helpers/sshd.ts: /usr/sbin/sshd on a loopback port with a
// config, host key and authorized key of the test's own) and, in docker mode, the real test Docker Engine behind it
// (its socket reached through the SSH connection) with a real registry. Phases run through the phase runner, as the
// agent runs them.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import { sshKind, TARGET_CONFIG_CASES, type ImagePin, type SshTargetConfig } from "@ferry/contract";
import { pino } from "pino";

import { buildTestImage, dockerEngine, dockerSkipReason, loudSkip, TEST_DOCKER_SOCKET, type TestImage } from "../../../../test/helpers/docker.js";
import { freePort, httpGet } from "../../../../test/helpers/net.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../../../../test/helpers/registry.js";
import { makeKey, sshdSkipReason, startSshd, type TestSshd } from "../../../../test/helpers/sshd.js";
import { runPhases } from "../../core/phase-runner.js";
import { DriverError, type DeployOutcome, type PhaseContext, type ProgressSink, type TargetRef } from "../driver.js";
import { fingerprint, keyLine, matchesPin } from "./host-key.js";
import { sshRegistration } from "./index.js";
import { SessionLimit } from "./session-limit.js";
import { SshDriver, sshConfig } from "./ssh-driver.js";
import { EngineClient } from "../docker/engine/client.js";

const SUITE = "ssh driver tests (real sshd)";
const skipReason: string | false = sshdSkipReason();
if (skipReason) {
  if (process.env["CI"] === "true") throw new Error(`${SUITE}: ${skipReason}`);
  loudSkip(SUITE, skipReason);
}

function canRun(t: TestContext): boolean {
  if (skipReason) {
    t.skip(skipReason);
    return false;
  }
  return true;
}

class Recorder implements ProgressSink {
  readonly steps: string[] = [];
  readonly lines: string[] = [];
  step(step: string): void {
    this.steps.push(step);
  }
  log(line: string): void {
    this.lines.push(line);
  }
}

const RUN = `ferry-ssh-${randomBytes(3).toString("hex")}`;
const DIGEST_A = `sha256:${"a".repeat(64)}`;
/** The default sticker directory on the host (targets without stickerPath write there). */
const STICKER_DIR = "/var/lib/ferry/stickers";
let sshd: TestSshd;
let work: string;
let driver: SshDriver;

function pin(repository: string, digest: string, component = "web"): ImagePin {
  return { component, repository, digest, ref: `${repository}@${digest}` };
}

/** Every target id used, so the stickers of targets that keep the default path can be removed afterwards. */
const targetIds = new Set<string>();

function target(config: Record<string, unknown>, id = `tgt-${randomBytes(3).toString("hex")}`): TargetRef {
  targetIds.add(id);
  return { id, name: id, kind: "ssh", config };
}

function base(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { host: "127.0.0.1", port: sshd.port, user: sshd.user, hostKey: sshd.hostKey, ...extra };
}

async function run(t: TargetRef, images: ImagePin[], opts: { d?: SshDriver; signal?: AbortSignal; action?: "deploy" | "rollback"; release?: string } = {}): Promise<{ outcome?: DeployOutcome; error?: DriverError; progress: Recorder }> {
  const progress = new Recorder();
  const config = sshConfig(t.config);
  const chosen = sshKind.imagesFor(config, images);
  const ctx: PhaseContext<SshTargetConfig> = {
    taskId: `task-${randomBytes(4).toString("hex")}`,
    deploymentId: `dep-${randomBytes(4).toString("hex")}`,
    action: opts.action ?? "deploy",
    release: { id: `rel-${opts.release ?? "1"}`, name: "shop", version: opts.release ?? "1.0.0" },
    target: t,
    config,
    images: chosen,
    credentials: () => undefined,
    signal: opts.signal ?? new AbortController().signal,
    progress,
  };
  try {
    return { outcome: await runPhases(opts.d ?? driver, ctx, { logger: pino({ level: "silent" }) }), progress };
  } catch (err) {
    if (err instanceof DriverError) return { error: err, progress };
    throw err;
  }
}

function expectCode(r: { error?: DriverError; outcome?: DeployOutcome; progress: Recorder }, code: string): DriverError {
  assert.ok(r.error, `expected ${code}, the task succeeded: ${r.outcome?.message}\n${r.progress.lines.join("\n")}`);
  assert.equal(r.error.code, code, `expected ${code}, got ${r.error.code}: ${r.error.message}\n${r.progress.lines.join("\n")}`);
  return r.error;
}

before(async () => {
  if (skipReason) return;
  sshd = await startSshd();
  work = mkdtempSync(join(tmpdir(), `${RUN}-`));
  driver = new SshDriver({ settings: { keyFile: sshd.clientKey.file } });
});

after(async () => {
  await sshd?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  for (const id of targetIds) rmSync(join(STICKER_DIR, `${id}.json`), { force: true });
});

describe("ssh host keys and session limits (no host)", () => {
  it("matches a pinned key in both forms, against the presented blob only", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-hk-"));
    try {
      const a = makeKey(dir, "a");
      const b = makeKey(dir, "b");
      const blob = Buffer.from(a.publicLine.split(" ")[1]!, "base64");
      assert.equal(keyLine(blob), a.publicLine);
      assert.ok(matchesPin(a.publicLine, blob));
      assert.ok(matchesPin(fingerprint(blob), blob));
      assert.ok(!matchesPin(b.publicLine, blob));
      const other = Buffer.from(b.publicLine.split(" ")[1]!, "base64");
      assert.ok(!matchesPin(fingerprint(other), blob));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("holds at most N sessions per host, in order, and lets an aborted waiter go", async () => {
    const limit = new SessionLimit(2);
    const never = new AbortController().signal;
    const r1 = await limit.acquire("h", never);
    const r2 = await limit.acquire("h", never);
    const other = await limit.acquire("g", never);
    let third = false;
    const p3 = limit.acquire("h", never).then((r) => ((third = true), r));
    const ac = new AbortController();
    const p4 = limit.acquire("h", ac.signal);
    await new Promise((r) => setImmediate(r));
    assert.equal(third, false);
    assert.equal(limit.active("h"), 2);
    ac.abort(new Error("stop"));
    await assert.rejects(p4, /stop/);
    r1();
    const r3 = await p3;
    assert.equal(limit.active("h"), 2);
    r2();
    r3();
    other();
    assert.equal(limit.active("h"), 0);
  });

  it("judges every case of the shared config table as the control plane does", () => {
    for (const c of TARGET_CONFIG_CASES.filter((x) => x.kind === "ssh")) {
      try {
        sshConfig(c.config as Record<string, unknown>);
        assert.equal(c.field, undefined, `${c.name}: accepted, but the table expects a refusal naming ${c.field}`);
      } catch (err) {
        assert.ok(err instanceof DriverError, `${c.name}: ${String(err)}`);
        assert.equal(err.code, "INVALID_TARGET_CONFIG");
        assert.equal(err.details["field"], c.field, `${c.name}: ${err.message}`);
      }
    }
  });

  it("registers with a settings schema and a lazily loaded driver", async () => {
    assert.equal(sshRegistration.descriptor.kind, "ssh");
    assert.equal(sshRegistration.enabledByDefault, false);
    const d = await sshRegistration.create({ logger: pino({ level: "silent" }), settings: {} });
    assert.deepEqual(await d.available(), { ok: false, detail: "no SSH key: set drivers.ssh.keyFile or drivers.ssh.keyDir" });
  });
});

describe("ssh connection checks (real sshd)", () => {
  const script = { mode: "script", script: { deploy: "echo deployed" } };

  it("refuses a host that presents another key than the pinned one, before logging in", async (t) => {
    if (!canRun(t)) return;
    const other = makeKey(work, `other-${randomBytes(2).toString("hex")}`);
    for (const hostKey of [other.publicLine, `SHA256:${"A".repeat(43)}`]) {
      const r = await run(target(base({ ...script, hostKey })), [pin("r/web", DIGEST_A)]);
      const err = expectCode(r, "HOST_KEY_MISMATCH");
      assert.equal(err.restored, true);
      assert.equal(err.details["presentedFingerprint"], sshd.hostFingerprint);
      assert.equal(r.progress.steps.join(","), "prepare");
    }
    // The pinned fingerprint form is accepted.
    const ok = await run(target(base({ ...script, hostKey: sshd.hostFingerprint })), [pin("r/web", DIGEST_A)]);
    assert.ok(ok.outcome, ok.error?.message);
  });

  it("reports a key the host refuses, a missing key file, and an unreachable host", async (t) => {
    if (!canRun(t)) return;
    const stranger = makeKey(work, `stranger-${randomBytes(2).toString("hex")}`);
    const d = new SshDriver({ settings: { keyFile: stranger.file } });
    expectCode(await run(target(base(script)), [pin("r/web", DIGEST_A)], { d }), "SSH_AUTH_FAILED");
    const missing = new SshDriver({ settings: { keyFile: join(work, "no-such-key") } });
    expectCode(await run(target(base(script)), [pin("r/web", DIGEST_A)], { d: missing }), "SSH_AUTH_FAILED");
    const closed = await freePort();
    const err = expectCode(await run(target(base({ ...script, port: closed })), [pin("r/web", DIGEST_A)]), "HOST_UNREACHABLE");
    assert.equal(err.restored, true);
  });

  it("trusts on first use only when asked, records the key, and pins it from then on", async (t) => {
    if (!canRun(t)) return;
    const cfg = { host: "127.0.0.1", port: sshd.port, user: sshd.user, hostKeyTrust: "first-use", stickerPath: join(work, `fu-${randomBytes(2).toString("hex")}.json`), ...script };
    expectCode(await run(target(cfg), [pin("r/web", DIGEST_A)]), "HOST_KEY_UNKNOWN");
    const knownHostsFile = join(work, `known_hosts-${randomBytes(2).toString("hex")}`);
    const d = new SshDriver({ settings: { keyFile: sshd.clientKey.file, knownHostsFile } });
    const first = await run(target(cfg), [pin("r/web", DIGEST_A)], { d });
    assert.ok(first.outcome, first.error?.message);
    assert.ok(first.progress.lines.some((l) => l.includes("trust on first use: recorded the host key")), first.progress.lines.join("\n"));
    assert.equal(readFileSync(knownHostsFile, "utf8"), `[127.0.0.1]:${sshd.port} ${sshd.hostKey}\n`);
    // The recorded key is pinned: a host with another key on that address is refused.
    writeFileSync(knownHostsFile, `[127.0.0.1]:${sshd.port} ${makeKey(work, `k-${randomBytes(2).toString("hex")}`).publicLine}\n`);
    expectCode(await run(target(cfg), [pin("r/web", DIGEST_A)], { d }), "HOST_KEY_MISMATCH");
  });
});

describe("ssh script targets (real sshd)", () => {
  const image = pin("127.0.0.1:5000/shop/web", DIGEST_A);

  function scriptTarget(dir: string, s: Record<string, unknown>, extra: Record<string, unknown> = {}): TargetRef {
    return target(base({ mode: "script", stickerPath: join(dir, "sticker.json"), script: { workDir: dir, ...s }, ...extra }));
  }

  it("runs the deploy script with the release in its environment, streams its output, writes the sticker", async (t) => {
    if (!canRun(t)) return;
    const dir = mkdtempSync(join(work, "s-"));
    const tgt = scriptTarget(dir, { deploy: `echo "deploying $FERRY_IMAGE"; echo "$FERRY_DIGEST $FERRY_RELEASE_VERSION $GREETING" > ${dir}/deployed; echo warn >&2`, env: { GREETING: "hi" } });
    const r = await run(tgt, [image], { release: "1.2.3" });
    assert.ok(r.outcome, `${r.error?.message}\n${r.progress.lines.join("\n")}`);
    assert.deepEqual(r.progress.steps, ["prepare", "start", "health", "switch", "retire"]);
    assert.equal(readFileSync(join(dir, "deployed"), "utf8"), `${DIGEST_A} 1.2.3 hi\n`);
    assert.ok(r.progress.lines.includes(`deploy: | deploying ${image.ref}`), r.progress.lines.join("\n"));
    assert.ok(r.progress.lines.includes("deploy: ! warn"));
    assert.deepEqual(r.outcome.running, [{ component: "web", repository: image.repository, digest: DIGEST_A }]);
    const sticker = await driver.readSticker(tgt);
    assert.equal(sticker?.releaseId, "rel-1.2.3");
    assert.deepEqual(sticker?.images, [{ component: "web", digest: DIGEST_A }]);
    const seen = await driver.inspect(tgt);
    assert.equal(seen.state, "running");
    assert.equal(seen.running[0]?.digest, DIGEST_A);
    // The uploaded script is removed after it ran.
    assert.deepEqual(readdir(dir).filter((f) => f.startsWith("ferry-")), []);
  });

  it("fails on a non-zero exit and runs the rollback script with what ran before", async (t) => {
    if (!canRun(t)) return;
    const dir = mkdtempSync(join(work, "s-"));
    const ok = await run(scriptTarget(dir, { deploy: "true" }), [image], { release: "1.0.0" });
    assert.ok(ok.outcome, ok.error?.message);
    const digestB = `sha256:${"b".repeat(64)}`;
    const tgt = scriptTarget(dir, { deploy: "echo half-way; exit 3", rollback: `echo "back to $FERRY_PREVIOUS_RELEASE_VERSION $FERRY_PREVIOUS_DIGEST" > ${dir}/rolled-back` });
    const r = await run(tgt, [pin(image.repository, digestB)], { release: "2.0.0" });
    const err = expectCode(r, "SCRIPT_FAILED");
    assert.equal(err.restored, true);
    assert.equal(err.details["exitCode"], 3);
    assert.deepEqual(err.details["output"], ["half-way"]);
    assert.equal(readFileSync(join(dir, "rolled-back"), "utf8"), `back to 1.0.0 ${DIGEST_A}\n`);
    // The sticker still names what ran before.
    assert.equal((await driver.readSticker(tgt))?.releaseId, "rel-1.0.0");
  });

  it("without a rollback script a failed deploy needs an operator (RESTORE_FAILED, the script's failure kept)", async (t) => {
    if (!canRun(t)) return;
    const dir = mkdtempSync(join(work, "s-"));
    const err = expectCode(await run(scriptTarget(dir, { deploy: "exit 1" }), [image]), "RESTORE_FAILED");
    assert.equal(err.restored, false);
    assert.equal((err.details["failure"] as { code: string }).code, "SCRIPT_FAILED");
  });

  it("tells a command not found, a failing health script, and a timeout apart", async (t) => {
    if (!canRun(t)) return;
    const dir = mkdtempSync(join(work, "s-"));
    expectCode(await run(scriptTarget(dir, { deploy: "no-such-command-ferry", rollback: "true" }), [image]), "COMMAND_NOT_FOUND");
    const health = await run(scriptTarget(dir, { deploy: "true", health: "echo not ready; exit 1", rollback: "true" }), [image]);
    const hErr = expectCode(health, "HEALTH_CHECK_FAILED");
    assert.equal(hErr.restored, true);
    const started = Date.now();
    const slow = await run(scriptTarget(dir, { deploy: `echo $$ > ${dir}/slow.pid; sleep 30`, rollback: "true", timeoutSeconds: 1 }), [image]);
    const tErr = expectCode(slow, "SCRIPT_TIMEOUT");
    assert.equal(tErr.restored, true);
    assert.ok(Date.now() - started < 15_000, "the timeout stopped the wait");
    // The script's shell was killed on the host, not left running.
    const pid = Number(readFileSync(join(dir, "slow.pid"), "utf8"));
    await waitGone(pid);
  });

  it("reports a connection dropped mid-command, then restores over a new connection", async (t) => {
    if (!canRun(t)) return;
    const dir = mkdtempSync(join(work, "s-"));
    // The script kills the sshd process serving its session: the connection drops while the command runs.
    const deploy = `echo started; session=$(awk '{print $4}' /proc/$PPID/stat); kill -9 "$session"; sleep 5`;
    const r = await run(scriptTarget(dir, { deploy, rollback: `touch ${dir}/rolled-back` }), [image]);
    const err = expectCode(r, "CONNECTION_LOST");
    assert.equal(err.restored, true);
    assert.ok(existsSync(join(dir, "rolled-back")), "the rollback script ran over a new connection");
  });

  it("stops a script when the task is aborted, and rolls back", async (t) => {
    if (!canRun(t)) return;
    const dir = mkdtempSync(join(work, "s-"));
    const ac = new AbortController();
    const p = run(scriptTarget(dir, { deploy: `touch ${dir}/running; sleep 30`, rollback: `touch ${dir}/rolled-back` }), [image], { signal: ac.signal });
    await waitUntil(() => existsSync(join(dir, "running")));
    const abortedAt = Date.now();
    ac.abort(new Error("operator cancelled"));
    const err = expectCode(await p, "ABORTED");
    assert.ok(Date.now() - abortedAt < 2_500, `the script was stopped at once (took ${Date.now() - abortedAt} ms)`);
    assert.equal(err.restored, true);
    assert.ok(existsSync(join(dir, "rolled-back")));
  });

  it("keeps to the per-host session limit under concurrent tasks", async (t) => {
    if (!canRun(t)) return;
    const dir = mkdtempSync(join(work, "s-"));
    const d = new SshDriver({ settings: { keyFile: sshd.clientKey.file, maxSessionsPerHost: 2 } });
    // Each deploy records how many deploys run at once on the host (mkdir is atomic).
    const deploy = `mkdir ${dir}/slot-$FERRY_TASK_ID; n=$(ls -d ${dir}/slot-* | wc -l); echo $n >> ${dir}/concurrency; sleep 1; rmdir ${dir}/slot-$FERRY_TASK_ID`;
    const results = await Promise.all(Array.from({ length: 5 }, () => run(scriptTarget(dir, { deploy }), [image], { d })));
    for (const r of results) assert.ok(r.outcome, r.error?.message);
    const seen = readFileSync(join(dir, "concurrency"), "utf8").trim().split("\n").map(Number);
    assert.equal(seen.length, 5);
    assert.ok(Math.max(...seen) <= 2, `at most 2 at once, saw ${seen.join(",")}`);
  });
});

function readdir(dir: string): string[] {
  return readdirSync(dir).sort();
}

async function waitUntil(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until a process has ended (a zombie has: nothing may reap it in a container whose init does not). */
async function waitGone(pid: number): Promise<void> {
  await waitUntil(() => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
    } catch {
      return true;
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Docker mode: the docker driver's phases through the SSH connection, against the real test engine.

describe("ssh docker hosts (real sshd, real Docker Engine)", () => {
  let dockerSkip: string | false = false;
  let registry: TestRegistry;
  let socketPath: string;
  let docker: EngineClient;

  before(async () => {
    if (skipReason) return;
    dockerSkip = (await dockerSkipReason("ssh docker mode")) || registrySkipReason();
    if (dockerSkip) return;
    socketPath = (await dockerEngine()).socketPath;
    docker = new EngineClient({ socketPath });
    registry = await startRegistry();
  });

  after(async () => {
    if (!docker) return;
    const list = await docker.listContainers({ all: true });
    for (const c of list) if (c.Names.some((n) => n.startsWith(`/${RUN}`))) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    await registry?.stop();
  });

  function canDocker(t: TestContext): boolean {
    if (!canRun(t)) return false;
    if (dockerSkip) {
      t.skip(dockerSkip);
      return false;
    }
    return true;
  }

  async function image(port: number, version: string, healthy = true): Promise<TestImage> {
    return buildTestImage({ registry: registry.host, repository: `${RUN}/web`, tag: `v${version}${healthy ? "" : "-sick"}`, version, port, healthy, socketPath });
  }

  function dockerTarget(container: string, port: number, check: "http" | "tcp" = "http", id?: string): TargetRef {
    const healthCheck = check === "http" ? { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 5, intervalSeconds: 1, settleSeconds: 1 } : { type: "tcp", port, timeoutSeconds: 5, settleSeconds: 1 };
    return target(base({ mode: "docker", stickerPath: join(work, `${container}.sticker.json`), docker: { container, socketPath, healthCheck } }), id);
  }

  const imgPin = (i: TestImage): ImagePin => pin(i.repository, i.digest);

  it("deploys, replaces, restores after a failed health check, rolls back, and reads the sticker back", async (t) => {
    if (!canDocker(t)) return;
    const port = await freePort();
    const container = `${RUN}-web`;
    const [v1, v2, sick] = [await image(port, "1.0.0"), await image(port, "2.0.0"), await image(port, "3.0.0", false)];
    const tgt = dockerTarget(container, port, "http", `tgt-${container}`);

    const first = await run(tgt, [imgPin(v1)], { release: "1.0.0" });
    assert.ok(first.outcome, `${first.error?.message}\n${first.progress.lines.join("\n")}`);
    assert.equal((await httpGet(port, "/version"))?.body, "1.0.0");
    assert.ok(first.progress.lines.some((l) => l.includes("forwarded through the SSH connection")));
    assert.ok(first.progress.lines.some((l) => l.startsWith("prepare: verified: image")), "the docker driver's own digest check ran");

    const second = await run(tgt, [imgPin(v2)], { release: "2.0.0" });
    assert.ok(second.outcome, second.error?.message);
    assert.equal((await httpGet(port, "/version"))?.body, "2.0.0");
    assert.equal(second.outcome.running[0]?.digest, v2.digest);

    const failed = await run(tgt, [imgPin(sick)], { release: "3.0.0" });
    const err = expectCode(failed, "HEALTH_CHECK_FAILED");
    assert.equal(err.restored, true);
    assert.equal((err.details["health"] as { url: string }).url, `http://127.0.0.1:${port}/health`);
    assert.equal((await httpGet(port, "/version"))?.body, "2.0.0", "the previous version serves again");
    assert.equal((await driver.readSticker(tgt))?.releaseId, "rel-2.0.0", "the sticker still names what serves");

    const back = await run(tgt, [imgPin(v1)], { release: "1.0.0", action: "rollback" });
    assert.ok(back.outcome, back.error?.message);
    assert.equal((await httpGet(port, "/version"))?.body, "1.0.0");
    const sticker = await driver.readSticker(tgt);
    assert.equal(sticker?.releaseId, "rel-1.0.0");
    assert.deepEqual(sticker?.images, [{ component: "web", digest: v1.digest }]);
    const seen = await driver.inspect(tgt);
    assert.equal(seen.state, "running");
    assert.equal(seen.running[0]?.digest, v1.digest);
    assert.equal(seen.details["hostKey"], sshd.hostFingerprint);
    assert.equal(seen.labels["ferry.release"], "rel-1.0.0");
  });

  it("runs a tcp check on the host's loopback: a port nothing listens on fails", async (t) => {
    if (!canDocker(t)) return;
    const port = await freePort();
    const container = `${RUN}-tcp`;
    const good = await image(port, "1.0.0");
    const ok = await run(dockerTarget(container, port, "tcp"), [imgPin(good)]);
    assert.ok(ok.outcome, ok.error?.message);
    const wrongPort = await freePort();
    const tgt = target(base({ mode: "docker", docker: { container, socketPath, healthCheck: { type: "tcp", port: wrongPort, timeoutSeconds: 2, settleSeconds: 0 } }, stickerPath: join(work, "tcp.json") }));
    const err = expectCode(await run(tgt, [imgPin(good)]), "HEALTH_CHECK_FAILED");
    assert.equal(err.restored, true);
    assert.equal((await httpGet(port, "/version"))?.body, "1.0.0");
  });

  it("refuses a wrong host key before the engine is asked for anything", async (t) => {
    if (!canDocker(t)) return;
    const port = await freePort();
    const container = `${RUN}-hk`;
    const v1 = await image(port, "1.0.0");
    const tgt = dockerTarget(container, port);
    const bad = { ...tgt, config: { ...tgt.config, hostKey: makeKey(work, `h-${randomBytes(2).toString("hex")}`).publicLine } };
    expectCode(await run(bad, [imgPin(v1)]), "HOST_KEY_MISMATCH");
    assert.deepEqual(await docker.listContainers({ all: true, filters: { name: [container] } }), []);
  });

  it("says the engine is not there when the host has no such socket", async (t) => {
    if (!canDocker(t)) return;
    const tgt = target(base({ mode: "docker", docker: { container: `${RUN}-nosock`, socketPath: "/nonexistent/docker.sock" } }));
    const err = expectCode(await run(tgt, [pin("127.0.0.1:1/x", DIGEST_A)]), "DOCKER_UNAVAILABLE");
    assert.match(err.message, /ssh:\/\//);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// sudo mode against Debian's sudo, with the users and sudoers rules scripts/test-env.sh sets up (none of them in the
// docker group): ferry-sudo has the docker-mode rule of docs/drivers/ssh.md (the engine relay and the sticker's
// commands, nothing else), ferry-script the script-mode rule (sh and the sticker's commands), ferry-nosudo none.
// Stickers go to the default directory, /var/lib/ferry/stickers, which is what the rules name.

const SUDO_USERS = ["ferry-sudo", "ferry-script", "ferry-nosudo"] as const;

function sudoSkipReason(): string | false {
  if (spawnSync("sudo", ["-V"]).status !== 0) return "sudo is not installed (scripts/test-env.sh installs it)";
  const missing = SUDO_USERS.filter((u) => spawnSync("id", [u]).status !== 0);
  if (missing.length > 0) return `the users ${missing.join(", ")} are missing (scripts/test-env.sh creates them)`;
  return false;
}

describe("ssh sudo mode (real sshd, real sudo, real Docker Engine)", () => {
  let skip: string | false = false;
  let server: TestSshd;
  let keys: string;
  let registry: TestRegistry | undefined;
  let docker: EngineClient;
  let dockerSkip: string | false = false;

  before(async () => {
    skip = skipReason || sudoSkipReason();
    if (skip) {
      if (process.env["CI"] === "true") throw new Error(`ssh sudo tests: ${skip}`);
      loudSkip("ssh sudo tests", skip);
      return;
    }
    // The test users read their authorized keys from a directory they can enter (sshd reads the file as the user).
    keys = mkdtempSync(join(tmpdir(), `${RUN}-keys-`));
    chmodSync(keys, 0o755);
    server = await startSshd({ extraConfig: [`Match User ${SUDO_USERS.join(",")}`, `  AuthorizedKeysFile ${join(keys, "authorized_keys")}`] });
    writeFileSync(join(keys, "authorized_keys"), `${server.clientKey.publicLine}\n`, { mode: 0o644 });
    dockerSkip = (await dockerSkipReason("ssh sudo docker mode")) || registrySkipReason();
    if (!dockerSkip && (await dockerEngine()).socketPath !== TEST_DOCKER_SOCKET) dockerSkip = `the sudoers rule names ${TEST_DOCKER_SOCKET}, the suites use another engine`;
    if (!dockerSkip) {
      docker = new EngineClient({ socketPath: TEST_DOCKER_SOCKET });
      registry = await startRegistry();
    }
  });

  after(async () => {
    if (docker) {
      for (const c of await docker.listContainers({ all: true })) {
        if (c.Names.some((n) => n.startsWith(`/${RUN}`))) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    await registry?.stop();
    await server?.stop();
    if (keys) rmSync(keys, { recursive: true, force: true });
    if (existsSync(STICKER_DIR)) for (const f of readdirSync(STICKER_DIR)) if (f.startsWith(RUN)) rmSync(join(STICKER_DIR, f), { force: true });
  });

  function canSudo(t: TestContext, needsDocker = false): boolean {
    const why = skip || (needsDocker && dockerSkip);
    if (why) {
      t.skip(why);
      return false;
    }
    return true;
  }

  function sudoTarget(user: string, extra: Record<string, unknown>): TargetRef {
    return target({ host: "127.0.0.1", port: server.port, user, hostKey: server.hostKey, sudo: true, ...extra }, `${RUN}-${randomBytes(3).toString("hex")}`);
  }

  const sudoDriver = () => new SshDriver({ settings: { keyFile: server.clientKey.file } });

  function stickerFile(t: TargetRef): string {
    return join(STICKER_DIR, `${t.id}.json`);
  }

  it("deploys to a Docker host through sudo's engine relay, writes the sticker as root and reads it back", async (t) => {
    if (!canSudo(t, true)) return;
    const port = await freePort();
    const container = `${RUN}-sudo`;
    const v1 = await buildTestImage({ registry: registry!.host, repository: `${RUN}/sudo`, tag: "v1", version: "1.0.0", port, healthy: true, socketPath: TEST_DOCKER_SOCKET });
    const docker = { container, socketPath: TEST_DOCKER_SOCKET, healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 10, intervalSeconds: 1, settleSeconds: 1 } };
    const d = sudoDriver();
    // Without sudo the login user cannot use the engine's socket: the sudo relay is what makes the deploy work.
    const plain = await run(target({ host: "127.0.0.1", port: server.port, user: "ferry-sudo", hostKey: server.hostKey, mode: "docker", docker }), [pin(v1.repository, v1.digest)], { d });
    expectCode(plain, "DOCKER_UNAVAILABLE");

    const tgt = sudoTarget("ferry-sudo", { mode: "docker", docker });
    const r = await run(tgt, [pin(v1.repository, v1.digest)], { d, release: "1.0.0" });
    assert.ok(r.outcome, `${r.error?.message}\n${r.progress.lines.join("\n")}`);
    assert.equal((await httpGet(port, "/version"))?.body, "1.0.0");
    const file = stickerFile(tgt);
    assert.equal(statSync(file).uid, 0, "the sticker was written as root");
    assert.equal((JSON.parse(readFileSync(file, "utf8")) as { releaseId: string }).releaseId, "rel-1.0.0");
    const sticker = await d.readSticker(tgt);
    assert.equal(sticker?.releaseId, "rel-1.0.0");
    assert.deepEqual(sticker?.images, [{ component: "web", digest: v1.digest }]);
    const seen = await d.inspect(tgt);
    assert.equal(seen.state, "running");
    assert.equal(seen.labels["ferry.release"], "rel-1.0.0");
    assert.match(String(seen.details["stickerPath"]), /^\/var\/lib\/ferry\/stickers\//);
  });

  it("runs scripts as root through sudo, kills a timed-out one on the host, and keeps the sticker", async (t) => {
    if (!canSudo(t)) return;
    const dir = mkdtempSync(join(work ?? tmpdir(), "sudo-"));
    const d = sudoDriver();
    const tgt = sudoTarget("ferry-script", { mode: "script", script: { workDir: dir, deploy: `id -u > ${dir}/uid; echo "$FERRY_DIGEST" > ${dir}/digest; echo "deploying as $(id -un)"` } });
    const r = await run(tgt, [pin("127.0.0.1:5000/shop/web", DIGEST_A)], { d, release: "1.0.0" });
    assert.ok(r.outcome, `${r.error?.message}\n${r.progress.lines.join("\n")}`);
    assert.equal(readFileSync(join(dir, "uid"), "utf8"), "0\n");
    assert.equal(readFileSync(join(dir, "digest"), "utf8"), `${DIGEST_A}\n`);
    assert.ok(r.progress.lines.includes("deploy: | deploying as root"), r.progress.lines.join("\n"));
    assert.ok(r.progress.lines.some((l) => l.includes(", sudo, timeout")), "the log says the script runs through sudo");
    assert.equal((await d.readSticker(tgt))?.releaseId, "rel-1.0.0");
    assert.deepEqual(readdir(dir).filter((f) => f.startsWith("ferry-")), [], "the uploaded script was removed");

    // A script past its timeout is killed on the host with everything it started, sudo's child included.
    const slow = { ...tgt, config: { ...tgt.config, script: { workDir: dir, deploy: `echo $$ > ${dir}/slow.pid; sleep 30`, rollback: `echo "$FERRY_PREVIOUS_RELEASE_VERSION" > ${dir}/rolled-back`, timeoutSeconds: 1 } } };
    const started = Date.now();
    const err = expectCode(await run(slow, [pin("127.0.0.1:5000/shop/web", `sha256:${"b".repeat(64)}`)], { d, release: "2.0.0" }), "SCRIPT_TIMEOUT");
    assert.ok(Date.now() - started < 15_000, "the timeout stopped the wait");
    assert.equal(err.restored, true);
    await waitGone(Number(readFileSync(join(dir, "slow.pid"), "utf8")));
    assert.equal(readFileSync(join(dir, "rolled-back"), "utf8"), "1.0.0\n", "the rollback script ran as root with what ran before");
    assert.equal((await d.readSticker(tgt))?.releaseId, "rel-1.0.0", "the sticker still names the last release that passed");
  });

  it("a user without a sudoers rule gets SUDO_REFUSED at once, before anything is changed", async (t) => {
    if (!canSudo(t)) return;
    const d = sudoDriver();
    const dir = mkdtempSync(join(work ?? tmpdir(), "nosudo-"));
    const script = sudoTarget("ferry-nosudo", { mode: "script", script: { workDir: dir, deploy: `touch ${dir}/deployed`, rollback: `touch ${dir}/rolled-back` } });
    const started = Date.now();
    const err = expectCode(await run(script, [pin("127.0.0.1:5000/shop/web", DIGEST_A)], { d }), "SUDO_REFUSED");
    assert.ok(Date.now() - started < 10_000, `sudo -n answered at once (took ${Date.now() - started} ms)`);
    assert.equal(err.restored, true);
    assert.match(err.message, /a password is required/);
    assert.deepEqual(readdir(dir), [], "nothing ran on the host");
    assert.equal(existsSync(stickerFile(script)), false);

    // A user whose rule covers docker mode only: the sticker is read, the script's upload is refused, nothing ran,
    // and there is nothing to roll back (not RESTORE_FAILED).
    const narrow = sudoTarget("ferry-sudo", { mode: "script", script: { workDir: dir, deploy: `touch ${dir}/deployed`, rollback: `touch ${dir}/rolled-back` } });
    const n = await run(narrow, [pin("127.0.0.1:5000/shop/web", DIGEST_A)], { d });
    const nErr = expectCode(n, "SUDO_REFUSED");
    assert.equal(nErr.restored, true);
    assert.deepEqual(n.progress.steps.slice(0, 2), ["prepare", "start"]);
    assert.deepEqual(readdir(dir), []);
  });

  it("a user without a sudoers rule is refused the engine relay in docker mode: no container is created", async (t) => {
    if (!canSudo(t, true)) return;
    const container = `${RUN}-nosudo`;
    const tgt = sudoTarget("ferry-nosudo", { mode: "docker", docker: { container, socketPath: TEST_DOCKER_SOCKET } });
    const started = Date.now();
    const err = expectCode(await run(tgt, [pin("127.0.0.1:1/x", DIGEST_A)], { d: sudoDriver() }), "SUDO_REFUSED");
    assert.ok(Date.now() - started < 10_000, `sudo -n answered at once (took ${Date.now() - started} ms)`);
    assert.equal(err.restored, true);
    assert.deepEqual(err.details["sudo"], "sudo: a password is required");
    assert.deepEqual(await docker.listContainers({ all: true, filters: { name: [container] } }), []);
  });
});
