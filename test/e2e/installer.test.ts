// The Linux installer, for real: bundle the agent, run install.sh into a temporary root (no systemd here, no user
// creation), check what it laid down, then run the installed agent against a real control plane.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestControlPlane } from "../helpers/control-plane.js";
import { ROOT, start, type Proc } from "../helpers/processes.js";
import { waitFor } from "../helpers/wait.js";

describe("installers/linux/install.sh", () => {
  let cp: TestControlPlane;
  const root = mkdtempSync(join(tmpdir(), "ferry-install-"));
  let agent: Proc | null = null;

  before(async () => {
    const bundled = spawnSync(process.execPath, ["scripts/bundle-agent.mjs"], { cwd: ROOT, encoding: "utf8" });
    assert.equal(bundled.status, 0, bundled.stderr);
    cp = await TestControlPlane.start();
  });
  after(async () => {
    await agent?.kill("SIGKILL");
    await cp.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const install = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync("bash", [join(ROOT, "installers/linux/install.sh"), "--prefix", root, "--no-systemd", "--no-user", ...args], {
      encoding: "utf8",
      env: { ...process.env, ...env },
    });

  it("refuses to run without a bundle or a join string, saying what is missing", () => {
    const noBundle = install([]);
    assert.equal(noBundle.status, 2);
    assert.match(noBundle.stderr, /--bundle is required/);
    const noJoin = install(["--bundle", join(ROOT, "installers/dist/ferry-agent.mjs")]);
    assert.equal(noJoin.status, 2);
    assert.match(noJoin.stderr, /--join is required/);
  });

  it("installs, enrols and writes the unit; the installed agent comes online", async () => {
    const joinString = await cp.createJoinString("edge");
    const r = install(["--bundle", join(ROOT, "installers/dist/ferry-agent.mjs"), "--name", "edge-1"], { FERRY_JOIN: joinString });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.doesNotMatch(r.stdout + r.stderr, /ferry-join-v1/, "the join string is never echoed");
    const bin = join(root, "usr/local/bin/ferry-agent");
    const state = join(root, "var/lib/ferry-agent");
    assert.ok(existsSync(join(root, "opt/ferry-agent/ferry-agent.mjs")));
    assert.equal(statSync(state).mode & 0o777, 0o700);
    assert.equal(statSync(join(state, "agent.key")).mode & 0o777, 0o600);
    const unit = readFileSync(join(root, "etc/systemd/system/ferry-agent.service"), "utf8");
    assert.match(unit, new RegExp(`ExecStart=${bin} run --state-dir ${state}`));
    assert.match(unit, /RestartPreventExitStatus=2 3 4/);
    assert.doesNotMatch(unit, /@[A-Z_]+@/, "every placeholder is filled");

    const id = (JSON.parse(readFileSync(join(state, "identity.json"), "utf8")) as { agentId: string }).agentId;
    agent = start(bin, ["run", "--state-dir", state]);
    const v = await waitFor("the installed agent online", async () => {
      const a = await cp.api<{ status: string; name: string; facts: { agentVersion?: string } }>("GET", `/api/v1/agents/${id}`);
      return a.body.status === "online" ? a.body : undefined;
    });
    assert.equal(v.name, "edge-1");
    assert.equal(v.facts.agentVersion, (JSON.parse(readFileSync(join(ROOT, "agent/package.json"), "utf8")) as { version: string }).version);

    // Running it again keeps the identity.
    const again = install(["--bundle", join(ROOT, "installers/dist/ferry-agent.mjs")]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already enrolled/);
  });
});
