// ssh: a host reached over SSH from a gateway agent (docs/drivers/ssh.md). Two modes:
//   docker  the host runs a Docker Engine; the agent reaches its socket through the SSH connection and deploys one
//           container exactly as the docker kind does (the `docker` section has the docker kind's container fields)
//   script  the agent uploads and runs the operator's deploy script with the release's digests in its environment
//
// Secrets are never in this config: it is signed into tasks and stored by the control plane. The private key lives
// with the gateway agent (its drivers.ssh section); `credentialsRef` only names which of the agent's keys to use.
// The host key is pinned here, so the control plane's signature also covers which host the agent may talk to.
import type { FieldSpec, ObjectRule } from "../config-schema.js";
import { singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { ENV_KEY_PATTERN, HOST_PATTERN } from "./common.js";
import { dockerContainerFields, type DockerTargetConfig } from "./docker.js";

export const SSH_MODES = ["docker", "script"] as const;
export type SshMode = (typeof SSH_MODES)[number];

/** "ssh-ed25519 AAAA…" (the key as in known_hosts, without the host) or "SHA256:<base64>" (ssh-keygen -lf). */
export const SSH_HOST_KEY_PATTERN = /^(?:(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|rsa-sha2-256|rsa-sha2-512) [A-Za-z0-9+/]+={0,2}|SHA256:[A-Za-z0-9+/]{43}=?)$/;
/** A key name in the gateway agent's key directory: no path, no dots at the start. */
export const CREDENTIALS_REF_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface SshScriptConfig {
  /** The deploy script's text (run with sh); the release's digests and metadata are in its environment. */
  deploy: string;
  /** Run after deploy; a non-zero exit fails the task (and runs rollback). */
  health?: string;
  /** Run by restore after any failure from start on, with the previous release's metadata in its environment. */
  rollback?: string;
  /** Extra environment for every script. */
  env?: Record<string, string>;
  /** Per script run; default 300. */
  timeoutSeconds?: number;
  /** The remote directory scripts are uploaded to and run in; default /tmp. */
  workDir?: string;
}

export interface SshTargetConfig {
  host: string;
  port?: number;
  user: string;
  /** The pinned host key; required unless hostKeyTrust is "first-use". */
  hostKey?: string;
  /** "pinned" (default): only hostKey is accepted. "first-use": the first key seen is recorded by the agent, then pinned. */
  hostKeyTrust?: "pinned" | "first-use";
  /** Which of the gateway agent's keys to use (a file name in drivers.ssh.keyDir); default drivers.ssh.keyFile. */
  credentialsRef?: string;
  /** Run remote commands through `sudo -n`. */
  sudo?: boolean;
  mode?: SshMode;
  docker?: DockerTargetConfig;
  script?: SshScriptConfig;
  /** The sticker file on the host; default /var/lib/ferry/stickers/<target id>.json. */
  stickerPath?: string;
  /** How long connecting (TCP + handshake + auth) may take; default 15. */
  connectTimeoutSeconds?: number;
  component?: string;
}

const rules: ObjectRule[] = [
  (c) => (c["hostKey"] === undefined && c["hostKeyTrust"] !== "first-use" ? ["hostKey", "is required (pin the host key; trust on first use only with hostKeyTrust: first-use)"] : undefined),
  (c) => ((c["mode"] ?? "docker") === "docker" && c["docker"] === undefined ? ["docker", "is required when mode is docker"] : undefined),
  (c) => (c["mode"] === "script" && c["script"] === undefined ? ["script", "is required when mode is script"] : undefined),
  (c) => (c["mode"] === "script" && c["docker"] !== undefined ? ["docker", "is only for mode docker"] : undefined),
  (c) => ((c["mode"] ?? "docker") === "docker" && c["script"] !== undefined ? ["script", "is only for mode script"] : undefined),
];

const SCRIPT_MAX = 65_536;

// The docker kind's container fields, without `route`: the host router is driven by an agent on the host itself, and
// a gateway agent has none on the remote host.
const { route: _route, ...sshDockerFields } = dockerContainerFields;

/** An absolute remote path the driver puts into shell commands (quoted): no quotes, no newlines. */
const remotePath: FieldSpec = {
  type: "string",
  maxLength: 1024,
  pattern: /^\/[^'\n\0]*$/,
  hint: "must be an absolute path without quotes or newlines",
};

export const sshKind: TargetKindDescriptor<SshTargetConfig> = {
  kind: "ssh",
  title: "a host reached over SSH",
  config: {
    fields: {
      host: { type: "string", required: true, maxLength: 253, pattern: HOST_PATTERN, hint: "must be a host name or IP address" },
      port: { type: "integer", min: 1, max: 65535, doc: "default 22" },
      user: { type: "string", required: true, maxLength: 64, pattern: /^[a-z_][a-z0-9_.-]*\$?$/i, hint: "must be a user name" },
      hostKey: { type: "string", maxLength: 2048, pattern: SSH_HOST_KEY_PATTERN, hint: 'must be "<type> <base64>" or "SHA256:<base64>"', doc: "the pinned host key" },
      hostKeyTrust: { type: "string", enum: ["pinned", "first-use"], doc: "default pinned; first-use records the first key the agent sees" },
      credentialsRef: { type: "string", maxLength: 128, pattern: CREDENTIALS_REF_PATTERN, hint: "must be a key file name in the agent's drivers.ssh.keyDir", doc: "which of the gateway agent's keys" },
      sudo: { type: "boolean", doc: "run remote commands with sudo -n" },
      mode: { type: "string", enum: SSH_MODES, doc: "default docker" },
      docker: { type: "object", fields: sshDockerFields, doc: "mode docker: the container, as for the docker kind (socketPath is the remote engine's socket)" },
      script: {
        type: "object",
        doc: "mode script",
        fields: {
          deploy: { type: "string", required: true, maxLength: SCRIPT_MAX },
          health: { type: "string", maxLength: SCRIPT_MAX },
          rollback: { type: "string", maxLength: SCRIPT_MAX },
          env: { type: "string-map", keyPattern: ENV_KEY_PATTERN, keyHint: "is not a valid environment variable name", maxItems: 64 },
          timeoutSeconds: { type: "integer", min: 1, max: 86_400, doc: "per script run; default 300" },
          workDir: { ...remotePath, doc: "where scripts are uploaded and run; default /tmp" },
        },
      },
      stickerPath: { ...remotePath, doc: "default /var/lib/ferry/stickers/<target id>.json" },
      connectTimeoutSeconds: { type: "integer", min: 1, max: 300, doc: "default 15" },
      component: { type: "string", maxLength: 128, doc: "mode script: which component of the release (needed when it pins several)" },
    },
    rules,
  },
  capabilities: [],
  sticker: "a sticker file on the host (and, in docker mode, the container's ferry.* labels)",
  placement: "gateway",
  typed: (c) => c as unknown as SshTargetConfig,
  imagesFor: (config, pins) => singleImage(config.mode === "script" ? config.component : config.docker?.component, pins),
};
