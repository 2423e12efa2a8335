// The winrm driver through the phase runner against the WinRM fake (test/fakes/winrm). The fake runs no PowerShell:
// the test plays the Windows host, answering each script the driver sends by what it asks for (the sticker file, the
// service, the operator's scripts), so these tests check what the driver sends and how it judges the answers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { TARGET_CONFIG_CASES, winrmKind, type ImagePin, type WinrmTargetConfig } from "@ferry/contract";
import { pino } from "pino";

import { startFakeWinrm, type FakeBehaviour, type FakeWinrm } from "../../../../test/fakes/winrm/fake-winrm.js";
import { runPhases } from "../../core/phase-runner.js";
import { DriverError, type DeployOutcome, type PhaseContext, type ProgressSink, type TargetRef } from "../driver.js";
import { winrmRegistration } from "./index.js";
import { WinrmDriver, winrmConfig } from "./winrm-driver.js";

const NT_HASH = "8846f7eaee8fb117ad06bdd830b7586c"; // of "password"
const DIGEST = `sha256:${"c".repeat(64)}`;
const IMAGE: ImagePin = { component: "web", repository: "127.0.0.1:5000/shop/web", digest: DIGEST, ref: `127.0.0.1:5000/shop/web@${DIGEST}` };

let dir: string;
let tls: { key: string; cert: string };
let credentialsFile: string;
const fakes: FakeWinrm[] = [];

/** The Windows host the fake stands for: a sticker file, one service, and what each script did. */
class Host {
  sticker: string | undefined;
  service = "Running";
  ran: string[] = [];
  constructor(readonly behave: (script: string) => FakeBehaviour | undefined = () => undefined) {}

  run = (script: string): FakeBehaviour => {
    const custom = this.behave(script);
    if (custom) {
      this.ran.push(script);
      return custom;
    }
    if (script.includes("Test-Path -LiteralPath")) return { output: this.sticker ? [{ stream: "stdout", text: this.sticker }] : [], exitCode: 0 };
    const written = /FromBase64String\('([^']+)'\)\); Move-Item/.exec(script);
    if (written) {
      this.sticker = Buffer.from(written[1]!, "base64").toString("utf8");
      return { exitCode: 0 };
    }
    if (script.includes("Get-Service -Name") && script.includes("exit 3")) return { exitCode: script.includes("'Missing'") ? 3 : 0 };
    this.ran.push(script);
    return { output: [{ stream: "stdout", text: "ok\r\n" }], exitCode: 0 };
  };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "ferry-winrm-driver-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
  tls = { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  credentialsFile = join(dir, "credentials.json");
  writeFileSync(credentialsFile, JSON.stringify({ default: { username: "ferry", password: "password" }, wrong: { username: "ferry", password: "nope" } }), { mode: 0o600 });
});

after(async () => {
  for (const f of fakes) await f.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function hostFake(host: Host, extra: { maxShellsPerUser?: number } = {}): Promise<FakeWinrm> {
  const f = await startFakeWinrm({ tls, accounts: [{ username: "ferry", password: "password", ntHash: NT_HASH }], auth: ["ntlm", "basic"], run: host.run, ...extra });
  fakes.push(f);
  return f;
}

function driver(): WinrmDriver {
  return new WinrmDriver({ settings: { credentialsFile, caFile: join(dir, "cert.pem") } });
}

function target(f: FakeWinrm, config: Record<string, unknown>): TargetRef {
  return { id: "tgt-win", name: "win", kind: "winrm", config: { host: "127.0.0.1", port: f.port, ...config } };
}

class Recorder implements ProgressSink {
  readonly lines: string[] = [];
  step(): void {}
  log(line: string): void {
    this.lines.push(line);
  }
}

async function run(t: TargetRef, d = driver(), release = "1.0.0"): Promise<{ outcome?: DeployOutcome; error?: DriverError; lines: string[] }> {
  const progress = new Recorder();
  const config = winrmConfig(t.config);
  const ctx: PhaseContext<WinrmTargetConfig> = {
    taskId: "task-1",
    deploymentId: "dep-1",
    action: "deploy",
    release: { id: `rel-${release}`, name: "shop", version: release },
    target: t,
    config,
    images: winrmKind.imagesFor(config, [IMAGE]),
    credentials: () => undefined,
    signal: new AbortController().signal,
    progress,
  };
  try {
    return { outcome: await runPhases(d, ctx, { logger: pino({ level: "silent" }) }), lines: progress.lines };
  } catch (err) {
    if (err instanceof DriverError) return { error: err, lines: progress.lines };
    throw err;
  }
}

describe("winrm driver against the WinRM fake", () => {
  it("judges every case of the shared config table as the control plane does", () => {
    for (const c of TARGET_CONFIG_CASES.filter((x) => x.kind === "winrm")) {
      try {
        winrmConfig(c.config as Record<string, unknown>);
        assert.equal(c.field, undefined, c.name);
      } catch (err) {
        assert.ok(err instanceof DriverError, c.name);
        assert.equal(err.details["field"], c.field, `${c.name}: ${err.message}`);
      }
    }
    assert.equal(winrmRegistration.enabledByDefault, false);
  });

  it("runs a script target: the release in the environment, output in the log, the sticker written and read back", async () => {
    const host = new Host();
    const f = await hostFake(host);
    const t = target(f, { script: { deploy: "Write-Output $env:FERRY_DIGEST", env: { SITE: "shop" } } });
    const r = await run(t);
    assert.ok(r.outcome, `${r.error?.message}\n${r.lines.join("\n")}`);
    const deploy = host.ran.find((s) => s.includes("Write-Output $env:FERRY_DIGEST"))!;
    assert.match(deploy, new RegExp(`\\$env:FERRY_DIGEST = '${DIGEST}'`));
    assert.match(deploy, /\$env:SITE = 'shop'/);
    assert.ok(r.lines.includes("deploy: | ok"));
    const sticker = await driver().readSticker(t);
    assert.equal(sticker?.releaseId, "rel-1.0.0");
    assert.deepEqual(sticker?.images, [{ component: "web", digest: DIGEST }]);
    assert.equal((await driver().inspect(t)).running[0]?.digest, DIGEST);
  });

  it("fails on a non-zero exit and runs the rollback script with what ran before", async () => {
    const host = new Host((s) => (s.includes("throw-here") ? { output: [{ stream: "stderr", text: "boom\r\n" }], exitCode: 7 } : undefined));
    const f = await hostFake(host);
    assert.ok((await run(target(f, { script: { deploy: "1" } }))).outcome);
    const r = await run(target(f, { script: { deploy: "throw-here", rollback: "Write-Output $env:FERRY_PREVIOUS_DIGEST" } }), driver(), "2.0.0");
    assert.equal(r.error?.code, "SCRIPT_FAILED", r.error?.message);
    assert.equal(r.error?.restored, true);
    assert.equal(r.error?.details["exitCode"], 7);
    const rollback = host.ran.find((s) => s.includes("Write-Output $env:FERRY_PREVIOUS_DIGEST"))!;
    assert.match(rollback, new RegExp(`\\$env:FERRY_PREVIOUS_DIGEST = '${DIGEST}'`));
  });

  it("tells a command not found and a never-ending script (timeout) apart", async () => {
    const host = new Host((s) =>
      s.includes("Get-Nothing") ? { output: [{ stream: "stderr", text: "Get-Nothing : The term 'Get-Nothing' is not recognized as the name of a cmdlet\r\n+ FullyQualifiedErrorId : CommandNotFoundException\r\n" }], exitCode: 1 } : s.includes("while") ? { never: true } : undefined,
    );
    const f = await hostFake(host);
    assert.equal((await run(target(f, { script: { deploy: "Get-Nothing", rollback: "1" } }))).error?.code, "COMMAND_NOT_FOUND");
    const slow = await run(target(f, { operationTimeoutSeconds: 1, script: { deploy: "while ($true) {}", rollback: "1", timeoutSeconds: 1 } }));
    assert.equal(slow.error?.code, "SCRIPT_TIMEOUT");
    assert.equal(slow.error?.restored, true);
    assert.ok(f.signalled.length >= 1);
  });

  it("deploys a Windows service: stop, install, start, check; a service that stops during the check is restored", async () => {
    const host = new Host((s) => (s.includes("$settle") && s.includes("'Flaky'") ? { output: [{ stream: "stderr", text: "service Flaky is Stopped\r\n" }], exitCode: 2 } : undefined));
    const f = await hostFake(host);
    const ok = await run(target(f, { mode: "service", service: { name: "ShopWeb", install: "Copy-Item C:\\drop\\web C:\\svc\\web", healthUrl: "http://127.0.0.1:8080/health" } }));
    assert.ok(ok.outcome, `${ok.error?.message}\n${ok.lines.join("\n")}`);
    const install = host.ran.find((s) => s.includes("Copy-Item"))!;
    assert.ok(install.indexOf("Stop-Service -Name 'ShopWeb'") < install.indexOf("Copy-Item") && install.indexOf("Copy-Item") < install.indexOf("Start-Service -Name 'ShopWeb'"));
    assert.ok(host.ran.some((s) => s.includes("Invoke-WebRequest") && s.includes("http://127.0.0.1:8080/health")));
    const flaky = await run(target(f, { mode: "service", service: { name: "Flaky", install: "1", rollback: "Write-Output rolled" } }));
    assert.equal(flaky.error?.code, "INSTANCE_CRASHED", flaky.error?.message);
    assert.equal(flaky.error?.restored, true);
    assert.ok(host.ran.some((s) => s.includes("Write-Output rolled") && s.includes("Start-Service -Name 'Flaky'")));
    const missing = await run(target(f, { mode: "service", service: { name: "Missing", install: "1" } }));
    assert.equal(missing.error?.code, "SERVICE_NOT_FOUND");
    assert.equal(missing.error?.restored, true);
  });

  it("deploys a Windows container by digest through the host's docker CLI: verify, park, replace, check, retire, restore", async () => {
    // The host's engine as the scripts see it: one container under the target's name, by id.
    let current: string | undefined;
    let seq = 0;
    let tamper = false;
    const sent: string[] = [];
    const host = new Host((s) => {
      if (s.includes("FERRY-SOURCE:")) {
        sent.push("prepare");
        if (tamper) return { output: [{ stream: "stderr", text: "the image does not carry it\r\n" }], exitCode: 11 };
        return { output: [{ stream: "stdout", text: `FERRY-SOURCE:pulled\r\nFERRY-IMAGE-ID:sha256:${"e".repeat(64)}\r\n${current ? `FERRY-PREVIOUS:${current}|true\r\n` : ""}` }], exitCode: 0 };
      }
      if (s.includes("docker create")) {
        sent.push("start");
        const id = `${String(++seq).repeat(12)}${"0".repeat(52)}`;
        const parked = current ? `FERRY-PARKED:web.ferry-old-${current.slice(0, 12)}\r\n` : "";
        current = id;
        return { output: [{ stream: "stdout", text: `${parked}FERRY-CREATED:${id}\r\n${parked ? "FERRY-STOPPED\r\n" : ""}` }], exitCode: 0 };
      }
      if (s.includes("StartedAt")) {
        sent.push("check");
        return /'3{12}/.test(s) ? { output: [{ stream: "stderr", text: "the container exited or restarted (false|1|x)\r\n" }], exitCode: 2 } : { exitCode: 0 };
      }
      if (s.includes("docker rename") && s.includes("docker rm -f")) {
        sent.push("restore");
        return { exitCode: 0 };
      }
      if (s.includes("docker rm -f")) {
        sent.push("retire");
        return { exitCode: 0 };
      }
      return undefined;
    });
    const f = await hostFake(host);
    const cfg = { mode: "container", container: { name: "web", healthUrl: "http://127.0.0.1:8080/health", settleSeconds: 1 } };
    const first = await run(target(f, cfg));
    assert.ok(first.outcome, `${first.error?.message}\n${first.lines.join("\n")}`);
    assert.deepEqual(sent, ["prepare", "start", "check"]);
    const create = host.ran.find((x) => x.includes("docker create"))!;
    assert.match(create, new RegExp(`'ferry.digest=${DIGEST}'`));
    assert.match(create, new RegExp(`'${IMAGE.ref.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}'`), "the container is created from repository@digest");
    sent.length = 0;
    const second = await run(target(f, cfg), driver(), "2.0.0");
    assert.ok(second.outcome, second.error?.message);
    assert.deepEqual(sent, ["prepare", "start", "check", "retire"], "the parked previous container is removed after the check passed");
    sent.length = 0;
    const third = await run(target(f, cfg), driver(), "3.0.0");
    assert.equal(third.error?.code, "INSTANCE_CRASHED", third.error?.message);
    assert.equal(third.error?.restored, true);
    assert.deepEqual(sent, ["prepare", "start", "check", "restore"]);
    const restore = host.ran[host.ran.length - 1]!;
    assert.match(restore, /docker rm -f '3{12}/);
    assert.match(restore, /docker rename 'web\.ferry-old-2{12}' 'web'/);
    assert.match(restore, /docker start 'web'/);
    sent.length = 0;
    tamper = true;
    const tampered = await run(target(f, cfg));
    assert.equal(tampered.error?.code, "DIGEST_MISMATCH");
    assert.equal(tampered.error?.restored, true);
    assert.deepEqual(sent, ["prepare"], "nothing was started");
  });

  it("gives clear codes for credentials, certificates, quota, a dropped connection and an unreachable host", async () => {
    const host = new Host((s) => (s.includes("drop-me") ? { dropMidReceive: true } : undefined));
    const f = await hostFake(host, { maxShellsPerUser: 0 });
    assert.equal((await run(target(f, { credentialsRef: "wrong", script: { deploy: "1" } }))).error?.code, "WINRM_AUTH_FAILED");
    assert.equal((await run(target(f, { script: { deploy: "1" } }), new WinrmDriver({ settings: { credentialsFile } }))).error?.code, "HOST_CERTIFICATE_REJECTED");
    assert.equal((await run(target(f, { script: { deploy: "1" } }))).error?.code, "WINRM_QUOTA_EXCEEDED");
    const g = await hostFake(host);
    const lost = await run(target(g, { script: { deploy: "drop-me", rollback: "Write-Output back" } }));
    assert.equal(lost.error?.code, "CONNECTION_LOST", lost.error?.message);
    assert.equal(lost.error?.restored, true, "the rollback ran over a new connection");
    await g.stop();
    assert.equal((await run(target(g, { script: { deploy: "1" } }))).error?.code, "HOST_UNREACHABLE");
  });
});
