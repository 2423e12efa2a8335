// One SSH connection from the gateway agent to a target host, with the checks that make it safe to use:
//   - the host key is checked against the pin in the target's signed config (or the key recorded on first use, when
//     the target asked for that explicitly) before authentication: a host that presents another key never sees the
//     agent's key and is refused with HOST_KEY_MISMATCH;
//   - authentication is by key only, the private key read from the gateway agent's own files at every connection
//     (drivers.ssh.keyFile, or keyDir/<credentialsRef>), so replacing the file rotates the key without a restart;
//   - connecting is bounded (connectTimeoutSeconds) and counted against the per-host session limit.
// Failures get stable codes: HOST_UNREACHABLE, HOST_KEY_MISMATCH, HOST_KEY_UNKNOWN, SSH_AUTH_FAILED.
import { promises as fs } from "node:fs";
import path from "node:path";

import type { SshTargetConfig } from "@ferry/contract";
import { Client, type ClientChannel, type ConnectConfig } from "ssh2";

import { DriverError } from "../driver.js";
import { fingerprint, keyLine, matchesPin, recordedKey, recordKey } from "./host-key.js";
import type { SessionLimit } from "./session-limit.js";

export interface SshSettings {
  keyFile?: string;
  keyDir?: string;
  knownHostsFile?: string;
  maxSessionsPerHost?: number;
  connectTimeoutSeconds?: number;
  stopTimeoutSeconds?: number;
  settleSeconds?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_SECONDS = 15;

export interface SshSession {
  client: Client;
  /** user@host:port, for messages. */
  where: string;
  /** The host key the host presented (SHA256 fingerprint). */
  hostKey: string;
  /** Fires when the connection ends, for whatever reason. */
  closed: Promise<void>;
  close(): void;
  /** Set when this connection recorded the host's key on first use (the key line written to knownHostsFile). */
  firstUse?: string;
}

const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EPIPE"]);

export function where(config: SshTargetConfig): string {
  return `${config.user}@${config.host}:${config.port ?? 22}`;
}

async function privateKey(config: SshTargetConfig, settings: SshSettings): Promise<{ key: Buffer; file: string }> {
  let file: string | undefined;
  if (config.credentialsRef !== undefined) {
    if (!settings.keyDir) throw new DriverError("SSH_AUTH_FAILED", `config.credentialsRef names key "${config.credentialsRef}" but this agent has no drivers.ssh.keyDir`, { field: "config.credentialsRef" });
    file = path.join(settings.keyDir, config.credentialsRef);
  } else {
    file = settings.keyFile;
  }
  if (!file) throw new DriverError("SSH_AUTH_FAILED", "this agent has no SSH key: set drivers.ssh.keyFile (or keyDir and the target's credentialsRef)", {});
  try {
    return { key: await fs.readFile(file), file };
  } catch (err) {
    throw new DriverError("SSH_AUTH_FAILED", `the agent cannot read its SSH key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { keyFile: file });
  }
}

/** Opens a connection (waiting for a slot under the per-host limit). The caller must close() it. */
export async function connect(config: SshTargetConfig, settings: SshSettings, limit: SessionLimit, signal: AbortSignal): Promise<SshSession> {
  const port = config.port ?? 22;
  const at = where(config);
  const { key, file } = await privateKey(config, settings);
  const trustFirstUse = config.hostKeyTrust === "first-use";
  let pin = config.hostKey;
  if (pin === undefined && trustFirstUse) {
    if (!settings.knownHostsFile) {
      throw new DriverError("HOST_KEY_UNKNOWN", `${at}: the target asks for trust on first use, but this agent has no drivers.ssh.knownHostsFile to record the key in`, { host: config.host, port });
    }
    pin = await recordedKey(settings.knownHostsFile, config.host, port);
  }

  const release = await limit.acquire(`${config.host}:${port}`, signal);
  const client = new Client();
  let presented: Buffer | undefined;
  let refusedKey = false;
  let recorded = false;
  const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
  void closed.then(release);

  const options: ConnectConfig = {
    host: config.host,
    port,
    username: config.user,
    privateKey: key,
    readyTimeout: (config.connectTimeoutSeconds ?? settings.connectTimeoutSeconds ?? DEFAULT_CONNECT_TIMEOUT_SECONDS) * 1000,
    // Only the key: no password prompt, no keyboard-interactive, no agent forwarding.
    tryKeyboard: false,
    keepaliveInterval: 10_000,
    keepaliveCountMax: 3,
    hostVerifier: (blob: Buffer, verify: (ok: boolean) => void) => {
      presented = blob;
      if (pin !== undefined) {
        refusedKey = !matchesPin(pin, blob);
        verify(!refusedKey);
        return;
      }
      // First use, asked for explicitly: record the key before trusting it, so the next connection pins it.
      recordKey(settings.knownHostsFile!, config.host, port, blob).then(
        () => {
          recorded = true;
          verify(true);
        },
        () => {
          refusedKey = true;
          verify(false);
        },
      );
    },
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        client.end();
        reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      client.once("ready", () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
      client.once("error", (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      });
      client.connect(options);
    });
  } catch (err) {
    client.end();
    release();
    signal.throwIfAborted();
    throw classifyConnectError(err, { at, config, port, presented, refusedKey, pin, file });
  }
  client.on("error", () => undefined); // later errors surface as closed channels
  return {
    client,
    where: at,
    hostKey: presented ? fingerprint(presented) : "",
    closed,
    close: () => client.end(),
    ...(recorded && presented ? { firstUse: keyLine(presented) } : {}),
  };
}

function classifyConnectError(
  err: unknown,
  c: { at: string; config: SshTargetConfig; port: number; presented: Buffer | undefined; refusedKey: boolean; pin: string | undefined; file: string },
): DriverError {
  const e = err as Error & { level?: string; code?: string };
  const message = e?.message ?? String(err);
  if (c.refusedKey && c.presented) {
    return new DriverError(
      "HOST_KEY_MISMATCH",
      `${c.at} presented host key ${fingerprint(c.presented)}, not the pinned ${c.pin ?? "key"}: refusing to log in (if the host was re-keyed on purpose, pin the new key in the target's config)`,
      { host: c.config.host, port: c.port, presented: keyLine(c.presented), presentedFingerprint: fingerprint(c.presented), pinned: c.pin ?? null },
    );
  }
  if (e?.level === "client-authentication") {
    return new DriverError("SSH_AUTH_FAILED", `${c.at} refused the agent's key ${c.file}: ${message}`, { host: c.config.host, port: c.port, keyFile: c.file });
  }
  if ((e?.code && UNREACHABLE_CODES.has(e.code)) || e?.level === "client-timeout" || /timed out/i.test(message)) {
    return new DriverError("HOST_UNREACHABLE", `cannot reach ${c.at}: ${e?.code ?? message}`, { host: c.config.host, port: c.port, error: e?.code ?? message });
  }
  if (/parse privateKey|unsupported key|encrypted/i.test(message)) {
    return new DriverError("SSH_AUTH_FAILED", `the agent's SSH key ${c.file} is not usable: ${message}`, { keyFile: c.file });
  }
  return new DriverError("HOST_UNREACHABLE", `connecting to ${c.at} failed: ${message}`, { host: c.config.host, port: c.port, error: message });
}

/** Opens an exec channel. */
export function execChannel(session: SshSession, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    session.client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel)));
  });
}
