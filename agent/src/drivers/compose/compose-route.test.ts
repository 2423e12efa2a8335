// A Compose project's route tasks over several routed services, against a real HAProxy on loopback in front of small
// HTTP servers standing for the slots (no engine needed: route operations touch only the router). web has an A/B
// split key, api has none: weights move both, a measure sums them, a split by a key api lacks is refused before web
// changes, a start step that began no new slot leaves the weights alone, maintenance covers both.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import type { ComposeRoute, ComposeTargetConfig, RouteOperation } from "@ferry/contract";

import { haproxySkipReason, startHaproxy, type TestHaproxy } from "../../../../test/helpers/haproxy.js";
import { freePort } from "../../../../test/helpers/net.js";
import { haproxyConfig } from "../../routing/haproxy/haproxy-config.js";
import { HaproxyRouter } from "../../routing/haproxy/haproxy-router.js";
import { DriverError } from "../driver.js";
import { routeOperation, type RoutedStart } from "./slots.js";

const missing = haproxySkipReason();
if (missing && process.env["CI"] === "true") throw new Error(missing);

const dir = mkdtempSync(join(tmpdir(), "ferry-compose-route-"));
const socket = join(dir, "admin.sock");
const maintenanceMap = join(dir, "maintenance.map");
const splitMap = join(dir, "split.map");
const servers: http.Server[] = [];
let haproxy: TestHaproxy | undefined;
const router = new HaproxyRouter({ socket, maintenanceMap, splitMap });
const routes: ComposeRoute[] = [];
const lines: string[] = [];
const log = (l: string) => lines.push(l);

const config = (): ComposeTargetConfig => ({ project: "shop", directory: "/srv/shop", routes });
/** What a start step left: each routed service's new version in its green slot, blue serving. */
const started = (...services: string[]): Record<string, RoutedStart> =>
  Object.fromEntries(routes.filter((r) => services.includes(r.composeService)).map((r) => [r.composeService, { route: r, slot: { service: r.service, active: "blue", idle: "green", port: r.slots.green, weightsBefore: { blue: 100, green: 0 } } }]));
const op = (o: RouteOperation, s?: Record<string, RoutedStart>) => routeOperation(config(), router, o, s, log);

async function slotServer(body: string): Promise<number> {
  const s = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  servers.push(s);
  return (s.address() as AddressInfo).port;
}

function get(port: number, cookie?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/", agent: false, ...(cookie ? { headers: { cookie } } : {}) }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      })
      .on("error", reject);
  });
}

describe("route tasks on a Compose project with several routed services (real haproxy)", { skip: missing, concurrency: false }, () => {
  before(async () => {
    for (const [composeService, service, split] of [["web", "shop_web", true], ["api", "shop_api", false]] as const) {
      const listen = await freePort();
      const slots = { blue: await slotServer(`${composeService} blue`), green: await slotServer(`${composeService} green`) };
      routes.push({ composeService, service, listen: `127.0.0.1:${listen}`, slots, ...(split ? { split: { by: "cookie" as const, name: "user" } } : {}) });
    }
    writeFileSync(maintenanceMap, "");
    writeFileSync(splitMap, "");
    const layout = routes.map((r) => ({
      name: r.service,
      listen: r.listen,
      slots: { blue: { address: "127.0.0.1", port: r.slots.blue }, green: { address: "127.0.0.1", port: r.slots.green } },
      active: "blue" as const,
      ...(r.split ? { split: r.split } : {}),
    }));
    haproxy = await startHaproxy(dir, haproxyConfig({ socket, maintenanceMap, splitMap }, layout), () => router.info());
  });

  after(async () => {
    await haproxy?.stop();
    for (const s of servers) await new Promise((r) => s.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const port = (service: string) => Number(routes.find((r) => r.composeService === service)!.listen.split(":")[1]);

  it("weights move every routed service the start step began; a measure sums their counters", async () => {
    const w = await op({ op: "weights", newWeight: 50 }, started("web", "api"));
    assert.deepEqual(w["weights"], { blue: 50, green: 50 });
    assert.equal(w["newSlot"], "green");
    assert.deepEqual(Object.keys(w["services"] as object).sort(), ["api", "web"]);
    assert.deepEqual(await router.weights("shop_api"), { blue: 50, green: 50 });
    for (let i = 0; i < 20; i++) {
      await get(port("web"));
      await get(port("api"));
    }
    const m = await op({ op: "measure" }, started("web", "api"));
    const services = m["services"] as Record<string, { new: { requests: number }; stable: { requests: number } }>;
    const sum = (side: "new" | "stable") => services["web"]![side].requests + services["api"]![side].requests;
    assert.equal((m["new"] as { requests: number }).requests, sum("new"));
    assert.equal((m["stable"] as { requests: number }).requests, sum("stable"));
    assert.equal(sum("new") + sum("stable"), 40);
    assert.equal(typeof m["epoch"], "string");
    assert.ok(JSON.stringify(m).length < 16 * 1024, "within a route result's bound");
  });

  it("only the services whose new slot was begun move; none begun leaves the weights alone", async () => {
    await op({ op: "weights", newWeight: 0 }, started("web", "api"));
    await op({ op: "weights", newWeight: 20 }, started("web"));
    assert.deepEqual(await router.weights("shop_web"), { blue: 80, green: 20 });
    assert.deepEqual(await router.weights("shop_api"), { blue: 100, green: 0 });
    const none = await op({ op: "weights", newWeight: 70 }, {});
    assert.equal(none["unchanged"], true);
    assert.deepEqual(await router.weights("shop_web"), { blue: 80, green: 20 });
    const measured = await op({ op: "measure" }, {});
    assert.equal(measured["unchanged"], true);
    assert.equal(typeof measured["epoch"], "string");
    await op({ op: "weights", newWeight: 0 }, started("web"));
  });

  it("an A/B split needs the key on every route concerned: refused before anything changes; on web alone it splits", async () => {
    const before = await router.weights("shop_web");
    await assert.rejects(op({ op: "weights", newWeight: 50, split: { by: "cookie", name: "user", allowlist: ["qa"] } }, started("web", "api")), (e: unknown) => {
      assert.ok(e instanceof DriverError);
      assert.equal(e.code, "ROUTE_SPLIT_UNCONFIGURED");
      assert.match(e.message, /the route of api names no split key \(config\.routes \(api\)\.split/);
      return true;
    });
    assert.deepEqual(await router.weights("shop_web"), before);
    assert.equal(await router.split("shop_web"), null);
    const w = await op({ op: "weights", newWeight: 50, split: { by: "cookie", name: "user", allowlist: ["qa"] } }, started("web"));
    assert.equal((w["split"] as { slot: string }).slot, "green");
    assert.deepEqual(await get(port("web"), "user=qa"), { status: 200, body: "web green" });
    assert.deepEqual(await get(port("web")), { status: 200, body: "web blue" });
    // Weights without a split lift it (the rollback's weight 0).
    const back = await op({ op: "weights", newWeight: 0 }, started("web"));
    assert.equal(back["split"], null);
    assert.equal(await router.split("shop_web"), null);
    assert.deepEqual(await get(port("web"), "user=qa"), { status: 200, body: "web blue" });
  });

  it("maintenance covers every routed service of the project", async () => {
    const on = await op({ op: "maintenance", message: "back soon" });
    assert.deepEqual(on, { maintenance: "back soon", services: { web: { maintenance: "back soon" }, api: { maintenance: "back soon" } } });
    assert.deepEqual(await get(port("api")), { status: 503, body: "back soon" });
    assert.deepEqual(await get(port("web")), { status: 503, body: "back soon" });
    await op({ op: "maintenance", message: null });
    assert.deepEqual(await get(port("api")), { status: 200, body: "api blue" });
  });
});
