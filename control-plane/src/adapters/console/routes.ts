// The operator console: a single-page app built from console/ (npm run build) into console/dist, served here with a
// strict content security policy, plus its JSON read models and its event stream under /api/v1/console.
//
// The pages have stable URLs (/releases/<id>, /promotions/<id>, …): every such path answers with the same shell and
// the app routes in the browser. The shell and assets hold no data and need no token; the token is entered in the
// page, kept in the browser's sessionStorage (or localStorage when the operator asks to be remembered), and sent only
// in Authorization headers — never in a URL, so it never reaches an access log.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { Logger } from "pino";
import { ChangeFeed } from "./change-feed.js";
import { consoleApiRoutes, type ConsoleApiDeps } from "./console-api.js";
import { eventStreamRoutes } from "./event-streams.js";

/** console/dist at the repository root; the same relative path from src/ and dist/ of the control-plane package. */
export const CONSOLE_DIST = fileURLToPath(new URL("../../../../console/dist/", import.meta.url));

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** First path segments that are console pages (the app's routes). */
const PAGES = ["releases", "promotions", "deployments", "rollouts", "agents", "environments", "fleet", "activity", "sign-in"];

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

export interface ConsoleRouteDeps extends ConsoleApiDeps {
  log: Logger;
  /** How often the change feed reads the database while a console is connected. */
  pollIntervalMs?: number;
  maxEventStreams?: number;
}

function loadAssets(): Map<string, { body: Buffer; type: string }> | null {
  const manifestPath = `${CONSOLE_DIST}manifest.json`;
  if (!existsSync(manifestPath)) return null;
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { files: string[] };
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const f of manifest.files) {
    const ext = /\.[a-z]+$/.exec(f)?.[0] ?? "";
    files.set(`/${f}`, { body: readFileSync(`${CONSOLE_DIST}${f}`), type: TYPES[ext] ?? "application/octet-stream" });
  }
  return files;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Ferry console</title>
<p>The console has not been built. Run <code>npm run build</code> in the repository, then restart the server.</p>`;

export function consoleRoutes(d: ConsoleRouteDeps): FastifyPluginAsync {
  return async (app) => {
    const assets = loadAssets();
    if (!assets) d.log.warn({ dir: CONSOLE_DIST }, "the console is not built (npm run build); / answers with instructions");
    const feed = new ChangeFeed({ store: d.store, intervalMs: d.pollIntervalMs ?? 250, onError: (err) => d.log.warn({ err }, "console change feed: read failed") });
    const streams = eventStreamRoutes({ feed, maxStreams: d.maxEventStreams ?? 200 });
    app.addHook("onClose", async () => feed.stop());
    await app.register(consoleApiRoutes(d), { prefix: "/api/v1" });
    await app.register(streams, { prefix: "/api/v1" });

    const headers = (type: string, cache: string) => ({
      "content-type": type,
      "cache-control": cache,
      "content-security-policy": CONSOLE_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
    });
    const shell = assets?.get("/index.html");
    const sendShell = async (_req: unknown, reply: FastifyReply) =>
      reply.headers(headers("text/html; charset=utf-8", "no-cache")).send(shell?.body ?? NOT_BUILT);
    app.get("/", sendShell);
    for (const p of PAGES) {
      app.get(`/${p}`, sendShell);
      app.get(`/${p}/*`, sendShell);
    }
    if (assets) {
      for (const [path, f] of assets) {
        if (path === "/index.html") continue;
        // Asset names carry a content hash (see scripts/build-console.mjs), so they may be cached for good.
        app.get(path, async (_req, reply) => reply.headers(headers(f.type, "public, max-age=31536000, immutable")).send(f.body));
      }
    }
  };
}
