// The A/B split as the Docker driver's route operations drive it, against a real HAProxy on loopback in front of two
// small HTTP servers standing for the slots (no engine needed: route operations touch only the router). What an
// engine's A/B rollout sends: a weights operation with a split, a measure, then either the switch (which lifts the
// split) or the rollback (weight 0 without a split, then restore).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import type { DockerRouteSplit, DockerTargetConfig, RouteOperation } from "@ferry/contract";

import { haproxySkipReason, startHaproxy, type TestHaproxy } from "../../../../test/helpers/haproxy.js";
import { freePort } from "../../../../test/helpers/net.js";
import { haproxyConfig } from "../../routing/haproxy/haproxy-config.js";
import { HaproxyRouter } from "../../routing/haproxy/haproxy-router.js";
import { DriverError, type ProgressSink, type RouteContext } from "../driver.js";
import type { DockerPhaseState } from "./phase-state.js";
import { routeOperation, slotRestore, slotSwitch } from "./slots.js";

const missing = haproxySkipReason();
if (missing && process.env["CI"] === "true") throw new Error(missing);

const dir = mkdtempSync(join(tmpdir(), "ferry-split-"));
const socket = join(dir, "admin.sock");
const maintenanceMap = join(dir, "maintenance.map");
const splitMap = join(dir, "split.map");
const servers: http.Server[] = [];
let haproxy: TestHaproxy | undefined;
let listen = 0;
let slots = { blue: 0, green: 0 };
const router = new HaproxyRouter({ socket, maintenanceMap, splitMap });

class Lines implements ProgressSink {
  readonly lines: string[] = [];
  step(): void {}
  log(line: string): void {
    this.lines.push(line);
  }
}

const SPLIT_KEY: DockerRouteSplit = { by: "cookie", name: "ab_uid" };
function ctx(split: DockerRouteSplit | null = SPLIT_KEY): RouteContext<DockerTargetConfig> & { progress: Lines } {
  const config: DockerTargetConfig = { container: "web", route: { service: "web", listen: `127.0.0.1:${listen}`, slots, ...(split ? { split } : {}) } };
  return { taskId: "tsk_split", target: { id: "tgt-web", name: "web", kind: "docker", config: config as unknown as Record<string, unknown> }, config, signal: new AbortController().signal, progress: new Lines() };
}

/** The state the start step left: blue serves, the new version is in the green slot. */
const state = (): DockerPhaseState => ({ slot: { service: "web", active: null, idle: "green", port: slots.green, weightsBefore: { blue: 100, green: 0 } } }) as unknown as DockerPhaseState;

async function slotServer(name: string): Promise<number> {
  const s = http.createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  servers.push(s);
  return (s.address() as AddressInfo).port;
}

function get(headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port: listen, path: "/", headers, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}
const as = (uid: string) => get({ cookie: `ab_uid=${uid}` });

describe("A/B split through the Docker driver's route operations (real haproxy)", { skip: missing, concurrency: false }, () => {
  before(async () => {
    writeFileSync(maintenanceMap, "");
    writeFileSync(splitMap, "");
    listen = await freePort();
    slots = { blue: await slotServer("blue"), green: await slotServer("green") };
    const layout = { socket, maintenanceMap, splitMap };
    const addr = { blue: { address: "127.0.0.1", port: slots.blue }, green: { address: "127.0.0.1", port: slots.green } };
    haproxy = await startHaproxy(dir, haproxyConfig(layout, [{ name: "web", listen: `127.0.0.1:${listen}`, slots: addr, split: SPLIT_KEY }]), () => router.info());
  });
  after(async () => {
    await haproxy?.stop();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const split = (newWeight: number, allowlist: string[], key: DockerRouteSplit = SPLIT_KEY): RouteOperation => ({ op: "weights", newWeight, split: { ...key, allowlist } });
  const sha = (values: string[]) => createHash("sha256").update(values.join("\n")).digest("hex");

  it("a weights operation with a split: cookie values split by hash, allowlisted ones to the new slot, no cookie to the stable slot", async () => {
    const c = ctx();
    const out = await routeOperation(c, router, split(20, ["qa-2", "qa-1", "qa-1"]), state());
    assert.deepEqual(out, {
      weights: { blue: 100, green: 0 },
      newSlot: "green",
      stableSlot: "blue",
      split: { by: "cookie", name: "ab_uid", slot: "green", percent: 20, allowlist: { count: 2, sha256: sha(["qa-1", "qa-2"]) } },
    });
    assert.match(c.progress.lines.join("\n"), /A\/B split by cookie ab_uid: the green slot \(new\) gets the values hashing under 20% and 2 allowlisted/);
    for (const v of ["qa-1", "qa-2"]) assert.equal(await as(v), "green");
    assert.equal(await get(), "blue");
    const seen: string[] = [];
    for (let i = 0; i < 200; i++) seen.push(await as(`u${i}`));
    const green = seen.filter((b) => b === "green").length;
    assert.ok(green >= 20 && green <= 60, `${green} of 200 on the new slot at 20 %`);

    const measured = await routeOperation(ctx(), router, { op: "measure" }, state());
    assert.deepEqual(measured["split"], out["split"]);
    // The next step of a rollout widens the share; the users already on the new slot stay there.
    await routeOperation(ctx(), router, split(50, ["qa-1"]), state());
    for (let i = 0; i < 200; i++) if (seen[i] === "green") assert.equal(await as(`u${i}`), "green");
    assert.deepEqual((await router.split("web"))?.allowlist, ["qa-1"]);
  });

  it("a rollback at weight 0 (no split) lifts the split: everyone on the stable slot", async () => {
    const c = ctx();
    const out = await routeOperation(c, router, { op: "weights", newWeight: 0 }, state());
    assert.deepEqual(out, { weights: { blue: 100, green: 0 }, newSlot: "green", stableSlot: "blue", split: null });
    assert.match(c.progress.lines.join("\n"), /the A\/B split is lifted/);
    assert.equal(await router.split("web"), null);
    for (const v of ["qa-1", "u1", "u2", "u3", "u4", "u5"]) assert.equal(await as(v), "blue");
    assert.equal(await get(), "blue");
    // The restore phase after it finds no split left, and says nothing of one.
    const restored = await slotRestore(ctx() as never, {} as never, router, state());
    assert.equal(restored["splitLifted"], undefined);
  });

  it("a split by a cookie or header the route does not name is refused, and nothing changes", async () => {
    await routeOperation(ctx(), router, split(10, ["qa-1"]), state());
    const before = await router.split("web");
    const refused = (code: string, re: RegExp) => (e: unknown) => e instanceof DriverError && e.code === code && re.test(e.message);
    await assert.rejects(routeOperation(ctx(null), router, split(30, []), state()), refused("ROUTE_SPLIT_UNCONFIGURED", /names no split key \(config\.route\.split/));
    await assert.rejects(routeOperation(ctx(), router, split(30, [], { by: "header", name: "ab_uid" }), state()), refused("ROUTE_SPLIT_UNCONFIGURED", /splits by cookie ab_uid/));
    await assert.rejects(routeOperation(ctx(), router, split(30, [], { by: "cookie", name: "uid" }), state()), refused("ROUTE_SPLIT_UNCONFIGURED", /asked for/));
    assert.deepEqual(await router.split("web"), before);
    assert.deepEqual(await router.weights("web"), { blue: 100, green: 0 });
  });

  it("a router whose config has no split map has no split in force: measure, switch and restore go on", async () => {
    const noSplitRules = new HaproxyRouter({ socket, maintenanceMap, splitMap: join(dir, "not-loaded.map") });
    const measured = await routeOperation(ctx(), noSplitRules, { op: "measure" }, state());
    assert.equal(measured["split"], null);
    assert.deepEqual(await slotRestore(ctx() as never, {} as never, noSplitRules, state()), {});
    await assert.rejects(routeOperation(ctx(), noSplitRules, split(10, []), state()), (e: unknown) => (e as { code?: string }).code === "ROUTE_UNKNOWN");
  });

  it("the switch gives the new slot everything and lifts the split", async () => {
    const c = ctx();
    await slotSwitch(c as never, router, state());
    assert.equal(await router.split("web"), null);
    assert.deepEqual(await router.weights("web"), { blue: 0, green: 100 });
    assert.match(c.progress.lines.join("\n"), /switch: the A\/B split is lifted/);
    for (const v of ["qa-1", "u1", "u2"]) assert.equal(await as(v), "green");
    assert.equal(await get(), "green");
  });
});
