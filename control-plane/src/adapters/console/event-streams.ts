// GET /api/v1/console/events: a server-sent event stream of change topics for the console.
//
// Authenticated like every /api route (the bearer token in the Authorization header; the console reads the stream
// with fetch, never EventSource, because EventSource cannot send headers and a token in a URL ends up in logs).
// Bounded on every side: at most `maxStreams` streams per replica (RATE_LIMITED beyond, and the console falls back to
// polling); per stream, pending topics are a set (so a slow reader holds at most one entry per topic) and nothing is
// written while the socket has not drained; each stream ends after `maxAgeMs` so a revoked token stops receiving
// within that time (the console reconnects, which authenticates again).
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { FerryError } from "../../domain/errors.js";
import type { ChangeFeed, Topic } from "./change-feed.js";

export interface EventStreamOptions {
  feed: ChangeFeed;
  maxStreams?: number;
  maxAgeMs?: number;
  keepaliveMs?: number;
}

interface Stream {
  reply: FastifyReply;
  buffer: TopicBuffer;
  close: () => void;
}

/** The writable side of one stream, as far as the buffer needs it. */
export interface StreamSink {
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
  write(chunk: string): boolean;
}

/**
 * What one stream still has to send: a set of topics, so a subscriber that reads slowly holds at most one entry per
 * topic however many changes happen, and nothing is written while the socket has not drained (its kernel and Node
 * buffers then stay at one event's size).
 */
export class TopicBuffer {
  private readonly pending = new Set<Topic>();
  constructor(
    private readonly sink: StreamSink,
    private readonly nextId: () => number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  add(topics: Iterable<Topic>): void {
    for (const t of topics) this.pending.add(t);
    this.flush();
  }

  flush(): void {
    if (this.pending.size === 0 || this.sink.writableNeedDrain || this.sink.destroyed) return;
    const topics = [...this.pending];
    this.pending.clear();
    this.sink.write(`id: ${this.nextId()}\nevent: change\ndata: ${JSON.stringify({ topics })}\n\n`);
  }
}

export function eventStreamRoutes(o: EventStreamOptions): FastifyPluginAsync & { open: () => number; closeAll: () => void } {
  const maxStreams = o.maxStreams ?? 200;
  const maxAgeMs = o.maxAgeMs ?? 10 * 60_000;
  const keepaliveMs = o.keepaliveMs ?? 15_000;
  const streams = new Set<Stream>();
  let eventId = 0;

  const plugin: FastifyPluginAsync = async (app) => {
    app.addHook("preClose", async () => {
      for (const s of [...streams]) s.close();
    });
    app.get(
      "/console/events",
      {
        config: { role: "viewer" },
        schema: {
          summary: "Server-sent events naming what changed (fleet, deployments, logs, promotions, releases, estate, catalog), for the console",
          querystring: { type: "object", additionalProperties: false, properties: {} },
        },
      },
      async (req, reply) => {
        // A stream request carries nothing; refusing a body keeps a confused client from holding a stream open.
        const length = req.headers["content-length"];
        if ((length !== undefined && length !== "0") || req.headers["transfer-encoding"]) {
          throw new FerryError("VALIDATION_FAILED", "body: GET /api/v1/console/events takes no request body", { field: "body", in: "body" });
        }
        if (streams.size >= maxStreams) {
          throw new FerryError("RATE_LIMITED", `this replica already serves ${maxStreams} console event streams; poll instead, or retry later`, { retryAfterSeconds: 30 });
        }
        const raw = reply.raw;
        reply.hijack();
        raw.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache, no-transform",
          // Tells nginx-style proxies not to buffer the stream; where a proxy buffers anyway the console sees no
          // "ready" event within its deadline and falls back to polling.
          "x-accel-buffering": "no",
          connection: "keep-alive",
        });
        const s: Stream = {
          reply,
          buffer: new TopicBuffer(raw, () => ++eventId),
          close: () => {
            if (!streams.delete(s)) return;
            unsubscribe();
            clearInterval(keepalive);
            clearTimeout(expiry);
            raw.end();
          },
        };
        streams.add(s);
        const unsubscribe = o.feed.subscribe((topics) => s.buffer.add(topics));
        raw.on("drain", () => s.buffer.flush());
        raw.on("close", () => s.close());
        req.raw.on("close", () => s.close());
        const keepalive = setInterval(() => {
          if (!raw.writableNeedDrain) raw.write(": keepalive\n\n");
        }, keepaliveMs);
        const expiry = setTimeout(() => s.close(), maxAgeMs);
        keepalive.unref();
        expiry.unref();
        raw.write(`retry: 1000\nevent: ready\ndata: ${JSON.stringify({ intervalMs: o.feed.intervalMs, maxAgeMs })}\n\n`);
      },
    );
  };
  return Object.assign(plugin, {
    open: () => streams.size,
    closeAll: () => {
      for (const s of [...streams]) s.close();
    },
  });
}
