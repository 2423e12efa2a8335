// A small Docker Engine API client: the calls the Docker, Compose and SSH drivers make, over HTTP/1.1 with node:http,
// to the engine's unix socket or through a given http.Agent (the ssh driver's, whose connections are SSH channels to
// a remote engine's socket).
//
// Paths carry no API version prefix, as the drivers' requests always have: the engine answers them with its own API
// version. A pinned prefix would be refused at one end or the other of the engines in use — Docker 20.10 (Debian's
// docker.io) speaks at most 1.41, Docker 29 accepts nothing older than 1.44 — and the fields read here (types.ts) are
// the same in all of them.
//
// Everything the engine sends is bounded: a JSON answer (MAX_JSON_BYTES), a line of a newline-delimited stream
// (MAX_LINE_BYTES), the container output a logs read keeps (MAX_LOG_BYTES), an error answer's body. A call fails
// with ETIMEDOUT when the engine sends nothing for `timeoutMs` (a stop: its grace period longer); a pull has no such
// timeout (a slow registry is not a dead engine) and ends with the caller's abort signal.
import http from "node:http";

import { EngineAnswerError, EngineError, EngineProgressError } from "./errors.js";
import { jsonLines, LogDemuxer, preview } from "./stream.js";
import type {
  AuthConfig,
  ContainerCreateOptions,
  ContainerInspect,
  ContainerSummary,
  ContainerUpdateOptions,
  EngineEvent,
  EngineVersion,
  Filters,
  ImageInspect,
  ImageSummary,
  PullEvent,
} from "./types.js";

export { EngineAnswerError, EngineError, EngineProgressError } from "./errors.js";

/** The largest JSON answer read (a list of every container on a busy host is well under this). */
export const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** The largest line of pull progress or events (a progress line is ~200 bytes, an event with many labels a few KB). */
export const MAX_LINE_BYTES = 1024 * 1024;
/** The container output a logs read keeps: its last this many bytes. */
export const MAX_LOG_BYTES = 256 * 1024;
/** The most of an error answer's body read for its message. */
const MAX_ERROR_BYTES = 64 * 1024;
/** An ordinary call fails when the engine sends nothing for this long. */
export const DEFAULT_TIMEOUT_MS = 120_000;

export interface EngineClientOptions {
  /** The engine's unix socket. */
  socketPath?: string;
  /** Or an agent whose connections reach the engine (then socketPath is not used). */
  agent?: http.Agent;
  /** Inactivity timeout of ordinary calls; default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
  maxJsonBytes?: number;
  maxLineBytes?: number;
}

type QueryValue = string | number | boolean | Filters | undefined;

interface RequestSpec {
  method: "GET" | "POST" | "DELETE";
  path: string;
  query?: Record<string, QueryValue>;
  body?: unknown;
  headers?: Record<string, string>;
  /** 0: none (streams). Default: the client's timeoutMs. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A path segment: ids and names as they are, image references with their "/", ":" and "@", anything else escaped. */
function segment(s: string): string {
  return encodeURIComponent(s).replace(/%2F/gi, "/").replace(/%3A/gi, ":").replace(/%40/g, "@");
}

function queryString(query: Record<string, QueryValue> | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    params.set(k, typeof v === "object" ? JSON.stringify(v) : String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

/** The X-Registry-Auth header: base64url of the JSON auth config (with padding, as the docker CLI sends it). */
export function registryAuthHeader(auth: AuthConfig): string {
  return Buffer.from(JSON.stringify(auth)).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
}

export class EngineClient {
  readonly #socketPath: string | undefined;
  readonly #agent: http.Agent | undefined;
  readonly #timeoutMs: number;
  readonly #maxJsonBytes: number;
  readonly #maxLineBytes: number;

  constructor(opts: EngineClientOptions) {
    if (!opts.socketPath && !opts.agent) throw new TypeError("EngineClient: a socketPath or an agent is required");
    this.#socketPath = opts.socketPath;
    this.#agent = opts.agent;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxJsonBytes = opts.maxJsonBytes ?? MAX_JSON_BYTES;
    this.#maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
  }

  /** The inactivity timeout of ordinary calls. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  getContainer(id: string): ContainerRef {
    return new ContainerRef(this, id);
  }

  getImage(name: string): ImageRef {
    return new ImageRef(this, name);
  }

  /** GET /_ping: "OK" when the engine is there. */
  async ping(): Promise<string> {
    return (await this.request({ method: "GET", path: "/_ping" })).toString("utf8");
  }

  version(): Promise<EngineVersion> {
    return this.json<EngineVersion>({ method: "GET", path: "/version" }, "object");
  }

  listContainers(opts: { all?: boolean; filters?: Filters } = {}): Promise<ContainerSummary[]> {
    return this.json<ContainerSummary[]>({ method: "GET", path: "/containers/json", query: { all: opts.all, filters: opts.filters } }, "array");
  }

  listImages(opts: { filters?: Filters } = {}): Promise<ImageSummary[]> {
    return this.json<ImageSummary[]>({ method: "GET", path: "/images/json", query: { filters: opts.filters } }, "array");
  }

  /** POST /containers/create; resolves with the new container. */
  async createContainer(opts: ContainerCreateOptions): Promise<ContainerRef> {
    const { name, ...body } = opts;
    const created = await this.json<{ Id?: unknown }>({ method: "POST", path: "/containers/create", query: { name }, body }, "object");
    if (typeof created.Id !== "string" || created.Id === "") throw new EngineAnswerError("ENGINE_BAD_ANSWER", "POST /containers/create: the engine's answer has no container Id");
    return new ContainerRef(this, created.Id);
  }

  /**
   * POST /images/create?fromImage=…&tag=…: starts a pull. Resolves once the engine answers 200 (rejects as any call
   * does when it does not) with the pull's progress, one event per line, which must be read to the end: the pull is
   * done when the engine closes it. Reading it throws an EngineProgressError at a line that reports a failure
   * (`error`/`errorDetail`: ignoring one would call a failed pull done), and the socket's error when the connection
   * ends mid-pull or `signal` aborts.
   */
  async pull(opts: { fromImage: string; tag?: string; auth?: AuthConfig | undefined; signal?: AbortSignal }): Promise<AsyncGenerator<PullEvent, void, undefined>> {
    const spec: RequestSpec = { method: "POST", path: "/images/create", query: { fromImage: opts.fromImage, tag: opts.tag }, timeoutMs: 0 };
    if (opts.auth) spec.headers = { "X-Registry-Auth": registryAuthHeader(opts.auth) };
    if (opts.signal) spec.signal = opts.signal;
    const res = await this.open(spec);
    const maxLine = this.#maxLineBytes;
    return (async function* progress() {
      try {
        for await (const e of jsonLines<PullEvent>(res, maxLine, "pull")) {
          if (e === null || typeof e !== "object" || Array.isArray(e)) throw new EngineAnswerError("ENGINE_BAD_ANSWER", `pull: the engine sent a progress line that is not an object: ${preview(JSON.stringify(e))}`);
          if (e.error !== undefined || e.errorDetail?.message !== undefined) throw new EngineProgressError(String(e.errorDetail?.message ?? e.error));
          yield e;
        }
      } catch (err) {
        // Aborting destroys the connection: the reason is the abort, not the reset it causes.
        opts.signal?.throwIfAborted();
        throw err;
      } finally {
        res.destroy();
      }
    })();
  }

  /**
   * GET /events between `since` and `until` ("seconds.fraction"): with `until` the engine sends what it recorded and
   * closes. At most `maxEvents` are read (default 10 000); more is an error, not a silent cut.
   */
  async events(opts: { since?: string; until: string; filters?: Filters; maxEvents?: number; signal?: AbortSignal }): Promise<EngineEvent[]> {
    const spec: RequestSpec = { method: "GET", path: "/events", query: { since: opts.since, until: opts.until, filters: opts.filters } };
    if (opts.signal) spec.signal = opts.signal;
    const res = await this.open(spec);
    const max = opts.maxEvents ?? 10_000;
    const out: EngineEvent[] = [];
    try {
      for await (const e of jsonLines<EngineEvent>(res, this.#maxLineBytes, "events")) {
        if (e === null || typeof e !== "object" || Array.isArray(e)) throw new EngineAnswerError("ENGINE_BAD_ANSWER", `events: the engine sent an event that is not an object: ${preview(JSON.stringify(e))}`);
        if (out.length >= max) throw new EngineAnswerError("ENGINE_ANSWER_TOO_LARGE", `events: the engine sent more than ${max} events`);
        out.push(e);
      }
    } finally {
      res.destroy();
    }
    return out;
  }

  /** A request whose answer is JSON of the given kind, read up to maxJsonBytes. */
  async json<T>(spec: RequestSpec, kind: "object" | "array"): Promise<T> {
    const body = await this.request(spec);
    const what = `${spec.method} ${spec.path}`;
    let value: unknown;
    try {
      value = JSON.parse(body.toString("utf8"));
    } catch {
      throw new EngineAnswerError("ENGINE_BAD_JSON", `${what}: the engine's answer is not JSON: ${preview(body.toString("utf8")) || "(empty)"}`);
    }
    const ok = kind === "array" ? Array.isArray(value) : value !== null && typeof value === "object" && !Array.isArray(value);
    if (!ok) throw new EngineAnswerError("ENGINE_BAD_ANSWER", `${what}: the engine's answer is not a JSON ${kind}: ${preview(JSON.stringify(value))}`);
    return value as T;
  }

  /** A request whose answer is read whole, up to maxJsonBytes. */
  async request(spec: RequestSpec): Promise<Buffer> {
    const res = await this.open(spec);
    return readBody(res, this.#maxJsonBytes, `${spec.method} ${spec.path}`, true);
  }

  /**
   * Sends a request; resolves with the answer of a 2xx status, still to be read (the caller reads or destroys it).
   * Any other status is an EngineError with the engine's message.
   */
  open(spec: RequestSpec): Promise<http.IncomingMessage> {
    const what = `${spec.method} ${spec.path}`;
    const body = spec.body === undefined ? undefined : Buffer.from(JSON.stringify(spec.body));
    const headers: Record<string, string | number> = { ...spec.headers };
    if (body) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = body.length;
    }
    const options: http.RequestOptions = {
      method: spec.method,
      path: spec.path.split("/").map((p, i) => (i === 0 ? p : segment(p))).join("/") + queryString(spec.query),
      headers,
      host: "localhost",
    };
    if (this.#agent) options.agent = this.#agent;
    else options.socketPath = this.#socketPath!;
    if (spec.signal) options.signal = spec.signal;
    const timeoutMs = spec.timeoutMs ?? this.#timeoutMs;

    return new Promise((resolve, reject) => {
      let timedOut: NodeJS.ErrnoException | undefined;
      let answer: http.IncomingMessage | undefined;
      const req = http.request(options, (res) => {
        answer = res;
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(res);
          return;
        }
        readBody(res, MAX_ERROR_BYTES, what, false).then(
          (text) => reject(new EngineError(status, errorMessage(text.toString("utf8"), status, what))),
          (err: Error) => reject(timedOut ?? err),
        );
      });
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () => {
          timedOut = Object.assign(new Error(`${what}: the Docker Engine sent nothing for ${timeoutMs} ms`), { code: "ETIMEDOUT" });
          // While the answer is being read, its reader sees the timeout rather than a connection reset.
          answer?.destroy(timedOut);
          req.destroy(timedOut);
        });
      }
      req.on("error", (err) => reject(timedOut ?? err));
      req.end(body);
    });
  }
}

/** The engine's message from an error answer: {"message": "…"}, else the text, else the status. */
function errorMessage(text: string, status: number, what: string): string {
  try {
    const j = JSON.parse(text) as { message?: unknown } | null;
    if (j && typeof j.message === "string" && j.message !== "") return j.message;
  } catch {
    // Not JSON: the text itself, below.
  }
  const t = preview(text);
  return t ? t : `${what}: HTTP ${status} ${http.STATUS_CODES[status] ?? ""}`.trim();
}

/**
 * Reads an answer up to `max` bytes. Past that: an EngineAnswerError when `strict`, else what was read (an error
 * message needs only its start). An answer cut short (the connection closed mid-answer) rejects with the socket's
 * error (ECONNRESET).
 */
function readBody(res: http.IncomingMessage, max: number, what: string, strict: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(res.headers["content-length"]);
    if (strict && Number.isFinite(declared) && declared > max) {
      res.destroy();
      reject(new EngineAnswerError("ENGINE_ANSWER_TOO_LARGE", `${what}: the engine's answer is ${declared} bytes; at most ${max} are read`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined) => {
      if (done) return;
      done = true;
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    res.on("data", (chunk: Buffer) => {
      if (done) return;
      if (size + chunk.length > max) {
        if (strict) {
          res.destroy();
          finish(new EngineAnswerError("ENGINE_ANSWER_TOO_LARGE", `${what}: the engine's answer is larger than ${max} bytes`));
          return;
        }
        chunks.push(chunk.subarray(0, max - size));
        size = max;
        res.destroy();
        finish(undefined);
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    });
    res.on("end", () => finish(undefined));
    res.on("error", (err) => finish(err));
    res.on("close", () => {
      if (!res.complete) finish(Object.assign(new Error(`${what}: the connection to the Docker Engine closed mid-answer`), { code: "ECONNRESET" }));
    });
  });
}

export class ContainerRef {
  readonly #client: EngineClient;
  readonly id: string;

  constructor(client: EngineClient, id: string) {
    this.#client = client;
    this.id = id;
  }

  get #path(): string {
    return `/containers/${this.id}`;
  }

  inspect(): Promise<ContainerInspect> {
    return this.#client.json<ContainerInspect>({ method: "GET", path: `${this.#path}/json` }, "object");
  }

  async start(): Promise<void> {
    await this.#client.request({ method: "POST", path: `${this.#path}/start` });
  }

  /** Stops it, giving it `t` seconds before the engine kills it; the engine answers once it has stopped. */
  async stop(opts: { t?: number } = {}): Promise<void> {
    const spec: RequestSpec = { method: "POST", path: `${this.#path}/stop`, query: { t: opts.t } };
    // The engine is silent while the container stops: the wait is the grace period on top of the usual one.
    if (opts.t !== undefined && this.#client.timeoutMs > 0) spec.timeoutMs = opts.t * 1000 + this.#client.timeoutMs;
    await this.#client.request(spec);
  }

  async remove(opts: { force?: boolean } = {}): Promise<void> {
    await this.#client.request({ method: "DELETE", path: this.#path, query: { force: opts.force } });
  }

  async rename(opts: { name: string }): Promise<void> {
    await this.#client.request({ method: "POST", path: `${this.#path}/rename`, query: { name: opts.name } });
  }

  async update(opts: ContainerUpdateOptions): Promise<void> {
    await this.#client.request({ method: "POST", path: `${this.#path}/update`, body: opts });
  }

  /** Its last `tail` lines of output (stdout and stderr), demultiplexed; at most MAX_LOG_BYTES, the last ones. */
  async logs(opts: { tail: number; stdout?: boolean; stderr?: boolean; maxBytes?: number }): Promise<string> {
    const res = await this.#client.open({
      method: "GET",
      path: `${this.#path}/logs`,
      query: { stdout: opts.stdout ?? true, stderr: opts.stderr ?? true, tail: opts.tail, follow: false },
    });
    const demux = new LogDemuxer(opts.maxBytes ?? MAX_LOG_BYTES);
    try {
      for await (const chunk of res) demux.push(chunk as Buffer);
    } finally {
      res.destroy();
    }
    return demux.text();
  }
}

export class ImageRef {
  readonly #client: EngineClient;
  readonly name: string;

  constructor(client: EngineClient, name: string) {
    this.#client = client;
    this.name = name;
  }

  inspect(): Promise<ImageInspect> {
    return this.#client.json<ImageInspect>({ method: "GET", path: `/images/${this.name}/json` }, "object");
  }

  async remove(opts: { force?: boolean } = {}): Promise<void> {
    await this.#client.request({ method: "DELETE", path: `/images/${this.name}`, query: { force: opts.force } });
  }
}
