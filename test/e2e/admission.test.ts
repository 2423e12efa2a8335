// Admission limits: past the configured rate, enrolments and new streams are answered RESOURCE_EXHAUSTED /
// RATE_LIMITED with a retry-after, and real agents honour it and all get in.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestAgent } from "../helpers/agent.js";
import { TestControlPlane } from "../helpers/control-plane.js";
import { agentClient, callEnrol, enrolClient, hello, newCsr, openStream } from "../helpers/raw-client.js";
import { waitFor } from "../helpers/wait.js";

describe("admission limits", () => {
  let cp: TestControlPlane;
  let caPem: string;
  const agents: TestAgent[] = [];

  before(async () => {
    cp = await TestControlPlane.start({
      heartbeatInterval: "500ms",
      extraArgs: ["--enrol-rate", "2", "--enrol-burst", "2", "--stream-rate", "2", "--stream-burst", "2"],
    });
    caPem = readFileSync(join(cp.dataDir, "ca", "ca.crt"), "utf8");
  });
  after(async () => {
    for (const a of agents) await a.dispose();
    await cp.stop();
  });

  it("answers enrolments past the limit with RATE_LIMITED and a retry-after", async () => {
    const c = enrolClient(cp.enrolEndpoint, caPem);
    const results = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const joinString = await cp.createJoinString();
        const token = (JSON.parse(Buffer.from(joinString.split(".")[1] as string, "base64url").toString()) as { t: string }).t;
        return { token, r: await callEnrol(c, { joinToken: token, csrPem: (await newCsr()).csrPem }) };
      }),
    );
    const limited = results.filter((x) => !x.r.ok && x.r.err.code === "RATE_LIMITED");
    assert.ok(limited.length >= 1, JSON.stringify(results.map((x) => x.r.ok || x.r.err)));
    for (const x of limited) {
      assert.ok(!x.r.ok && (x.r.err.retryAfterMs ?? 0) > 0);
      assert.equal(!x.r.ok && x.r.err.status, 8 /* RESOURCE_EXHAUSTED */);
    }
    // A refused enrolment spent nothing: the same token works once the limit allows.
    const first = limited[0] as (typeof limited)[number];
    const retried = await waitFor("the retried enrolment", async () => {
      const r = await callEnrol(c, { joinToken: first.token, csrPem: (await newCsr()).csrPem });
      return r.ok ? r : undefined;
    });
    assert.ok(retried.ok);
  });

  it("answers new streams past the limit with RATE_LIMITED, and real agents honour it and all connect", async () => {
    const ids: Array<{ keyPem: string; certPem: string; agentId: string }> = [];
    for (let i = 0; i < 4; i++) {
      const { keyPem, csrPem } = await newCsr();
      const token = (JSON.parse(Buffer.from((await cp.createJoinString()).split(".")[1] as string, "base64url").toString()) as { t: string }).t;
      const r = await waitFor("an enrolment", async () => {
        const x = await callEnrol(enrolClient(cp.enrolEndpoint, caPem), { joinToken: token, csrPem });
        return x.ok ? x : undefined;
      });
      if (r.ok) ids.push({ keyPem, certPem: r.res.certificatePem, agentId: r.res.agentId });
    }
    const streams = ids.map((id) => {
      const s = openStream(agentClient(cp.agentEndpoint, caPem, id));
      s.send(hello(id.agentId));
      return s;
    });
    const limited = await Promise.race([
      Promise.any(streams.map((s) => s.ended.then((e) => (e?.code === "RATE_LIMITED" ? e : Promise.reject(new Error(String(e?.code))))))),
      new Promise((_, reject) => setTimeout(() => reject(new Error("no stream was rate limited")), 5000)),
    ]);
    assert.ok((limited as { retryAfterMs?: number }).retryAfterMs !== undefined);
    for (const s of streams) s.close();

    const joinString = await cp.createJoinString("dev", { uses: 5 });
    for (let i = 0; i < 5; i++) {
      const a = new TestAgent(`crowd-${i}`);
      agents.push(a);
      const e = await waitFor("an agent enrolment", async () => {
        const r = await a.enrol(joinString);
        return r.code === 0 ? r : undefined;
      }, { timeoutMs: 30_000 });
      assert.equal(e.code, 0);
    }
    for (const a of agents) a.start();
    const idsOf = agents.map((a) => (JSON.parse(readFileSync(join(a.stateDir, "identity.json"), "utf8")) as { agentId: string }).agentId);
    await waitFor("every agent online despite the stream limit", async () => {
      const list = await cp.api<{ agents: Array<{ id: string; status: string; connected: boolean }> }>("GET", "/api/v1/agents");
      return idsOf.every((id) => list.body.agents.some((x) => x.id === id && x.status === "online" && x.connected)) ? true : undefined;
    }, { timeoutMs: 30_000 });
  });
});
