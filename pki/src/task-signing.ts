// Task signing and verification (docs/task-signing.md).
//
// Terms:
//   payload      the task as canonical JSON (RFC 8785) bytes, media type TASK_PAYLOAD_TYPE
//   PAE          DSSE pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body; the bytes
//                that are actually signed, so a signature over one payload type can never be replayed as another
//   key id       "tsk_" + first 16 hex chars of SHA-256(SPKI DER of the public key)
//   keyring      the control plane's task-signing keys on disk: one active key that signs, plus retiring keys that
//                agents keep trusting until their overlap ends
//   refusal      an agent's typed "no" to a task, with a stable code reported back in TaskAck.refusal_code
//
// The task-signing key is Ed25519 and deliberately separate from the fleet CA: a leaked agent certificate cannot
// forge tasks, and the CA key is never online for routine signing.
//
// The keyring directory (0700):
//   index.json             { v: 1, keys: [{ keyId, algorithm, publicKeyPem, createdAt, activatedAt, retiresAt }] }
//                          times in ms since the epoch; retiresAt is null for the active key
//   <keyId>.key            PKCS#8 PEM private key (0600); only the active key keeps one (see rotate())
//   <keyId>.pub.pem        SPKI PEM public key (0644), for operators who verify tasks with openssl
//
// The index is the single source of truth. A new key's files are written before the index that names it, so a
// reader never sees an index pointing at a missing key. The first index is placed without overwriting (hard link
// of a complete temp file, which fails if the index exists): two processes starting together on an empty directory
// both try, one wins, the other deletes its own key and adopts the winner's. Rotations rewrite the index and are
// serialised by a lock file created with O_EXCL.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from "node:crypto";
import { promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";

import {
  parseTaskPayload as parseContractPayload,
  payloadTypeOf,
  TASK_PAYLOAD_TYPES,
  TASK_PAYLOAD_VERSIONS,
  TaskPayloadError,
  versionOfPayloadType,
  type TaskPayload,
  isPlainObject,
} from "@ferry/contract";

import { ensurePrivateDir, errnoCode, fsyncDir, placeFile } from "./atomic-file.js";
import { canonicalJson } from "./canonical-json.js";

/** The v1 payload type; every version's type is in @ferry/contract's TASK_PAYLOAD_TYPES. */
export const TASK_PAYLOAD_TYPE = TASK_PAYLOAD_TYPES[1];
export const TASK_SIGNING_ALGORITHM = "ed25519";

/**
 * Tolerated difference between the control plane's clock and an agent's. A task is still accepted this long after
 * its notAfter (and a retiring key this long after its retirement); agents whose clocks are further off are shown
 * on the fleet dashboard (clock skew) and must be fixed, not accommodated.
 */
export const CLOCK_SKEW_LEEWAY_MS = 30_000;

/**
 * Default time a rotated-out key keeps verifying. It must exceed the longest task lifetime (notAfter - issuedAt)
 * plus the clock-skew leeway: a task signed by the old key a moment before the rotation has to stay verifiable
 * until it expires. Tasks live minutes to hours; 24 h leaves a wide margin.
 */
export const DEFAULT_ROTATION_OVERLAP_MS = 24 * 3600_000;

// The payload itself — its shape, versions and exact parser — is the contract's (@ferry/contract task-payload.ts);
// this file signs and verifies envelopes around it.
export type { TaskAction, TaskImage, TaskPayload } from "@ferry/contract";

/**
 * The longest overlap a rotation accepts: 30 days. Much longer would keep a key agents should have forgotten, and
 * an unbounded one overflows the int64 notAfterMs every Welcome and Enrol response carries.
 */
export const MAX_ROTATION_OVERLAP_MS = 30 * 86_400_000;

/**
 * Key times in the index must lie between the epoch and this: year 2200, far beyond any real key and far inside
 * both a JavaScript Date and the wire's int64 (a hand-edited or corrupted index is refused at load, not discovered
 * when the first agent connects).
 */
const MAX_KEY_TIME_MS = Date.UTC(2200, 0, 1);


/** A signed task, field for field the wire's SignedTask. */
export interface SignedTaskEnvelope {
  payload: Uint8Array;
  payloadType: string;
  keyId: string;
  signature: Uint8Array;
}

/** A public key agents trust, field for field the wire's TaskSigningKey (notAfterMs 0: no end announced). */
export interface TrustedTaskKey {
  keyId: string;
  algorithm: string;
  publicKeyPem: string;
  notAfterMs: bigint | number;
}

export type TaskRefusalCode =
  /** Wrong payload type, payload not JSON or not canonical, wrong shape, or an image not pinned by digest. */
  | "TASK_MALFORMED"
  /** The signing key is not in the agent's trusted set, or has retired. */
  | "TASK_UNKNOWN_KEY"
  /** The signature does not verify over the payload received. */
  | "TASK_BAD_SIGNATURE"
  /** The task is addressed to another agent. */
  | "TASK_WRONG_AUDIENCE"
  /** The task's notAfter has passed. */
  | "TASK_EXPIRED"
  /** The nonce was already used by another task, or the task already ran (raised by the agent's task journal). */
  | "TASK_REPLAYED";

/** An agent's refusal of a task. `code` is stable and goes on the wire as TaskAck.refusal_code. */
export class TaskRefusal extends Error {
  readonly code: TaskRefusalCode;

  constructor(code: TaskRefusalCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TaskRefusal";
    this.code = code;
  }
}

/** Failures of the keyring on disk (unreadable, inconsistent, insecure, or locked by a stuck rotation). */
export class TaskKeyringError extends Error {
  readonly code: "TASK_KEYRING_INVALID" | "TASK_KEYRING_BUSY";

  constructor(code: TaskKeyringError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TaskKeyringError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// PAE and key ids

/** DSSE v1 pre-authentication encoding; lengths are ASCII decimal byte counts. */
export function pae(type: string, body: Uint8Array): Uint8Array {
  const typeBytes = Buffer.from(type, "utf8");
  const header = Buffer.from(`DSSEv1 ${typeBytes.length} ${type} ${body.length} `, "utf8");
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

/** "tsk_" + the first 16 hex characters of SHA-256 over the key's SubjectPublicKeyInfo DER. */
export function taskKeyId(publicKey: KeyObject | string): string {
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  const spki = key.export({ type: "spki", format: "der" });
  return `tsk_${createHash("sha256").update(spki).digest("hex").slice(0, 16)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Payload validation (shared by signing, so the control plane never signs what agents would refuse)

/**
 * Checks that `value` is exactly a TaskPayload of the version `payloadType` names (see @ferry/contract), as a
 * TaskRefusal("TASK_MALFORMED") when it is not. target.config is checked by the target kind's schema.
 */
export function parseTaskPayload(value: unknown, payloadType: string = TASK_PAYLOAD_TYPE): TaskPayload {
  try {
    return parseContractPayload(value, payloadType);
  } catch (err) {
    if (err instanceof TaskPayloadError) throw new TaskRefusal("TASK_MALFORMED", err.message, { cause: err });
    throw err;
  }
}

/** A fresh task nonce: 16 random bytes, base64url without padding. */
export function newTaskNonce(): string {
  return randomBytes(16).toString("base64url");
}

// ---------------------------------------------------------------------------------------------------------------
// Verification (agent side)

function notAfterOf(key: TrustedTaskKey): number {
  return typeof key.notAfterMs === "bigint" ? Number(key.notAfterMs) : key.notAfterMs;
}

/**
 * Verifies a signed task and returns its payload, or throws a TaskRefusal. Checks, in order: payload type, key
 * (trusted, Ed25519, not retired, id matching its public key), signature over the PAE of the bytes received, then
 * — only for authenticated bytes — JSON, canonical form, shape, audience and expiry. The payload is never
 * re-serialised before the signature check. Replays (nonce, task already run) are the task journal's business.
 */
export function verifySignedTask(
  envelope: SignedTaskEnvelope,
  opts: { trustedKeys: readonly TrustedTaskKey[]; agentId: string; now: number | Date },
): TaskPayload {
  const now = typeof opts.now === "number" ? opts.now : opts.now.getTime();
  if (versionOfPayloadType(envelope.payloadType) === undefined) {
    throw new TaskRefusal(
      "TASK_MALFORMED",
      `payload type ${JSON.stringify(envelope.payloadType)} is not one this agent reads (${TASK_PAYLOAD_VERSIONS.map(payloadTypeOf).join(", ")})`,
    );
  }

  const key = opts.trustedKeys.find((k) => k.keyId === envelope.keyId);
  if (key === undefined) {
    throw new TaskRefusal(
      "TASK_UNKNOWN_KEY",
      `task is signed by key ${JSON.stringify(envelope.keyId)}, which this agent does not trust`,
    );
  }
  if (key.algorithm !== TASK_SIGNING_ALGORITHM) {
    throw new TaskRefusal(
      "TASK_UNKNOWN_KEY",
      `trusted key ${key.keyId} has algorithm ${JSON.stringify(key.algorithm)}, not ${TASK_SIGNING_ALGORITHM}`,
    );
  }
  const retires = notAfterOf(key);
  if (retires !== 0 && now > retires + CLOCK_SKEW_LEEWAY_MS) {
    throw new TaskRefusal("TASK_UNKNOWN_KEY", `key ${key.keyId} retired at ${new Date(retires).toISOString()}`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(key.publicKeyPem);
  } catch (err) {
    throw new TaskRefusal("TASK_UNKNOWN_KEY", `trusted key ${key.keyId} is not a readable public key`, { cause: err });
  }
  // The id is derived from the key; a mismatch means the trusted set was assembled wrongly.
  if (publicKey.asymmetricKeyType !== "ed25519" || taskKeyId(publicKey) !== key.keyId) {
    throw new TaskRefusal("TASK_UNKNOWN_KEY", `trusted key ${key.keyId} does not match its public key`);
  }

  const body = envelope.payload;
  let ok = false;
  if (envelope.signature.length === 64) {
    try {
      ok = cryptoVerify(null, pae(envelope.payloadType, body), publicKey, envelope.signature);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new TaskRefusal("TASK_BAD_SIGNATURE", `signature by ${key.keyId} does not verify`);

  let text: string;
  let parsed: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TaskRefusal("TASK_MALFORMED", "task payload is not UTF-8 JSON", { cause: err });
  }
  // Canonical form leaves one reading of the signed bytes: no duplicate keys (which JSON parsers resolve
  // differently), no alternative number spellings.
  let canonical: string | undefined;
  try {
    canonical = canonicalJson(parsed);
  } catch {
    canonical = undefined;
  }
  if (canonical !== text) throw new TaskRefusal("TASK_MALFORMED", "task payload is not canonical JSON (RFC 8785)");
  const payload = parseTaskPayload(parsed, envelope.payloadType);

  if (payload.agentId !== opts.agentId) {
    throw new TaskRefusal(
      "TASK_WRONG_AUDIENCE",
      `task ${payload.taskId} is addressed to agent ${payload.agentId}, not ${opts.agentId}`,
    );
  }
  if (now > payload.notAfter + CLOCK_SKEW_LEEWAY_MS) {
    throw new TaskRefusal("TASK_EXPIRED", `task ${payload.taskId} expired at ${new Date(payload.notAfter).toISOString()}`);
  }
  return payload;
}

// ---------------------------------------------------------------------------------------------------------------
// Keyring (control-plane side)

export const KEYRING_INDEX_FILE = "index.json";
const LOCK_FILE = "rotate.lock";
const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 10_000;
const MAX_FILE_BYTES = 256 * 1024;

/** One key in the index. Times are ms since the epoch. */
export interface TaskSigningKeyRecord {
  keyId: string;
  algorithm: typeof TASK_SIGNING_ALGORITHM;
  publicKeyPem: string;
  createdAt: number;
  activatedAt: number;
  /** null for the active key; otherwise the moment agents stop trusting it. */
  retiresAt: number | null;
}

interface KeyringIndex {
  v: 1;
  keys: TaskSigningKeyRecord[];
}

/** The active key: signs every new task. The private key stays inside this object and is never logged. */
export interface ActiveTaskKey {
  readonly keyId: string;
  readonly publicKeyPem: string;
  readonly activatedAt: number;
}

function invalid(message: string, cause?: unknown): TaskKeyringError {
  return new TaskKeyringError("TASK_KEYRING_INVALID", message, cause === undefined ? undefined : { cause });
}

async function readPrivateKey(file: string): Promise<KeyObject> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, "r");
  } catch (err) {
    throw invalid(`cannot open task-signing key ${file}: ${(err as Error).message}`, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_FILE_BYTES) throw invalid(`${file} is not a task-signing key file`);
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
      throw invalid(
        `${file} has mode ${mode}: a task-signing key must not be accessible to group or others ` +
          `(run: chmod 600 ${file})`,
      );
    }
    const pem = await fh.readFile("utf8");
    try {
      return createPrivateKey(pem);
    } catch (err) {
      throw invalid(`${file} is not a readable PKCS#8 private key`, err);
    }
  } finally {
    await fh.close();
  }
}

function parseIndex(file: string, raw: string): KeyringIndex {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw invalid(`${file} is not valid JSON`, err);
  }
  if (!isPlainObject(v) || v.v !== 1 || !Array.isArray(v.keys)) throw invalid(`${file} is not a task-signing key index`);
  const isTime = (t: unknown): t is number => typeof t === "number" && Number.isSafeInteger(t) && t >= 0 && t <= MAX_KEY_TIME_MS;
  const keys = (v.keys as unknown[]).map((k, i): TaskSigningKeyRecord => {
    if (
      !isPlainObject(k) ||
      typeof k.keyId !== "string" ||
      k.algorithm !== TASK_SIGNING_ALGORITHM ||
      typeof k.publicKeyPem !== "string" ||
      typeof k.createdAt !== "number" ||
      typeof k.activatedAt !== "number" ||
      !(k.retiresAt === null || typeof k.retiresAt === "number")
    ) {
      throw invalid(`${file}: keys[${i}] is malformed`);
    }
    for (const field of ["createdAt", "activatedAt", "retiresAt"] as const) {
      const t = k[field];
      if (t !== null && !isTime(t)) {
        throw invalid(
          `${file}: keys[${i}].${field} is ${JSON.stringify(t)}, not a time in ms between 1970 and 2200 ` +
            `(fix or remove that key in the index; agents could not be sent it)`,
        );
      }
    }
    let id: string;
    try {
      id = taskKeyId(k.publicKeyPem);
    } catch (err) {
      throw invalid(`${file}: keys[${i}] has an unreadable public key`, err);
    }
    if (id !== k.keyId) throw invalid(`${file}: keys[${i}] is named ${k.keyId} but its public key is ${id}`);
    return {
      keyId: k.keyId,
      algorithm: TASK_SIGNING_ALGORITHM,
      publicKeyPem: k.publicKeyPem,
      createdAt: k.createdAt,
      activatedAt: k.activatedAt,
      retiresAt: k.retiresAt,
    };
  });
  const active = keys.filter((k) => k.retiresAt === null);
  if (active.length !== 1) throw invalid(`${file} must name exactly one active key, names ${active.length}`);
  return { v: 1, keys };
}

function serialiseIndex(index: KeyringIndex): string {
  return `${JSON.stringify(index, null, 2)}\n`;
}

function newKey(now: number): { record: TaskSigningKeyRecord; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
  return {
    record: {
      keyId: taskKeyId(publicKey),
      algorithm: TASK_SIGNING_ALGORITHM,
      publicKeyPem,
      createdAt: now,
      activatedAt: now,
      retiresAt: null,
    },
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

async function writeKeyFiles(dir: string, key: { record: TaskSigningKeyRecord; privatePem: string }): Promise<void> {
  await placeFile(dir, `${key.record.keyId}.key`, key.privatePem, 0o600, false);
  await placeFile(dir, `${key.record.keyId}.pub.pem`, key.record.publicKeyPem, 0o644, false);
}

async function removeQuietly(file: string): Promise<void> {
  await fs.rm(file, { force: true }).catch(() => undefined);
}

export class TaskSigningKeyring {
  readonly dir: string;
  #index: KeyringIndex;
  #active: { record: TaskSigningKeyRecord; privateKey: KeyObject };

  private constructor(dir: string, index: KeyringIndex, active: { record: TaskSigningKeyRecord; privateKey: KeyObject }) {
    this.dir = dir;
    this.#index = index;
    this.#active = active;
  }

  /**
   * Loads the keyring in `dir`, creating the directory (0700) and a first key when there is none. Safe when several
   * processes start together on the same directory: exactly one key becomes the first active key.
   */
  static async loadOrCreate(dir: string, opts: { now?: number | Date } = {}): Promise<TaskSigningKeyring> {
    const abs = path.resolve(dir);
    try {
      await ensurePrivateDir(abs);
    } catch (err) {
      throw invalid(`cannot use ${abs} as the task-signing key directory: ${(err as Error).message}`, err);
    }
    let raw = await TaskSigningKeyring.#readIndexRaw(abs);
    if (raw === undefined) {
      const key = newKey(toMs(opts.now));
      await writeKeyFiles(abs, key);
      const outcome = await placeFile(abs, KEYRING_INDEX_FILE, serialiseIndex({ v: 1, keys: [key.record] }), 0o644, true);
      if (outcome === "exists") {
        // Another process created the keyring first: adopt its key, drop ours (no index will ever name it).
        await removeQuietly(path.join(abs, `${key.record.keyId}.key`));
        await removeQuietly(path.join(abs, `${key.record.keyId}.pub.pem`));
      }
      raw = await TaskSigningKeyring.#readIndexRaw(abs);
      if (raw === undefined) throw invalid(`${path.join(abs, KEYRING_INDEX_FILE)} disappeared while being created`);
    }
    return TaskSigningKeyring.#fromIndex(abs, raw);
  }

  static async #readIndexRaw(dir: string): Promise<string | undefined> {
    const file = path.join(dir, KEYRING_INDEX_FILE);
    try {
      const st = await fs.stat(file);
      if (!st.isFile() || st.size > MAX_FILE_BYTES) throw invalid(`${file} is not a task-signing key index`);
      return await fs.readFile(file, "utf8");
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return undefined;
      if (err instanceof TaskKeyringError) throw err;
      throw invalid(`cannot read ${file}: ${(err as Error).message}`, err);
    }
  }

  static async #fromIndex(dir: string, raw: string): Promise<TaskSigningKeyring> {
    const index = parseIndex(path.join(dir, KEYRING_INDEX_FILE), raw);
    const record = index.keys.find((k) => k.retiresAt === null)!;
    const keyFile = path.join(dir, `${record.keyId}.key`);
    const privateKey = await readPrivateKey(keyFile);
    if (privateKey.asymmetricKeyType !== "ed25519" || taskKeyId(createPublicKey(privateKey)) !== record.keyId) {
      throw invalid(`${keyFile} does not hold the private key of ${record.keyId}`);
    }
    return new TaskSigningKeyring(dir, index, { record, privateKey });
  }

  /** The key that signs new tasks. */
  get active(): ActiveTaskKey {
    const r = this.#active.record;
    return { keyId: r.keyId, publicKeyPem: r.publicKeyPem, activatedAt: r.activatedAt };
  }

  /** Every key in the index, retired ones included (history). */
  get keys(): readonly TaskSigningKeyRecord[] {
    return this.#index.keys.map((k) => ({ ...k }));
  }

  /**
   * The keys agents must trust at `now`: the active key (notAfterMs 0, no end announced) and every retiring key
   * whose overlap has not ended (notAfterMs = its retirement). Sent to agents at enrolment and on every change.
   */
  publicKeys(now?: number | Date): { keyId: string; algorithm: "ed25519"; publicKeyPem: string; notAfterMs: number }[] {
    const t = toMs(now);
    return this.#index.keys
      .filter((k) => k.retiresAt === null || k.retiresAt > t)
      .sort((a, b) => b.activatedAt - a.activatedAt)
      .map((k) => ({
        keyId: k.keyId,
        algorithm: TASK_SIGNING_ALGORITHM,
        publicKeyPem: k.publicKeyPem,
        notAfterMs: k.retiresAt ?? 0,
      }));
  }

  /**
   * Makes a new key active. The previous active key keeps verifying until now + overlapMs (default 24 h), which must
   * exceed the longest task lifetime plus CLOCK_SKEW_LEEWAY_MS so tasks signed just before the rotation stay
   * valid. Private keys of non-active keys are deleted: verifying needs only the public key, and a key that can no
   * longer sign cannot leak. Serialised across processes by a lock file; the index on disk (not this object's copy)
   * is what gets rotated, so a rotation made by another process is never lost.
   */
  async rotate(opts: { overlapMs?: number; now?: number | Date } = {}): Promise<ActiveTaskKey> {
    const overlapMs = opts.overlapMs ?? DEFAULT_ROTATION_OVERLAP_MS;
    if (!Number.isSafeInteger(overlapMs) || overlapMs < 0 || overlapMs > MAX_ROTATION_OVERLAP_MS) {
      throw new RangeError(`overlapMs must be a whole number from 0 to ${MAX_ROTATION_OVERLAP_MS} (30 days), got ${overlapMs}`);
    }
    const now = toMs(opts.now);
    await this.#withLock(async () => {
      const raw = await TaskSigningKeyring.#readIndexRaw(this.dir);
      if (raw === undefined) throw invalid(`${path.join(this.dir, KEYRING_INDEX_FILE)} is missing`);
      const current = parseIndex(path.join(this.dir, KEYRING_INDEX_FILE), raw);
      const key = newKey(now);
      await writeKeyFiles(this.dir, key);
      const keys = current.keys.map((k) => (k.retiresAt === null ? { ...k, retiresAt: now + overlapMs } : k));
      keys.push(key.record);
      const next: KeyringIndex = { v: 1, keys };
      await placeFile(this.dir, KEYRING_INDEX_FILE, serialiseIndex(next), 0o644, false);
      for (const k of keys) if (k.retiresAt !== null) await removeQuietly(path.join(this.dir, `${k.keyId}.key`));
      await fsyncDir(this.dir);
      this.#index = next;
      this.#active = { record: key.record, privateKey: createPrivateKey(key.privatePem) };
    });
    return this.active;
  }

  /** Re-reads the index, picking up a rotation made by another process. */
  async reload(): Promise<void> {
    const raw = await TaskSigningKeyring.#readIndexRaw(this.dir);
    if (raw === undefined) throw invalid(`${path.join(this.dir, KEYRING_INDEX_FILE)} is missing`);
    const fresh = await TaskSigningKeyring.#fromIndex(this.dir, raw);
    this.#index = fresh.#index;
    this.#active = fresh.#active;
  }

  /**
   * Signs a task with the active key. The payload is validated first (the control plane must never send a task
   * agents would refuse as malformed), serialised as canonical JSON, and the signature is over its PAE.
   */
  sign(payload: TaskPayload): SignedTaskEnvelope {
    const payloadType = payloadTypeOf(payload.v);
    const checked = parseTaskPayload(JSON.parse(canonicalJson(payload)) as unknown, payloadType);
    const body = new Uint8Array(Buffer.from(canonicalJson(checked), "utf8"));
    const signature = cryptoSign(null, pae(payloadType, body), this.#active.privateKey);
    return {
      payload: body,
      payloadType,
      keyId: this.#active.record.keyId,
      signature: new Uint8Array(signature),
    };
  }

  async #withLock(fn: () => Promise<void>): Promise<void> {
    const lock = path.join(this.dir, LOCK_FILE);
    const started = Date.now();
    for (;;) {
      try {
        const fh = await fs.open(lock, "wx", 0o600);
        try {
          await fh.writeFile(`${process.pid}\n`);
        } finally {
          await fh.close();
        }
        break;
      } catch (err) {
        if (errnoCode(err) !== "EEXIST") throw invalid(`cannot create ${lock}: ${(err as Error).message}`, err);
        // A lock left by a process that died mid-rotation: the rotation steps are each atomic, so taking over is safe.
        const st = await fs.stat(lock).catch(() => undefined);
        if (st !== undefined && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
          await removeQuietly(lock);
          continue;
        }
        if (Date.now() - started > LOCK_WAIT_MS) {
          throw new TaskKeyringError(
            "TASK_KEYRING_BUSY",
            `another rotation holds ${lock}; retry, or remove it if no rotation is running`,
          );
        }
        await delay(25 + Math.random() * 50);
      }
    }
    try {
      await fn();
    } finally {
      await removeQuietly(lock);
    }
  }
}

function toMs(t: number | Date | undefined): number {
  if (t === undefined) return Date.now();
  return typeof t === "number" ? t : t.getTime();
}
