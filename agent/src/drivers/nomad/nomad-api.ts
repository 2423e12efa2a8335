// A small client of the Nomad HTTP API (no SDK: the API is plain JSON over HTTP). It adds the ACL token
// (`X-Nomad-Token`, read from the token file at each call so a rotated token is used at once), TLS with the operator's
// CA and client certificate, `namespace` and `region` on every call, and blocking queries (`index` + `wait`), and turns
// Nomad's plain-text errors into driver errors with stable codes. The token never appears in an error or a log line.
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";

import { DriverError } from "../driver.js";

export interface NomadResponse<T> {
  body: T;
  /** X-Nomad-Index: pass it back as `index` to block until something changes. */
  index: number;
}

export class NomadApiError extends Error {
  override readonly name = "NomadApiError";
  constructor(
    readonly status: number,
    readonly text: string,
    readonly call: string,
  ) {
    super(`Nomad ${call}: ${status} ${text.trim()}`);
  }
}

const MAX_BODY = 32 * 1024 * 1024;
const CALL_TIMEOUT_MS = 30_000;

export interface NomadTarget {
  address: string;
  namespace?: string | undefined;
  region?: string | undefined;
}

export class NomadApi {
  readonly #s: NomadSettings;
  readonly #env: NodeJS.ProcessEnv;

  constructor(settings: NomadSettings, env: NodeJS.ProcessEnv = process.env) {
    this.#s = settings;
    this.#env = env;
  }

  defaultAddress(): string {
    return this.#s.address ?? this.#env["NOMAD_ADDR"] ?? "http://127.0.0.1:4646";
  }

  #token(): string | undefined {
    if (this.#s.tokenFile) {
      try {
        return readFileSync(this.#s.tokenFile, "utf8").trim();
      } catch (err) {
        throw new DriverError("PLATFORM_ACCESS_DENIED", `cannot read the Nomad token file ${this.#s.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {});
      }
    }
    return this.#env["NOMAD_TOKEN"] || undefined;
  }

  #tls(): Pick<RequestOptions, "ca" | "cert" | "key" | "servername"> {
    const file = (p: string | undefined) => (p ? readFileSync(p) : undefined);
    const ca = file(this.#s.caFile ?? this.#env["NOMAD_CACERT"]);
    const cert = file(this.#s.clientCertFile ?? this.#env["NOMAD_CLIENT_CERT"]);
    const key = file(this.#s.clientKeyFile ?? this.#env["NOMAD_CLIENT_KEY"]);
    const servername = this.#s.tlsServerName ?? this.#env["NOMAD_TLS_SERVER_NAME"];
    return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(servername ? { servername } : {}) };
  }

  get blockingWaitSeconds(): number {
    return this.#s.blockingWaitSeconds ?? 30;
  }

  /** One call. `query.index` makes it a blocking query. Throws NomadApiError for an HTTP error, DriverError otherwise. */
  async call<T>(target: NomadTarget, method: "GET" | "POST", path: string, opts: { body?: unknown; query?: Record<string, string>; signal?: AbortSignal; index?: number } = {}): Promise<NomadResponse<T>> {
    const url = new URL(path, target.address.endsWith("/") ? target.address : `${target.address}/`);
    if (target.namespace) url.searchParams.set("namespace", target.namespace);
    if (target.region) url.searchParams.set("region", target.region);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    if (opts.index !== undefined && opts.index > 0) {
      url.searchParams.set("index", String(opts.index));
      url.searchParams.set("wait", `${this.blockingWaitSeconds}s`);
    }
    const call = `${method} ${url.pathname}`;
    const token = this.#token();
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers["x-nomad-token"] = token;
    if (payload) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(payload.length);
    }
    const https = url.protocol === "https:";
    const timeout = CALL_TIMEOUT_MS + (opts.index ? this.blockingWaitSeconds * 1000 : 0);
    return new Promise<NomadResponse<T>>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, { method, headers, ...(https ? this.#tls() : {}), ...(opts.signal ? { signal: opts.signal } : {}), timeout }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) req.destroy(new Error(`answer larger than ${MAX_BODY} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) return reject(new NomadApiError(status, text.slice(0, 2000), call));
          try {
            resolve({ body: (text === "" ? null : JSON.parse(text)) as T, index: Number(res.headers["x-nomad-index"] ?? 0) });
          } catch (err) {
            reject(new DriverError("PLATFORM_UNAVAILABLE", `Nomad ${call}: the answer is not JSON: ${(err as Error).message}`, {}));
          }
        });
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`no answer within ${timeout} ms`)));
      req.on("error", (err) => {
        if (opts.signal?.aborted) return reject(err);
        reject(new DriverError("PLATFORM_UNAVAILABLE", `Nomad ${call} at ${url.origin} failed: ${err.message}`, { address: url.origin }));
      });
      req.end(payload);
    });
  }
}

/** A Nomad API failure as a driver failure: 403 denied, 404 not found, 429/5xx unavailable, other 4xx rejected. */
export function nomadError(err: unknown, what: string): DriverError {
  if (err instanceof DriverError) return err;
  if (err instanceof NomadApiError) {
    const details = { call: err.call, status: err.status, nomad: err.text.trim() };
    if (err.status === 403) return new DriverError("PLATFORM_ACCESS_DENIED", `Nomad refused ${what} for the gateway agent's token: ${err.text.trim()} (${err.call})`, details);
    if (err.status === 404) return new DriverError("TARGET_NOT_FOUND", `${what}: ${err.text.trim()}`, details);
    if (err.status === 429 || err.status >= 500) return new DriverError("PLATFORM_UNAVAILABLE", `Nomad ${what} failed: ${err.status} ${err.text.trim()}`, details);
    return new DriverError("PLATFORM_REJECTED", `Nomad refused ${what}: ${err.text.trim()}`, details);
  }
  return new DriverError("PLATFORM_UNAVAILABLE", `Nomad ${what} failed: ${(err as Error)?.message ?? String(err)}`, {});
}

/** The driver's section of the agent config (drivers.nomad), as its registration's schema checked it. */
export interface NomadSettings {
  address?: string;
  tokenFile?: string;
  caFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
  tlsServerName?: string;
  blockingWaitSeconds?: number;
}
