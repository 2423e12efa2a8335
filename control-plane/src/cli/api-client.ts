// The CLI's client for the JSON API.
//
// Where the CLI finds the server and token: --url/--token flags > FERRY_URL/FERRY_TOKEN > the config file
// (~/.config/ferry/cli.json, or FERRY_CLI_CONFIG: {"url": "...", "token": "..."}) > defaults: http://127.0.0.1:7070
// and, for the token, the admin-token file in the local data dir (FERRY_DATA_DIR or ./.ferry) — so an operator on the
// control-plane host can use the CLI right after `ferry server` without copying the token around.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

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
}

export function resolveClient(flags: ClientOptions, env: NodeJS.ProcessEnv = process.env): { url: string; token: string | null } {
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
  return { url, token };
}

export class ApiClient {
  constructor(
    private readonly url: string,
    private readonly token: string | null,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", ...extraHeaders };
    if (this.token) headers["authorization"] = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      throw new ConnectError(`cannot reach the control plane at ${this.url} (${cause?.code ?? (err as Error).message}); is 'ferry server' running? Set --url or FERRY_URL.`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      throw new ApiError(res.status, "BAD_RESPONSE", `the server answered HTTP ${res.status} with a body that is not JSON`);
    }
    if (!res.ok) {
      const e = (parsed as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)?.error;
      throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `HTTP ${res.status}`, e?.details);
    }
    return parsed as T;
  }

  /** A GET answered with text (task logs); errors are JSON like everywhere else. */
  async text(path: string): Promise<{ body: string; headers: Headers }> {
    const headers: Record<string, string> = {};
    if (this.token) headers["authorization"] = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { headers, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      throw new ConnectError(`cannot reach the control plane at ${this.url} (${cause?.code ?? (err as Error).message}); is 'ferry server' running? Set --url or FERRY_URL.`);
    }
    const body = await res.text();
    if (!res.ok) {
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
