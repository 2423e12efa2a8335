// A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) serving from a temp directory on
// 127.0.0.1, with no auth, htpasswd Basic auth, or Docker token auth backed by a token server running in the test
// process. Images are pushed through the registry's HTTP API (no Docker engine needed), so tests know the exact
// digests a resolver must find.
//
// Every process and server started here listens on 127.0.0.1 only and is stopped by `stop()` (the registry by its
// PID); callers register `stop()` in their cleanup.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createHash, createPrivateKey, createPublicKey, randomBytes, randomUUID, sign, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { freePort } from "./net.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FleetCa } from "@ferry/pki";
import { waitFor } from "./wait.js";

export const REGISTRY_BIN = process.env["FERRY_TEST_REGISTRY_BIN"] ?? "/usr/bin/docker-registry";

/**
 * Why the real-registry suites cannot run here, or false when they can. In CI (CI=true) a missing binary is an error,
 * not a skip: scripts/test-env.sh installs it.
 */
export function registrySkipReason(): string | false {
  if (existsSync(REGISTRY_BIN) && spawnSync("htpasswd", ["-h"]).error === undefined) return false;
  if (process.env["CI"] === "true") throw new Error(`${REGISTRY_BIN} or htpasswd is missing in CI (scripts/test-env.sh installs them)`);
  return `${REGISTRY_BIN} or htpasswd is not installed: the real-registry suites did not run (run scripts/test-env.sh)`;
}

export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

export type RegistryAuth = "none" | "basic" | "token";

export interface RegistryUser {
  username: string;
  password: string;
}

export interface TokenRequestRecord {
  scopes: string[];
  service: string | null;
  /** The user whose Basic credentials were accepted; null for an anonymous request. */
  user: string | null;
  status: number;
}

export interface TokenServer {
  /** The realm the registry sends clients to, e.g. "http://127.0.0.1:40123/token". */
  realm: string;
  service: string;
  issuer: string;
  /** Every request the token endpoint received, in order. */
  readonly requests: TokenRequestRecord[];
  /** expires_in for tokens it issues from now on (seconds). */
  expiresIn: number;
  /** Signs a token directly, without an HTTP request (the push helpers use this, so `requests` counts only clients). */
  mint(repository: string, actions: string[]): string;
  close(): Promise<void>;
}

export interface TestRegistry {
  /** "127.0.0.1:PORT" */
  host: string;
  /** "http://127.0.0.1:PORT" */
  url: string;
  auth: RegistryAuth;
  /** Users the registry (or its token server) accepts; empty without auth. */
  users: RegistryUser[];
  tokenServer?: TokenServer;
  pid: number;
  /** What the registry printed, for failure messages. */
  logs(): string;
  /** The Authorization header the push helpers send for a repository (undefined without auth). */
  authorization(repository: string): string | undefined;
  stop(): Promise<void>;
}

function registryConfig(p: { port: number; dataDir: string; auth: string }): string {
  // JSON.stringify gives YAML-compatible double-quoted strings for the paths.
  return [
    "version: 0.1",
    "log:",
    "  level: info",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(p.dataDir)}`,
    // Tests retag and delete manifests.
    "  delete:",
    "    enabled: true",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    `  addr: 127.0.0.1:${p.port}`,
    `  secret: ${randomBytes(16).toString("hex")}`,
    p.auth,
    "",
  ].join("\n");
}

export async function startRegistry(opts: { auth?: RegistryAuth; tokenExpiresIn?: number } = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? "none";
  const dir = mkdtempSync(join(tmpdir(), "ferry-registry-"));
  const users: RegistryUser[] = auth === "none" ? [] : [{ username: "ferry", password: `pw-${randomBytes(9).toString("base64url")}` }];
  let tokenServer: TokenServer | undefined;
  let authYaml = "";
  try {
    if (auth === "basic") {
      const lines = users.map((u) => {
        // bcrypt (-B) is the only htpasswd hash distribution accepts.
        const r = spawnSync("htpasswd", ["-Bbn", u.username, u.password], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`htpasswd failed (is apache2-utils installed? run scripts/test-env.sh): ${r.stderr}`);
        return r.stdout.trim();
      });
      writeFileSync(join(dir, "htpasswd"), `${lines.join("\n")}\n`, { mode: 0o600 });
      authYaml = ["auth:", "  htpasswd:", "    realm: ferry-test", `    path: ${JSON.stringify(join(dir, "htpasswd"))}`].join("\n");
    } else if (auth === "token") {
      tokenServer = await startTokenServer({ dir, users, expiresIn: opts.tokenExpiresIn ?? 300 });
      authYaml = [
        "auth:",
        "  token:",
        `    realm: ${tokenServer.realm}`,
        `    service: ${tokenServer.service}`,
        `    issuer: ${tokenServer.issuer}`,
        `    rootcertbundle: ${JSON.stringify(join(dir, "token-ca", "ca.crt"))}`,
      ].join("\n");
    }

    // The port is free when we look and may be taken before the registry binds it: retry a bounded number of times.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      writeFileSync(join(dir, "config.yml"), registryConfig({ port, dataDir: join(dir, "data"), auth: authYaml }));
      try {
        return await launch({ dir, port, auth, users, tokenServer });
      } catch (err) {
        lastError = err;
        if (!/address already in use/i.test((err as Error).message)) break;
      }
    }
    throw lastError;
  } catch (err) {
    await tokenServer?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(p: { dir: string; port: number; auth: RegistryAuth; users: RegistryUser[]; tokenServer: TokenServer | undefined }): Promise<TestRegistry> {
  // REGISTRY_* variables override the config file; keep the caller's environment out of it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")));
  const child: ChildProcess = spawn(REGISTRY_BIN, ["serve", join(p.dir, "config.yml")], { cwd: p.dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (output += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  const host = `127.0.0.1:${p.port}`;
  const url = `http://${host}`;

  const running = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  // By PID: SIGTERM, then SIGKILL if it has not gone within 5 s.
  const kill = async () => {
    if (!running() || child.pid === undefined) return;
    const pid = child.pid;
    process.kill(pid, "SIGTERM");
    const killer = setTimeout(() => {
      if (running()) process.kill(pid, "SIGKILL");
    }, 5000);
    await exited;
    clearTimeout(killer);
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await kill();
    await p.tokenServer?.close();
    rmSync(p.dir, { recursive: true, force: true });
  };

  // Polls until the registry answers or the process is gone; an early exit stops the wait at once, with its output.
  const outcome = await waitFor(
    `the registry on ${host} to answer GET /v2/`,
    async () => {
      const failed = await Promise.race([spawnError, Promise.resolve(null)]);
      if (failed) return `cannot run ${REGISTRY_BIN}: ${failed.message} (run scripts/test-env.sh)`;
      if (child.exitCode !== null || child.signalCode !== null) return `the registry exited (${child.exitCode ?? child.signalCode}): ${output}`;
      // Any HTTP answer (200, or 401 with auth) means it is serving.
      const res = await fetch(`${url}/v2/`).catch(() => null);
      await res?.body?.cancel();
      return res !== null ? "ready" : undefined;
    },
    { timeoutMs: 20_000 },
  ).catch(async (err: unknown) => {
    await kill();
    throw err;
  });
  // The caller cleans up the directory and token server (it may retry on another port with them).
  if (outcome !== "ready") {
    await kill();
    throw new Error(outcome);
  }

  const reg: TestRegistry = {
    host,
    url,
    auth: p.auth,
    users: p.users,
    pid: child.pid ?? -1,
    logs: () => output,
    authorization(repository: string) {
      const user = p.users[0];
      if (p.auth === "basic" && user) return `Basic ${Buffer.from(`${user.username}:${user.password}`).toString("base64")}`;
      if (p.auth === "token" && p.tokenServer) return `Bearer ${p.tokenServer.mint(repository, ["pull", "push", "delete"])}`;
      return undefined;
    },
    stop,
  };
  if (p.tokenServer) reg.tokenServer = p.tokenServer;
  return reg;
}

// ---------------------------------------------------------------------------------------------------------------
// Docker token protocol (https://distribution.github.io/distribution/spec/auth/token/): the registry sends clients
// to the realm with service + scope; the realm checks Basic credentials and answers a JWT listing granted access.

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

/**
 * libtrust's key ID, which distribution 2.8 matches against the JWT "kid" header: the SHA-256 of the key's DER
 * SubjectPublicKeyInfo, truncated to 240 bits, base32-encoded (48 characters) and split into 12 groups of 4 by ":".
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const digest = createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return (out.match(/.{4}/g) ?? []).join(":");
}

async function startTokenServer(p: { dir: string; users: RegistryUser[]; expiresIn: number }): Promise<TokenServer> {
  // Any self-signed ECDSA P-256 certificate will do as the registry's rootcertbundle; the fleet CA's generator
  // writes one (ca.crt) with its key (ca.key) without reaching for openssl.
  const caDir = join(p.dir, "token-ca");
  await FleetCa.loadOrCreate(caDir);
  const key = createPrivateKey(readFileSync(join(caDir, "ca.key"), "utf8"));
  const kid = libtrustKeyId(createPublicKey(key));
  const service = "ferry-test-registry";
  const issuer = "ferry-test-token-issuer";

  const mint = (subject: string, access: Array<{ type: string; name: string; actions: string[] }>, expiresIn: number) => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "ES256", kid };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + expiresIn, nbf: now - 60, iat: now, jti: randomUUID(), access };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    // JWS ES256 signatures are r||s (IEEE P1363), not DER.
    const signature = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
    return `${input}.${base64url(signature)}`;
  };

  const requests: TokenRequestRecord[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? "/", "http://127.0.0.1");
    const answer = (status: number, body: unknown, record: Omit<TokenRequestRecord, "status">) => {
      requests.push({ ...record, status });
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const scopes = u.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
    const record = { scopes, service: u.searchParams.get("service"), user: null as string | null };
    if (req.method !== "GET" || u.pathname !== "/token") return answer(404, { errors: [{ code: "NOT_FOUND" }] }, record);
    let user: RegistryUser | undefined;
    const authz = req.headers.authorization;
    if (authz) {
      const m = /^Basic\s+(\S+)$/i.exec(authz);
      const decoded = m?.[1] ? Buffer.from(m[1], "base64").toString("utf8") : "";
      const colon = decoded.indexOf(":");
      user = p.users.find((x) => colon > 0 && x.username === decoded.slice(0, colon) && x.password === decoded.slice(colon + 1));
      if (!user) return answer(401, { errors: [{ code: "UNAUTHORIZED", message: "invalid username or password" }] }, record);
    }
    record.user = user?.username ?? null;
    if (record.service !== service) return answer(400, { errors: [{ code: "INVALID_SERVICE", message: `unknown service ${record.service}` }] }, record);
    // Anonymous callers get a token that grants nothing, as public token servers do for private repositories.
    const access = user
      ? scopes.flatMap((s) => {
          const [type, ...rest] = s.split(":");
          const actions = (rest.pop() ?? "").split(",").filter((a) => ["pull", "push", "delete"].includes(a));
          return type === "repository" && rest.length > 0 ? [{ type, name: rest.join(":"), actions }] : [];
        })
      : [];
    const token = mint(record.user ?? "", access, tokenServer.expiresIn);
    answer(200, { token, access_token: token, expires_in: tokenServer.expiresIn, issued_at: new Date().toISOString() }, record);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const tokenServer: TokenServer = {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    requests,
    expiresIn: p.expiresIn,
    mint: (repository, actions) => mint("ferry-test-pusher", [{ type: "repository", name: repository, actions }], 300),
    close: async () => {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return tokenServer;
}

// ---------------------------------------------------------------------------------------------------------------
// Pushing through the registry API (OCI distribution spec, "push" section).

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function call(reg: TestRegistry, repository: string, method: string, pathOrUrl: string, init: { body?: Buffer; contentType?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  const authz = reg.authorization(repository);
  if (authz) headers["authorization"] = authz;
  if (init.contentType) headers["content-type"] = init.contentType;
  const url = pathOrUrl.startsWith("http") ? pathOrUrl : `${reg.url}${pathOrUrl}`;
  const res = await fetch(url, { method, headers, ...(init.body ? { body: init.body } : {}), signal: AbortSignal.timeout(15_000) });
  return res;
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) throw new Error(`${what}: expected HTTP ${status}, got ${res.status}: ${await res.text()}`);
}

/** Uploads a blob (POST an upload session, then one monolithic PUT with ?digest=) and returns its digest. */
export async function uploadBlob(reg: TestRegistry, repository: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256Digest(bytes);
  const start = await call(reg, repository, "POST", `/v2/${repository}/blobs/uploads/`);
  await expectStatus(start, 202, `start a blob upload in ${repository}`);
  await start.body?.cancel();
  const location = start.headers.get("location");
  if (!location) throw new Error("blob upload answered without a Location");
  const target = new URL(location, reg.url);
  target.searchParams.set("digest", digest);
  const put = await call(reg, repository, "PUT", target.toString(), { body: bytes, contentType: "application/octet-stream" });
  await expectStatus(put, 201, `finish the blob upload of ${digest}`);
  await put.body?.cancel();
  return { digest, size: bytes.length };
}

/** PUTs a manifest under a tag or digest; returns the registry's Docker-Content-Digest (checked against the bytes). */
export async function putManifest(reg: TestRegistry, repository: string, reference: string, body: Buffer, mediaType: string): Promise<string> {
  const res = await call(reg, repository, "PUT", `/v2/${repository}/manifests/${reference}`, { body, contentType: mediaType });
  await expectStatus(res, 201, `put manifest ${repository}:${reference}`);
  await res.body?.cancel();
  const digest = res.headers.get("docker-content-digest");
  if (digest !== sha256Digest(body)) throw new Error(`the registry answered Docker-Content-Digest ${digest}, the body hashes to ${sha256Digest(body)}`);
  return digest;
}

export async function deleteManifest(reg: TestRegistry, repository: string, digest: string): Promise<void> {
  const res = await call(reg, repository, "DELETE", `/v2/${repository}/manifests/${digest}`);
  await expectStatus(res, 202, `delete ${repository}@${digest}`);
  await res.body?.cancel();
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface PushedImage {
  digest: string;
  mediaType: string;
  size: number;
  platform: Platform;
}

/**
 * Pushes a single-platform image: a small config blob, one layer of random bytes, and a manifest (OCI image
 * manifest by default, or Docker schema 2) under `tag`, or by digest only when tag is null.
 */
export async function pushImage(
  reg: TestRegistry,
  repository: string,
  tag: string | null,
  opts: { format?: "oci" | "docker"; platform?: Platform } = {},
): Promise<PushedImage> {
  const oci = (opts.format ?? "oci") === "oci";
  const platform = opts.platform ?? { os: "linux", architecture: "amd64" };
  const layerBytes = randomBytes(512);
  const layer = await uploadBlob(reg, repository, layerBytes);
  const configBytes = Buffer.from(
    JSON.stringify({ ...platform, config: {}, rootfs: { type: "layers", diff_ids: [layer.digest] }, history: [{ created_by: "ferry test" }] }),
  );
  const config = await uploadBlob(reg, repository, configBytes);
  const mediaType = oci ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: oci ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig, digest: config.digest, size: config.size },
      layers: [{ mediaType: oci ? MEDIA_TYPES.ociLayer : MEDIA_TYPES.dockerLayer, digest: layer.digest, size: layer.size }],
    }),
  );
  const digest = sha256Digest(manifest);
  await putManifest(reg, repository, tag ?? digest, manifest, mediaType);
  return { digest, mediaType, size: manifest.length, platform };
}

export interface PushedIndex {
  digest: string;
  mediaType: string;
  manifests: PushedImage[];
}

/** Pushes one image per platform (by digest), then an OCI index (or Docker manifest list) naming them under `tag`. */
export async function pushIndex(
  reg: TestRegistry,
  repository: string,
  tag: string,
  opts: { format?: "oci" | "docker"; platforms?: Platform[] } = {},
): Promise<PushedIndex> {
  const oci = (opts.format ?? "oci") === "oci";
  const platforms = opts.platforms ?? [
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64", variant: "v8" },
  ];
  const manifests: PushedImage[] = [];
  for (const platform of platforms) manifests.push(await pushImage(reg, repository, null, { format: opts.format ?? "oci", platform }));
  const mediaType = oci ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerList;
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform })),
    }),
  );
  const digest = await putManifest(reg, repository, tag, body, mediaType);
  return { digest, mediaType, manifests };
}

// ---------------------------------------------------------------------------------------------------------------
// Loopback fakes, for what a real registry cannot be made to do (answer a wrong digest, never answer).

export interface FakeRequest {
  method: string;
  url: string;
  authorization: string | null;
  accept: string | null;
}

export interface FakeServer {
  /** "127.0.0.1:PORT" */
  host: string;
  readonly requests: FakeRequest[];
  close(): Promise<void>;
}

async function listenLoopback(handler: (req: IncomingMessage, res: ServerResponse) => void, requests: FakeRequest[]): Promise<FakeServer> {
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization ?? null, accept: req.headers.accept ?? null });
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closed = false;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    close: async () => {
      if (closed) return;
      closed = true;
      // Held-open connections (the hanging server's) would keep close() waiting forever.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A server that accepts connections and reads requests but never answers. */
export async function startHangingServer(): Promise<FakeServer> {
  return listenLoopback(() => undefined, []);
}

export interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/** A scripted registry: `respond` decides every answer (HEAD answers get the headers without the body). */
export async function startFakeRegistry(respond: (req: FakeRequest) => FakeResponse): Promise<FakeServer> {
  const requests: FakeRequest[] = [];
  return listenLoopback((req, res) => {
    const last = requests[requests.length - 1];
    const r = last ? respond(last) : { status: 500 };
    const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body);
    res.writeHead(r.status, { "content-length": String(body.length), ...r.headers });
    res.end(req.method === "HEAD" ? undefined : body);
  }, requests);
}
