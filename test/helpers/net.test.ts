import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { it } from "node:test";
import { freePort } from "./net.js";

it("freePort hands out distinct, bindable loopback ports outside the kernel's ephemeral range", async () => {
  const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
  const ports = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    assert.ok(port < low! || port > high!, `${port} is in the ephemeral range ${low}-${high}`);
    assert.ok(!ports.has(port), `${port} handed out twice`);
    ports.add(port);
  }
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen([...ports][0], "127.0.0.1", resolve);
  });
  await new Promise((r) => srv.close(r));
});
