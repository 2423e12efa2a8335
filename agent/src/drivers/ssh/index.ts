// The ssh target driver (docs/drivers/ssh.md) and how it joins the agent. Its code, ssh2 and (in docker mode) the
// docker driver's phases are imported only when the agent creates the driver.
import { sshKind, type ObjectSchema } from "@ferry/contract";

import type { DriverRegistration } from "../driver.js";

const absolute = { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path" } as const;

/** The agent config's `drivers.ssh` section. The private keys live here (as files), never in a target's config. */
export const sshSettings: ObjectSchema = {
  fields: {
    keyFile: { ...absolute, doc: "the private key (OpenSSH or PEM, unencrypted, mode 0600) for targets that name no credentialsRef; read at every connection, so replacing the file rotates the key" },
    keyDir: { ...absolute, doc: "a directory of private keys; a target's credentialsRef names a file in it" },
    knownHostsFile: { ...absolute, doc: "where host keys are recorded for targets that ask for trust on first use (hostKeyTrust: first-use); without it such targets are refused" },
    maxSessionsPerHost: { type: "integer", min: 1, max: 64, doc: "SSH connections open at once to one host; default 4" },
    connectTimeoutSeconds: { type: "integer", min: 1, max: 300, doc: "default for targets that set none; default 15" },
    stopTimeoutSeconds: { type: "integer", min: 1, max: 600, doc: "docker mode: how long the engine gives the previous container to stop; default 10" },
    settleSeconds: { type: "integer", min: 0, max: 600, doc: "docker mode: the settle window for targets whose healthCheck sets none; default 3" },
  },
};

export const sshRegistration: DriverRegistration = {
  descriptor: sshKind,
  settings: sshSettings,
  enabledByDefault: false,
  needsWebAssembly: "ssh2's chacha20-poly1305 MAC runs in it",
  async create({ logger, settings }) {
    const { SshDriver } = await import("./ssh-driver.js");
    return new SshDriver({ logger, settings: settings });
  },
};
