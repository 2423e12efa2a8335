// A real OpenSSH server for tests (Debian's openssh-server, installed by scripts/test-env.sh): `/usr/sbin/sshd -D -e`
// with a configuration, host key and authorized key of the test's own, all in a temp directory, listening on a free
// port on 127.0.0.1. The system's sshd configuration and service are never touched. Logins are for the user running
// the tests (root in CI) with a throwaway ed25519 key; passwords and keyboard-interactive are off.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

import { freePort } from "./net.js";
import { waitFor } from "./wait.js";

export const SSHD_BIN = process.env["FERRY_TEST_SSHD"] ?? "/usr/sbin/sshd";

export interface TestKey {
  file: string;
  /** "ssh-ed25519 AAAA…" */
  publicLine: string;
}

export interface TestSshd {
  port: number;
  user: string;
  /** The host key as a target pins it: "ssh-ed25519 AAAA…". */
  hostKey: string;
  /** Its SHA-256 fingerprint, "SHA256:…". */
  hostFingerprint: string;
  /** The client key sshd accepts. */
  clientKey: TestKey;
  dir: string;
  pid(): number | undefined;
  /** sshd's stderr so far (-e), for failure reports. */
  log(): string;
  stop(): Promise<void>;
}

/** Why sshd cannot run here, or false. */
export function sshdSkipReason(): string | false {
  if (!existsSync(SSHD_BIN)) return `${SSHD_BIN} is missing (scripts/test-env.sh installs openssh-server)`;
  if (spawnSync("ssh-keygen", ["-?"]).error) return "ssh-keygen is missing";
  return false;
}

/** A throwaway ed25519 key pair in `dir`. */
export function makeKey(dir: string, name: string): TestKey {
  const file = join(dir, name);
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `ferry-test-${name}`, "-f", file]);
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr.toString()}`);
  const publicLine = readFileSync(`${file}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
  return { file, publicLine };
}

export function fingerprintOf(publicLine: string): string {
  const b64 = publicLine.split(" ")[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(b64, "base64")).digest("base64").replace(/=+$/, "")}`;
}

export async function startSshd(opts: { extraConfig?: string[]; hostKeyFrom?: string } = {}): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), "ferry-sshd-"));
  // sshd insists on its privilege-separation directory; creating it changes nothing else on the system.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const host = opts.hostKeyFrom ? { file: opts.hostKeyFrom, publicLine: readFileSync(`${opts.hostKeyFrom}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ") } : makeKey(dir, "host_ed25519");
  const clientKey = makeKey(dir, "client_ed25519");
  writeFileSync(join(dir, "authorized_keys"), `${clientKey.publicLine}\n`, { mode: 0o600 });
  const port = await freePort();
  const config = [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${host.file}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "StrictModes no",
    "AllowTcpForwarding yes",
    "AllowStreamLocalForwarding yes",
    "X11Forwarding no",
    "MaxSessions 32",
    "MaxStartups 32",
    "LogLevel VERBOSE",
    ...(opts.extraConfig ?? []),
  ];
  const configFile = join(dir, "sshd_config");
  writeFileSync(configFile, `${config.join("\n")}\n`);
  const check = spawnSync(SSHD_BIN, ["-t", "-f", configFile]);
  if (check.status !== 0) throw new Error(`sshd -t refused the test config: ${check.stderr.toString()}`);

  let stderr = "";
  const child: ChildProcess = spawn(SSHD_BIN, ["-D", "-e", "-f", configFile], { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitFor(
    `sshd on 127.0.0.1:${port}`,
    () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) throw new Error(`sshd exited: ${stderr}`);
        const s = connect({ host: "127.0.0.1", port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      }),
    { timeoutMs: 10_000 },
  );
  return {
    port,
    user: userInfo().username,
    hostKey: host.publicLine,
    hostFingerprint: fingerprintOf(host.publicLine),
    clientKey,
    dir,
    pid: () => child.pid,
    log: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
