// The rollout view of the console in a real browser (Debian's Chromium through playwright-core) against a real
// `ferry server`, a real agent on the real Docker Engine and a real registry. A rolling rollout of shop@2 over three
// targets (one per batch, a soak and an approval between batches) is created through the API and steered from the
// console: rita (deployer) follows it from the first wave's deployment to the rollout page, pauses and resumes it,
// ends a soak early, gives an approval, and aborts it, and sees the rollback step appear and put shop@1 back; vic
// (viewer) is told why every rollout action is closed to him, and the server refuses him the same way.
// Screenshots go to test-artifacts/console/ beside the other console pages.
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

const skip = (await dockerSkipReason("console rollout suite")) || registrySkipReason() || chromiumSkipReason("console rollout suite");

const LIVE_MS = 15_000; // "on screen without a reload", generous for a busy 2-core CI machine
const WAVE_MS = 120_000; // a wave: pull, start, health check on the real engine
const TARGETS = ["web-a", "web-b", "web-c"] as const;

describe("the console's rollout view, driven in Chromium", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let socket: string;
  let browser: Browser;
  const agent = new TestAgent("c-roll");
  const tokens: Record<string, string> = {};
  const pages: Record<string, Page> = {};
  const ports: Record<string, number> = {};
  const releases: Record<string, string> = {};
  const suffix = randomBytes(3).toString("hex");
  const shots = artifactsDir("console");
  const shot = (p: Page, name: string) => p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  let rolloutId = "";
  let firstWave = "";

  async function signIn(who: string, width = 1280): Promise<Page> {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    const page = await context.newPage();
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
    for (const [name, value] of Object.entries(fill)) await dialog.locator(`[name="${name}"]`).fill(value);
    await dialog.locator(`button[data-confirm="${action}"]`).click();
    await dialog.locator(".outcome, [data-error-code]").first().waitFor({ timeout: LIVE_MS });
    return dialog;
  };
  const stepIs = (page: Page, index: number, state: string, timeout = LIVE_MS) =>
    page.locator(`li[data-step="${index}"][data-step-state="${state}"]`).waitFor({ timeout });
  const version = async (target: string) => (await fetch(`http://127.0.0.1:${ports[target]}/version`).then((r) => r.text())).trim();

  before(async () => {
    socket = (await dockerEngine()).socketPath;
    reg = await startRegistry();
    cp = await TestControlPlane.start();
    for (const [subject, roles] of [["rita", ["deployer"]], ["vic", ["viewer"]]] as const) {
      const r = await cp.api<{ secret: string }>("POST", "/api/v1/api-tokens", { subject, roles });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      tokens[subject] = r.body.secret;
    }
    assert.equal((await cp.api("POST", "/api/v1/environments", { name: "dev", settings: { gates: [] } })).status, 201);
    for (const v of ["1", "2"]) await buildTestImage({ registry: reg.host, repository: "shop/web", tag: v, version: `web ${v}`, port: 1 });
    assert.equal((await cp.cli(["component", "create", "web", "--repository", `${reg.host}/shop/web`])).code, 0);
    assert.equal((await agent.enrol(await cp.createJoinString("dev"))).code, 0);
    agent.start(["--docker-socket", socket]);
    const agentId = await waitFor("the agent online with the docker driver", async () => {
      const r = await cp.api<{ agents: { id: string; status: string; facts: { drivers?: string[] } }[] }>("GET", "/api/v1/agents");
      return r.body.agents.find((x) => x.status === "online" && x.facts.drivers?.includes("docker"))?.id;
    }, { timeoutMs: 60_000 });
    for (const name of TARGETS) {
      const port = (ports[name] = await freePort());
      const r = await cp.api("POST", "/api/v1/environments/dev/targets", {
        name,
        kind: "docker",
        agentId,
        config: {
          container: `ferry-console-roll-${name}-${suffix}`,
          command: ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/www"],
          healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 20, intervalSeconds: 1 },
        },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    for (const v of ["1", "2"]) {
      const r = await cp.api<{ id: string }>("POST", "/api/v1/releases", { name: "shop", version: v, components: { web: `:${v}` } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      releases[v] = r.body.id;
    }
    // shop@1 everywhere first, all at once: what the rollback will put back.
    const first = await cp.api<{ id: string }>("POST", "/api/v1/deployments", { release: releases["1"], environment: "dev" }, tokens["rita"]);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    await waitFor("shop@1 on every target", async () => {
      const d = await cp.api<{ state: string }>("GET", `/api/v1/deployments/${first.body.id}`);
      assert.notEqual(d.body.state, "failed", "the first deployment failed");
      return d.body.state === "succeeded" ? true : undefined;
    }, { timeoutMs: WAVE_MS });
    browser = await launchChromium();
    pages["rita"] = await signIn("rita");
    pages["vic"] = await signIn("vic");
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await agent.dispose();
    await cp?.stop();
    await reg?.stop();
    if (socket) {
      const names = (await runDocker(socket, ["ps", "-a", "--format", "{{.Names}}"]).catch(() => "")).split("\n").filter((n) => n.startsWith("ferry-console-roll-") && n.endsWith(suffix));
      if (names.length) await runDocker(socket, ["rm", "-f", ...names]).catch(() => "");
    }
  });

  it("follows a rolling rollout from its first wave's deployment: steps, per-target outcomes, the soak counting down", async () => {
    const strategy = { kind: "rolling", batch: 1, soakSeconds: 600, approvalBetweenSteps: true };
    const r = await cp.api<{ id: string; rollout: { id: string; steps: unknown[] } }>("POST", "/api/v1/deployments", { release: releases["2"], environment: "dev", strategy }, tokens["rita"]);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    rolloutId = r.body.rollout.id;
    firstWave = r.body.id;
    assert.equal(r.body.rollout.steps.length, 7, "3 waves, 2 soaks, 2 approvals");

    const rita = pages["rita"]!;
    await go(rita, `/deployments/${firstWave}`);
    await rita.waitForSelector("section.card:has(#rollout) [data-rollout-state]", { timeout: LIVE_MS });
    assert.match(await rita.locator("section.card:has(#rollout)").innerText(), /This deployment is step 1 \(batch 1 of 3\) of rollout rol_/);
    await rita.click(`.card a[href="/rollouts/${rolloutId}"]`);
    await rita.waitForSelector("h1:has-text('Rollout')");
    assert.equal(await rita.locator("li[data-step]").count(), 7);
    assert.match(await rita.locator("section.card:has(#rollout)").innerText(), /rolling, 1 target per batch, soak 10 min, approval between batches/);
    await rita.locator("section.card:has(#rollout) a").filter({ hasText: "shop@2" }).waitFor({ timeout: LIVE_MS });
    await stepIs(rita, 0, "succeeded", WAVE_MS);
    await rita.locator('li[data-step="0"] tr[data-wave-target="web-a"]').filter({ hasText: /succeeded/ }).waitFor({ timeout: LIVE_MS });
    await stepIs(rita, 1, "running");
    const countdown = rita.locator('li[data-step="1"] [data-countdown]');
    const left = Number(await countdown.getAttribute("data-countdown"));
    assert.ok(left > 500 && left <= 600, `soak shows ${left} s left`);
    await rita.waitForTimeout(1500);
    assert.ok(Number(await countdown.getAttribute("data-countdown")) < left, "the soak counts down");
    assert.equal(await version("web-a"), "web 2");
    assert.equal(await version("web-b"), "web 1");
  });

  it("shows a viewer why every rollout action is closed; the server refuses him alike", async () => {
    const vic = pages["vic"]!;
    await go(vic, `/rollouts/${rolloutId}`);
    await stepIs(vic, 1, "running");
    for (const a of ["rollout-pause", "rollout-abort", "rollout-promote"]) {
      assert.ok(await vic.locator(`button[data-action="${a}"]`).isDisabled(), `${a} is closed to vic`);
      assert.match(await vic.locator(`#why-${a}`).innerText(), /needs the deployer role; vic has viewer/);
    }
    const refused = await cp.api<{ error: { code: string; message: string } }>("POST", `/api/v1/rollouts/${rolloutId}/promote`, {}, tokens["vic"]);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "FORBIDDEN");
  });

  it("pauses and resumes, ends the soak early and gives the approval from the console", async () => {
    const rita = pages["rita"]!;
    const vic = pages["vic"]!;
    let dialog = await act(rita, "rollout-pause");
    assert.match(await dialog.locator(".outcome").innerText(), /Paused/);
    await rita.keyboard.press("Escape");
    await rita.locator("[data-rollout-state] .s-paused").first().waitFor({ timeout: LIVE_MS });
    // vic's page follows without a reload.
    await vic.locator("[data-rollout-state] .s-paused").first().waitFor({ timeout: LIVE_MS });
    assert.ok(await rita.locator('button[data-action="rollout-pause"]').isDisabled());
    dialog = await act(rita, "rollout-resume");
    assert.match(await dialog.locator(".outcome").innerText(), /Resumed/);
    await rita.keyboard.press("Escape");
    await rita.locator("[data-rollout-state] .s-paused").waitFor({ state: "detached", timeout: LIVE_MS });

    dialog = await act(rita, "rollout-promote");
    assert.match(await dialog.locator(".outcome").innerText(), /Promoted/);
    await rita.keyboard.press("Escape");
    await stepIs(rita, 1, "succeeded");
    assert.match(await rita.locator('li[data-step="1"]').innerText(), /Ended early by rita/);
    await stepIs(rita, 2, "running");
    assert.match(await rita.locator('li[data-step="2"]').innerText(), /Waiting for a deployer's approval/);
    assert.equal(await rita.locator('button[data-action="rollout-promote"]').innerText(), "Approve");
    dialog = await act(rita, "rollout-promote");
    assert.match(await dialog.locator(".outcome").innerText(), /Approved/);
    await rita.keyboard.press("Escape");
    await rita.waitForSelector('li[data-step="2"] [data-approved-by="rita"]', { timeout: LIVE_MS });
    await stepIs(rita, 3, "running");
    await stepIs(rita, 3, "succeeded", WAVE_MS);
    await stepIs(rita, 4, "running");
    assert.equal(await version("web-b"), "web 2");
    await shot(rita, "rollout");
  });

  it("aborts from the console: the rollback step appears and puts shop@1 back on what was updated", async () => {
    const rita = pages["rita"]!;
    await rita.click('button[data-action="rollout-abort"]');
    const dialog = rita.locator("dialog[open]");
    assert.match(await dialog.locator(".effect").innerText(), /every target it updated — web-a, web-b — is rolled back/);
    await dialog.locator('[name="reason"]').fill("error budget burnt in batch 2");
    await dialog.locator('button[data-confirm="rollout-abort"]').click();
    await dialog.locator(".outcome").waitFor({ timeout: LIVE_MS });
    await rita.keyboard.press("Escape");
    await rita.locator('li[data-phase="rollback"]').first().waitFor({ timeout: LIVE_MS });
    await rita.locator("[data-rollout-state='rolled_back']").waitFor({ timeout: WAVE_MS });
    const back = rita.locator('li[data-phase="rollback"]').first();
    assert.match(await back.innerText(), /web-a, web-b/);
    assert.equal(await back.getAttribute("data-step-state"), "succeeded");
    assert.match(await rita.locator("[data-rollout-reason]").innerText(), /ROLLOUT_ABORTED error budget burnt in batch 2 — by rita/);
    assert.equal(await rita.locator('li[data-step="6"][data-step-state="skipped"]').count(), 1, "the last wave never ran");
    for (const a of ["rollout-pause", "rollout-resume", "rollout-abort"]) assert.ok(await rita.locator(`button[data-action="${a}"]`).isDisabled());
    assert.equal(await version("web-a"), "web 1");
    assert.equal(await version("web-b"), "web 1");
    assert.equal(await version("web-c"), "web 1");
    await shot(rita, "rollout-rolled-back");
    // The rollouts list, and the view at 420 px without sideways scrolling.
    await go(rita, "/rollouts");
    await rita.locator(`tr[data-rollout="${rolloutId}"]`).filter({ hasText: /rolled back/ }).waitFor({ timeout: LIVE_MS });
    const narrow = await signIn("rita", 420);
    for (const path of [`/rollouts/${rolloutId}`, `/deployments/${firstWave}`, "/rollouts"]) {
      await go(narrow, path);
      await narrow.waitForSelector("main .card", { timeout: LIVE_MS });
      const width = await narrow.evaluate("document.documentElement.scrollWidth");
      assert.ok((width as number) <= 420, `${path} is ${String(width)} px wide at 420 px`);
    }
    await go(narrow, `/rollouts/${rolloutId}`);
    await narrow.waitForSelector("li[data-step]");
    await shot(narrow, "rollout-420");
    await narrow.context().close();
  });
});
