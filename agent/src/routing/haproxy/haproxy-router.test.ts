// Against a real HAProxy (Debian's haproxy, installed by scripts/test-env.sh), started by this suite on loopback
// ports with its runtime socket in a temp dir, in front of two small HTTP servers standing for the slots.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { freePort } from "../../../../test/helpers/net.js";

import { RouterError } from "../router.js";
import { haproxyConfig } from "./haproxy-config.js";
import { HaproxyRouter } from "./haproxy-router.js";

const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => existsSync(p));
const missing = HAPROXY ? false : "haproxy is not installed (scripts/test-env.sh installs it)";
if (missing && process.env["CI"] === "true") throw new Error(missing);

const dir = mkdtempSync(join(tmpdir(), "ferry-haproxy-"));
const socket = join(dir, "admin.sock");
const maintenanceMap = join(dir, "maintenance.map");
const splitMap = join(dir, "split.map");
let proc: ChildProcess | undefined;
const servers: http.Server[] = [];
let listenPort = 0;
/** Services split by a cookie (shop) and by a header (api), on the same two slot servers. */
let shopPort = 0;
let apiPort = 0;
let ports = { blue: 0, green: 0, spare: 0 };
/** Status the green slot answers with; the blue one always answers 200. */
let greenStatus = 200;
let slowMs = 0;

async function slotServer(name: string, status: () => number): Promise<number> {
  const s = http.createServer((req, res) => {
    const send = (): void => {
      res.writeHead(status(), { "content-type": "text/plain" });
      res.end(name);
    };
    if (req.url === "/slow" && slowMs > 0) setTimeout(send, slowMs);
    else send();
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  servers.push(s);
  return (s.address() as AddressInfo).port;
}

function get(path = "/", port = listenPort, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

const slotAddresses = () => ({ blue: { address: "127.0.0.1", port: ports.blue }, green: { address: "127.0.0.1", port: ports.green } });

async function startHaproxy(): Promise<void> {
  const cfg = join(dir, "haproxy.cfg");
  writeFileSync(
    cfg,
    haproxyConfig({ socket, maintenanceMap, splitMap }, [
      { name: "web", listen: `127.0.0.1:${listenPort}`, slots: slotAddresses() },
      { name: "shop", listen: `127.0.0.1:${shopPort}`, slots: slotAddresses(), split: { by: "cookie", name: "ab_uid" } },
      { name: "api", listen: `127.0.0.1:${apiPort}`, slots: slotAddresses(), split: { by: "header", name: "X-User-Id" } },
    ]),
  );
  const check = spawnSync(HAPROXY!, ["-c", "-q", "-f", cfg], { encoding: "utf8" });
  assert.equal(check.status, 0, `haproxy -c: ${check.stderr}`);
  rmSync(socket, { force: true });
  proc = spawn(HAPROXY!, ["-db", "-f", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  const router = new HaproxyRouter({ socket, maintenanceMap });
  for (let i = 0; i < 100; i++) {
    try {
      await router.info();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error("haproxy did not come up");
}

async function stopHaproxy(): Promise<void> {
  const p = proc;
  if (!p || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  await exited;
}

describe("HAProxy router (real haproxy on loopback)", { skip: missing }, () => {
  const router = new HaproxyRouter({ socket, maintenanceMap, splitMap, drainPollMs: 20 });

  before(async () => {
    writeFileSync(maintenanceMap, "");
    writeFileSync(splitMap, "");
    listenPort = await freePort();
    shopPort = await freePort();
    apiPort = await freePort();
    ports = { blue: await slotServer("blue", () => 200), green: await slotServer("green", () => greenStatus), spare: await slotServer("spare", () => 200) };
    await startHaproxy();
  });
  after(async () => {
    await stopHaproxy();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports its kind, version and an epoch", async () => {
    const info = await router.info();
    assert.equal(info.kind, "haproxy");
    assert.match(info.version, /^2\./);
    assert.match(info.epoch, /^\d+@\d+$/);
  });

  it("starts with all traffic on the active slot", async () => {
    assert.deepEqual(await router.weights("web"), { blue: 100, green: 0 });
    for (let i = 0; i < 5; i++) assert.equal((await get()).body, "blue");
  });

  it("shifts traffic by weight without a reload, and reads the weights back", async () => {
    assert.deepEqual(await router.setWeights("web", { blue: 50, green: 50 }), { blue: 50, green: 50 });
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await get()).body);
    assert.deepEqual([...seen].sort(), ["blue", "green"]);
    assert.deepEqual(await router.setWeights("web", { blue: 0, green: 100 }), { blue: 0, green: 100 });
    for (let i = 0; i < 5; i++) assert.equal((await get()).body, "green");
    await assert.rejects(router.setWeights("web", { blue: 0, green: 0 }), (e: unknown) => e instanceof RouterError && e.code === "ROUTER_COMMAND_FAILED");
    await assert.rejects(router.setWeights("web", { blue: 101, green: 0 }), (e: unknown) => e instanceof RouterError && e.code === "ROUTER_COMMAND_FAILED");
    await router.setWeights("web", { blue: 100, green: 0 });
  });

  it("counts requests and 5xx per slot", async () => {
    const before = await router.counters("web");
    greenStatus = 500;
    await router.setWeights("web", { blue: 0, green: 100 });
    for (let i = 0; i < 6; i++) assert.equal((await get()).status, 500);
    await router.setWeights("web", { blue: 100, green: 0 });
    for (let i = 0; i < 4; i++) assert.equal((await get()).status, 200);
    greenStatus = 200;
    const after = await router.counters("web");
    assert.equal(after.epoch, before.epoch);
    assert.equal(after.slots.green.requests - before.slots.green.requests, 6);
    assert.equal(after.slots.green.errors5xx - before.slots.green.errors5xx, 6);
    assert.equal(after.slots.blue.requests - before.slots.blue.requests, 4);
    assert.equal(after.slots.blue.errors5xx - before.slots.blue.errors5xx, 0);
  });

  it("counts requests a slot could not take as its failures, though HAProxy retried them on the other slot", async () => {
    const closed = await freePort();
    await router.setServer("web", "green", "127.0.0.1", closed);
    const before = await router.counters("web");
    await router.setWeights("web", { blue: 50, green: 50 });
    for (let i = 0; i < 10; i++) assert.deepEqual(await get(), { status: 200, body: "blue" });
    await router.setWeights("web", { blue: 100, green: 0 });
    const after = await router.counters("web");
    const failed = after.slots.green.errors5xx - before.slots.green.errors5xx;
    assert.ok(failed >= 3, `green failed ${failed} times`);
    assert.equal(after.slots.green.requests - before.slots.green.requests, failed);
    await router.setServer("web", "green", "127.0.0.1", ports.green);
  });

  it("points a slot at another port", async () => {
    const s = await router.setServer("web", "green", "127.0.0.1", ports.spare);
    assert.equal(s.port, ports.spare);
    await router.setWeights("web", { blue: 0, green: 100 });
    assert.equal((await get()).body, "spare");
    await router.setServer("web", "green", "127.0.0.1", ports.green);
    assert.equal((await get()).body, "green");
    await router.setWeights("web", { blue: 100, green: 0 });
    await assert.rejects(router.setServer("web", "green", "127.0.0.1; show info", 1), (e: unknown) => e instanceof RouterError);
  });

  it("drains a slot: waits for open connections, then takes it out", async () => {
    slowMs = 600;
    const slow = get("/slow");
    await sleep(100);
    await router.setWeights("web", { blue: 0, green: 100 });
    const drained = await router.drain("web", "blue", { timeoutMs: 5000 });
    assert.equal(drained.drained, true);
    assert.equal(drained.remaining, 0);
    assert.ok(drained.waitedMs >= 300, `waited ${drained.waitedMs} ms for the open request`);
    assert.deepEqual(await slow, { status: 200, body: "blue" });
    assert.equal((await router.slots("web")).blue.state, "maint");
    // A drain that times out says how many connections were left.
    slowMs = 1500;
    await router.setWeights("web", { blue: 100, green: 0 });
    const slow2 = get("/slow");
    await sleep(100);
    await router.setWeights("web", { blue: 0, green: 100 });
    const cut = await router.drain("web", "blue", { timeoutMs: 200 });
    assert.equal(cut.drained, false);
    assert.equal(cut.remaining, 1);
    await slow2;
    slowMs = 0;
    // The flip back (a rollback) puts the retained slot in service again.
    await router.setWeights("web", { blue: 100, green: 0 });
    assert.equal((await router.slots("web")).blue.state, "ready");
    assert.equal((await get()).body, "blue");
  });

  it("maintenance mode answers 503 with the message, and goes off again", async () => {
    await router.setMaintenance("web", "Back at 10:00; upgrading the database");
    assert.equal(await router.maintenance("web"), "Back at 10:00; upgrading the database");
    assert.deepEqual(await get(), { status: 503, body: "Back at 10:00; upgrading the database\n" });
    await router.setMaintenance("web", null);
    assert.equal(await router.maintenance("web"), null);
    assert.equal((await get()).status, 200);
    await assert.rejects(router.setMaintenance("web", "line\nbreak"), (e: unknown) => e instanceof RouterError);
  });

  describe("A/B split", () => {
    const cookie = (v: string) => get("/", shopPort, { cookie: `theme=dark; ab_uid=${v}` }).then((r) => r.body);
    const users = Array.from({ length: 1000 }, (_, i) => `user-${i}-${(i * 7919) % 1013}`);
    /** Every user's slot, 25 requests at a time (bounded: 1,000 requests in all). */
    async function slotsOf(values: readonly string[]): Promise<string[]> {
      const out: string[] = [];
      for (let i = 0; i < values.length; i += 25) out.push(...(await Promise.all(values.slice(i, i + 25).map(cookie))));
      return out;
    }
    const allowlist = ["tester-1", 'q"#\\x', "semi;colon", "'quoted'", "tester-1"];

    it("sends a stable share of cookie values to the new slot, the same value always to the same slot, allowlisted values always", async () => {
      assert.equal(await router.split("shop"), null);
      assert.deepEqual(await router.setWeights("shop", { blue: 100, green: 0 }), { blue: 100, green: 0 });
      const set = await router.setSplit("shop", { slot: "green", percent: 30, allowlist });
      assert.deepEqual(set, { slot: "green", percent: 30, allowlist: ["'quoted'", 'q"#\\x', "semi;colon", "tester-1"] });
      assert.deepEqual(await router.split("shop"), set);

      const first = await slotsOf(users);
      const green = first.filter((b) => b === "green").length;
      assert.ok(green >= 250 && green <= 350, `${green} of 1000 users on the new slot at 30 %`);
      assert.equal(first.filter((b) => b !== "green" && b !== "blue").length, 0);
      // Sticky: the same value lands on the same slot again.
      assert.deepEqual(await slotsOf(users.slice(0, 200)), first.slice(0, 200));
      // Allowlisted values reach the new slot every time (cookie values cannot hold ";", so that one goes by header).
      for (const v of ["tester-1", "'quoted'"]) for (let i = 0; i < 5; i++) assert.equal(await cookie(v), "green");
      // No cookie, or an empty one: the stable slot.
      for (let i = 0; i < 10; i++) assert.equal((await get("/", shopPort)).body, "blue");
      assert.equal((await get("/", shopPort, { cookie: "ab_uid=" })).body, "blue");
      assert.equal((await get("/", shopPort, { cookie: "other=user-1" })).body, "blue");

      // A larger share keeps everyone the smaller one had.
      await router.setSplit("shop", { slot: "green", percent: 60, allowlist: ["tester-2"] });
      const wider = await slotsOf(users.slice(0, 300));
      first.slice(0, 300).forEach((b, i) => b === "green" && assert.equal(wider[i], "green", `${users[i]} left the new slot when the share grew`));
      const share = wider.filter((b) => b === "green").length / 3;
      assert.ok(share >= 52 && share <= 68, `${share} % on the new slot at 60 %`);
      assert.deepEqual((await router.split("shop"))?.allowlist, ["tester-2"]);
      assert.equal(await cookie("tester-2"), "green");

      // Rollback: the split lifted, weight 0 on the new slot: everyone on the stable slot.
      assert.equal(await router.setSplit("shop", null), null);
      assert.deepEqual(await router.setWeights("shop", { blue: 100, green: 0 }), { blue: 100, green: 0 });
      assert.ok((await slotsOf(users.slice(0, 100))).every((b) => b === "blue"));
      assert.equal(await cookie("tester-2"), "blue");
      assert.equal(await router.setSplit("shop", null), null, "lifting a split twice is harmless");
    });

    it("splits by a header, whole values (commas, semicolons, backslashes), and puts a drained slot back in service", async () => {
      const header = (v: string) => get("/", apiPort, { "x-user-id": v }).then((r) => r.body);
      await router.drain("api", "green", { timeoutMs: 1000 });
      assert.equal((await router.slots("api")).green.state, "maint");
      await router.setSplit("api", { slot: "green", percent: 0, allowlist: ["a,b", "semi;colon", 'q"#\\x'] });
      assert.equal((await router.slots("api")).green.state, "ready");
      for (const v of ["a,b", "semi;colon", 'q"#\\x']) assert.equal(await header(v), "green", v);
      for (const v of ["a", "b", "semi", "someone"]) assert.equal(await header(v), "blue", v);
      assert.equal((await get("/", apiPort)).body, "blue");
      // 100 %: every value on the new slot; still none without the header.
      await router.setSplit("api", { slot: "green", percent: 100, allowlist: [] });
      for (const v of users.slice(0, 20)) assert.equal(await header(v), "green");
      assert.equal((await get("/", apiPort)).body, "blue");
      // The other slot: a split is for whichever slot the rollout started.
      await router.setWeights("api", { blue: 0, green: 100 });
      await router.setSplit("api", { slot: "blue", percent: 100, allowlist: [] });
      assert.equal(await header("someone"), "blue");
      assert.equal((await get("/", apiPort)).body, "green");
      await router.setSplit("api", null);
      await router.setWeights("api", { blue: 100, green: 0 });
      assert.equal(await header("someone"), "blue");
    });

    it("generates split rules HAProxy accepts for every name route.split allows", () => {
      const cfg = join(dir, "names.cfg");
      const name = "Az09!%&*+.^_|~-";
      writeFileSync(
        cfg,
        haproxyConfig({ socket: join(dir, "names.sock"), maintenanceMap, splitMap }, [
          { name: "c", listen: "127.0.0.1:1", slots: slotAddresses(), split: { by: "cookie", name } },
          { name: "h", listen: "127.0.0.1:2", slots: slotAddresses(), split: { by: "header", name } },
        ]),
      );
      const check = spawnSync(HAPROXY!, ["-c", "-f", cfg], { encoding: "utf8" });
      assert.equal(check.status, 0, check.stderr);
      assert.doesNotMatch(check.stderr, /WARNING|ALERT/);
      assert.throws(() => haproxyConfig({ socket, maintenanceMap, splitMap }, [{ name: "c", listen: "127.0.0.1:1", slots: slotAddresses(), split: { by: "cookie", name: "a#b" } }]), /split name/);
      assert.throws(() => haproxyConfig({ socket, maintenanceMap }, [{ name: "c", listen: "127.0.0.1:1", slots: slotAddresses(), split: { by: "cookie", name: "uid" } }]), /splitMap/);
    });

    it("refuses a bad split, and says when there is no split map", async () => {
      const refused = (e: unknown) => e instanceof RouterError && e.code === "ROUTER_COMMAND_FAILED";
      await assert.rejects(router.setSplit("shop", { slot: "green", percent: 101, allowlist: [] }), refused);
      await assert.rejects(router.setSplit("shop", { slot: "green", percent: 10, allowlist: ["two words"] }), refused);
      await assert.rejects(router.setSplit("shop", { slot: "green", percent: 10, allowlist: Array.from({ length: 101 }, (_, i) => `u${i}`) }), refused);
      await assert.rejects(router.setSplit("shop", { slot: "red" as "green", percent: 10, allowlist: [] }), refused);
      await assert.rejects(router.setSplit("Bad Name", { slot: "green", percent: 10, allowlist: [] }), (e: unknown) => e instanceof RouterError && e.code === "ROUTE_UNKNOWN");
      await assert.rejects(router.setSplit("web;show info", null), (e: unknown) => e instanceof RouterError && e.code === "ROUTE_UNKNOWN");
      const noMap = new HaproxyRouter({ socket, maintenanceMap });
      await assert.rejects(noMap.setSplit("shop", null), refused);
      const wrongMap = new HaproxyRouter({ socket, maintenanceMap, splitMap: join(dir, "other.map") });
      await assert.rejects(wrongMap.split("shop"), (e: unknown) => e instanceof RouterError && e.code === "ROUTE_UNKNOWN");
      await assert.rejects(wrongMap.setSplit("shop", null), (e: unknown) => e instanceof RouterError && e.code === "ROUTE_UNKNOWN");
      assert.equal(await router.split("shop"), null);
    });
  });

  it("names an unknown service and an unreachable router", async () => {
    await assert.rejects(router.weights("nope"), (e: unknown) => e instanceof RouterError && e.code === "ROUTER_COMMAND_FAILED" || (e instanceof RouterError && e.code === "ROUTE_UNKNOWN"));
    await assert.rejects(router.counters("nope"), (e: unknown) => e instanceof RouterError && e.code === "ROUTE_UNKNOWN");
    await assert.rejects(router.weights("Bad Name"), (e: unknown) => e instanceof RouterError && e.code === "ROUTE_UNKNOWN");
    const gone = new HaproxyRouter({ socket: join(dir, "missing.sock"), maintenanceMap });
    await assert.rejects(gone.info(), (e: unknown) => e instanceof RouterError && e.code === "ROUTER_UNAVAILABLE");
  });

  it("a restart changes the epoch (its counters start again)", async () => {
    const before = await router.info();
    await stopHaproxy();
    await sleep(1100);
    await startHaproxy();
    const after = await router.info();
    assert.notEqual(after.epoch, before.epoch);
    assert.equal((await router.counters("web")).slots.green.requests, 0);
  });
});
