// The control plane's JSON API as the bench uses it: the admin token the server wrote into its data directory, one
// keep-alive connection pool (fetch), JSON in and out, errors with the server's code.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class FerryApi {
  private readonly token: string;

  constructor(
    readonly base: string,
    dataDir: string,
  ) {
    this.token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${this.base}/api/v1${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    if (!res.ok) {
      let code = `HTTP_${res.status}`;
      try {
        const body = JSON.parse(text) as { code?: string; error?: { code?: string } };
        code = body.error?.code ?? body.code ?? code;
      } catch {
        // not JSON
      }
      throw new ApiError(res.status, code, `${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
    }
    return (text ? JSON.parse(text) : null) as T;
  }

  /** Creates what may already exist (an environment on a reused data directory): a 409 is fine. */
  async ensure(path: string, body: unknown): Promise<void> {
    try {
      await this.call("POST", path, body);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409)) throw err;
    }
  }
}

// The views the API returns are the control plane's own types.
export type { DeploymentView, TaskEventView as TaskEvent, TaskView } from "../../control-plane/src/domain/deploy/deployment-service.js";
