// Evidence packets: signed records of promotion decisions and deployments (docs/evidence.md).
//
// Terms:
//   evidence document  a JSON object describing one decision or deployment; carries previousEvidenceHash, so the
//                      packets form a hash chain in the order the control plane wrote them
//   payload            the document as canonical JSON (RFC 8785) bytes, media type EVIDENCE_PAYLOAD_TYPE
//   envelope           the DSSE JSON envelope { payloadType, payload (base64), signatures: [{ keyid, sig }] }
//   PAE                DSSE pre-authentication encoding of (payloadType, payload): the bytes actually signed
//   evidence hash      SHA-256 hex of the payload bytes; what the next document names as previousEvidenceHash
//   key id             "evk_" + first 16 hex chars of SHA-256(SPKI DER of the public key)
//
// The evidence key is ECDSA P-256, separate from the fleet CA and from the task-signing key. P-256 rather than
// Ed25519 (which task signing uses) because evidence is read by auditors, not by our agents: `openssl dgst -sha256
// -verify` checks an ECDSA signature over a file in one command with any OpenSSL of the last fifteen years, and the
// DER signature is what that command expects. A leaked evidence key cannot forge tasks or certificates, and the
// other way round.
//
// The key directory (0700):
//   evidence.key       PKCS#8 PEM private key (0600)
//   evidence.pub.pem   SPKI PEM public key (0644), handed to whoever verifies evidence
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";

import { ensurePrivateDir, errnoCode, placeFile } from "./atomic-file.js";
import { canonicalJson } from "./canonical-json.js";
import { pae } from "./task-signing.js";

export const EVIDENCE_PAYLOAD_TYPE = "application/vnd.ferry.evidence.v1+json";
export const EVIDENCE_PRIVATE_KEY_FILE = "evidence.key";
export const EVIDENCE_PUBLIC_KEY_FILE = "evidence.pub.pem";
/** previousEvidenceHash of the first packet in a chain (the audit log's genesis value, for the same reason). */
export const EVIDENCE_GENESIS_HASH = "0".repeat(64);

const MAX_KEY_FILE_BYTES = 64 * 1024;
const HASH_RE = /^[0-9a-f]{64}$/;

// ---------------------------------------------------------------------------------------------------------------
// Document shape. signEvidence accepts any JSON object; these types are what the control plane writes, and what
// docs/evidence.md describes field by field.

export type EvidenceKind = "promotion.decision" | "deployment";

export interface EvidenceActor {
  /** The API token's subject: the identity separation of duties is checked against. */
  subject: string;
  /** ISO-8601 UTC. */
  at: string;
}

export interface EvidenceGate {
  gate: string;
  state: "passed" | "failed" | "pending" | "overridden" | "skipped";
  /** What the gate looked at (approvals counted, scan verdicts, freeze window, soak start...), as the gate saw it. */
  inputs: Record<string, unknown>;
  reason: string;
}

export interface EvidenceTarget {
  id: string;
  name: string;
  kind: string;
  agentId: string;
  outcome: "succeeded" | "failed" | "rolled_back" | "skipped";
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

export interface EvidenceDocument {
  v: 1;
  kind: EvidenceKind;
  /** The evidence packet's own id. */
  id: string;
  createdAt: string;
  /** evidenceHash of the packet written before this one, or EVIDENCE_GENESIS_HASH. */
  previousEvidenceHash: string;
  promotion: { id: string; environment: { id: string; name: string } };
  deploymentId: string | null;
  release: {
    id: string;
    name: string;
    version: string;
    components: { component: string; repository: string; digest: string; ref: string }[];
  };
  requester: EvidenceActor;
  approvers: (EvidenceActor & { comment: string | null })[];
  gates: EvidenceGate[];
  targets: EvidenceTarget[];
  timings: { requestedAt: string; decidedAt: string | null; startedAt: string | null; finishedAt: string | null };
  outcome: "approved" | "rejected" | "blocked" | "succeeded" | "failed" | "rolled_back";
  reason: string | null;
}

// ---------------------------------------------------------------------------------------------------------------
// Envelope and verification results

export interface EvidenceSignature {
  keyid: string;
  /** base64 of the DER-encoded ECDSA (P-256, SHA-256) signature over PAE(payloadType, payload bytes). */
  sig: string;
}

/** A DSSE JSON envelope, with the field names of the DSSE specification. */
export interface EvidenceEnvelope {
  payloadType: string;
  /** base64 of the canonical JSON bytes of the document. */
  payload: string;
  signatures: EvidenceSignature[];
}

export interface EvidencePublicKey {
  keyId: string;
  publicKeyPem: string;
}

export type EvidenceFailureCode =
  /** Not an envelope: a missing, mistyped or unknown field, bad base64, wrong payload type, or a payload that is not a JSON object. */
  | "EVIDENCE_MALFORMED"
  /** No signature is by a key in the verifier's set (or a trusted entry does not match its own public key). */
  | "EVIDENCE_UNKNOWN_KEY"
  /** A signature by a trusted key does not verify over the payload received. */
  | "EVIDENCE_BAD_SIGNATURE"
  /** The signature verifies, but the payload bytes are not the canonical JSON (RFC 8785) of their own content. */
  | "EVIDENCE_NOT_CANONICAL";

export type EvidenceVerification =
  | { ok: true; document: Record<string, unknown>; keyId: string; hash: string }
  | { ok: false; code: EvidenceFailureCode; where: string; message: string };

/** Failures of the evidence key directory: unreadable, not P-256, accessible to others, or inconsistent. */
export class EvidenceKeyError extends Error {
  readonly code = "EVIDENCE_KEY_INVALID" as const;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EvidenceKeyError";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Key

/** "evk_" + the first 16 hex characters of SHA-256 over the key's SubjectPublicKeyInfo DER. */
export function evidenceKeyId(publicKey: KeyObject | string): string {
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  const spki = key.export({ type: "spki", format: "der" });
  return `evk_${createHash("sha256").update(spki).digest("hex").slice(0, 16)}`;
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1";
}

// The private key lives here rather than on the instance, so nothing outside this module (a stray log line, a
// JSON.stringify, a caller wanting to sign arbitrary bytes) can reach it through the object.
const privateKeys = new WeakMap<EvidenceKey, KeyObject>();

export class EvidenceKey {
  readonly dir: string;
  readonly keyId: string;
  readonly publicKeyPem: string;

  private constructor(dir: string, privateKey: KeyObject) {
    const publicKey = createPublicKey(privateKey);
    this.dir = dir;
    this.keyId = evidenceKeyId(publicKey);
    this.publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    privateKeys.set(this, privateKey);
  }

  /** The entry a verifier needs: pass it (and any retired keys') to verifyEvidence. */
  get publicKey(): EvidencePublicKey {
    return { keyId: this.keyId, publicKeyPem: this.publicKeyPem };
  }

  /**
   * Loads the evidence key in `dir`, creating the directory (0700) and the key when there is none. Safe when two
   * processes start together: the private key file is placed with an exclusive create (hard link of a complete
   * temporary file), the loser discards its own key and both re-read the one on disk.
   */
  static async loadOrCreate(dir: string): Promise<EvidenceKey> {
    const abs = path.resolve(dir);
    try {
      await ensurePrivateDir(abs);
    } catch (err) {
      throw new EvidenceKeyError(`cannot use ${abs} as the evidence key directory: ${(err as Error).message}`, { cause: err });
    }
    const keyFile = path.join(abs, EVIDENCE_PRIVATE_KEY_FILE);
    let pem = await readPrivateKeyFile(keyFile);
    if (pem === undefined) {
      const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      await placeEvidenceFile(abs, EVIDENCE_PRIVATE_KEY_FILE, privateKey.export({ type: "pkcs8", format: "pem" }).toString(), 0o600, true);
      pem = await readPrivateKeyFile(keyFile);
      if (pem === undefined) throw new EvidenceKeyError(`${keyFile} disappeared while being created`);
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(pem);
    } catch (err) {
      throw new EvidenceKeyError(`${keyFile} is not a readable PKCS#8 private key`, { cause: err });
    }
    if (!isP256(privateKey)) throw new EvidenceKeyError(`${keyFile} is not an ECDSA P-256 key`);
    const key = new EvidenceKey(abs, privateKey);
    await ensurePublicKeyFile(abs, key);
    return key;
  }
}

/** The private key PEM, or undefined when the file does not exist. Refuses files group or others can read. */
async function readPrivateKeyFile(file: string): Promise<string | undefined> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, "r");
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw new EvidenceKeyError(`cannot open evidence key ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_KEY_FILE_BYTES) throw new EvidenceKeyError(`${file} is not an evidence key file`);
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
      throw new EvidenceKeyError(
        `${file} has mode ${mode}: the evidence key must not be accessible to group or others (run: chmod 600 ${file})`,
      );
    }
    return await fh.readFile("utf8");
  } finally {
    await fh.close();
  }
}

/**
 * Writes evidence.pub.pem when it is missing. The private key is the source of truth; a public key file that names
 * another key is refused rather than overwritten, because it may already have been handed to verifiers.
 */
async function ensurePublicKeyFile(dir: string, key: EvidenceKey): Promise<void> {
  const file = path.join(dir, EVIDENCE_PUBLIC_KEY_FILE);
  let existing: string | undefined;
  try {
    existing = await fs.readFile(file, "utf8");
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") throw new EvidenceKeyError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (existing === undefined) {
    // Two processes may both get here; they write identical bytes and rename is atomic, so either result is right.
    await placeEvidenceFile(dir, EVIDENCE_PUBLIC_KEY_FILE, key.publicKeyPem, 0o644, false);
    return;
  }
  let id: string | undefined;
  try {
    id = evidenceKeyId(existing);
  } catch {
    id = undefined;
  }
  if (id !== key.keyId) {
    throw new EvidenceKeyError(
      `${file} is not the public key of ${path.join(dir, EVIDENCE_PRIVATE_KEY_FILE)} (${key.keyId}); ` +
        `move it aside to have it written again`,
    );
  }
}

async function placeEvidenceFile(dir: string, name: string, data: string, mode: number, noClobber: boolean): Promise<"written" | "exists"> {
  try {
    return await placeFile(dir, name, data, mode, noClobber);
  } catch (err) {
    throw new EvidenceKeyError(`cannot write ${path.join(dir, name)}: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Signing

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Signs a document: canonical JSON bytes, ECDSA P-256 / SHA-256 over their PAE, DER signature. Throws a TypeError
 * for a document canonical JSON cannot represent (NaN, bigint...) or that is not a JSON object, so nothing is
 * signed that verifyEvidence would refuse.
 */
export function signEvidence(doc: object, key: EvidenceKey): EvidenceEnvelope {
  if (!isPlainObject(doc)) throw new TypeError("an evidence document must be a JSON object");
  const privateKey = privateKeys.get(key);
  if (privateKey === undefined) throw new TypeError("not an EvidenceKey");
  const text = canonicalJson(doc);
  // canonicalJson skips undefined members and turns Dates into strings; signing the re-read form guarantees that
  // what a verifier parses out of the payload is exactly what was signed.
  const canonical = canonicalJson(JSON.parse(text));
  if (canonical !== text) throw new TypeError("the evidence document does not survive a JSON round trip");
  const body = Buffer.from(text, "utf8");
  const sig = sign("sha256", pae(EVIDENCE_PAYLOAD_TYPE, body), { key: privateKey, dsaEncoding: "der" });
  return {
    payloadType: EVIDENCE_PAYLOAD_TYPE,
    payload: body.toString("base64"),
    signatures: [{ keyid: key.keyId, sig: sig.toString("base64") }],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

// DSSE allows standard or URL-safe base64; padding is optional in the wild, so both are accepted.
const BASE64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeBase64(s: string): Buffer | undefined {
  if (!BASE64_RE.test(s)) return undefined;
  const unpadded = s.replace(/=+$/, "");
  if (unpadded.length % 4 === 1) return undefined;
  if (s.length !== unpadded.length && s.length % 4 !== 0) return undefined;
  return Buffer.from(unpadded, "base64");
}

/** SHA-256 hex of the envelope's payload bytes (not of the envelope, whose signatures may be re-encoded or added). */
export function evidenceHash(envelope: EvidenceEnvelope): string {
  const body = typeof envelope?.payload === "string" ? decodeBase64(envelope.payload) : undefined;
  if (body === undefined) throw new TypeError("evidence envelope payload is not base64");
  return createHash("sha256").update(body).digest("hex");
}

/** True for a well-formed evidence hash (64 lowercase hex), the form previousEvidenceHash must take. */
export function isEvidenceHash(value: unknown): value is string {
  return typeof value === "string" && HASH_RE.test(value);
}

type Failure = Extract<EvidenceVerification, { ok: false }>;

function fail(code: EvidenceFailureCode, where: string, message: string): Failure {
  return { ok: false, code, where, message };
}

const ENVELOPE_FIELDS = ["payloadType", "payload", "signatures"];
const SIGNATURE_FIELDS = ["keyid", "sig"];

/**
 * Verifies an evidence envelope against the public keys the verifier trusts (the current key and any retired ones).
 * Checks, in order: envelope shape, payload type, base64; that some signature is by a trusted key; every signature
 * by a trusted key over the PAE of the received bytes; and only then — for authenticated bytes — that the payload is
 * UTF-8 JSON, an object, and canonical. Signatures by keys the verifier does not know are ignored (DSSE allows
 * several signers); at least one must be by a trusted key. Never throws for any input.
 */
export function verifyEvidence(envelope: unknown, publicKeys: readonly EvidencePublicKey[]): EvidenceVerification {
  if (!isPlainObject(envelope)) return fail("EVIDENCE_MALFORMED", "envelope", "the envelope is not a JSON object");
  // Unknown fields are not covered by the signature; refusing them keeps a reader from trusting an unsigned addition.
  for (const k of Object.keys(envelope)) {
    if (!ENVELOPE_FIELDS.includes(k)) return fail("EVIDENCE_MALFORMED", k, `unknown envelope field ${JSON.stringify(k)}`);
  }
  const { payloadType, payload, signatures } = envelope;
  if (typeof payloadType !== "string") return fail("EVIDENCE_MALFORMED", "payloadType", "payloadType must be a string");
  if (payloadType !== EVIDENCE_PAYLOAD_TYPE) {
    return fail("EVIDENCE_MALFORMED", "payloadType", `payloadType ${JSON.stringify(payloadType)} is not ${EVIDENCE_PAYLOAD_TYPE}`);
  }
  if (typeof payload !== "string") return fail("EVIDENCE_MALFORMED", "payload", "payload must be a base64 string");
  const body = decodeBase64(payload);
  if (body === undefined) return fail("EVIDENCE_MALFORMED", "payload", "payload is not valid base64");
  if (!Array.isArray(signatures)) return fail("EVIDENCE_MALFORMED", "signatures", "signatures must be an array");
  if (signatures.length === 0) return fail("EVIDENCE_MALFORMED", "signatures", "signatures is empty");

  const sigs: { keyid: string; sig: Buffer; where: string }[] = [];
  for (const [i, s] of (signatures as unknown[]).entries()) {
    const where = `signatures[${i}]`;
    if (!isPlainObject(s)) return fail("EVIDENCE_MALFORMED", where, `${where} is not an object`);
    for (const k of Object.keys(s)) {
      if (!SIGNATURE_FIELDS.includes(k)) return fail("EVIDENCE_MALFORMED", `${where}.${k}`, `unknown field ${where}.${k}`);
    }
    if (typeof s.keyid !== "string" || s.keyid === "") {
      return fail("EVIDENCE_MALFORMED", `${where}.keyid`, `${where}.keyid must be a non-empty string`);
    }
    if (typeof s.sig !== "string") return fail("EVIDENCE_MALFORMED", `${where}.sig`, `${where}.sig must be a base64 string`);
    const sig = decodeBase64(s.sig);
    if (sig === undefined || sig.length === 0) return fail("EVIDENCE_MALFORMED", `${where}.sig`, `${where}.sig is not valid base64`);
    sigs.push({ keyid: s.keyid, sig, where });
  }

  const signed = pae(payloadType, body);
  let verifiedBy: string | undefined;
  for (const s of sigs) {
    const trusted = publicKeys.find((k) => k.keyId === s.keyid);
    if (trusted === undefined) continue;
    let key: KeyObject | undefined;
    try {
      key = createPublicKey(trusted.publicKeyPem);
    } catch {
      key = undefined;
    }
    // The id is derived from the key, so a mismatch means the verifier's key set was put together wrongly.
    if (key === undefined || !isP256(key) || evidenceKeyId(key) !== trusted.keyId) {
      return fail("EVIDENCE_UNKNOWN_KEY", `${s.where}.keyid`, `trusted key ${trusted.keyId} is not the ECDSA P-256 key its id names`);
    }
    let ok: boolean;
    try {
      ok = verify("sha256", signed, { key, dsaEncoding: "der" }, s.sig);
    } catch {
      ok = false;
    }
    if (!ok) return fail("EVIDENCE_BAD_SIGNATURE", `${s.where}.sig`, `signature by ${trusted.keyId} does not verify over the payload`);
    verifiedBy ??= trusted.keyId;
  }
  if (verifiedBy === undefined) {
    const ids = sigs.map((s) => s.keyid).join(", ");
    return fail(
      "EVIDENCE_UNKNOWN_KEY",
      sigs.length === 1 ? "signatures[0].keyid" : "signatures",
      `signed by ${ids}; none of these is a trusted evidence key`,
    );
  }

  let text: string;
  let parsed: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
    parsed = JSON.parse(text);
  } catch {
    return fail("EVIDENCE_MALFORMED", "payload", "payload is not UTF-8 JSON");
  }
  if (!isPlainObject(parsed)) return fail("EVIDENCE_MALFORMED", "payload", "payload is not a JSON object");
  // Canonical form leaves one reading of the signed bytes: no duplicate keys (which parsers resolve differently),
  // no alternative spellings of numbers or strings, no whitespace to hide things in.
  let canonical: string | undefined;
  try {
    canonical = canonicalJson(parsed);
  } catch {
    canonical = undefined;
  }
  if (canonical !== text) {
    return fail("EVIDENCE_NOT_CANONICAL", "payload", "payload bytes are not the canonical JSON (RFC 8785) of their content");
  }
  return { ok: true, document: parsed, keyId: verifiedBy, hash: createHash("sha256").update(body).digest("hex") };
}
