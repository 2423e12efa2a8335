// The external checks against real loopback HTTP servers: a service's health endpoint, and a fake Prometheus that
// answers exactly the JSON shapes of Prometheus's HTTP API (success with scalar / vector / matrix, and errors).
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import type { AnalysisConfig } from "./strategy.js";
import { MAX_CHECK_BODY_BYTES, runExternalChecks } from "./external-checks.js";

const base: AnalysisConfig = { minRequests: 50, maxErrorRate: 0.01, maxLatencyRatio: 1.5, maxInconclusive: 3 };

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const servers: http.Server[] = [];
async function serve(handler: Handler): Promise<string> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  servers.push(s);
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}
async function closedPort(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  await new Promise((r) => s.close(r));
  return url;
}
const json = (res: http.ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};
const now = 1796425911.123;
const vector = (...values: string[]) => ({ status: "success", data: { resultType: "vector", result: values.map((v, i) => ({ metric: { instance: `i${i}` }, value: [now, v] })) } });

describe("external checks", () => {
  let probeBase = "";
  let promBase = "";
  /** What the fake Prometheus answers next, and the requests it saw. */
  let answer: Handler = (_req, res) => json(res, 200, { status: "success", data: { resultType: "scalar", result: [now, "0"] } });
  const seen: { method: string; path: string; query: string | null }[] = [];
  let redirectedTo = 0;

  before(async () => {
    probeBase = await serve((req, res) => {
      if (req.url === "/health") res.writeHead(200).end("ok");
      else if (req.url === "/empty") res.writeHead(204).end();
      else if (req.url === "/sick") res.writeHead(503).end("down");
      else if (req.url?.startsWith("/private")) res.writeHead(req.headers.authorization === `Basic ${Buffer.from("user:s3cret pass").toString("base64")}` ? 200 : 401).end();
      else if (req.url === "/moved") res.writeHead(302, { location: "/target" }).end();
      else if (req.url === "/target") {
        redirectedTo++;
        res.writeHead(200).end();
      } else if (req.url === "/hang") req.on("close", () => res.destroy());
      else res.writeHead(404).end();
    });
    promBase = await serve((req, res) => {
      const u = new URL(req.url ?? "/", "http://x");
      seen.push({ method: req.method ?? "", path: u.pathname, query: u.searchParams.get("query") });
      answer(req, res);
    });
  });
  after(() => {
    for (const s of servers) s.close();
  });

  const prom = (extra: Partial<AnalysisConfig> = {}): AnalysisConfig => ({ ...base, prometheusQuery: 'sum(rate(http_requests_total{code=~"5..",slot="new"}[1m]))', prometheusMax: 0.5, prometheusUrl: `${promBase}/prom/`, ...extra });
  const one = async (config: AnalysisConfig, timeoutMs?: number) => {
    const r = await runExternalChecks(config, timeoutMs ? { timeoutMs } : {});
    assert.equal(r.length, 1);
    return r[0]!;
  };

  describe("probe", () => {
    it("passes on a 2xx", async () => {
      assert.deepEqual(await one({ ...base, probeUrl: `${probeBase}/health` }), { name: "probe", ok: true, value: 200, detail: `GET ${probeBase}/health answered 200` });
      assert.equal((await one({ ...base, probeUrl: `${probeBase}/empty` })).ok, true);
    });

    it("fails on any other status, without following a redirect", async () => {
      assert.deepEqual(await one({ ...base, probeUrl: `${probeBase}/sick` }), { name: "probe", ok: false, value: 503, detail: `GET ${probeBase}/sick answered 503 (a 2xx is needed)` });
      const moved = await one({ ...base, probeUrl: `${probeBase}/moved` });
      assert.deepEqual([moved.ok, moved.value], [false, 302]);
      assert.equal(redirectedTo, 0);
    });

    it("fails when nothing answers: refused, or no answer in time", async () => {
      const refused = await one({ ...base, probeUrl: `${await closedPort()}/health` });
      assert.equal(refused.ok, false);
      assert.equal(refused.value, null);
      assert.match(refused.detail, /: connection refused \(ECONNREFUSED\)$/);
      const started = Date.now();
      const slow = await one({ ...base, probeUrl: `${probeBase}/hang` }, 200);
      assert.deepEqual([slow.ok, slow.value], [false, null]);
      assert.match(slow.detail, /\/hang: no answer within 200 ms$/);
      assert.ok(Date.now() - started < 2000);
    });

    it("sends a URL's credentials as basic auth, and shows neither them nor the query in its detail", async () => {
      const r = await one({ ...base, probeUrl: `${probeBase.replace("http://", "http://user:s3cret%20pass@")}/private?token=abc` });
      assert.deepEqual(r, { name: "probe", ok: true, value: 200, detail: `GET ${probeBase}/private answered 200` });
      const wrong = await one({ ...base, probeUrl: `${probeBase.replace("http://", "http://user:wrong@")}/private?token=abc` });
      assert.deepEqual([wrong.ok, wrong.value], [false, 401]);
      assert.doesNotMatch(wrong.detail, /wrong|token/);
    });
  });

  describe("prometheus", () => {
    it("asks the instant-query API with GET, and passes a scalar at most the maximum", async () => {
      seen.length = 0;
      answer = (_req, res) => json(res, 200, { status: "success", data: { resultType: "scalar", result: [now, "0.25"] } });
      assert.deepEqual(await one(prom()), { name: "prometheus", ok: true, value: 0.25, detail: "the query gave 0.25, at most 0.5" });
      assert.deepEqual(seen, [{ method: "GET", path: "/prom/api/v1/query", query: prom().prometheusQuery! }]);
      answer = (_req, res) => json(res, 200, { status: "success", data: { resultType: "scalar", result: [now, "0.5"] } });
      assert.equal((await one(prom())).ok, true, "equal to the maximum passes");
    });

    it("takes a vector of one sample; above the maximum fails", async () => {
      answer = (_req, res) => json(res, 200, vector("0.75"));
      assert.deepEqual(await one(prom()), { name: "prometheus", ok: false, value: 0.75, detail: "the query gave 0.75, above the maximum 0.5" });
      answer = (_req, res) => json(res, 200, vector("+Inf"));
      assert.deepEqual(await one(prom()), { name: "prometheus", ok: false, value: "+Inf", detail: "the query gave +Inf, above the maximum 0.5" });
      answer = (_req, res) => json(res, 200, vector("-3e-2"));
      assert.deepEqual([(await one(prom())).ok, (await one(prom())).value], [true, -0.03]);
    });

    it("is inconclusive without one value: an empty vector, NaN, several series, a matrix", async () => {
      const cases: [unknown, RegExp][] = [
        [vector(), /no value \(an empty vector: no series matched\)/],
        [vector("NaN"), /no value \(NaN\)/],
        [vector("1", "2"), /2 series; the query must reduce to one/],
        [{ status: "success", data: { resultType: "matrix", result: [{ metric: {}, values: [[now, "1"]] }] } }, /a matrix result/],
      ];
      for (const [body, re] of cases) {
        answer = (_req, res) => json(res, 200, body);
        const r = await one(prom());
        assert.deepEqual([r.name, r.ok, r.value], ["prometheus", null, null]);
        assert.match(r.detail, re);
      }
    });

    it("is inconclusive when Prometheus answers an error, or something that is not its API", async () => {
      answer = (_req, res) => json(res, 400, { status: "error", errorType: "bad_data", error: 'invalid parameter "query": 1:5: parse error: unexpected end of input' });
      let r = await one(prom());
      assert.equal(r.ok, null);
      assert.match(r.detail, /\(HTTP 400\): bad_data: invalid parameter "query": 1:5: parse error/);
      answer = (_req, res) => json(res, 503, { status: "error", errorType: "timeout", error: "query timed out in expression evaluation" });
      assert.match((await one(prom())).detail, /\(HTTP 503\): timeout: query timed out/);
      answer = (_req, res) => res.writeHead(502, { "content-type": "text/html" }).end("<html>Bad Gateway</html>");
      r = await one(prom());
      assert.equal(r.ok, null);
      assert.match(r.detail, /\(HTTP 502\): the answer is not JSON: <html>Bad Gateway/);
      answer = (_req, res) => json(res, 200, { status: "success", data: { resultType: "scalar", result: [now, 0.1] } });
      assert.match((await one(prom())).detail, /a sample that is not \[time, value\]/);
      answer = (_req, res) => json(res, 200, { hello: "world" });
      assert.match((await one(prom())).detail, /not a Prometheus API answer/);
    });

    it("bounds the answer and the wait, and is inconclusive when Prometheus is not there", async () => {
      answer = (_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(`{"status":"success","data":{"resultType":"vector","result":[${'{"metric":{},"value":[1,"1"]},'.repeat(MAX_CHECK_BODY_BYTES / 20)}]}}`);
      };
      let r = await one(prom());
      assert.equal(r.ok, null);
      assert.match(r.detail, /larger than 1048576 bytes/);
      answer = (req, res) => req.on("close", () => res.destroy());
      r = await one(prom(), 200);
      assert.equal(r.ok, null);
      assert.match(r.detail, /no answer within 200 ms/);
      r = await one(prom({ prometheusUrl: await closedPort() }));
      assert.equal(r.ok, null);
      assert.match(r.detail, /connection refused \(ECONNREFUSED\)/);
    });
  });

  it("runs both checks at once, none when none is configured, through the fetch it is given", async () => {
    answer = (_req, res) => json(res, 200, vector("0"));
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const both = await runExternalChecks({ ...prom(), probeUrl: `${probeBase}/health` }, { fetch: counting });
    assert.deepEqual(both.map((c) => [c.name, c.ok]), [["probe", true], ["prometheus", true]]);
    assert.equal(calls, 2);
    assert.deepEqual(await runExternalChecks(base), []);
    const broken = await runExternalChecks({ ...base, probeUrl: "http://[nope", prometheusQuery: "up", prometheusMax: 1 });
    assert.deepEqual(broken.map((c) => [c.name, c.ok, c.detail]), [["probe", false, "GET http://[nope: not a valid URL"], ["prometheus", null, "no valid prometheusUrl is configured for the query"]]);
    await assert.rejects(runExternalChecks(base, { timeoutMs: 0 }), RangeError);
    await assert.rejects(runExternalChecks(base, { timeoutMs: 600_000 }), RangeError);
  });

  it("throws when the caller aborts: that is no verdict", async () => {
    const ac = new AbortController();
    const pending = runExternalChecks({ ...base, probeUrl: `${probeBase}/hang` }, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error("engine stopping")), 50);
    await assert.rejects(pending, /engine stopping/);
  });
});
