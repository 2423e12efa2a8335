// The operator console in a real browser (Debian's Chromium through playwright-core) against a real `ferry server`,
// real agents on the real Docker Engine and a real registry. One browser, one page per person, reused across steps:
//   - rita (release manager, deployer and approver) promotes shop@1 dev → staging → prod from the console; she is told why she
//     cannot approve her own promotions; alice (approver) approves from her own session; rita's pages follow the
//     promotion and the deployment live, with the log streamed, without a reload;
//   - vic (viewer) sees why every action is closed to him, and the server's own refusal (code and message) when he
//     tries one the console cannot judge in advance (break glass);
//   - a rollback of dev from the console after shop@2;
//   - an agent stopped is shown offline, never in sync, within the liveness window;
//   - at 420 px the pages do not overflow sideways;
//   - the token never appears in a URL the browser requests; the event stream needs the token.
// Screenshots of the main pages go to test-artifacts/console/.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { TestAgent } from "../helpers/agent.js";
import { artifactsDir, chromiumSkipReason, launchChromium } from "../helpers/browser.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { buildTestImage, dockerEngine, dockerSkipReason, runDocker } from "../helpers/docker.js";
import { freePort } from "../helpers/net.js";
import { registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { waitFor } from "../helpers/wait.js";

const skip = (await dockerSkipReason("console browser suite")) || registrySkipReason() || chromiumSkipReason("console browser suite");

const LIVE_MS = 15_000; // generous bound for "on screen without a reload" on a busy 2-core CI machine

describe("the console, driven in Chromium", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let socket: string;
  let browser: Browser;
  const pages: Record<string, Page> = {};
  const tokens: Record<string, string> = {};
  const requested: string[] = [];
  const agents: Record<string, TestAgent> = { dev: new TestAgent("c-dev"), staging: new TestAgent("c-stg"), prod: new TestAgent("c-prod") };
  const ports: Record<string, number> = {};
  const suffix = randomBytes(3).toString("hex");
  const releases: Record<string, string> = {};
  const shots = artifactsDir("console");
  const shot = (p: Page, name: string) => p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  async function signIn(who: string, width = 1280): Promise<Page> {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    const page = await context.newPage();
    page.on("request", (r) => requested.push(r.url()));
    page.on("pageerror", (e) => console.error(`[${who}] page error: ${e.message}`));
    await page.goto(`${cp.runtime.api}/`);
    await page.fill("#token", tokens[who]!);
    await page.click("form button[type=submit]");
    await page.waitForSelector(`[data-subject="${who}"]`);
    await page.waitForSelector('html[data-live="live"]', { timeout: LIVE_MS });
    return page;
  }
  const go = async (page: Page, path: string) => {
    await page.evaluate(`history.pushState(null, "", ${JSON.stringify(path)}); dispatchEvent(new PopStateEvent("popstate"))`);
  };
  const act = async (page: Page, action: string, fill: Record<string, string> = {}) => {
    await page.click(`button[data-action="${action}"]`);
    const dialog = page.locator("dialog[open]");
    for (const [name, value] of Object.entries(fill)) {
      const field = dialog.locator(`[name="${name}"]`);
      if ((await dialog.locator(`select[name="${name}"]`).count()) > 0) await field.selectOption(value);
      else await field.fill(value);
    }
    await dialog.locator(`button[data-confirm="${action}"]`).click();
    await dialog.locator(".outcome, [data-error-code]").first().waitFor({ timeout: LIVE_MS });
    return dialog;
  };
  // Locators, not waitForFunction: the console's CSP (no 'unsafe-eval') refuses evaluated strings, as it should.
  const waitText = (page: Page, selector: string, re: RegExp, timeout = LIVE_MS) => page.locator(selector).filter({ hasText: re }).first().waitFor({ timeout });

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    reg = await startRegistry();
    cp = await TestControlPlane.start({ extraArgs: ["--liveness-grace", "1s"] });
    for (const [subject, roles] of [["rita", ["release-manager", "deployer", "approver"]], ["alice", ["approver"]], ["vic", ["viewer"]]] as const) {
      const r = await cp.api<{ secret: string }>("POST", "/api/v1/api-tokens", { subject, roles });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      tokens[subject] = r.body.secret;
    }
    for (const g of ["staging-approvers", "prod-approvers"]) assert.equal((await cp.cli(["group", "add", g, "alice"])).code, 0);
    const gates = {
      dev: [],
      staging: [{ kind: "approvals", name: "staging approvers", config: { group: "staging-approvers", count: 1 } }],
      prod: [
        { kind: "prior-environment", name: "ran in staging", config: {} },
        { kind: "approvals", name: "prod approvers", config: { group: "prod-approvers", count: 1 } },
      ],
    };
    for (const env of ["dev", "staging", "prod"] as const) {
      assert.equal((await cp.api("POST", "/api/v1/environments", { name: env, settings: { gates: gates[env] } })).status, 201);
      ports[env] = await freePort();
    }
    const images = [
      await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "1", version: "web 1", port: 1 }),
      await buildTestImage({ registry: reg.host, repository: "shop/web", tag: "2", version: "web 2", port: 1 }),
    ];
    assert.ok(images[0]!.digest !== images[1]!.digest);
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${reg.host}/shop/web`])).code, 0);
    for (const env of ["dev", "staging", "prod"] as const) {
      const a = agents[env]!;
      assert.equal((await a.enrol(await cp.createJoinString(env))).code, 0);
      a.start(["--docker-socket", socket]);
    }
    const list = await waitFor("three agents online with the docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; environment: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      const online = r.body.agents.filter((x) => x.status === "online" && x.facts.drivers?.includes("docker"));
      return online.length === 3 ? online : undefined;
    }, { timeoutMs: 60_000 });
    for (const env of ["dev", "staging", "prod"] as const) {
      const port = ports[env]!;
      const r = await cp.api("POST", `/api/v1/environments/${env}/targets`, {
        name: "web",
        kind: "docker",
        agentId: list.find((a) => a.environment === env)!.id,
        config: {
          container: `ferry-console-${env}-${suffix}`,
          command: ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/www"],
          healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 20, intervalSeconds: 1 },
        },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    for (const v of ["1", "2"]) {
      const r = await cp.api<{ id: string }>("POST", "/api/v1/releases", { name: "shop", version: v, components: { web: `:${v}` }, notes: `shop ${v}` }, tokens["rita"]);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      releases[v] = r.body.id;
    }
    browser = await launchChromium();
    pages["rita"] = await signIn("rita");
    pages["alice"] = await signIn("alice");
    pages["vic"] = await signIn("vic");
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    for (const a of Object.values(agents)) await a.dispose();
    await cp?.stop();
    await reg?.stop();
    if (socket) {
      const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith("ferry-console-") && n.endsWith(suffix));
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
  });

  it("refuses the event stream without a token, and never puts the token in a URL", async () => {
    const res = await fetch(`${cp.runtime.api}/api/v1/console/events`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "UNAUTHENTICATED");
    const inQuery = await fetch(`${cp.runtime.api}/api/v1/console/events?token=${tokens["vic"]}`);
    assert.equal(inQuery.status, 401, "a token in the URL is not accepted");
    await inQuery.body?.cancel();
  });

  it("promotes dev → staging → prod from the console: rita requests, alice approves, deployments stream their logs", async () => {
    const rita = pages["rita"]!;
    const alice = pages["alice"]!;
    // dev has no gates: the promotion passes and deploys at once.
    await go(rita, `/releases/${releases["1"]}`);
    await shot(rita, "release");
    let dialog = await act(rita, "promote", { environment: "dev" });
    await dialog.locator(".outcome a").click();
    await waitText(rita, ".page-head .badge", /succeeded/, 120_000);
    await rita.click('a[href^="/deployments/"]');
    await rita.waitForSelector('[data-log-state="complete"]', { timeout: LIVE_MS });
    assert.match(await rita.locator(".log-body").first().innerText(), /\[prepare\][\s\S]*\[health\][\s\S]*\[switch\]/);
    await shot(rita, "deployment");

    for (const env of ["staging", "prod"]) {
      await go(rita, `/releases/${releases["1"]}`);
      dialog = await act(rita, "promote", { environment: env });
      await dialog.locator(".outcome a").click();
      await rita.waitForSelector('[data-gate="approvals"] .badge');
      // Why blocked, and why rita cannot approve it herself.
      await waitText(rita, '[data-gate="approvals"]', /pending/);
      assert.match(await rita.locator('[data-gate="approvals"]').innerText(), /needs 1 more approval/);
      assert.ok(await rita.locator('button[data-action="approve"]').isDisabled());
      assert.match(await rita.locator("#why-approve").innerText(), /you \(rita\) requested this promotion; separation of duties needs another approver/);
      if (env === "staging") await shot(rita, "promotion-blocked");
      // alice finds it in her approval queue and approves it with a comment.
      const id = new URL(rita.url()).pathname.split("/").pop()!;
      await go(alice, "/promotions");
      await alice.click(`a[href="/promotions/${id}"]`);
      dialog = await act(alice, "approve", { comment: `checked ${env}` });
      assert.match(await dialog.locator(".outcome").innerText(), /Approved/);
      await alice.keyboard.press("Escape");
      // rita's page follows without a reload: the approval, then the deployment to its end.
      await rita.waitForSelector('[data-approval="alice"]', { timeout: LIVE_MS });
      await waitText(rita, ".page-head .badge", /deploying|succeeded/, LIVE_MS);
      await rita.waitForSelector('a[href^="/deployments/dep"]', { timeout: LIVE_MS });
      await rita.click('a[href^="/deployments/dep"]');
      await rita.waitForSelector('[data-log-state]', { timeout: LIVE_MS });
      await waitText(rita, ".page-head .badge", /succeeded/, 120_000);
      await rita.waitForSelector('[data-log-state="complete"]', { timeout: LIVE_MS });
      assert.match(await rita.locator(".log-body").first().innerText(), /\[prepare\][\s\S]*\[health\][\s\S]*\[switch\]/);
      const version = await fetch(`http://127.0.0.1:${ports[env]}/version`).then((r) => r.text());
      assert.equal(version.trim(), "web 1");
    }
    await go(rita, `/promotions?state=succeeded`);
    await rita.waitForSelector("table");
    await shot(rita, "promotions");
    await go(alice, "/");
    await waitText(alice, '[data-cell="prod/web"]', /in-sync/);
    await waitText(alice, '[data-cell="prod/web"]', /shop@1/);
    await shot(alice, "overview");
  });

  it("shows a viewer why each action is closed, and the server's refusal word for word", async () => {
    const vic = pages["vic"]!;
    await go(vic, `/releases/${releases["2"]}`);
    await vic.waitForSelector('button[data-action="promote"]');
    assert.ok(await vic.locator('button[data-action="promote"]').isDisabled());
    assert.match(await vic.locator("#why-promote").innerText(), /needs the deployer role; vic has viewer/);
    // Break glass depends on the environment's settings, so the console lets the server judge it.
    const r = await cp.api<{ id: string }>("POST", "/api/v1/promotions", { release: releases["2"], environment: "staging" }, tokens["rita"]);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await go(vic, `/promotions/${r.body.id}`);
    assert.match(await vic.locator("#why-approve").innerText(), /needs the approver role; vic has viewer/);
    const dialog = await act(vic, "break-glass", { reason: "testing the refusal" });
    const err = dialog.locator("[data-error-code]");
    assert.equal(await err.getAttribute("data-error-code"), "FORBIDDEN");
    assert.match(await err.innerText(), /FORBIDDEN break-glass into staging needs the .+ role; vic has viewer/);
    await shot(vic, "refusal");
    await vic.keyboard.press("Escape");
    assert.equal((await cp.api("POST", `/api/v1/promotions/${r.body.id}/cancel`, { reason: "done" }, tokens["rita"])).status, 200);
  });

  it("rolls dev back from the console after a newer release", async () => {
    const rita = pages["rita"]!;
    await go(rita, `/releases/${releases["2"]}`);
    let dialog = await act(rita, "deploy", { environment: "dev" });
    await dialog.locator(".outcome a").click();
    await waitText(rita, ".page-head .badge", /succeeded/, 120_000);
    assert.equal((await fetch(`http://127.0.0.1:${ports["dev"]}/version`).then((x) => x.text())).trim(), "web 2");
    await go(rita, "/environments/dev");
    dialog = await act(rita, "rollback-env");
    assert.match(await dialog.locator(".outcome").innerText(), /Rollback dep_\w+ started/);
    await dialog.locator(".outcome a").click();
    await rita.waitForSelector("h1:has-text('Rollback')");
    await waitText(rita, ".page-head .badge", /succeeded/, 120_000);
    assert.equal((await fetch(`http://127.0.0.1:${ports["dev"]}/version`).then((x) => x.text())).trim(), "web 1");
    await go(rita, "/");
    await waitText(rita, '[data-cell="dev/web"]', /shop@1/);
  });

  it("shows a target's check and, opened, the check task's log on the environment page", async () => {
    const vic = pages["vic"]!;
    await go(vic, "/environments/dev");
    // Created before its container ran, the target's check found nothing there: a failed check, with its log.
    const cell = vic.locator('tr[data-target="web"] td[data-check="failed"]');
    await cell.waitFor({ timeout: LIVE_MS });
    assert.match(await cell.innerText(), /TARGET_NOT_FOUND/);
    await cell.locator(".check-log summary").click();
    await waitText(vic, 'tr[data-target="web"] .check-log [data-log-state]', /complete/);
    assert.match(await cell.locator(".log-body").innerText(), /\[start\] inspect\s+to web/);
    await shot(vic, "environment-check-log");
  });

  it("shows an agent offline within the liveness window, never in sync", async () => {
    const alice = pages["alice"]!;
    await go(alice, "/");
    await waitText(alice, '[data-cell="staging/web"]', /in-sync/);
    const stopped = Date.now();
    await agents["staging"]!.stop("SIGKILL");
    // 3 × 250 ms heartbeat interval + 1 s grace, swept every second: offline in about 3 s; on screen well within 10 s.
    await waitText(alice, '[data-cell="staging/web"] .badge', /offline/, 10_000);
    const shownAfter = Date.now() - stopped;
    assert.doesNotMatch(await alice.locator('[data-cell="staging/web"] > .badge').innerText(), /in-sync/);
    assert.ok(shownAfter < 10_000, `offline shown after ${shownAfter} ms`);
    await shot(alice, "overview-offline");
    await go(alice, "/fleet");
    await waitText(alice, 'tr[data-agent="c-stg"]', /offline/);
    await alice.click('tr[data-agent="c-stg"] a');
    await alice.waitForSelector('[data-agent-status="offline"]');
    await shot(alice, "agent");
  });

  it("fits a 420 px wide screen without sideways scrolling", async () => {
    const narrow = await signIn("rita", 420);
    for (const path of ["/", `/releases/${releases["1"]}`, "/promotions", "/fleet", "/environments/prod"]) {
      await go(narrow, path);
      await narrow.waitForSelector("main .card, main table", { timeout: LIVE_MS });
      const width = await narrow.evaluate("document.documentElement.scrollWidth");
      assert.ok((width as number) <= 420, `${path} is ${String(width)} px wide at 420 px`);
    }
    await go(narrow, "/");
    await narrow.waitForSelector('[data-cell="prod/web"]');
    await shot(narrow, "overview-420");
    await narrow.context().close();
    // Every request the console made: the token in none of them.
    for (const t of Object.values(tokens)) assert.ok(!requested.some((u) => u.includes(t)), "a token appeared in a URL");
  });
});
