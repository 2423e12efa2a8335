// The script targets' shared parts (ssh, winrm) on their own: output lines, what an end means, the verdicts. The
// drivers' own suites run them against a real sshd and the WS-Man fake.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DriverError, type PhaseContext } from "./driver.js";
import type { HostStickerFile } from "./host-sticker-file.js";
import { healthVerdict, OutputLines, runHostScript, runRollback, scriptEnv, scriptFailure, type ScriptEnd, type ScriptHost } from "./script-target.js";

const DIGEST = `sha256:${"a".repeat(64)}`;
const never = new AbortController().signal;

function end(over: Partial<ScriptEnd> = {}): ScriptEnd {
  return { exitCode: 0, timedOut: false, aborted: false, lost: false, tail: ["last line"], durationMs: 5, ...over };
}

function fakeHost(result: ScriptEnd, opts: { notFound?: boolean; fault?: DriverError } = {}): ScriptHost<ScriptEnd> & { ran: { name: string; text: string; env: Record<string, string> }[] } {
  const ran: { name: string; text: string; env: Record<string, string> }[] = [];
  return {
    where: "host-1",
    ran,
    run(name, text, env, o) {
      ran.push({ name, text, env });
      o.onStarted?.();
      o.onLine("out", "stdout");
      o.onLine("err", "stderr");
      return Promise.resolve(result);
    },
    commandNotFound: () => opts.notFound === true,
    ...(opts.fault ? { fault: () => opts.fault } : {}),
  };
}

describe("script target output lines", () => {
  it("splits chunks into lines, strips CR, cuts long lines, keeps the last 20 and flushes the unterminated rest", () => {
    const seen: string[] = [];
    const out = new OutputLines((l, s) => seen.push(`${s}:${l}`));
    out.feed("stdout", Buffer.from("one\r\ntw"));
    out.feed("stderr", Buffer.from("warn\n"));
    out.feed("stdout", Buffer.from(`o\n${"x".repeat(1500)}\n`));
    out.feed("stdout", Buffer.from("rest"));
    out.flush();
    assert.deepEqual(seen, ["stdout:one", "stderr:warn", "stdout:two", `stdout:${"x".repeat(1000)}…`, "stdout:rest"]);
    for (let i = 0; i < 30; i++) out.feed("stdout", Buffer.from(`${i}\n`));
    assert.equal(out.tail.length, 20);
    assert.equal(out.tail[19], "29");
  });

  it("keeps a character split across chunks whole", () => {
    const seen: string[] = [];
    const out = new OutputLines((l) => seen.push(l));
    const bytes = Buffer.from("größe\n");
    out.feed("stdout", bytes.subarray(0, 3));
    out.feed("stdout", bytes.subarray(3));
    assert.deepEqual(seen, ["größe"]);
  });

  it("logs at most 10,000 lines, then one note, and still keeps the tail", () => {
    let logged = 0;
    let note = "";
    const out = new OutputLines((l) => (l.startsWith("(output beyond") ? (note = l) : logged++));
    out.feed("stdout", Buffer.from("l\n".repeat(10_050)));
    out.feed("stdout", Buffer.from("final\n"));
    assert.equal(logged, 10_000);
    assert.equal(note, "(output beyond 10000 lines is not logged)");
    assert.equal(out.tail[19], "final");
  });
});

describe("script target ends and verdicts", () => {
  const host = fakeHost(end());

  it("gives each end its code, with the exit code and the last output in details", () => {
    assert.equal(scriptFailure(host, end(), "the deploy script", "deploy", 5), undefined);
    const cases: [Partial<ScriptEnd>, string][] = [
      [{ exitCode: undefined, aborted: true }, "ABORTED"],
      [{ exitCode: undefined, timedOut: true }, "SCRIPT_TIMEOUT"],
      [{ exitCode: undefined, lost: true }, "CONNECTION_LOST"],
      [{ exitCode: 3 }, "SCRIPT_FAILED"],
    ];
    for (const [over, code] of cases) {
      const f = scriptFailure(host, end(over), "the deploy script", "deploy", 5);
      assert.equal(f?.code, code);
      assert.deepEqual(f?.details["output"], ["last line"]);
      assert.equal(f?.details["exitCode"], over.exitCode ?? null);
    }
    assert.equal(scriptFailure(fakeHost(end(), { notFound: true }), end({ exitCode: 127 }), "x", "deploy", 5)?.code, "COMMAND_NOT_FOUND");
    const fault = new DriverError("WINRM_FAULT", "fault");
    assert.equal(scriptFailure(fakeHost(end(), { fault }), end({ exitCode: undefined }), "x", "deploy", 5), fault);
    // A timeout wins over a protocol fault: the script was stopped because of the timeout.
    assert.equal(scriptFailure(fakeHost(end(), { fault }), end({ exitCode: undefined, timedOut: true }), "x", "deploy", 5)?.code, "SCRIPT_TIMEOUT");
  });

  it("runs a script with its output in the task log and says how it ended", async () => {
    const lines: string[] = [];
    let started = false;
    const h = fakeHost(end({ exitCode: 2 }));
    const r = await runHostScript(h, { progress: { step: () => undefined, log: (l) => lines.push(l) }, signal: never }, "deploy", "exit 2", { A: "1" }, 7, () => (started = true));
    assert.equal(started, true);
    assert.equal(r.failure?.code, "SCRIPT_FAILED");
    assert.deepEqual(h.ran, [{ name: "deploy", text: "exit 2", env: { A: "1" } }]);
    assert.deepEqual(lines, ["deploy: running the deploy script on host-1 (timeout 7 s)", "deploy: | out", "deploy: ! err", "deploy: the deploy script ended: exit code 2 after 0.0 s"]);
  });

  it("turns a health script's non-zero exit into a failed check, and throws anything else", () => {
    assert.equal(healthVerdict({ run: end() }, "health", "script").ok, true);
    const failed = healthVerdict({ run: end({ exitCode: 1 }), failure: new DriverError("SCRIPT_FAILED", "no", { exitCode: 1 }) }, "health", "script");
    assert.deepEqual([failed.ok, failed.code, failed.details["exitCode"]], [false, "HEALTH_CHECK_FAILED", 1]);
    const crashed = healthVerdict({ run: end({ exitCode: 2 }), failure: new DriverError("SCRIPT_FAILED", "no") }, "check", "check", "INSTANCE_CRASHED");
    assert.equal(crashed.code, "INSTANCE_CRASHED");
    assert.throws(() => healthVerdict({ run: end({ timedOut: true }), failure: new DriverError("SCRIPT_TIMEOUT", "slow") }, "health", "script"), /slow/);
  });

  it("rolls back with the rollback script, and says what stays without one", async () => {
    const ctx = { progress: { step: () => undefined, log: () => undefined }, signal: never };
    const previous = { releaseId: "rel-1" } as HostStickerFile;
    assert.deepEqual(await runRollback(host, ctx, { field: "config.script.rollback", changedBy: "deploy", text: "undo" }, {}, 5, previous), { rollbackScript: "exited 0", previousRelease: "rel-1" });
    await assert.rejects(runRollback(host, ctx, { field: "config.script.rollback", changedBy: "deploy", text: undefined }, {}, 5, null), /no rollback script \(config\.script\.rollback\): what the deploy script changed stays/);
    await assert.rejects(runRollback(fakeHost(end({ exitCode: 1 })), ctx, { field: "f", changedBy: "deploy", text: "undo" }, {}, 5, null), /the rollback script on host-1 failed: exit code 1/);
  });

  it("puts the release, its digests and what ran before into the environment; the target's env cannot override them", () => {
    const ctx = {
      action: "deploy",
      taskId: "t1",
      deploymentId: "d1",
      target: { id: "tg", name: "web", kind: "ssh", config: {} },
      release: { id: "rel-2", name: "shop", version: "2" },
      images: [{ component: "web", repository: "r/web", digest: DIGEST, ref: `r/web@${DIGEST}` }],
    } as unknown as PhaseContext<unknown>;
    const previous: HostStickerFile = { version: 1, targetId: "tg", deploymentId: "d0", taskId: "t0", releaseId: "rel-1", releaseName: "shop", releaseVersion: "1", images: [{ component: "web", repository: "r/web", digest: `sha256:${"b".repeat(64)}` }], writtenAt: "" };
    const env = scriptEnv(ctx, ctx.images[0]!, previous, "deploy", { SITE: "x", FERRY_DIGEST: "mine" });
    assert.equal(env["SITE"], "x");
    assert.equal(env["FERRY_DIGEST"], DIGEST);
    assert.equal(env["FERRY_IMAGES"], `web=r/web@${DIGEST}`);
    assert.equal(env["FERRY_PREVIOUS_IMAGE"], `r/web@sha256:${"b".repeat(64)}`);
    assert.equal(env["FERRY_PREVIOUS_DEPLOYMENT_ID"], "d0");
    assert.equal(scriptEnv(ctx, ctx.images[0]!, null, "deploy")["FERRY_PREVIOUS_DIGEST"], undefined);
  });
});
