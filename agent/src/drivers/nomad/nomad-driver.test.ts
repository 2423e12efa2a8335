// The Nomad driver over real HTTP against the project's Nomad fake (test/fakes/nomad): register with check-and-set,
// the evaluation and a deployment that appears late, canaries promoted in switch, unhealthy allocations with and
// without auto_revert, a stalled deployment failed by Ferry, a job changed under the task, ACL refusals, 429s,
// refusals that touch nothing, drift.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";

import { checkObject, type ImagePin, type NomadTargetConfig } from "@ferry/contract";
import { pino } from "pino";

import { NomadFake } from "../../../../test/fakes/nomad/nomad-fake.js";
import { runPhases } from "../../core/phase-runner.js";
import { driverFailure, phaseContext } from "../../test-support/phase-context.js";
import type { PhaseContext, TargetRef } from "../driver.js";
import { nomadRegistration, nomadSettings } from "./index.js";
import { NomadDriver, nomadConfig } from "./nomad-driver.js";

const NS = 1_000_000;
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const pin = (component: string, repository: string, c: string): ImagePin => ({ component, repository, digest: digest(c), ref: `${repository}@${digest(c)}` });
const WEB_V1 = pin("web", "registry.example/shop/web", "1");
const WEB_V2 = pin("web", "registry.example/shop/web", "2");
const TOKEN = "8f3c0e52-6d1b-4a7e-9b1e-0c5a2f9d7e11";
const READ_TOKEN = "2b1d4c6e-0000-4000-8000-000000000001";

let fake: NomadFake;
let address: string;
let driver: NomadDriver;
let tokenFile: string;

function job(id: string, update: Record<string, unknown> = {}, count = 2): Record<string, unknown> {
  return {
    ID: id,
    Name: id,
    Type: "service",
    Datacenters: ["dc1"],
    Update: { MaxParallel: 1, MinHealthyTime: 1_000 * NS, HealthyDeadline: 60_000 * NS, ProgressDeadline: 120_000 * NS, ...update },
    Meta: { owner: "shop" },
    TaskGroups: [
      {
        Name: "web",
        Count: count,
        Tasks: [
          { Name: "server", Driver: "docker", Config: { image: WEB_V1.ref, ports: ["http"] }, Env: { MODE: "prod" } },
          { Name: "sidecar", Driver: "docker", Config: { image: "registry.example/proxy:1" } },
        ],
      },
    ],
  };
}

function target(config: Partial<NomadTargetConfig> = {}): TargetRef {
  return { id: "t-n", name: "shop", kind: "nomad", config: { address, job: "shop", group: "web", task: "server", deploymentTimeoutSeconds: 60, ...config } };
}

function ctx(images: ImagePin[], config: Partial<NomadTargetConfig> = {}, signal = new AbortController().signal): PhaseContext<NomadTargetConfig> & { lines: string[] } {
  return phaseContext(target(config), nomadConfig, images, { signal });
}

const failure = driverFailure;

const run = (c: PhaseContext<NomadTargetConfig>, d: NomadDriver = driver, phases?: Parameters<typeof runPhases>[2]["phases"]) => runPhases(d, c, { logger: pino({ level: "silent" }), ...(phases ? { phases } : {}) });

const image = (id: string, key = "server") => ((fake.job(id)!["TaskGroups"] as { Tasks: { Name: string; Config: { image: string } }[] }[])[0]!.Tasks.find((t) => t.Name === key)!.Config.image);

before(async () => {
  fake = new NomadFake({ tokens: { [TOKEN]: "write", [READ_TOKEN]: "read" }, tickMs: 15 });
  address = await fake.listen();
  const dir = mkdtempSync(join(tmpdir(), "ferry-nomad-"));
  tokenFile = join(dir, "token");
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  driver = new NomadDriver({ settings: { tokenFile, blockingWaitSeconds: 2 }, env: {} });
});

after(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.failingImages.clear();
  fake.convergeTicks = 1;
});

describe("Nomad driver against the Nomad fake", () => {
  it("registers the job with the digest and the sticker, follows the late deployment and checks the allocations' version", async () => {
    fake.seedJob(job("shop"));
    const before = fake.job("shop")!;
    const c = ctx([WEB_V2]);
    const outcome = await run(c);
    const now = fake.job("shop")!;
    assert.equal(now["Version"], (before["Version"] as number) + 1);
    assert.equal(now["Stable"], true);
    assert.equal(image("shop"), WEB_V2.ref);
    assert.equal(image("shop", "sidecar"), "registry.example/proxy:1");
    assert.equal((now["Meta"] as Record<string, string>)["owner"], "shop");
    assert.equal((now["Meta"] as Record<string, string>)["ferry.image.1"], `web=${WEB_V2.digest}`);
    // Check-and-set on the index read in prepare.
    const reg = fake.calls.find((x) => x.method === "POST" && x.path === "/v1/job/shop")!;
    assert.equal(reg.body!["EnforceIndex"], true);
    assert.equal(reg.body!["JobModifyIndex"], before["JobModifyIndex"]);
    assert.deepEqual(outcome.running, [{ component: "web", repository: WEB_V2.repository, digest: WEB_V2.digest, containerName: "web/server" }]);
    for (const a of fake.allocations("shop").filter((x) => x.DesiredStatus === "run")) assert.equal(a.JobVersion, now["Version"]);
    const seen = await driver.inspect(target());
    assert.equal(seen.state, "running");
    assert.deepEqual(seen.running.map((r) => r.digest), [WEB_V2.digest]);
    assert.equal(seen.labels["ferry.task"], c.taskId);
    assert.equal(seen.details["drift"], undefined);
    assert.deepEqual(await driver.readSticker(target()), { deploymentId: c.deploymentId, taskId: c.taskId, releaseId: c.release.id, images: [{ component: "web", digest: WEB_V2.digest }] });
    // The same digests again: nothing registered.
    const calls = fake.calls.length;
    const again = await run(ctx([WEB_V2]));
    assert.equal(again.details?.["alreadyDeployed"], true);
    assert.ok(!fake.calls.slice(calls).some((x) => x.method === "POST"));
  });

  it("stops at healthy canaries in health, and promotes them in switch", async () => {
    fake.seedJob(job("canary", { Canary: 1 }));
    const c = ctx([WEB_V2], { job: "canary" });
    const d = driver;
    // Health alone leaves the canary waiting for promotion: the point where Ferry's analysis runs.
    const state = await d.prepare(c);
    const started = await d.start(c, state);
    const report = await d.health(c, started);
    assert.equal(report.ok, true, report.summary);
    assert.match(report.summary, /canar.*wait for promotion/);
    const dep = fake.deployments("canary").at(-1)!;
    assert.equal(dep.Status, "running");
    assert.equal(dep.StatusDescription, "Deployment is running but requires manual promotion");
    assert.equal(fake.allocations("canary").filter((a) => a.DesiredStatus === "run").length, 3, "the canary runs beside the two old allocations");
    assert.ok(!fake.calls.some((x) => x.path.startsWith("/v1/deployment/promote/")));
    const switched = await d.switch(c, started);
    assert.equal(switched["awaitingPromotion"], false);
    assert.ok(fake.calls.some((x) => x.path === `/v1/deployment/promote/${dep.ID}`));
    assert.equal(fake.deployments("canary").at(-1)!.Status, "successful");
    assert.ok(fake.allocations("canary").filter((a) => a.DesiredStatus === "run").every((a) => a.JobVersion === fake.job("canary")!["Version"]));
  });

  it("promotes canaries only after Ferry's analysis: healthy for the bake and the probe answering 2xx", async () => {
    let answer = 200;
    const hits: number[] = [];
    const probe = createServer((_req, res) => {
      hits.push(Date.now());
      res.writeHead(answer).end(answer === 200 ? "ok" : "broken");
    });
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/health`;
    try {
      fake.seedJob(job("analysed", { Canary: 1 }));
      const analysis = { bakeSeconds: 1, probeUrl, probeIntervalSeconds: 1, probeTimeoutMs: 500 };
      const good = ctx([WEB_V2], { job: "analysed", canaryAnalysis: analysis });
      const outcome = await run(good);
      assert.ok(hits.length >= 1, "the probe was called");
      const dep = fake.deployments("analysed").at(-1)!;
      assert.equal(dep.Status, "successful");
      assert.ok(fake.calls.some((x) => x.path === `/v1/deployment/promote/${dep.ID}`));
      assert.ok(good.lines.some((l) => /health: analysis: passed: the canaries stayed healthy for \d+ s and \d+ probe\(s\)/.test(l)), good.lines.join("\n"));
      assert.equal(outcome.details?.["version"], fake.job("analysed")!["Version"]);

      // The probe fails: the canary is not promoted, the deployment is failed and the previous version serves again.
      answer = 503;
      const v = fake.job("analysed")!["Version"] as number;
      const bad = ctx([pin("web", "registry.example/shop/web", "d")], { job: "analysed", canaryAnalysis: analysis });
      const err = await failure(run(bad));
      assert.equal(err.code, "CANARY_ANALYSIS_FAILED");
      assert.equal(err.restored, true);
      assert.match(err.message, /the probe of .* answered .*503/);
      const failed = fake.deployments("analysed").find((d) => d.JobVersion === v + 1)!;
      assert.equal(failed.Status, "failed");
      assert.ok(!fake.calls.some((x) => x.path === `/v1/deployment/promote/${failed.ID}`), "the failed canary was never promoted");
      assert.equal(image("analysed"), WEB_V2.ref, "back on the version that served");
    } finally {
      await new Promise((r) => probe.close(r));
    }
  });

  it("a canary that stops running during the bake fails the analysis", async () => {
    fake.seedJob(job("crashy", { Canary: 1 }));
    const c = ctx([WEB_V2], { job: "crashy", canaryAnalysis: { bakeSeconds: 30 } });
    const state = await driver.start(c, await driver.prepare(c));
    const health = driver.health(c, state);
    const deadline = Date.now() + 10_000;
    let canary: string | undefined;
    while (!(canary = fake.deployments("crashy").at(-1)?.TaskGroups["web"]?.PlacedCanaries.find((id) => fake.allocations("crashy").find((a) => a.ID === id)?.DeploymentStatus?.Healthy === true))) {
      assert.ok(Date.now() < deadline, "the canary becomes healthy");
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    fake.failAllocation(canary);
    const report = await health;
    assert.equal(report.ok, false);
    assert.equal(report.code, "CANARY_ANALYSIS_FAILED");
    assert.match(report.summary, new RegExp(`canary allocation ${canary} is failed`));
    await driver.restore(c, state);
    assert.equal(image("crashy"), WEB_V1.ref);
  });

  it("refuses canary analysis for a job whose canaries Nomad promotes by itself", async () => {
    fake.seedJob(job("auto", { Canary: 1, AutoPromote: true }));
    const calls = fake.calls.length;
    const err = await failure(run(ctx([WEB_V2], { job: "auto", canaryAnalysis: { bakeSeconds: 5 } })));
    assert.equal(err.code, "INVALID_TARGET_CONFIG");
    assert.match(err.message, /auto_promote/);
    assert.ok(!fake.calls.slice(calls).some((x) => x.method === "POST"), "nothing registered");
  });

  it("unhealthy allocations fail the deployment (INSTANCE_CRASHED); Nomad's auto_revert is followed, not repeated", async () => {
    fake.seedJob(job("revert", { AutoRevert: true }));
    const v0 = fake.job("revert")!["Version"] as number;
    const bad = pin("web", "registry.example/shop/web", "b");
    fake.failingImages.add(bad.ref);
    const err = await failure(run(ctx([bad], { job: "revert" })));
    assert.equal(err.code, "INSTANCE_CRASHED");
    assert.equal(err.restored, true);
    assert.match(err.message, /Failed due to unhealthy allocations/);
    const now = fake.job("revert")!;
    assert.equal(now["Version"], v0 + 2, "auto_revert registered the stable version again as a new version");
    assert.equal(image("revert"), WEB_V1.ref);
    assert.ok(!fake.calls.some((x) => x.path === "/v1/job/revert/revert"), "Ferry did not revert a second time");
  });

  it("without auto_revert, restore reverts to the previous version; a failed canary is not canaried again", async () => {
    fake.seedJob(job("manual", { Canary: 1 }));
    const v0 = fake.job("manual")!["Version"] as number;
    const bad = pin("web", "registry.example/shop/web", "c");
    fake.failingImages.add(bad.ref);
    const err = await failure(run(ctx([bad], { job: "manual" })));
    assert.equal(err.code, "INSTANCE_CRASHED");
    assert.equal(err.restored, true);
    const revert = fake.calls.find((x) => x.path === "/v1/job/manual/revert")!;
    assert.equal(revert.body!["JobVersion"], v0);
    assert.equal(image("manual"), WEB_V1.ref);
    // The old allocations kept serving and were updated in place: no deployment, no canary for the return.
    const deps = fake.deployments("manual");
    assert.equal(deps.at(-1)!.JobVersion, v0 + 1);
    assert.ok(fake.allocations("manual").filter((a) => a.DesiredStatus === "run").every((a) => a.JobVersion === v0 + 2));
  });

  it("a deployment that makes no progress is failed by Nomad's progress deadline, and restored", async () => {
    fake.seedJob(job("stuck", { ProgressDeadline: 5_000 * NS }));
    fake.convergeTicks = 1_000_000;
    const c = ctx([WEB_V2], { job: "stuck" });
    const p = run(c);
    // The return to version 0 converges at the usual pace.
    while (!c.lines.some((l) => l.startsWith("restore:"))) await new Promise((r) => setTimeout(r, 10));
    fake.convergeTicks = 1;
    const err = await failure(p);
    assert.equal(err.code, "HEALTH_CHECK_FAILED");
    assert.match(err.message, /Failed due to progress deadline/);
    assert.equal(image("stuck"), WEB_V1.ref);
  });

  it("for a job without a progress deadline, Ferry fails a deployment that stalls", async () => {
    fake.seedJob(job("stall", { ProgressDeadline: 0 }));
    fake.convergeTicks = 1_000_000;
    const c = ctx([WEB_V2], { job: "stall", progressTimeoutSeconds: 10 });
    const realNow = Date.now;
    let skew = 0;
    Date.now = () => realNow() + skew;
    try {
      const p = run(c);
      while (!c.lines.some((l) => l.startsWith("health: deployment"))) await new Promise((r) => setTimeout(r, 10));
      skew = 11_000;
      while (!c.lines.some((l) => l.startsWith("restore:"))) await new Promise((r) => setTimeout(r, 10));
      fake.convergeTicks = 1;
      const err = await failure(p);
      assert.equal(err.code, "HEALTH_CHECK_FAILED");
      assert.match(err.message, /made no progress for 10 s; Ferry failed it/);
    } finally {
      Date.now = realNow;
    }
    assert.ok(fake.calls.some((x) => x.path.startsWith("/v1/deployment/fail/")));
    assert.equal(image("stall"), WEB_V1.ref);
  });

  it("a job changed after prepare is not overwritten (check-and-set), and nothing is applied", async () => {
    fake.seedJob(job("cas"));
    const c = ctx([WEB_V2], { job: "cas" });
    const state = await driver.prepare(c);
    // Someone else registers a change in between.
    const other = await fetch(`${address}/v1/job/cas`, { method: "POST", headers: { "x-nomad-token": TOKEN }, body: JSON.stringify({ Job: { ...job("cas"), Meta: { owner: "someone" } } }) });
    assert.equal(other.status, 200);
    const err = await failure(driver.start(c, state));
    assert.equal(err.code, "PLATFORM_BUSY");
    assert.equal(image("cas"), WEB_V1.ref);
    // And the fake refuses a stale index itself, as Nomad does.
    const stale = await fetch(`${address}/v1/job/cas`, { method: "POST", headers: { "x-nomad-token": TOKEN }, body: JSON.stringify({ Job: job("cas"), EnforceIndex: true, JobModifyIndex: state.jobModifyIndex }) });
    assert.equal(stale.status, 500);
    assert.match(await stale.text(), /^Enforcing job modify index \d+: job exists with conflicting job modify index: \d+/);
  });

  it("refuses an unknown job, task or group before changing anything", async () => {
    fake.seedJob(job("known"));
    const cases: [Partial<NomadTargetConfig>, string, RegExp][] = [
      [{ job: "nope" }, "TARGET_NOT_FOUND", /Nomad job nope does not exist/],
      [{ job: "known", task: "api" }, "TARGET_NOT_FOUND", /has no task web\/api \(it has web\/server, web\/sidecar\)/],
      [{ job: "known", group: "db", task: "server" }, "TARGET_NOT_FOUND", /has no task db\/server/],
      [{ job: "known", group: undefined, task: undefined }, "INVALID_TARGET_CONFIG", /several tasks/],
      [{ job: "known", namespace: "other" }, "TARGET_NOT_FOUND", /does not exist in namespace other/],
    ];
    for (const [config, code, message] of cases) {
      const calls = fake.calls.length;
      const t = target(config);
      for (const [k, v] of Object.entries(t.config)) if (v === undefined) delete t.config[k];
      const c = { ...ctx([WEB_V2]), target: t, config: nomadConfig(t.config) };
      const err = await failure(run(c));
      assert.equal(err.code, code, JSON.stringify(config));
      assert.match(err.message, message);
      assert.ok(!fake.calls.slice(calls).some((x) => x.method === "POST"), "nothing registered");
    }
  });

  it("says plainly when the token is refused, never showing it, and rides out 429s", async () => {
    fake.seedJob(job("acl"));
    const ro = join(tmpdir(), `ferry-nomad-ro-${process.pid}`);
    writeFileSync(ro, READ_TOKEN, { mode: 0o600 });
    const readOnly = new NomadDriver({ settings: { tokenFile: ro, blockingWaitSeconds: 2 }, env: {} });
    const err = await failure(run(ctx([WEB_V2], { job: "acl" }), readOnly));
    assert.equal(err.code, "PLATFORM_ACCESS_DENIED");
    assert.match(err.message, /Permission denied/);
    assert.doesNotMatch(JSON.stringify({ m: err.message, d: err.details }), new RegExp(READ_TOKEN));
    const none = new NomadDriver({ settings: { blockingWaitSeconds: 2 }, env: {} });
    assert.equal((await failure(none.inspect(target({ job: "acl" })))).code, "PLATFORM_ACCESS_DENIED");
    fake.rateLimit(3);
    await run(ctx([WEB_V2], { job: "acl" }));
    assert.equal(image("acl"), WEB_V2.ref);
  });

  it("inspect reports drift when the allocations run another version than the sticker says", async () => {
    fake.seedJob(job("drift"));
    await run(ctx([WEB_V2], { job: "drift" }));
    // An operator edits the image by hand and runs the job again; the job's meta (Ferry's sticker) stays.
    const edited = structuredClone(fake.job("drift")!) as { TaskGroups: { Tasks: { Name: string; Config: { image: string } }[] }[] };
    edited.TaskGroups[0]!.Tasks.find((t) => t.Name === "server")!.Config.image = WEB_V1.ref;
    const res = await fetch(`${address}/v1/job/drift`, { method: "POST", headers: { "x-nomad-token": TOKEN }, body: JSON.stringify({ Job: edited }) });
    assert.equal(res.status, 200);
    await new Promise((r) => setTimeout(r, 100));
    const deadline = Date.now() + 10_000;
    while (fake.deployments("drift").at(-1)?.Status === "running" || fake.allocations("drift").some((a) => a.DesiredStatus === "run" && a.JobVersion !== fake.job("drift")!["Version"])) {
      assert.ok(Date.now() < deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    const seen = await driver.inspect(target({ job: "drift" }));
    const drift = seen.details["drift"] as string[];
    assert.ok(drift.some((l) => l.includes(`the sticker says ${WEB_V2.digest}, allocations run ${WEB_V1.digest}`)), JSON.stringify(drift));
    assert.ok(drift.some((l) => l.includes(`sets ${WEB_V1.ref}, not the stickered ${WEB_V2.digest}`)), JSON.stringify(drift));
    assert.deepEqual([...new Set(seen.running.map((r) => r.digest))], [WEB_V1.digest]);
    assert.equal((await driver.inspect(target({ job: "gone" }))).state, "missing");
  });

  it("inspect as a target check: a missing job, a task the job lacks, a job that is not a service", async () => {
    fake.seedJob(job("checked"));
    const ok = await driver.inspect(target({ job: "checked" }));
    assert.equal(ok.details["check"], undefined);
    const gone = await driver.inspect(target({ job: "absent" }));
    assert.equal(gone.state, "missing");
    assert.match(gone.details["error"] as string, /absent/);
    const noTask = await driver.inspect(target({ job: "checked", task: "api" }));
    assert.equal((noTask.details["check"] as { code: string }).code, "TARGET_NOT_FOUND");
    assert.match((noTask.details["check"] as { message: string }).message, /job checked has no task web\/api \(it has web\/server, web\/sidecar\)/);
    const mapped = await driver.inspect(target({ job: "checked", group: undefined, task: undefined, tasks: { "web/server": "web", "db/postgres": "db" } }));
    assert.deepEqual(mapped.details["check"], { code: "TARGET_NOT_FOUND", message: "job checked has no task db/postgres (it has web/server, web/sidecar)" });
    fake.seedJob({ ...job("nightly"), Type: "batch" });
    const batch = await driver.inspect(target({ job: "nightly" }));
    assert.equal((batch.details["check"] as { code: string }).code, "TARGET_UNSUPPORTED");
  });

  it("a newer register cancels the running deployment; the task fails and restores", async () => {
    fake.seedJob(job("newer"));
    fake.convergeTicks = 1_000_000;
    const c = ctx([WEB_V2], { job: "newer" });
    const p = run(c);
    while (!c.lines.some((l) => l.startsWith("health: deployment"))) await new Promise((r) => setTimeout(r, 10));
    const res = await fetch(`${address}/v1/job/newer`, { method: "POST", headers: { "x-nomad-token": TOKEN }, body: JSON.stringify({ Job: { ...job("newer"), Meta: { owner: "hotfix" } } }) });
    assert.equal(res.status, 200);
    fake.convergeTicks = 1;
    const err = await failure(p);
    assert.equal(err.code, "HEALTH_CHECK_FAILED");
    assert.match(err.message, /Cancelled due to newer version of job/);
  });

  it("reaches an API behind mutual TLS with the CA, client certificate and server name from its settings", async () => {
    // Throwaway test certificates, made here with openssl: a CA, a server certificate for server.global.nomad (as
    // Nomad names its servers) and a client certificate.
    const dir = mkdtempSync(join(tmpdir(), "ferry-nomad-tls-"));
    const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=ferry test nomad CA");
    for (const [name, cn, ext] of [["server", "server.global.nomad", "subjectAltName=DNS:server.global.nomad"], ["client", "ferry-agent", "extendedKeyUsage=clientAuth"]] as const) {
      ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
      writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
      ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`);
    }
    const secure = new NomadFake({ tokens: { [TOKEN]: "write" }, tickMs: 15 });
    const tlsAddress = await secure.listen({ key: readFileSync(join(dir, "server.key"), "utf8"), cert: readFileSync(join(dir, "server.pem"), "utf8"), ca: readFileSync(join(dir, "ca.pem"), "utf8") });
    try {
      secure.seedJob(job("tls"));
      const d = new NomadDriver({ settings: { tokenFile, caFile: join(dir, "ca.pem"), clientCertFile: join(dir, "client.pem"), clientKeyFile: join(dir, "client.key"), tlsServerName: "server.global.nomad", blockingWaitSeconds: 2 }, env: {} });
      const seen = await d.inspect(target({ address: tlsAddress, job: "tls" }));
      assert.equal(seen.state, "running");
      // Without the client certificate the server refuses the handshake; without the CA the agent refuses the server.
      const noClient = new NomadDriver({ settings: { tokenFile, caFile: join(dir, "ca.pem"), tlsServerName: "server.global.nomad" }, env: {} });
      assert.equal((await failure(noClient.inspect(target({ address: tlsAddress, job: "tls" })))).code, "PLATFORM_UNAVAILABLE");
      const noCa = new NomadDriver({ settings: { tokenFile, clientCertFile: join(dir, "client.pem"), clientKeyFile: join(dir, "client.key"), tlsServerName: "server.global.nomad" }, env: {} });
      assert.match((await failure(noCa.inspect(target({ address: tlsAddress, job: "tls" })))).message, /certificate/);
    } finally {
      await secure.close();
    }
  });

  it("registers with a settings schema for address, token file and TLS", async () => {
    checkObject({ address: "https://nomad.service:4646", tokenFile: "/etc/ferry/nomad-token", caFile: "/etc/ferry/nomad-ca.pem", clientCertFile: "/etc/ferry/c.pem", clientKeyFile: "/etc/ferry/k.pem", tlsServerName: "server.global.nomad", blockingWaitSeconds: 30 }, nomadSettings, "drivers.nomad");
    assert.throws(() => checkObject({ token: "s3cr3t" }, nomadSettings, "drivers.nomad"), /drivers.nomad.token/);
    assert.throws(() => checkObject({ tokenFile: "token" }, nomadSettings, "drivers.nomad"), /drivers.nomad.tokenFile/);
    const d = await nomadRegistration.create({ logger: pino({ level: "silent" }), settings: { address, tokenFile } });
    const up = await d.available();
    assert.equal(up.ok, true);
    assert.match(up.detail, /Nomad API at http:\/\/127\.0\.0\.1/);
  });
});
