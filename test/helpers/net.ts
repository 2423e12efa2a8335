import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * The kernel's ephemeral range, where it picks the local port of every outgoing connection. A port taken from it
 * (say by binding port 0) can be given to some client's connection before the server meant for it binds: that server
 * then fails with "Address already in use". freePort hands out ports below it.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

const FIRST = 20_000;
const handedOut = new Set<number>();
/** Read once per process. */
let range: [number, number] | undefined;

function bindable(port: number): Promise<boolean> {
  const srv = createServer();
  return new Promise((resolve) => {
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/**
 * A loopback port that is free now and outside the kernel's ephemeral range (so no outgoing connection takes it
 * before its server binds), not handed out before by this process. Random, so parallel test files rarely meet.
 */
export async function freePort(): Promise<number> {
  const [low, high] = (range ??= ephemeralRange());
  const [first, last] = low > FIRST + 1000 ? [FIRST, low - 1] : high < 64_535 ? [high + 1, 65_535] : [0, 0];
  for (let attempt = 0; first > 0 && attempt < 200; attempt++) {
    const port = first + Math.floor(Math.random() * (last - first + 1));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(first > 0 ? `no free loopback port between ${first} and ${last}` : `the ephemeral port range ${low}-${high} leaves no room for test servers`);
}

/** GET http://127.0.0.1:port/path with a 2 s limit: the status and trimmed body, or null when nothing answered. */
export async function httpGet(port: number, path: string): Promise<{ status: number; body: string } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: (await res.text()).trim() };
  } catch {
    return null;
  }
}
