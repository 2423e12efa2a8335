// The fleet dashboard: a static page that reads the JSON API with the operator's token.
//
// The page itself is public (it holds no data); the token is entered once and kept in the browser's localStorage,
// or passed in the URL fragment (#token=…), which browsers never send to the server, so it stays out of access logs.
import { readFileSync } from "node:fs";
import type { FastifyPluginAsync } from "fastify";

const asset = (name: string): string => readFileSync(new URL(`./assets/${name}`, import.meta.url), "utf8");

export function dashboardRoutes(): FastifyPluginAsync {
  const files: Record<string, { body: string; type: string }> = {
    "/": { body: asset("index.html"), type: "text/html; charset=utf-8" },
    "/dashboard.js": { body: asset("dashboard.js"), type: "text/javascript; charset=utf-8" },
    "/dashboard.css": { body: asset("dashboard.css"), type: "text/css; charset=utf-8" },
  };
  return async (app) => {
    for (const [path, f] of Object.entries(files)) {
      app.get(path, async (_req, reply) =>
        reply
          .header("content-type", f.type)
          .header("cache-control", "no-cache")
          // No framing anywhere (clickjacking: the console's buttons approve, break glass and roll back). CSP
          // frame-ancestors for current browsers, X-Frame-Options for older ones.
          .header("content-security-policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
          .header("x-frame-options", "DENY")
          .header("referrer-policy", "no-referrer")
          .header("x-content-type-options", "nosniff")
          .send(f.body),
      );
    }
  };
}
