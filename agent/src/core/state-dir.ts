// The agent's state directory (docs/protocol.md, "Enrolment"):
//
//   identity.json     agentId, name, environment, labels, agentEndpoint, enrolEndpoint, caFingerprint, enrolledAt
//   agent.key         private key (0600)
//   agent.crt         current certificate
//   ca-bundle.pem     CAs trusted for the agent listener
//
// Every write is atomic: a temp file in the same directory, fsync, rename over the target, fsync the directory. A
// crash leaves either the old or the new content of each file, never a torn one.
//
// Two files have to change together, though: a renewal replaces agent.key *and* agent.crt, and a crash between the
// two renames would leave a key that does not match its certificate — an agent that can no longer connect. So a
// renewal first stages both as agent.key.new and agent.crt.new (each written atomically), then renames key, then
// certificate. The presence of agent.crt.new means "the commit was decided"; `load()` finishes an interrupted commit
// by renaming whatever is still staged. A lone agent.key.new (crash while staging) is discarded. Either way the
// directory ends with a matching pair, and `load()` checks that they match before anything uses them.
//
// identity.json is written last at enrolment: it is the "this directory is enrolled" marker, so a crash half-way
// through an enrolment leaves a directory that is simply not enrolled yet.
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";

import { certificateInfo, fsyncDir, writeFileAtomic } from "@ferry/pki";

import { AgentError } from "./agent-error.js";

/** The persisted identity of an enrolled agent. Times are ISO 8601. */
export interface Identity {
  agentId: string;
  name: string;
  environment: string;
  labels: Record<string, string>;
  /** host:port of the mTLS agent listener. */
  agentEndpoint: string;
  /** host:port of the enrolment listener the agent enrolled through. */
  enrolEndpoint: string;
  /** SHA-256 fingerprint of the CA pinned by the join string. */
  caFingerprint: string;
  enrolledAt: string;
  /** Interval the control plane announced at enrolment; used until the first Welcome. */
  heartbeatIntervalMs?: number;
}

/** The key material the session connects with. */
export interface AgentCredentials {
  keyPem: string;
  certPem: string;
  /** One or more concatenated CA certificates (two during a CA rotation). */
  caBundlePem: string;
}

export interface LoadedState {
  identity: Identity;
  credentials: AgentCredentials;
}

export const STATE_FILES = {
  identity: "identity.json",
  key: "agent.key",
  cert: "agent.crt",
  caBundle: "ca-bundle.pem",
  stagedKey: "agent.key.new",
  stagedCert: "agent.crt.new",
} as const;

const DIR_MODE = 0o700;
const KEY_MODE = 0o600;
const PUBLIC_MODE = 0o644;

const isWindows = process.platform === "win32";

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

function corrupt(dir: string, what: string, cause?: unknown): AgentError {
  return new AgentError(
    "STATE_DIR_CORRUPT",
    "usage",
    `state directory ${dir} is corrupt: ${what}; re-enrol with \`ferry-agent enrol --force\``,
    { cause },
  );
}

function parseIdentity(dir: string, raw: string): Identity {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw corrupt(dir, `${STATE_FILES.identity} is not valid JSON`, err);
  }
  if (typeof value !== "object" || value === null) throw corrupt(dir, `${STATE_FILES.identity} is not an object`);
  const v = value as Record<string, unknown>;
  for (const key of ["agentId", "name", "agentEndpoint", "enrolEndpoint", "caFingerprint", "enrolledAt"] as const) {
    if (typeof v[key] !== "string" || v[key] === "") {
      throw corrupt(dir, `${STATE_FILES.identity} has no ${key}`);
    }
  }
  const labels: Record<string, string> = {};
  if (typeof v.labels === "object" && v.labels !== null) {
    for (const [k, val] of Object.entries(v.labels)) if (typeof val === "string") labels[k] = val;
  }
  const identity: Identity = {
    agentId: v.agentId as string,
    name: v.name as string,
    environment: typeof v.environment === "string" ? v.environment : "",
    labels,
    agentEndpoint: v.agentEndpoint as string,
    enrolEndpoint: v.enrolEndpoint as string,
    caFingerprint: v.caFingerprint as string,
    enrolledAt: v.enrolledAt as string,
  };
  if (typeof v.heartbeatIntervalMs === "number" && v.heartbeatIntervalMs > 0) {
    identity.heartbeatIntervalMs = v.heartbeatIntervalMs;
  }
  return identity;
}

/** True when the private key belongs to the certificate. */
export function keyMatchesCertificate(keyPem: string, certPem: string): boolean {
  const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "der" });
  const fromCert = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return fromKey.equals(fromCert);
}

export class StateDir {
  readonly path: string;

  constructor(dir: string) {
    this.path = path.resolve(dir);
  }

  file(name: (typeof STATE_FILES)[keyof typeof STATE_FILES]): string {
    return path.join(this.path, name);
  }

  /** True when identity.json exists (the enrolment marker). */
  async isEnrolled(): Promise<boolean> {
    return exists(this.file(STATE_FILES.identity));
  }

  /**
   * Makes the directory ready for a new enrolment: creates it (0700) when missing and refuses to replace an existing
   * identity unless `force`. Called before any network traffic, so a refusal never consumes a join token.
   */
  async prepareForEnrolment(opts: { force?: boolean } = {}): Promise<void> {
    if (!(await exists(this.path))) {
      try {
        await fs.mkdir(this.path, { recursive: true, mode: DIR_MODE });
      } catch (err) {
        throw new AgentError(
          "STATE_DIR_MISSING",
          "usage",
          `cannot create state directory ${this.path}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    } else if (!(await fs.stat(this.path)).isDirectory()) {
      throw new AgentError("STATE_DIR_MISSING", "usage", `state directory ${this.path} is not a directory`);
    }
    if (!opts.force && (await this.isEnrolled())) {
      throw new AgentError(
        "ALREADY_ENROLLED",
        "usage",
        `state directory ${this.path} already holds an enrolled identity; pass --force to replace it ` +
          `(the old identity should then be revoked on the control plane)`,
      );
    }
  }

  /** Persists a fresh enrolment. identity.json goes last: it marks the directory as enrolled. */
  async writeEnrolment(state: LoadedState): Promise<void> {
    await fs.rm(this.file(STATE_FILES.stagedKey), { force: true });
    await fs.rm(this.file(STATE_FILES.stagedCert), { force: true });
    await writeFileAtomic(this.file(STATE_FILES.key), state.credentials.keyPem, KEY_MODE);
    await writeFileAtomic(this.file(STATE_FILES.cert), state.credentials.certPem, PUBLIC_MODE);
    await writeFileAtomic(this.file(STATE_FILES.caBundle), state.credentials.caBundlePem, PUBLIC_MODE);
    await writeFileAtomic(this.file(STATE_FILES.identity), `${JSON.stringify(state.identity, null, 2)}\n`, PUBLIC_MODE);
  }

  /**
   * Persists a renewed key and certificate (and the CA bundle the control plane sent with them, if any) so that a
   * crash at any point leaves a matching key/certificate pair. See the header comment.
   */
  async writeRenewal(next: { keyPem: string; certPem: string; caBundlePem?: string }): Promise<void> {
    if (next.caBundlePem !== undefined && next.caBundlePem.trim() !== "") {
      // During a CA rotation the new bundle holds both CAs, so it is valid for the old and the new certificate and
      // can be replaced on its own.
      await writeFileAtomic(this.file(STATE_FILES.caBundle), next.caBundlePem, PUBLIC_MODE);
    }
    await writeFileAtomic(this.file(STATE_FILES.stagedKey), next.keyPem, KEY_MODE);
    await writeFileAtomic(this.file(STATE_FILES.stagedCert), next.certPem, PUBLIC_MODE);
    await this.#commitStagedRenewal();
  }

  async #commitStagedRenewal(): Promise<void> {
    if (await exists(this.file(STATE_FILES.stagedKey))) {
      await fs.rename(this.file(STATE_FILES.stagedKey), this.file(STATE_FILES.key));
    }
    await fs.rename(this.file(STATE_FILES.stagedCert), this.file(STATE_FILES.cert));
    await fsyncDir(this.path);
  }

  /** Finishes (or discards) a renewal a crash interrupted. */
  async #recoverRenewal(): Promise<void> {
    if (await exists(this.file(STATE_FILES.stagedCert))) {
      await this.#commitStagedRenewal();
    } else if (await exists(this.file(STATE_FILES.stagedKey))) {
      await fs.rm(this.file(STATE_FILES.stagedKey), { force: true });
      await fsyncDir(this.path);
    }
  }

  async readIdentity(): Promise<Identity> {
    let st;
    try {
      st = await fs.stat(this.path);
    } catch {
      throw new AgentError(
        "STATE_DIR_MISSING",
        "usage",
        `state directory ${this.path} does not exist; enrol first with \`ferry-agent enrol --join … --state-dir ${this.path}\``,
      );
    }
    if (!st.isDirectory()) {
      throw new AgentError("STATE_DIR_MISSING", "usage", `state directory ${this.path} is not a directory`);
    }
    let raw: string;
    try {
      raw = await fs.readFile(this.file(STATE_FILES.identity), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new AgentError(
          "NOT_ENROLLED",
          "usage",
          `state directory ${this.path} holds no identity; enrol first with \`ferry-agent enrol --join … --state-dir ${this.path}\``,
        );
      }
      throw corrupt(this.path, `cannot read ${STATE_FILES.identity}: ${(err as Error).message}`, err);
    }
    return parseIdentity(this.path, raw);
  }

  /**
   * Reads and validates everything the session needs: identity, key (must be 0600 on POSIX), certificate (must match
   * the key and name the identity's agent) and CA bundle. Completes an interrupted renewal first.
   */
  async load(): Promise<LoadedState> {
    const identity = await this.readIdentity();
    await this.#recoverRenewal();

    const read = async (name: (typeof STATE_FILES)[keyof typeof STATE_FILES]): Promise<string> => {
      try {
        return await fs.readFile(this.file(name), "utf8");
      } catch (err) {
        throw corrupt(this.path, `cannot read ${name}: ${(err as Error).message}`, err);
      }
    };
    if (!isWindows) {
      const mode = (await fs.stat(this.file(STATE_FILES.key)).catch(() => undefined))?.mode;
      if (mode !== undefined && (mode & 0o077) !== 0) {
        throw new AgentError(
          "STATE_DIR_INSECURE",
          "usage",
          `private key ${this.file(STATE_FILES.key)} is readable by other users (mode ${(mode & 0o777).toString(8)}); ` +
            `run \`chmod 600 ${this.file(STATE_FILES.key)}\``,
        );
      }
    }
    const keyPem = await read(STATE_FILES.key);
    const certPem = await read(STATE_FILES.cert);
    const caBundlePem = await read(STATE_FILES.caBundle);

    let matches: boolean;
    try {
      matches = keyMatchesCertificate(keyPem, certPem);
    } catch (err) {
      throw corrupt(this.path, `cannot parse ${STATE_FILES.key} or ${STATE_FILES.cert}`, err);
    }
    if (!matches) throw corrupt(this.path, `${STATE_FILES.key} does not belong to ${STATE_FILES.cert}`);
    const certAgentId = certificateInfo(certPem).agentId;
    if (certAgentId !== null && certAgentId !== identity.agentId) {
      throw corrupt(this.path, `${STATE_FILES.cert} belongs to agent ${certAgentId}, not ${identity.agentId}`);
    }
    if (!caBundlePem.includes("BEGIN CERTIFICATE")) throw corrupt(this.path, `${STATE_FILES.caBundle} holds no certificate`);

    return { identity, credentials: { keyPem, certPem, caBundlePem } };
  }
}
