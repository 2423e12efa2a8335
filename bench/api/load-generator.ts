// The read-load generator of `npm run bench:api`, forked by main.ts as its own process so that issuing requests and
// timing them is not done by the process that started the server. It holds `concurrency` keep-alive connections
// (node:http Agent), each with one request in flight, for warmupMs (not recorded) plus durationMs (recorded), or
// until maxRequests have been recorded, whichever comes first. Then it reports a latency summary over IPC and waits
// for the next command. It exits when told to, or when main goes away (IPC disconnect).
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { summarise } from "./stats.js";
import type { LoadCommand, LoadResult, ToGenerator } from "./ipc.js";

function get(agent: Agent, url: URL, token: string | null): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers["authorization"] = `Bearer ${token}`;
    const req = request(url, { agent, method: "GET", headers }, (res) => {
      let bytes = 0;
      res.on("data", (chunk: Buffer) => (bytes += chunk.length));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on("error", reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error("request timed out after 30 s")));
    req.on("error", reject);
    req.end();
  });
}

async function run(cmd: LoadCommand): Promise<LoadResult> {
  if (cmd.paths.length === 0) throw new Error(`${cmd.label}: no paths`);
  const agent = new Agent({ keepAlive: true, maxSockets: cmd.concurrency, maxFreeSockets: cmd.concurrency });
  const urls = cmd.paths.map((p) => new URL(p, cmd.baseUrl));
  const latencies: number[] = [];
  let errors = 0;
  let bytes = 0;
  let firstError: string | null = null;
  const start = performance.now();
  const recordFrom = start + cmd.warmupMs;
  const stopAt = recordFrom + cmd.durationMs;
  let measuredStart = Number.NaN;
  let measuredEnd = recordFrom;

  const worker = async (w: number) => {
    let i = Math.floor((w * urls.length) / cmd.concurrency);
    for (;;) {
      const t0 = performance.now();
      if (t0 >= stopAt || latencies.length >= cmd.maxRequests) return;
      const url = urls[i++ % urls.length] as URL;
      let ok = false;
      try {
        const r = await get(agent, url, cmd.token);
        ok = r.status >= 200 && r.status < 300;
        if (!ok) firstError ??= `HTTP ${r.status} for ${url.pathname}${url.search}`;
        if (t0 >= recordFrom) bytes += r.bytes;
      } catch (err) {
        firstError ??= `${(err as Error).message} for ${url.pathname}${url.search}`;
      }
      const t1 = performance.now();
      if (t0 >= recordFrom) {
        if (Number.isNaN(measuredStart)) measuredStart = t0;
        measuredEnd = Math.max(measuredEnd, t1);
        if (ok) latencies.push(t1 - t0);
        else errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: cmd.concurrency }, (_, w) => worker(w)));
  agent.destroy();
  const elapsedMs = Number.isNaN(measuredStart) ? 0 : measuredEnd - measuredStart;
  return {
    type: "result",
    label: cmd.label,
    latencyMs: summarise(latencies),
    requests: latencies.length,
    errors,
    firstError,
    elapsedMs: Math.round(elapsedMs),
    requestsPerSecond: elapsedMs > 0 ? Math.round((latencies.length / elapsedMs) * 1000) : 0,
    meanResponseBytes: latencies.length ? Math.round(bytes / latencies.length) : 0,
  };
}

if (!process.send) throw new Error("load-generator.ts runs as a child of bench/api/main.ts (IPC channel required)");
process.on("disconnect", () => process.exit(0));
process.on("message", (msg: ToGenerator) => {
  if (msg.type === "exit") {
    process.disconnect();
    return;
  }
  run(msg).then(
    (r) => process.send?.(r),
    (err: unknown) => {
      console.error(`load generator: ${(err as Error).stack ?? String(err)}`);
      process.exit(1);
    },
  );
});
