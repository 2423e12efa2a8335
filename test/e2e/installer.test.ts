// The Linux installer, for real: bundle the agent, run install.sh into a temporary root (no user creation), check what
// it laid down, then run the installed agent against a real control plane.
//
// systemd is not PID 1 on this machine, so the unit cannot be started here. What is real instead: systemd's own unit
// loader (`systemd-analyze verify`, with its dependency dump) reads the installed unit and its Docker drop-in and
// must resolve the ordering after docker.service and the socket's group; `systemctl --root` enables it offline; and the
// installed agent runs under the credentials the unit gives it — a non-root user plus the unit's
// SupplementaryGroups, applied with setpriv as systemd would — against the real Docker Engine's socket
// (root:<group> 0660), where it must offer the docker driver, and must not without the group.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestControlPlane } from "../helpers/control-plane.js";
import { dockerEngine, dockerSkipReason } from "../helpers/docker.js";
import { ROOT, start, type Proc } from "../helpers/processes.js";
import { waitFor } from "../helpers/wait.js";

// What `npm run bundle:agent` writes: the entry point and its chunks.
const BUNDLE = join(ROOT, "installers/dist/ferry-agent");

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
    const noJoin = install(["--bundle", BUNDLE]);
    assert.equal(noJoin.status, 2);
    assert.match(noJoin.stderr, /--join is required/);
    const notABundle = install(["--bundle", join(ROOT, "installers/linux")]);
    assert.equal(notABundle.status, 2);
    assert.match(notABundle.stderr, /no agent bundle at .*installers\/linux \(expected the directory npm run bundle:agent writes/);
  });

  it("installs, enrols and writes the unit; the installed agent comes online", async () => {
    const joinString = await cp.createJoinString("edge");
    const r = install(["--bundle", BUNDLE, "--name", "edge-1"], { FERRY_JOIN: joinString });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.doesNotMatch(r.stdout + r.stderr, /ferry-join-v1/, "the join string is never echoed");
    const bin = join(root, "usr/local/bin/ferry-agent");
    const state = join(root, "var/lib/ferry-agent");
    assert.ok(existsSync(join(root, "opt/ferry-agent/ferry-agent.mjs")));
    assert.deepEqual(readdirSync(join(root, "opt/ferry-agent/chunks")).sort(), readdirSync(join(BUNDLE, "chunks")).sort(), "every chunk installed");
    assert.equal(statSync(state).mode & 0o777, 0o700);
    assert.equal(statSync(join(state, "agent.key")).mode & 0o777, 0o600);
    const unit = readFileSync(join(root, "etc/systemd/system/ferry-agent.service"), "utf8");
    assert.match(unit, new RegExp(`ExecStart=${bin} run --state-dir ${state}`));
    assert.match(unit, /RestartPreventExitStatus=2 3 4/);
    assert.doesNotMatch(unit, /@[A-Z_]+@/, "every placeholder is filled");
    const dropIn = join(root, "etc/systemd/system/ferry-agent.service.d/docker.conf");
    if (spawnSync("getent", ["group", "docker"]).status === 0) {
      const conf = readFileSync(dropIn, "utf8");
      assert.match(conf, /^After=docker\.service$/m);
      assert.match(conf, /^Wants=docker\.service$/m);
      assert.match(conf, /^SupplementaryGroups=docker$/m);
    }

    const id = (JSON.parse(readFileSync(join(state, "identity.json"), "utf8")) as { agentId: string }).agentId;
    // As systemd starts it: the unit's node flags in the environment, handed to node by the wrapper.
    const unitFlags = /^Environment="FERRY_AGENT_NODE_FLAGS=([^"]*)"$/m.exec(unit)?.[1] ?? assert.fail("the unit sets no node flags");
    assert.match(unitFlags, /--jitless/);
    const runOnline = async (extra: string[]) => {
      await agent?.kill("SIGKILL");
      agent = start(bin, ["run", "--state-dir", state, ...extra], { FERRY_AGENT_NODE_FLAGS: unitFlags });
      const running = agent;
      const a = await waitFor("the installed agent online", async () => {
        if (running.child.exitCode !== null) throw new Error(`the agent exited: ${running.stderr}`);
        const r = await cp.api<{ status: string; name: string; connectedAt?: string; facts: { agentVersion?: string } }>("GET", `/api/v1/agents/${id}`);
        return r.body.status === "online" && running.logs().some((l) => l.msg === "connected") ? r.body : undefined;
      });
      const starting = running.logs().find((l) => l.msg === "starting") ?? assert.fail("no start line");
      return { a, nodeFlags: starting.nodeFlags as string[] };
    };
    const first = await runOnline([]);
    assert.equal(first.a.name, "edge-1");
    assert.equal(first.a.facts.agentVersion, (JSON.parse(readFileSync(join(ROOT, "agent/package.json"), "utf8")) as { version: string }).version);
    assert.deepEqual(first.nodeFlags, unitFlags.split(" "), "the unit's flags reach node");
    // The SSH driver needs WebAssembly, which --jitless removes: the wrapper leaves it and --no-expose-wasm out.
    const ssh = await runOnline(["--driver", "ssh.enabled=true"]);
    assert.deepEqual(ssh.nodeFlags, unitFlags.split(" ").filter((f) => f !== "--jitless" && f !== "--no-expose-wasm"));

    // Running it again keeps the identity.
    const again = install(["--bundle", BUNDLE]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already enrolled/);
  });

  it("upgrades beside a running agent: chunks of the earlier version stay until it is said none runs", () => {
    // A chunk only an earlier version had (names carry a hash of their content, so versions never share a name).
    const chunks = join(root, "opt/ferry-agent/chunks");
    const old = join(chunks, "chunk-OLDVERSION.mjs");
    writeFileSync(old, "export {};\n");
    // The entry point's own path is accepted too and names its directory.
    const kept = install(["--bundle", join(BUNDLE, "ferry-agent.mjs")]);
    assert.equal(kept.status, 0, kept.stderr);
    assert.match(kept.stdout, /kept 1 chunk\(s\) of earlier versions/);
    assert.ok(existsSync(old), "an agent started before may still import it");
    const pruned = install(["--bundle", BUNDLE, "--prune-chunks"]);
    assert.equal(pruned.status, 0, pruned.stderr);
    assert.match(pruned.stdout, /removed 1 chunk\(s\) of earlier versions/);
    assert.equal(existsSync(old), false);
    assert.deepEqual(readdirSync(chunks).sort(), readdirSync(join(BUNDLE, "chunks")).sort());
  });

  it("gives the unit to systemd's own loader: ordering after docker.service and the socket's group resolve; it enables offline", async () => {
    const engine = await dockerEngine();
    const gid = existsSync(engine.socketPath) ? statSync(engine.socketPath).gid : null;
    const group = gid === null ? "docker" : (spawnSync("getent", ["group", String(gid)], { encoding: "utf8" }).stdout.split(":")[0] ?? "docker");
    const r = install(["--bundle", BUNDLE, "--docker-group", group]);
    assert.equal(r.status, 0, r.stderr);
    const unitPath = join(root, "etc/systemd/system/ferry-agent.service");
    const v = spawnSync("systemd-analyze", ["verify", unitPath], { encoding: "utf8", env: { ...process.env, SYSTEMD_LOG_LEVEL: "debug" } });
    assert.equal(v.status, 0, v.stderr);
    const warnings = v.stderr.split("\n").filter((l) => l.startsWith(unitPath) || /docker\.conf:\d+:/.test(l));
    assert.deepEqual(warnings, [], "systemd has nothing to say about the unit or its drop-in");
    // The dependency dump goes to stdout, messages to stderr.
    const dump = `${v.stdout}\n${v.stderr}`;
    assert.match(dump, new RegExp(`DropIn Path: ${join(root, "etc/systemd/system/ferry-agent.service.d/docker.conf").replace(/[.]/g, "\\.")}`));
    assert.match(dump, /^\s+After: docker\.service \(origin-file\)$/m);
    assert.match(dump, /^\s+Wants: docker\.service \(origin-file\)$/m);
    assert.match(dump, new RegExp(`^\\s+SupplementaryGroups: ${group}$`, "m"));
    const enable = spawnSync("systemctl", ["--root", root, "enable", "ferry-agent.service"], { encoding: "utf8" });
    assert.equal(enable.status, 0, enable.stderr);
    assert.deepEqual(readdirSync(join(root, "etc/systemd/system/multi-user.target.wants")), ["ferry-agent.service"]);
    // --no-docker takes the drop-in away again.
    assert.equal(install(["--bundle", BUNDLE, "--no-docker"]).status, 0);
    assert.equal(existsSync(join(root, "etc/systemd/system/ferry-agent.service.d/docker.conf")), false);
    assert.equal(install(["--bundle", BUNDLE, "--docker-group", group]).status, 0);
  });

  it("under the unit's credentials the agent reaches the Docker Engine through the group, and only through it", async (t) => {
    const skip = await dockerSkipReason("installer: Docker socket access");
    if (skip) return t.skip(skip);
    const engine = await dockerEngine();
    const conf = readFileSync(join(root, "etc/systemd/system/ferry-agent.service.d/docker.conf"), "utf8");
    const group = /^SupplementaryGroups=(\S+)$/m.exec(conf)?.[1] ?? assert.fail("no SupplementaryGroups in the drop-in");
    const gid = spawnSync("getent", ["group", group], { encoding: "utf8" }).stdout.split(":")[2] ?? "";
    assert.equal(Number(gid), statSync(engine.socketPath).gid, "the drop-in names the socket's group");
    // A non-root service user, as useradd --system would make; the scratch root must be traversable by it.
    const nobody = 65534;
    const state = join(root, "var/lib/ferry-agent");
    chmodSync(root, 0o755);
    for (const p of [state, ...readdirSync(state).map((f) => join(state, f))]) chownSync(p, nobody, nobody);
    const id = (JSON.parse(readFileSync(join(state, "identity.json"), "utf8")) as { agentId: string }).agentId;
    const bin = join(root, "usr/local/bin/ferry-agent");
    // Facts are written shortly after the Hello; wait for the ones the new process reported.
    const runWith = async (groups: string[], docker: boolean) => {
      await agent?.kill("SIGKILL");
      agent = start("setpriv", [`--reuid=${nobody}`, `--regid=${nobody}`, ...groups, bin, "run", "--state-dir", state, "--docker-socket", engine.socketPath]);
      const running = agent;
      return waitFor(`the agent online ${docker ? "with" : "without"} the docker driver`, async () => {
        if (running.child.exitCode !== null) throw new Error(`the agent exited: ${running.stderr}`);
        const a = await cp.api<{ status: string; facts: { drivers?: string[] } }>("GET", `/api/v1/agents/${id}`);
        return a.body.status === "online" && (a.body.facts.drivers ?? []).includes("docker") === docker ? running : undefined;
      });
    };
    await runWith([`--groups=${gid}`], true);
    const without = await runWith(["--clear-groups"], false);
    assert.match(without.stdout + without.stderr, /the docker driver cannot reach its targets/);
    await agent?.kill("SIGKILL");
    agent = null;
  });
});
