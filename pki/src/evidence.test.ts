import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";

import {
  EVIDENCE_GENESIS_HASH,
  EVIDENCE_PAYLOAD_TYPE,
  EVIDENCE_PRIVATE_KEY_FILE,
  EVIDENCE_PUBLIC_KEY_FILE,
  EvidenceKey,
  EvidenceKeyError,
  evidenceHash,
  evidenceKeyId,
  isEvidenceHash,
  signEvidence,
  verifyEvidence,
  type EvidenceDocument,
  type EvidenceEnvelope,
  type EvidenceFailureCode,
  type EvidenceVerification,
} from "./evidence.js";
import { pae } from "./task-signing.js";

const DIGEST = `sha256:${"cd".repeat(32)}`;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-evidence-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => path.join(tmpRoot, `k-${++dirCount}`, "evidence");

function document(over: Partial<EvidenceDocument> = {}): EvidenceDocument {
  return {
    v: 1,
    kind: "promotion.decision",
    id: "evd_1",
    createdAt: "2026-03-01T12:00:05.000Z",
    previousEvidenceHash: EVIDENCE_GENESIS_HASH,
    promotion: { id: "prm_1", environment: { id: "env_prod", name: "prod" } },
    deploymentId: null,
    release: {
      id: "rel_1",
      name: "shop",
      version: "1.4.0",
      components: [{ component: "web", repository: "127.0.0.1:5000/shop/web", digest: DIGEST, ref: `127.0.0.1:5000/shop/web@${DIGEST}` }],
    },
    requester: { subject: "alice", at: "2026-03-01T12:00:00.000Z" },
    approvers: [{ subject: "bob", at: "2026-03-01T12:00:04.000Z", comment: "ok — ship it ✓" }],
    gates: [{ gate: "approvals", state: "passed", inputs: { required: 1, approvedBy: ["bob"] }, reason: "1 of 1 approvals" }],
    targets: [],
    timings: { requestedAt: "2026-03-01T12:00:00.000Z", decidedAt: "2026-03-01T12:00:05.000Z", startedAt: null, finishedAt: null },
    outcome: "approved",
    reason: null,
    ...over,
  };
}

function failed(r: EvidenceVerification, code: EvidenceFailureCode, where: string): void {
  assert.equal(r.ok, false, "expected a failure");
  if (r.ok) return;
  assert.equal(r.code, code, r.message);
  assert.equal(r.where, where, r.message);
  assert.ok(r.message.length > 0);
}

function privatePem(key: EvidenceKey): string {
  return fs.readFileSync(path.join(key.dir, EVIDENCE_PRIVATE_KEY_FILE), "utf8");
}

/** An envelope over arbitrary bytes, signed properly: what an insider with the key (or a buggy writer) could make. */
function signRaw(key: EvidenceKey, body: Buffer): EvidenceEnvelope {
  const sig = cryptoSign("sha256", pae(EVIDENCE_PAYLOAD_TYPE, body), { key: privatePem(key), dsaEncoding: "der" });
  return { payloadType: EVIDENCE_PAYLOAD_TYPE, payload: body.toString("base64"), signatures: [{ keyid: key.keyId, sig: sig.toString("base64") }] };
}

const keyPromise = EvidenceKey.loadOrCreate(freshDir());

describe("EvidenceKey", () => {
  test("creates a P-256 key: 0700 dir, 0600 private key, public key beside it, evk_ id over the SPKI DER", async () => {
    const dir = freshDir();
    const key = await EvidenceKey.loadOrCreate(dir);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, EVIDENCE_PRIVATE_KEY_FILE)).mode & 0o777, 0o600);
    const pub = fs.readFileSync(path.join(dir, EVIDENCE_PUBLIC_KEY_FILE), "utf8");
    assert.equal(pub, key.publicKeyPem);
    const der = Buffer.from(pub.replace(/-----[^-]+-----|\s/g, ""), "base64");
    assert.equal(key.keyId, `evk_${createHash("sha256").update(der).digest("hex").slice(0, 16)}`);
    assert.match(key.keyId, /^evk_[0-9a-f]{16}$/);
    assert.deepEqual(key.publicKey, { keyId: key.keyId, publicKeyPem: pub });
    assert.equal(fs.readdirSync(dir).sort().join(","), `${EVIDENCE_PRIVATE_KEY_FILE},${EVIDENCE_PUBLIC_KEY_FILE}`);
    // The private key is not reachable through the object.
    assert.ok(!JSON.stringify(key).includes("PRIVATE"));
    assert.ok(!Object.values(key).some((v) => typeof v === "string" && v.includes("PRIVATE")));
  });

  test("loading again returns the same key; a missing public key file is written again", async () => {
    const dir = freshDir();
    const a = await EvidenceKey.loadOrCreate(dir);
    fs.rmSync(path.join(dir, EVIDENCE_PUBLIC_KEY_FILE));
    const b = await EvidenceKey.loadOrCreate(dir);
    assert.equal(b.keyId, a.keyId);
    assert.equal(fs.readFileSync(path.join(dir, EVIDENCE_PUBLIC_KEY_FILE), "utf8"), a.publicKeyPem);
  });

  test("processes starting together on an empty directory end up with one key", async () => {
    const dir = freshDir();
    const keys = await Promise.all(Array.from({ length: 8 }, () => EvidenceKey.loadOrCreate(dir)));
    assert.equal(new Set(keys.map((k) => k.keyId)).size, 1);
    assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp")).length, 0);
    // Separate processes racing on one directory agree too.
    const dir2 = freshDir();
    const script =
      `import { EvidenceKey } from ${JSON.stringify(new URL("./evidence.ts", import.meta.url).href)};\n` +
      `process.stdout.write((await EvidenceKey.loadOrCreate(${JSON.stringify(dir2)})).keyId);`;
    const ids = await Promise.all(
      Array.from({ length: 4 }, () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
            stdio: ["ignore", "pipe", "inherit"],
          });
          let out = "";
          child.stdout.on("data", (c: Buffer) => (out += c.toString()));
          child.on("error", reject);
          child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}`))));
        }),
      ),
    );
    const mine = await EvidenceKey.loadOrCreate(dir2);
    assert.deepEqual(ids, ids.map(() => mine.keyId));
  });

  test("refuses a private key readable by group or others, and a key that is not P-256", async () => {
    const dir = freshDir();
    await EvidenceKey.loadOrCreate(dir);
    const file = path.join(dir, EVIDENCE_PRIVATE_KEY_FILE);
    fs.chmodSync(file, 0o640);
    await assert.rejects(EvidenceKey.loadOrCreate(dir), (err: unknown) => {
      assert.ok(err instanceof EvidenceKeyError);
      assert.equal(err.code, "EVIDENCE_KEY_INVALID");
      assert.match(err.message, /chmod 600/);
      return true;
    });

    const dir2 = freshDir();
    fs.mkdirSync(dir2, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync("ed25519");
    fs.writeFileSync(path.join(dir2, EVIDENCE_PRIVATE_KEY_FILE), privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    await assert.rejects(EvidenceKey.loadOrCreate(dir2), /not an ECDSA P-256 key/);
  });

  test("refuses a public key file that belongs to another key", async () => {
    const dir = freshDir();
    await EvidenceKey.loadOrCreate(dir);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" });
    fs.writeFileSync(path.join(dir, EVIDENCE_PUBLIC_KEY_FILE), other);
    await assert.rejects(EvidenceKey.loadOrCreate(dir), /is not the public key of/);
  });
});

describe("signEvidence / verifyEvidence", () => {
  test("round trip: canonical payload, DSSE field names, document and hash back", async () => {
    const key = await keyPromise;
    const doc = document();
    const env = signEvidence(doc, key);
    assert.deepEqual(Object.keys(env).sort(), ["payload", "payloadType", "signatures"]);
    assert.equal(env.payloadType, EVIDENCE_PAYLOAD_TYPE);
    assert.equal(env.signatures.length, 1);
    assert.equal(env.signatures[0]!.keyid, key.keyId);
    const body = Buffer.from(env.payload, "base64");
    assert.ok(body.toString("utf8").startsWith('{"approvers":[{"at":'), "keys sorted, no whitespace");
    const r = verifyEvidence(JSON.parse(JSON.stringify(env)), [key.publicKey]);
    assert.ok(r.ok, r.ok ? "" : r.message);
    assert.deepEqual(r.document, JSON.parse(JSON.stringify(doc)));
    assert.equal(r.keyId, key.keyId);
    assert.equal(r.hash, createHash("sha256").update(body).digest("hex"));
    assert.equal(r.hash, evidenceHash(env));
    assert.ok(isEvidenceHash(r.hash));
  });

  test("evidence hashes chain packets", async () => {
    const key = await keyPromise;
    const first = signEvidence(document(), key);
    const second = signEvidence(document({ id: "evd_2", kind: "deployment", previousEvidenceHash: evidenceHash(first) }), key);
    const r = verifyEvidence(second, [key.publicKey]);
    assert.ok(r.ok);
    assert.equal(r.document.previousEvidenceHash, evidenceHash(first));
    // Re-signing the same document gives a different signature (ECDSA is randomised) but the same hash.
    const again = signEvidence(document(), key);
    assert.notEqual(again.signatures[0]!.sig, first.signatures[0]!.sig);
    assert.equal(evidenceHash(again), evidenceHash(first));
  });

  test("refuses to sign what it could not verify", async () => {
    const key = await keyPromise;
    assert.throws(() => signEvidence([1, 2], key), TypeError);
    assert.throws(() => signEvidence({ n: Number.NaN }, key), TypeError);
    assert.throws(() => signEvidence({ n: 1n }, key), TypeError);
  });

  test("one changed payload byte: EVIDENCE_BAD_SIGNATURE at signatures[0].sig", async () => {
    const key = await keyPromise;
    const env = signEvidence(document(), key);
    const body = Buffer.from(env.payload, "base64");
    const i = body.indexOf("bob");
    body[i] = "c".charCodeAt(0);
    failed(verifyEvidence({ ...env, payload: body.toString("base64") }, [key.publicKey]), "EVIDENCE_BAD_SIGNATURE", "signatures[0].sig");
  });

  test("altered signature: EVIDENCE_BAD_SIGNATURE", async () => {
    const key = await keyPromise;
    const env = signEvidence(document(), key);
    const sig = Buffer.from(env.signatures[0]!.sig, "base64");
    sig[sig.length - 1]! ^= 0x01;
    const altered = { ...env, signatures: [{ keyid: key.keyId, sig: sig.toString("base64") }] };
    failed(verifyEvidence(altered, [key.publicKey]), "EVIDENCE_BAD_SIGNATURE", "signatures[0].sig");
    // A signature that is not DER at all is a bad signature too, not a crash.
    const junk = { ...env, signatures: [{ keyid: key.keyId, sig: Buffer.from("not a signature").toString("base64") }] };
    failed(verifyEvidence(junk, [key.publicKey]), "EVIDENCE_BAD_SIGNATURE", "signatures[0].sig");
    // Another key's valid signature under this key's id.
    const other = await EvidenceKey.loadOrCreate(freshDir());
    const forged = { ...env, signatures: [{ keyid: key.keyId, sig: signEvidence(document(), other).signatures[0]!.sig }] };
    failed(verifyEvidence(forged, [key.publicKey]), "EVIDENCE_BAD_SIGNATURE", "signatures[0].sig");
  });

  test("unknown key: EVIDENCE_UNKNOWN_KEY; a retired key kept in the set still verifies", async () => {
    const key = await keyPromise;
    const other = await EvidenceKey.loadOrCreate(freshDir());
    const env = signEvidence(document(), other);
    failed(verifyEvidence(env, [key.publicKey]), "EVIDENCE_UNKNOWN_KEY", "signatures[0].keyid");
    failed(verifyEvidence(env, []), "EVIDENCE_UNKNOWN_KEY", "signatures[0].keyid");
    const r = verifyEvidence(env, [key.publicKey, other.publicKey]);
    assert.ok(r.ok);
    assert.equal(r.keyId, other.keyId);
    // A trusted entry whose PEM is not the key its id names.
    failed(
      verifyEvidence(env, [{ keyId: other.keyId, publicKeyPem: key.publicKeyPem }]),
      "EVIDENCE_UNKNOWN_KEY",
      "signatures[0].keyid",
    );
  });

  test("several signatures: unknown signers are ignored, a bad one by a trusted key fails", async () => {
    const key = await keyPromise;
    const other = await EvidenceKey.loadOrCreate(freshDir());
    const a = signEvidence(document(), key);
    const b = signEvidence(document(), other);
    const both = { ...a, signatures: [b.signatures[0]!, a.signatures[0]!] };
    const r = verifyEvidence(both, [key.publicKey]);
    assert.ok(r.ok);
    assert.equal(r.keyId, key.keyId);
    const badSecond = { ...a, signatures: [a.signatures[0]!, { keyid: other.keyId, sig: a.signatures[0]!.sig }] };
    failed(verifyEvidence(badSecond, [key.publicKey, other.publicKey]), "EVIDENCE_BAD_SIGNATURE", "signatures[1].sig");
    failed(verifyEvidence(both, []), "EVIDENCE_UNKNOWN_KEY", "signatures");
  });

  test("a signed payload that is not canonical JSON: EVIDENCE_NOT_CANONICAL at payload", async () => {
    const key = await keyPromise;
    const canonical = Buffer.from(evidenceText(signEvidence(document(), key)));
    for (const variant of [
      Buffer.from(JSON.stringify(document(), null, 2)), // whitespace, insertion order
      Buffer.from(canonical.toString().replace('{"approvers"', '{"v":1,"approvers"')), // duplicate key
      Buffer.from(canonical.toString().replace('"v":1', '"v":1.0')), // another spelling of a number
      Buffer.from(canonical.toString().replace('"alice"', '"\\u0061lice"')), // another spelling of a string
    ]) {
      assert.notDeepEqual(variant, canonical);
      failed(verifyEvidence(signRaw(key, variant), [key.publicKey]), "EVIDENCE_NOT_CANONICAL", "payload");
    }
    assert.ok(verifyEvidence(signRaw(key, canonical), [key.publicKey]).ok);
  });

  test("signed payloads that are not JSON objects: EVIDENCE_MALFORMED at payload", async () => {
    const key = await keyPromise;
    for (const body of [Buffer.from("not json"), Buffer.from([0xff, 0xfe, 0x7b]), Buffer.from("[1,2]"), Buffer.from("null")]) {
      failed(verifyEvidence(signRaw(key, body), [key.publicKey]), "EVIDENCE_MALFORMED", "payload");
    }
  });

  test("malformed envelopes name the field and never throw", async () => {
    const key = await keyPromise;
    const env = signEvidence(document(), key);
    const sig0 = env.signatures[0]!;
    const cases: [unknown, string][] = [
      [null, "envelope"],
      ["a string", "envelope"],
      [[env], "envelope"],
      [{ ...env, payloadType: undefined }, "payloadType"],
      [{ ...env, payloadType: 7 }, "payloadType"],
      [{ ...env, payloadType: "application/vnd.ferry.task.v1+json" }, "payloadType"],
      [{ ...env, payload: undefined }, "payload"],
      [{ ...env, payload: 12 }, "payload"],
      [{ ...env, payload: "not base64!" }, "payload"],
      [{ ...env, payload: "abcde" }, "payload"],
      [{ ...env, signatures: undefined }, "signatures"],
      [{ ...env, signatures: {} }, "signatures"],
      [{ ...env, signatures: [] }, "signatures"],
      [{ ...env, signatures: ["x"] }, "signatures[0]"],
      [{ ...env, signatures: [{ sig: sig0.sig }] }, "signatures[0].keyid"],
      [{ ...env, signatures: [{ keyid: "", sig: sig0.sig }] }, "signatures[0].keyid"],
      [{ ...env, signatures: [sig0, { keyid: key.keyId }] }, "signatures[1].sig"],
      [{ ...env, signatures: [{ keyid: key.keyId, sig: "" }] }, "signatures[0].sig"],
      [{ ...env, signatures: [{ keyid: key.keyId, sig: "%%%" }] }, "signatures[0].sig"],
      [{ ...env, signatures: [{ ...sig0, note: "trust me" }] }, "signatures[0].note"],
      [{ ...env, approvedBy: "ceo" }, "approvedBy"],
    ];
    for (const [input, where] of cases) {
      // Fields set to undefined disappear, as they would from parsed JSON.
      const parsed: unknown = input === undefined ? input : JSON.parse(JSON.stringify(input)) as unknown;
      failed(verifyEvidence(parsed, [key.publicKey]), "EVIDENCE_MALFORMED", where);
    }
  });

  test("URL-safe and unpadded base64 are accepted (DSSE allows either alphabet)", async () => {
    const key = await keyPromise;
    const env = signEvidence(document(), key);
    const urlSafe = (s: string) => Buffer.from(s, "base64").toString("base64url");
    const r = verifyEvidence(
      { ...env, payload: urlSafe(env.payload), signatures: [{ keyid: key.keyId, sig: urlSafe(env.signatures[0]!.sig) }] },
      [key.publicKey],
    );
    assert.ok(r.ok, r.ok ? "" : r.message);
    assert.equal(r.hash, evidenceHash(env));
  });

  test("evidenceKeyId matches the key's own id", async () => {
    const key = await keyPromise;
    assert.equal(evidenceKeyId(key.publicKeyPem), key.keyId);
  });
});

function evidenceText(env: EvidenceEnvelope): string {
  return Buffer.from(env.payload, "base64").toString("utf8");
}

describe("openssl", () => {
  test("the openssl CLI alone verifies an envelope's signature over the PAE", async (t) => {
    const probe = spawnSync("openssl", ["version"], { encoding: "utf8" });
    if (probe.status !== 0) {
      t.skip("openssl is not installed");
      return;
    }
    const key = await keyPromise;
    const env = signEvidence(document(), key);
    const dir = fs.mkdtempSync(path.join(tmpRoot, "openssl-"));
    const body = Buffer.from(env.payload, "base64");
    // The PAE built from its definition, not with pae(), so the test checks the documented format.
    const header = `DSSEv1 ${Buffer.byteLength(env.payloadType)} ${env.payloadType} ${body.length} `;
    fs.writeFileSync(path.join(dir, "pae.bin"), Buffer.concat([Buffer.from(header), body]));
    fs.writeFileSync(path.join(dir, "sig.der"), Buffer.from(env.signatures[0]!.sig, "base64"));
    fs.copyFileSync(path.join(key.dir, EVIDENCE_PUBLIC_KEY_FILE), path.join(dir, "pub.pem"));
    const run = () =>
      spawnSync("openssl", ["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "pae.bin"], { cwd: dir, encoding: "utf8" });
    const good = run();
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /Verified OK/);

    // openssl agrees with verifyEvidence about a tampered payload.
    const tampered = Buffer.from(fs.readFileSync(path.join(dir, "pae.bin")));
    tampered[tampered.length - 2]! ^= 0x01;
    fs.writeFileSync(path.join(dir, "pae.bin"), tampered);
    const bad = run();
    assert.notEqual(bad.status, 0);
    assert.match(bad.stdout + bad.stderr, /Verification failure/);

    // And the key id is recomputable with openssl too.
    const der = spawnSync("openssl", ["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"], { cwd: dir });
    assert.equal(der.status, 0);
    assert.equal(`evk_${createHash("sha256").update(der.stdout).digest("hex").slice(0, 16)}`, key.keyId);
  });
});
