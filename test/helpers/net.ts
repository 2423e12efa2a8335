import { createServer } from "node:net";
import type { AddressInfo } from "node:net";

/** A port the kernel says is free now: bind port 0 on loopback, read it, close. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
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
