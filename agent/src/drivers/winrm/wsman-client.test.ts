// The WS-Man client and the PowerShell runner against the project's protocol-faithful WinRM fake
// (test/fakes/winrm): HTTP and HTTPS, Basic and NTLMv2 (checked by the fake from the account's NT hash, independently
// of the client's MD4), the shell lifecycle, base64 output chunks, and the faults and misbehaviour WinRM shows.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { startFakeWinrm, type FakeBehaviour, type FakeWinrm, type FakeWinrmOptions } from "../../../../test/fakes/winrm/fake-winrm.js";
import { authenticateMessage, negotiateMessage, ntHash, parseChallenge } from "./ntlm.js";
import { commandLines, encodeCommand, runPowerShell } from "./powershell.js";
import { WSMAN_OPERATION_TIMEOUT, WsmanClient, WsmanError } from "./wsman-client.js";

// NT hash of "S3cret!pass" is computed by the client; the fake is given it as a directory would hold it — from
// "password", whose NT hash is the well-known 8846f7eaee8fb117ad06bdd830b7586c, for an independent check.
const PASSWORD = "password";
const NT_HASH = "8846f7eaee8fb117ad06bdd830b7586c";
const never = new AbortController().signal;

let dir: string;
let tls: { key: string; cert: string };
const fakes: FakeWinrm[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "ferry-winrm-"));
  // A throwaway self-signed certificate for 127.0.0.1.
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
  tls = { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
});

after(async () => {
  for (const f of fakes) await f.stop();
  rmSync(dir, { recursive: true, force: true });
});

const echo = (script: string): FakeBehaviour => ({ output: [{ stream: "stdout", text: `ran ${script.length} chars\r\n` }, { stream: "stdout", text: "second line\r\n" }, { stream: "stderr", text: "a warning\r\n" }], exitCode: 0 });

async function fake(o: Partial<FakeWinrmOptions> = {}): Promise<FakeWinrm> {
  const f = await startFakeWinrm({
    tls,
    accounts: [
      { username: "ferry", password: PASSWORD, ntHash: NT_HASH },
      { username: "guest", password: PASSWORD, ntHash: NT_HASH, allowed: false },
    ],
    auth: ["basic", "ntlm"],
    run: echo,
    ...o,
  });
  fakes.push(f);
  return f;
}

function client(f: FakeWinrm, o: { method?: "basic" | "ntlm"; password?: string; user?: string; ca?: string | null; maxEnvelopeSize?: number } = {}): WsmanClient {
  return new WsmanClient({
    endpoint: f.url,
    auth: { method: o.method ?? "ntlm", username: o.user ?? "ferry", password: o.password ?? PASSWORD },
    ...(o.ca === null ? {} : { ca: o.ca ?? tls.cert }),
    operationTimeoutSeconds: 1,
    ...(o.maxEnvelopeSize ? { maxEnvelopeSize: o.maxEnvelopeSize } : {}),
  });
}

describe("NTLMv2 messages", () => {
  it("computes the NT hash with the project's MD4 and builds messages the fake's check accepts", () => {
    assert.equal(ntHash(PASSWORD).toString("hex"), NT_HASH);
    const neg = negotiateMessage();
    assert.equal(neg.subarray(0, 8).toString("latin1"), "NTLMSSP\0");
    assert.equal(neg.readUInt32LE(8), 1);
    // A CHALLENGE_MESSAGE with an 8-byte challenge and empty target info.
    const ch = Buffer.alloc(48);
    ch.write("NTLMSSP\0", 0, "latin1");
    ch.writeUInt32LE(2, 8);
    ch.writeUInt32LE(0xa2898205 >>> 0, 20);
    Buffer.from("0123456789abcdef", "hex").copy(ch, 24);
    ch.writeUInt32LE(48, 16);
    ch.writeUInt32LE(48, 44);
    const parsed = parseChallenge(ch);
    assert.equal(parsed.serverChallenge.toString("hex"), "0123456789abcdef");
    const auth = authenticateMessage({ username: "ferry", password: PASSWORD, domain: "" }, parsed, { clientChallenge: Buffer.alloc(8, 1), nowMs: 0 });
    assert.equal(auth.readUInt32LE(8), 3);
    assert.throws(() => parseChallenge(Buffer.from("not ntlm")), /CHALLENGE_MESSAGE/);
  });
});

describe("WS-Man client against the WinRM fake", () => {
  it("runs PowerShell over HTTPS with NTLM: the whole shell lifecycle, base64 chunks into lines, the exit code", async () => {
    const f = await fake();
    const c = client(f);
    const lines: string[] = [];
    const run = await runPowerShell(c, "Write-Output 'hello'", { timeoutMs: 10_000, signal: never, onLine: (l, s) => lines.push(`${s}:${l}`) });
    c.close();
    assert.equal(run.exitCode, 0);
    assert.deepEqual(lines, ["stdout:ran 20 chars", "stdout:second line", "stderr:a warning"]);
    assert.equal(f.scripts[0], "Write-Output 'hello'", "the fake decoded -EncodedCommand (base64 UTF-16LE) back to the script");
    const actions = f.requests.map((r) => r.action);
    assert.deepEqual([actions[0], actions[1]], ["Create", "Command"]);
    assert.deepEqual(actions.slice(-2), ["Signal", "Delete"]);
    assert.ok(actions.filter((a) => a === "Receive").length >= 3);
    assert.equal(f.shells(), 0, "the shell was deleted");
  });

  it("authenticates with Basic over HTTP and HTTPS, and refuses wrong passwords with either method", async () => {
    for (const useTls of [false, true]) {
      const f = await fake(useTls ? {} : { tls: undefined as never });
      const ok = client(f, { method: "basic" });
      assert.equal((await runPowerShell(ok, "1", { timeoutMs: 5000, signal: never })).exitCode, 0);
      ok.close();
    }
    const f = await fake();
    for (const method of ["basic", "ntlm"] as const) {
      const bad = client(f, { method, password: "wrong" });
      await assert.rejects(bad.createShell(), (err: unknown) => err instanceof WsmanError && err.kind === "auth" && err.httpStatus === 401);
      bad.close();
    }
    assert.deepEqual(f.refusals, ["basic", "ntlm"]);
  });

  it("keeps certificate checking on: a host certificate the agent does not trust is refused", async () => {
    const f = await fake();
    const c = client(f, { ca: null });
    await assert.rejects(c.createShell(), (err: unknown) => err instanceof WsmanError && err.kind === "tls");
    c.close();
  });

  it("asks again after the operation-timeout fault (2150858793) that comes before any output", async () => {
    const f = await fake({ run: () => ({ timeoutsBeforeOutput: 3, output: [{ stream: "stdout", text: "late\n" }], exitCode: 0 }) });
    const c = client(f);
    const run = await runPowerShell(c, "Start-Sleep 5; 'late'", { timeoutMs: 10_000, signal: never });
    c.close();
    assert.equal(run.exitCode, 0);
    assert.deepEqual(run.tail, ["late"]);
    assert.ok(f.requests.filter((r) => r.action === "Receive").length >= 4);
    assert.equal(WSMAN_OPERATION_TIMEOUT, 2150858793);
  });

  it("stops a command that never ends at the timeout: signalled, shell deleted", async () => {
    const f = await fake({ run: () => ({ never: true }) });
    const c = client(f);
    const started = Date.now();
    const run = await runPowerShell(c, "while ($true) {}", { timeoutMs: 600, signal: never });
    c.close();
    assert.equal(run.timedOut, true);
    assert.equal(run.exitCode, undefined);
    assert.ok(Date.now() - started < 5000);
    assert.equal(f.signalled.length, 1);
    assert.equal(f.shells(), 0);
  });

  it("stops a command when the task is aborted", async () => {
    const f = await fake({ run: () => ({ never: true }) });
    const c = client(f);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("cancelled")), 200);
    const run = await runPowerShell(c, "while ($true) {}", { timeoutMs: 30_000, signal: ac.signal });
    c.close();
    assert.equal(run.aborted, true);
    assert.equal(f.signalled.length, 1);
  });

  it("reports the quota and access-denied faults with their codes", async () => {
    const f = await fake({ maxShellsPerUser: 1 });
    const c = client(f);
    await c.createShell();
    await assert.rejects(c.createShell(), (err: unknown) => err instanceof WsmanError && err.kind === "fault" && err.wsmanCode === 2150859173 && err.subcode === "w:QuotaLimit");
    c.close();
    const denied = client(f, { user: "guest" });
    await assert.rejects(denied.createShell(), (err: unknown) => err instanceof WsmanError && err.wsmanCode === 5 && err.subcode === "w:AccessDenied" && /Access is denied/.test(err.message));
    denied.close();
  });

  it("reports a connection dropped in the middle of a Receive as lost", async () => {
    const f = await fake({ run: () => ({ dropMidReceive: true }) });
    const c = client(f);
    const run = await runPowerShell(c, "Restart-Computer", { timeoutMs: 10_000, signal: never });
    c.close();
    assert.equal(run.lost, true);
    assert.equal(run.exitCode, undefined);
  });

  it("refuses an oversized envelope: the service's fault, and the client's own bound", async () => {
    const f = await fake({ maxEnvelopeSize: 4000 });
    const c = client(f);
    const script = `'${"x".repeat(1200)}'`;
    const shell = await c.createShell();
    await assert.rejects(c.command(shell, "powershell", ["-EncodedCommand", encodeCommand(script)]), (err: unknown) => err instanceof WsmanError && err.wsmanCode === 2150858817 && err.subcode === "w:EncodingLimit");
    c.close();
    const small = client(f, { maxEnvelopeSize: 1000 });
    await assert.rejects(small.createShell(), (err: unknown) => err instanceof WsmanError && err.kind === "protocol" && /MaxEnvelopeSize/.test(err.message));
    small.close();
  });

  it("stages a script longer than the 8,191-character command line and runs it whole", async () => {
    const script = `# ${"long ".repeat(1500)}\nWrite-Output 'done'`;
    assert.ok(encodeCommand(script).length > 8191);
    const lines = commandLines(script, "t1");
    assert.ok(lines.length > 2);
    for (const [arg] of lines) assert.ok(`powershell -NoProfile -NonInteractive -EncodedCommand ${arg}`.length <= 8191);
    const f = await fake({ run: () => ({ output: [], exitCode: 0 }) });
    const c = client(f);
    const run = await runPowerShell(c, script, { timeoutMs: 20_000, signal: never });
    c.close();
    assert.equal(run.exitCode, 0);
    // Reassemble what the staging commands appended: it is the script, byte for byte.
    const staged = f.scripts.slice(0, -1).map((s) => /-Value '([^']*)'/.exec(s)?.[1] ?? "").join("");
    assert.equal(Buffer.from(staged, "base64").toString("utf8"), script);
    assert.match(f.scripts[f.scripts.length - 1]!, /FromBase64String/);
  });
});
