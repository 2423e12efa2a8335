// A real Docker Engine for tests, and test images for it.
//
// The engine is the project's own dockerd that scripts/test-env.sh starts on unix:///run/ferry-test/docker.sock (no
// bridge, no iptables rules; containers use host networking and listen on loopback). FERRY_TEST_DOCKER_SOCKET points
// the suites at another engine; without it and without the project's engine, /var/run/docker.sock is tried.
//
// No public registry is reachable, so test images are made here: `docker import` of a root filesystem holding only a
// static busybox (Debian's busybox-static) and its applet symlinks, plus a /www directory served by busybox httpd on
// a loopback port. They are pushed with the docker CLI to a registry from ./registry.ts (Docker treats registries on
// 127.0.0.0/8 as insecure, so plain HTTP works with no daemon config), which gives them a real registry digest.
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, readFileSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where scripts/test-env.sh starts the project's test engine. */
export const TEST_DOCKER_SOCKET = "/run/ferry-test/docker.sock";
export const SYSTEM_DOCKER_SOCKET = "/var/run/docker.sock";
export const BUSYBOX_BIN = process.env["FERRY_TEST_BUSYBOX"] ?? "/bin/busybox";
export const DOCKER_CLI = process.env["FERRY_TEST_DOCKER_CLI"] ?? "docker";

export interface DockerEngine {
  socketPath: string;
  available: boolean;
  /** Why it is not available ("" when it is): what was tried and what each answered. */
  reason: string;
}

/** GET /_ping over a unix socket; resolves with the error text, or "" when the engine answered OK. */
export function pingDocker(socketPath: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? "" : `${socketPath} answered HTTP ${res.statusCode}`);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (err: NodeJS.ErrnoException) => resolve(`${socketPath}: ${err.code ?? err.message}`));
    req.end();
  });
}

let engine: Promise<DockerEngine> | undefined;

/**
 * The engine the suites use: FERRY_TEST_DOCKER_SOCKET if set (and only that), else the project's test engine, else
 * /var/run/docker.sock. Probed once per process.
 */
export function dockerEngine(): Promise<DockerEngine> {
  engine ??= (async () => {
    const configured = process.env["FERRY_TEST_DOCKER_SOCKET"];
    const candidates = configured ? [configured] : [TEST_DOCKER_SOCKET, SYSTEM_DOCKER_SOCKET];
    const failures: string[] = [];
    for (const socketPath of candidates) {
      const failure = await pingDocker(socketPath);
      if (failure === "") return { socketPath, available: true, reason: "" };
      failures.push(failure);
    }
    return {
      socketPath: candidates[0] ?? TEST_DOCKER_SOCKET,
      available: false,
      reason: `no Docker Engine answered (${failures.join("; ")}); run scripts/test-env.sh`,
    };
  })();
  return engine;
}

/** Prints a banner a reader of the test output cannot miss. */
export function loudSkip(what: string, reason: string): void {
  const bar = "!".repeat(100);
  console.error(`\n${bar}\n${what} SKIPPED: ${reason}\n${bar}\n`);
}

/**
 * Why the Docker suites cannot run here, or false when they can. Prints a banner when they cannot; under CI=true a
 * missing engine is an error (scripts/test-env.sh starts one), not a skip.
 */
export async function dockerSkipReason(suite: string): Promise<string | false> {
  const e = await dockerEngine();
  if (e.available) return false;
  const reason = `Docker Engine not available: ${e.reason}`;
  if (process.env["CI"] === "true") throw new Error(`${reason} (CI=true: the Docker suites must run)`);
  loudSkip(suite, reason);
  return reason;
}

/** Runs the docker CLI against a socket; rejects with its stderr on failure. */
export function runDocker(
  socketPath: string,
  args: string[],
  opts: { configDir?: string; input?: string; timeoutMs?: number } = {},
): Promise<string> {
  // The client negotiates the API version down to the engine's; DOCKER_CONFIG keeps the user's credentials and
  // contexts out of the tests.
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: opts.configDir ?? cliConfigDir() };
  delete env["DOCKER_HOST"];
  delete env["DOCKER_CONTEXT"];
  return new Promise((resolve, reject) => {
    const child = execFile(
      DOCKER_CLI,
      ["--host", `unix://${socketPath}`, ...args],
      { env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`docker ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** An empty client config shared by every suite (read-only: logins get their own directory). */
function cliConfigDir(): string {
  const dir = join(tmpdir(), "ferry-test-docker-config");
  if (!existsSync(join(dir, "config.json"))) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), "{}\n");
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------------------------
// Test images.

/** True when the ELF file has no program interpreter (PT_INTERP), i.e. it runs in an otherwise empty filesystem. */
function isStaticElf(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false; // ELF64, LE
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

function tar(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("tar", args, { encoding: "utf8" }, (err, _stdout, stderr) => (err ? reject(new Error(`tar ${args.join(" ")}: ${stderr || err.message}`)) : resolve()));
  });
}

function busyboxApplets(): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(BUSYBOX_BIN, ["--list"], { encoding: "utf8" }, (err, stdout) =>
      err ? reject(new Error(`${BUSYBOX_BIN} --list: ${err.message}`)) : resolve(stdout.split("\n").filter((a) => a && a !== "busybox" && /^[a-z0-9_.[-]+$/i.test(a))),
    );
  });
}

let baseTar: Promise<string> | undefined;

/**
 * The busybox root filesystem as an uncompressed tarball, built once and cached in the temp directory (keyed by the
 * binary's size and mtime) so each image only appends its /www files.
 */
function busyboxRootfsTar(): Promise<string> {
  baseTar ??= (async () => {
    if (!existsSync(BUSYBOX_BIN)) throw new Error(`${BUSYBOX_BIN} is missing: install busybox-static (scripts/test-env.sh)`);
    if (!isStaticElf(BUSYBOX_BIN)) throw new Error(`${BUSYBOX_BIN} is not statically linked: install busybox-static (scripts/test-env.sh)`);
    const st = statSync(BUSYBOX_BIN);
    const cached = join(tmpdir(), `ferry-test-busybox-rootfs-${st.size}-${Math.floor(st.mtimeMs)}.tar`);
    if (existsSync(cached)) return cached;
    const dir = mkdtempSync(join(tmpdir(), "ferry-rootfs-"));
    try {
      for (const d of ["bin", "usr/bin", "etc", "tmp", "proc", "sys", "dev"]) mkdirSync(join(dir, d), { recursive: true });
      copyFileSync(BUSYBOX_BIN, join(dir, "usr/bin/busybox"));
      for (const applet of await busyboxApplets()) symlinkSync("/usr/bin/busybox", join(dir, "bin", applet));
      writeFileSync(join(dir, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
      writeFileSync(join(dir, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
      // Written elsewhere and renamed into place, so concurrent suites never read half a tarball.
      const partial = `${cached}.${process.pid}.${randomBytes(4).toString("hex")}`;
      await tar(["--owner=0", "--group=0", "--numeric-owner", "-C", dir, "-cf", partial, "."]);
      renameSync(partial, cached);
      return cached;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  baseTar.catch(() => (baseTar = undefined));
  return baseTar;
}

export interface TestImageOptions {
  /** "127.0.0.1:PORT" of a registry from startRegistry(). */
  registry: string;
  /** Repository path inside the registry, e.g. "shop/web". */
  repository: string;
  tag: string;
  /** Served at /version; different versions make different images. */
  version: string;
  /** The loopback port httpd listens on (the containers use host networking). */
  port: number;
  /**
   * true (default): GET /health answers 200 "ok". false: httpd still serves the port but /health does not exist, so
   * it answers 404 forever — an image that starts and never becomes healthy.
   */
  healthy?: boolean;
  /** Adds a Docker HEALTHCHECK (wget of /health every second, unhealthy after 3 failures). */
  dockerHealthcheck?: boolean;
  /** The path the Docker HEALTHCHECK fetches; default /health. A path that does not exist makes it turn unhealthy. */
  healthcheckPath?: string;
  /**
   * A crashing image: it serves as usual, then prints a line to stderr and exits with `exitCode` `afterSeconds`
   * after it starts (under a restart policy, a crash loop).
   */
  crash?: { afterSeconds: number; exitCode: number };
  /** Credentials for a registry with basic auth (used for `docker login` in a private client config). */
  auth?: { username: string; password: string };
  /** Keep the image in the engine after the push; by default it is removed so a deploy really pulls it. */
  keepLocal?: boolean;
  /** Engine socket; default dockerEngine(). */
  socketPath?: string;
}

export interface TestImage {
  /** The pushed tag, "127.0.0.1:PORT/repo:tag". */
  ref: string;
  /** "127.0.0.1:PORT/repo" */
  repository: string;
  /** The registry's manifest digest, "sha256:…". */
  digest: string;
  /** "127.0.0.1:PORT/repo@sha256:…" */
  pinned: string;
}

/**
 * Builds a busybox httpd image with `docker import` and pushes it to a test registry. The image runs
 * `httpd -f -p 127.0.0.1:<port> -h /www` (under a shell that exits on SIGTERM, so stops are instant) and serves
 * /version (the version), /index.html and, when healthy, /health.
 */
export async function buildTestImage(opts: TestImageOptions): Promise<TestImage> {
  const socketPath = opts.socketPath ?? (await dockerEngine()).socketPath;
  const repository = `${opts.registry}/${opts.repository}`;
  const ref = `${repository}:${opts.tag}`;
  const healthy = opts.healthy ?? true;
  const base = await busyboxRootfsTar();
  const work = mkdtempSync(join(tmpdir(), "ferry-image-"));
  try {
    const image = join(work, "rootfs.tar");
    copyFileSync(base, image);
    mkdirSync(join(work, "www"));
    writeFileSync(join(work, "www", "version"), `${opts.version}\n`);
    writeFileSync(join(work, "www", "index.html"), `ferry test image ${opts.repository} ${opts.version}\n`);
    if (healthy) writeFileSync(join(work, "www", "health"), "ok\n");
    await tar(["--owner=0", "--group=0", "--numeric-owner", "-C", work, "-rf", image, "./www"]);

    // httpd as PID 1 would ignore SIGTERM (PID 1 has no default handlers) and every stop would wait out the engine's
    // timeout; a shell that exits on TERM makes stops instant.
    const httpd = `httpd -f -p 127.0.0.1:${opts.port} -h /www`;
    const main = opts.crash
      ? `trap 'exit 0' TERM INT; echo "v${opts.version} starting"; ${httpd} & sleep ${opts.crash.afterSeconds} & wait $!; echo "v${opts.version} crashing with exit code ${opts.crash.exitCode}" >&2; exit ${opts.crash.exitCode}`
      : `trap 'exit 0' TERM INT; ${httpd} & wait`;
    const changes = [`CMD ["sh", "-c", ${JSON.stringify(main)}]`, `LABEL test.ferry.version=${JSON.stringify(opts.version)}`];
    if (opts.dockerHealthcheck) {
      changes.push(`HEALTHCHECK --interval=1s --timeout=1s --retries=3 CMD wget -q -O /dev/null http://127.0.0.1:${opts.port}${opts.healthcheckPath ?? "/health"}`);
    }
    await runDocker(socketPath, ["import", ...changes.flatMap((c) => ["--change", c]), image, ref]);

    let configDir: string | undefined;
    if (opts.auth) {
      configDir = join(work, "docker-config");
      mkdirSync(configDir);
      writeFileSync(join(configDir, "config.json"), "{}\n");
      await runDocker(socketPath, ["login", "--username", opts.auth.username, "--password-stdin", opts.registry], { configDir, input: opts.auth.password });
    }
    const pushed = await runDocker(socketPath, ["push", ref], configDir ? { configDir } : {});
    let digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed)?.[1];
    if (!digest) {
      const repoDigests = JSON.parse(await runDocker(socketPath, ["image", "inspect", "--format", "{{json .RepoDigests}}", ref])) as string[];
      digest = repoDigests.find((d) => d.startsWith(`${repository}@`))?.slice(repository.length + 1);
    }
    if (!digest) throw new Error(`could not tell the digest docker push gave ${ref}: ${pushed}`);
    if (!opts.keepLocal) await runDocker(socketPath, ["image", "rm", ref]);
    return { ref, repository, digest, pinned: `${repository}@${digest}` };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A private engine, for tests that stop and restart the daemon (doing that to the shared test engine would pull
// the floor from under every other suite). It needs root and dockerd; it has its own data root, exec root,
// pidfile and socket under one temp directory, and the same no-bridge, no-iptables flags as scripts/test-env.sh.

export interface PrivateDockerd {
  socketPath: string;
  /** The dockerd PID while it runs. */
  pid(): number | undefined;
  /** SIGTERM by PID (the engine stops its containers), SIGKILL after 30 s. */
  stop(): Promise<void>;
  /** Starts it again on the same data root and waits until it answers. */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  destroy(): Promise<void>;
  logs(): string;
}

export const DOCKERD_BIN = process.env["FERRY_TEST_DOCKERD"] ?? "/usr/sbin/dockerd";

/** Why a private engine cannot run here, or false. */
export function privateDockerdSkipReason(): string | false {
  if (process.getuid?.() !== 0) return "starting a private dockerd needs root";
  if (!existsSync(DOCKERD_BIN)) return `${DOCKERD_BIN} is not installed (scripts/test-env.sh installs docker.io)`;
  return false;
}

export async function startPrivateDockerd(): Promise<PrivateDockerd> {
  // Short: containerd's socket lives under the exec root and unix socket paths are limited to 108 bytes.
  const dir = mkdtempSync("/tmp/fdk-");
  const socketPath = join(dir, "docker.sock");
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";

  const start = async () => {
    const c = spawn(
      DOCKERD_BIN,
      [
        "--host", `unix://${socketPath}`,
        "--data-root", join(dir, "root"),
        "--exec-root", join(dir, "exec"),
        "--pidfile", join(dir, "docker.pid"),
        "--bridge=none", "--iptables=false", "--ip6tables=false",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = c;
    c.stdout?.setEncoding("utf8").on("data", (d: string) => (output += d));
    c.stderr?.setEncoding("utf8").on("data", (d: string) => (output += d));
    exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`the private dockerd exited (${c.exitCode ?? c.signalCode}): ${output.slice(-2000)}`);
      if ((await pingDocker(socketPath, 1000)) === "") return;
      if (Date.now() > deadline) throw new Error(`the private dockerd did not answer within 60 s: ${output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async () => {
    const c = child;
    if (!c || c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const pid = c.pid;
    process.kill(pid, "SIGTERM");
    const killer = setTimeout(() => {
      if (c.exitCode === null && c.signalCode === null) process.kill(pid, "SIGKILL");
    }, 30_000);
    await exited;
    clearTimeout(killer);
  };

  try {
    await start();
  } catch (err) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    socketPath,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    stop,
    start,
    async destroy() {
      await stop();
      // dockerd leaves its default network namespace mounted under the exec root; unmount what is left, deepest first.
      const mounts = readFileSync("/proc/mounts", "utf8")
        .split("\n")
        .map((l) => l.split(" ")[1] ?? "")
        .filter((m) => m.startsWith(`${dir}/`))
        .sort()
        .reverse();
      for (const m of mounts) spawnSync("umount", [m]);
      rmSync(dir, { recursive: true, force: true });
    },
    logs: () => output,
  };
}
