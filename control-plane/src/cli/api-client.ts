// The CLI's client for the JSON API.
//
// Where the CLI finds the server and token: --url/--token flags > FERRY_URL/FERRY_TOKEN > the config file
// (~/.config/ferry/cli.json, or FERRY_CLI_CONFIG: {"url": "...", "token": "...", "ca": "...", "caFingerprint": "..."})
// > defaults: http://127.0.0.1:7070 and, for the token, the admin-token file in the local data dir (FERRY_DATA_DIR or
// ./.ferry) — so an operator on the control-plane host can use the CLI right after `ferry server` without copying the
// token around. TLS trust for https:// URLs (--ca, --ca-fingerprint): see http-transport.ts.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { HttpTransport, TransportError, type TransportResponse, type TrustOptions } from "./http-transport.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export class ConnectError extends Error {}

export interface ClientOptions {
  url?: string;
  token?: string;
  ca?: string;
  caFingerprint?: string;
}

export function resolveClient(flags: ClientOptions, env: NodeJS.ProcessEnv = process.env): { url: string; token: string | null; trust: TrustOptions } {
  const configPath = env["FERRY_CLI_CONFIG"] ?? join(env["XDG_CONFIG_HOME"] ?? join(homedir(), ".config"), "ferry", "cli.json");
  let file: ClientOptions = {};
  if (existsSync(configPath)) {
    try {
      file = JSON.parse(readFileSync(configPath, "utf8")) as ClientOptions;
    } catch (err) {
      throw new ConnectError(`cannot read ${configPath}: ${(err as Error).message}`);
    }
  }
  const url = (flags.url ?? env["FERRY_URL"] ?? file.url ?? "http://127.0.0.1:7070").replace(/\/+$/, "");
  let token = flags.token ?? env["FERRY_TOKEN"] ?? file.token ?? null;
  if (!token) {
    const tokenFile = join(resolve(env["FERRY_DATA_DIR"] ?? ".ferry"), "admin-token");
    if (existsSync(tokenFile)) token = readFileSync(tokenFile, "utf8").trim();
  }
  const dataDir = resolve(env["FERRY_DATA_DIR"] ?? ".ferry");
  const trust: TrustOptions = {
    caFile: flags.ca ?? env["FERRY_CA"] ?? file.ca ?? null,
    caFingerprint: flags.caFingerprint ?? env["FERRY_CA_FINGERPRINT"] ?? file.caFingerprint ?? null,
    localCaFile: join(dataDir, "ca", "ca.crt"),
  };
  return { url, token, trust };
}

export class ApiClient {
  readonly #transport: HttpTransport;

  constructor(
    private readonly url: string,
    private readonly token: string | null,
    trust: TrustOptions = {},
  ) {
    this.#transport = new HttpTransport(url, trust);
  }

  async #send(method: string, path: string, headers: Record<string, string>, body: string | null): Promise<TransportResponse> {
    try {
      return await this.#transport.request(method, path, headers, body);
    } catch (err) {
      if (err instanceof TransportError) throw new ConnectError(err.message);
      throw err;
    }
  }

  async request<T>(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", ...extraHeaders };
    if (this.token) headers["authorization"] = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await this.#send(method, path, headers, body === undefined ? null : JSON.stringify(body));
    const text = res.body.toString("utf8");
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      throw new ApiError(res.status, "BAD_RESPONSE", `the server answered HTTP ${res.status} with a body that is not JSON`);
    }
    if (res.status < 200 || res.status > 299) {
      const e = (parsed as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)?.error;
      throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `HTTP ${res.status}`, e?.details);
    }
    return parsed as T;
  }

  /** A GET answered with text (task logs); errors are JSON like everywhere else. */
  async text(path: string): Promise<{ body: string; headers: Headers }> {
    const headers: Record<string, string> = {};
    if (this.token) headers["authorization"] = `Bearer ${this.token}`;
    const res = await this.#send("GET", path, headers, null);
    const body = res.body.toString("utf8");
    if (res.status < 200 || res.status > 299) {
      let e: { code?: string; message?: string } | undefined;
      try {
        e = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error;
      } catch {
        e = undefined;
      }
      throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `HTTP ${res.status}`);
    }
    return { body, headers: res.headers };
  }
}

/** The query of a list command's page: --env, --state, --limit and --cursor as the list endpoints take them. */
export function listQuery(o: { env?: string; state?: string; limit: string; cursor?: string }): URLSearchParams {
  const q = new URLSearchParams();
  if (o.env) q.set("environment", o.env);
  if (o.state) q.set("state", o.state);
  q.set("limit", o.limit);
  if (o.cursor) q.set("cursor", o.cursor);
  return q;
}
