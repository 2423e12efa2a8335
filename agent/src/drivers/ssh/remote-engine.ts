// The remote host's Docker Engine, reached through the SSH connection, as an engine client the docker driver's
// phases use unchanged (they take their engine client injected).
//
// Every HTTP connection the client opens becomes one channel on the SSH connection to the engine's unix socket:
//   - without sudo: an OpenSSH stream-local forward (direct-streamlocal@openssh.com) to the socket, as the login
//     user (who must be allowed to use it: the docker group, or root);
//   - with sudo: `sudo -n docker -H unix://<socket> system dial-stdio`, which relays stdin/stdout to the socket as
//     root (a forwarded socket cannot be opened through sudo). This needs the docker CLI on the host.
// Nothing listens on the gateway for this: no port is opened, nothing else on the gateway can reach the engine.
//
// Health checks run on the remote host's loopback, never on the gateway's: `tcp` opens a direct-tcpip channel to
// 127.0.0.1:<port> on the host (sshd connects first and refuses the channel when nothing listens, so an open channel
// is a passed check); `http` is served by a loopback listener on the gateway that forwards each connection the same
// way, the check's URL rewritten to it for the health phase only.
import http from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";

import type { SshTargetConfig } from "@ferry/contract";

import type { DockerEngine } from "../docker/docker-driver.js";
import { EngineClient } from "../docker/engine/client.js";
import { DriverError } from "../driver.js";
import type { SshSession } from "./connection.js";
import { runRemote, shQuote } from "./remote-command.js";
import { sudoFailure, sudoPrefix } from "./sudo.js";

export const DEFAULT_REMOTE_SOCKET = "/var/run/docker.sock";

/** The relay sudo runs: one command line, the same on every connection, so a sudoers rule can name it exactly. */
function dialStdio(socketPath: string): string {
  return `docker -H ${shQuote(`unix://${socketPath}`)} system dial-stdio`;
}

/**
 * With sudo: runs the relay once with nothing to relay (stdin closed at once; it exits 0 when the engine's socket
 * answered), so a sudo that refuses it, a host without the docker CLI, or no engine on the socket is reported as
 * such before a phase asks the engine for anything — not as an HTTP connection that closed.
 */
export async function checkSudoRelay(session: SshSession, config: SshTargetConfig, socketPath: string, signal: AbortSignal): Promise<void> {
  const run = await runRemote(session, `${sudoPrefix(config)}${dialStdio(socketPath)}`, { stdin: "", timeoutMs: 30_000, signal });
  if (run.exitCode === 0) return;
  signal.throwIfAborted();
  const what = `relaying to the engine's socket ${socketPath} through sudo`;
  const failure = sudoFailure(run, config, what, session.where);
  if (failure) throw failure;
  if (run.exitCode === 127) throw new DriverError("COMMAND_NOT_FOUND", `${what}: ${session.where} has no sudo (exit code 127)`, { host: session.where, output: run.tail });
  throw new DriverError("DOCKER_UNAVAILABLE", `${what}: no engine answered at ssh://${session.where}${socketPath}: ${run.tail.join(" ")}`, { host: session.where, socketPath, exitCode: run.exitCode ?? null, output: run.tail });
}

function openSocketChannel(session: SshSession, socketPath: string, sudo: boolean): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    if (sudo) {
      session.client.exec(`sudo -n ${dialStdio(socketPath)}`, (err, ch) => (err ? reject(err) : resolve(ch)));
      return;
    }
    session.client.openssh_forwardOutStreamLocal(socketPath, (err, ch) => {
      if (err) {
        // sshd says only "open failed"; the engine is not there as far as the driver can tell.
        const e = new Error(`the host refused to open ${socketPath}: ${err.message}`) as NodeJS.ErrnoException;
        e.code = "ECONNREFUSED";
        reject(e);
        return;
      }
      resolve(ch);
    });
  });
}

/** An engine client whose every connection is a channel on `session` to the remote engine's socket. */
export function remoteEngine(session: SshSession, socketPath: string, sudo: boolean): DockerEngine {
  const agent = new http.Agent({ keepAlive: false });
  // http.Agent lets createConnection hand its socket over asynchronously through the callback.
  (agent as unknown as { createConnection: unknown }).createConnection = (_opts: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
    openSocketChannel(session, socketPath, sudo).then(
      (ch) => {
        // http's client calls these on sockets; a channel has no such knobs.
        const s = ch as Duplex & Partial<Socket>;
        s.setTimeout ??= (() => s) as never;
        s.setNoDelay ??= (() => s) as never;
        s.setKeepAlive ??= (() => s) as never;
        s.ref ??= (() => s) as never;
        s.unref ??= (() => s) as never;
        cb(null, s);
      },
      (err: Error) => cb(err),
    );
    return undefined;
  };
  const docker = new EngineClient({ agent });
  return {
    docker,
    socketPath,
    address: `ssh://${session.where}${socketPath}${sudo ? " (sudo)" : ""}`,
    tcpProbe: (port, timeoutMs) => remoteTcpProbe(session, port, timeoutMs),
  };
}

/** Connects to 127.0.0.1:port on the remote host. */
export function remoteTcpProbe(session: SshSession, port: number, timeoutMs: number): Promise<{ ok: boolean; observed: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, observed: { error: `no connection within ${timeoutMs} ms (on the host's loopback)` } }), timeoutMs);
    try {
      session.client.forwardOut("127.0.0.1", 0, "127.0.0.1", port, (err, ch) => {
        clearTimeout(timer);
        if (err) return resolve({ ok: false, observed: { error: `the host could not connect to its 127.0.0.1:${port}: ${err.message}` } });
        ch.close();
        resolve({ ok: true, observed: { connected: `127.0.0.1:${port} on the host` } });
      });
    } catch (err) {
      clearTimeout(timer);
      resolve({ ok: false, observed: { error: (err as Error).message } });
    }
  });
}

/** A loopback listener on the gateway whose connections go to 127.0.0.1:remotePort on the host. */
export async function forwardPort(session: SshSession, remotePort: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((local) => {
    sockets.add(local);
    local.once("close", () => sockets.delete(local));
    local.on("error", () => local.destroy());
    session.client.forwardOut("127.0.0.1", 0, "127.0.0.1", remotePort, (err, ch) => {
      if (err) return local.destroy();
      local.pipe(ch).pipe(local);
      ch.on("close", () => local.destroy());
      local.on("close", () => ch.close());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The loopback host names an http check on the remote host may use. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
}
