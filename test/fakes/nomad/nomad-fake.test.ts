// The Nomad fake's contract over raw HTTP, as the Nomad HTTP API reference shows it: PascalCase bodies, durations in
// nanoseconds, X-Nomad-Token and 403 "Permission denied", plain-text errors, X-Nomad-Index with blocking queries,
// a version bump only on change, the deployment states of canaries, unhealthy allocations, auto-revert, the progress
// deadline, a newer register, and 429.
// Bodies are read as the untyped JSON the API answers: the point here is the wire, not a client's types.
/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { DEPLOYMENT_DESCRIPTIONS, NomadFake } from "./nomad-fake.js";

const NS = 1_000_000;
const TOKEN = "c0ffee00-0000-4000-8000-000000000001";
let fake: NomadFake;
let address: string;

const job = (id: string, image: string, update: Record<string, unknown> = {}) => ({
  ID: id,
  Type: "service",
  TaskGroups: [{ Name: "g", Count: 2, Update: { MaxParallel: 1, ...update }, Tasks: [{ Name: "t", Driver: "docker", Config: { image } }] }],
});

async function api(method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; text: string; json: () => any; index: number }> {
  const res = await fetch(`${address}${path}`, { method, headers: token ? { "x-nomad-token": token } : {}, ...(body ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text), index: Number(res.headers.get("x-nomad-index") ?? 0) };
}

function until(what: string, cond: () => boolean, max = 200): void {
  for (let i = 0; i < max && !cond(); i++) fake.tick();
  assert.ok(cond(), what);
}

before(async () => {
  fake = new NomadFake({ tokens: { [TOKEN]: "write" } });
  address = await fake.listen();
});

after(async () => {
  await fake.close();
});

describe("Nomad fake: the contract", () => {
  it("refuses without a token that may, in plain text", async () => {
    const r = await api("GET", "/v1/jobs", undefined, null);
    assert.equal(r.status, 403);
    assert.equal(r.text, "Permission denied");
    const missing = await api("GET", "/v1/job/absent");
    assert.equal(missing.status, 404);
    assert.equal(missing.text, "job not found");
  });

  it("registers with PascalCase bodies, fills the update block in nanoseconds, and bumps the version only on change", async () => {
    const r = await api("POST", "/v1/jobs", { Job: job("a", "busybox:1") });
    assert.equal(r.status, 200);
    const reg = r.json();
    assert.ok(reg.EvalID && reg.JobModifyIndex > 0);
    const a = (await api("GET", "/v1/job/a")).json();
    assert.equal(a.Version, 0);
    assert.equal(a.TaskGroups[0].Update.HealthyDeadline, 300_000 * NS);
    assert.equal(a.TaskGroups[0].Update.ProgressDeadline, 600_000 * NS);
    assert.equal(typeof a.SubmitTime, "number");
    await api("POST", "/v1/job/a", { Job: job("a", "busybox:1") });
    assert.equal((await api("GET", "/v1/job/a")).json().Version, 0, "same spec, same version");
    await api("POST", "/v1/job/a", { Job: job("a", "busybox:2") });
    assert.equal((await api("GET", "/v1/job/a")).json().Version, 1);
    const versions = (await api("GET", "/v1/job/a/versions")).json();
    assert.deepEqual(versions.Versions.map((v: { Version: number }) => v.Version), [1, 0]);
    const cas = await api("POST", "/v1/job/a", { Job: job("a", "busybox:3"), EnforceIndex: true, JobModifyIndex: 1 });
    assert.equal(cas.status, 500);
    assert.match(cas.text, /^Enforcing job modify index 1: job exists with conflicting job modify index: \d+$/);
  });

  it("answers a blocking query when the index moves past the one given", async () => {
    const first = await api("GET", "/v1/job/a");
    const waiting = api("GET", `/v1/job/a?index=${first.index}&wait=5s`);
    const t0 = Date.now();
    setTimeout(() => fake.tick(), 50);
    const next = await waiting;
    assert.ok(next.index > first.index);
    assert.ok(Date.now() - t0 < 4000);
    const idle = await api("GET", `/v1/job/a?index=${next.index + 1000}&wait=100ms`);
    assert.equal(idle.status, 200, "a blocking query that times out answers with the current state");
  });

  it("rolls canaries: needs promotion → promoted → successful; the version becomes stable", async () => {
    fake.seedJob(job("c", "busybox:1", { Canary: 1 }));
    await api("POST", "/v1/job/c", { Job: job("c", "busybox:2", { Canary: 1 }) });
    until("the deployment asks for promotion", () => fake.deployments("c").at(-1)?.StatusDescription === DEPLOYMENT_DESCRIPTIONS.needsPromotion);
    const d = (await api("GET", "/v1/job/c/deployment")).json();
    assert.equal(d.JobVersion, 1);
    assert.equal(d.TaskGroups.g.DesiredCanaries, 1);
    assert.equal(d.TaskGroups.g.PlacedCanaries.length, 1);
    assert.equal(d.TaskGroups.g.Promoted, false);
    const p = await api("POST", `/v1/deployment/promote/${d.ID}`, { DeploymentID: d.ID, All: true });
    assert.equal(p.status, 200);
    until("successful", () => fake.deployments("c").at(-1)?.Status === "successful");
    assert.equal((await api("GET", "/v1/job/c")).json().Stable, true);
    const again = await api("POST", `/v1/deployment/promote/${d.ID}`, { DeploymentID: d.ID, All: true });
    assert.equal(again.status, 500);
    assert.equal(again.text, "can't promote terminal deployment");
  });

  it("fails on unhealthy allocations and auto-reverts as a new version", async () => {
    fake.seedJob(job("u", "busybox:1", { AutoRevert: true }));
    fake.failingImages.add("busybox:bad");
    await api("POST", "/v1/job/u", { Job: job("u", "busybox:bad", { AutoRevert: true }) });
    until("failed", () => fake.deployments("u").some((x) => x.Status === "failed"));
    const failed = fake.deployments("u").find((x) => x.Status === "failed")!;
    assert.equal(failed.StatusDescription, `${DEPLOYMENT_DESCRIPTIONS.unhealthy} - rolling back to job version 0`);
    const now = (await api("GET", "/v1/job/u")).json();
    assert.equal(now.Version, 2);
    assert.equal(now.TaskGroups[0].Tasks[0].Config.image, "busybox:1");
  });

  it("fails a deployment past its progress deadline, and cancels one a newer version replaces", async () => {
    fake.seedJob(job("p", "busybox:1", { ProgressDeadline: 3_000 * NS }));
    fake.convergeTicks = 1000;
    await api("POST", "/v1/job/p", { Job: job("p", "busybox:2", { ProgressDeadline: 3_000 * NS }) });
    until("failed", () => fake.deployments("p").at(-1)?.Status === "failed", 20);
    assert.equal(fake.deployments("p").at(-1)!.StatusDescription, DEPLOYMENT_DESCRIPTIONS.progressDeadline);
    fake.seedJob(job("n", "busybox:1"));
    await api("POST", "/v1/job/n", { Job: job("n", "busybox:2") });
    until("a deployment runs", () => fake.deployments("n").at(-1)?.JobVersion === 1);
    await api("POST", "/v1/job/n", { Job: job("n", "busybox:3") });
    const old = fake.deployments("n").find((x) => x.JobVersion === 1)!;
    assert.equal(old.Status, "cancelled");
    assert.equal(old.StatusDescription, DEPLOYMENT_DESCRIPTIONS.newerJob);
    fake.convergeTicks = 1;
  });

  it("reverts to a version, refuses a revert to the current one, and answers 429 when told to", async () => {
    const r = await api("POST", "/v1/job/a/revert", { JobID: "a", JobVersion: 0, EnforcePriorVersion: 1 });
    assert.equal(r.status, 200);
    const now = (await api("GET", "/v1/job/a")).json();
    assert.equal(now.Version, 2);
    assert.equal(now.TaskGroups[0].Tasks[0].Config.image, "busybox:1");
    const same = await api("POST", "/v1/job/a/revert", { JobID: "a", JobVersion: 2 });
    assert.equal(same.status, 500);
    fake.rateLimit(1);
    const limited = await api("GET", "/v1/jobs");
    assert.equal(limited.status, 429);
    assert.equal((await api("GET", "/v1/jobs")).status, 200);
  });
});
