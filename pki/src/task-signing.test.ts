import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";

import { canonicalJson } from "./canonical-json.js";
import {
  CLOCK_SKEW_LEEWAY_MS,
  TASK_PAYLOAD_TYPE,
  TaskKeyringError,
  TaskRefusal,
  TaskSigningKeyring,
  newTaskNonce,
  pae,
  taskKeyId,
  verifySignedTask,
  type SignedTaskEnvelope,
  type TaskPayload,
  type TaskRefusalCode,
} from "./task-signing.js";

const HOUR = 3600_000;
const T0 = Date.parse("2026-03-01T12:00:00Z");
const DIGEST = `sha256:${"ab".repeat(32)}`;

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-task-signing-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => path.join(tmpRoot, `ring-${++dirCount}`, "task-signing");

function payload(over: Partial<TaskPayload> = {}): TaskPayload {
  return {
    v: 1,
    taskId: "task-1",
    deploymentId: "dep-1",
    agentId: "agent-1",
    issuedAt: T0,
    notAfter: T0 + HOUR,
    nonce: newTaskNonce(),
    action: "deploy",
    target: { id: "tgt-1", name: "web-1", kind: "docker", config: { container: "web", ports: [8080] } },
    release: { id: "rel-1", name: "shop", version: "1.2.3" },
    images: [{ component: "web", repository: "127.0.0.1:5000/shop/web", digest: DIGEST, ref: `127.0.0.1:5000/shop/web@${DIGEST}` }],
    ...over,
  };
}

function refused(code: TaskRefusalCode) {
  return (err: unknown) => {
    assert.ok(err instanceof TaskRefusal, `expected TaskRefusal, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

/** Signs arbitrary bytes with the ring's active key, bypassing sign()'s validation (an attacker-shaped envelope). */
function signRaw(keyPem: string, body: Uint8Array, type: string = TASK_PAYLOAD_TYPE): Uint8Array {
  return new Uint8Array(cryptoSign(null, pae(type, body), keyPem));
}

function activeKeyPem(ring: TaskSigningKeyring): string {
  return fs.readFileSync(path.join(ring.dir, `${ring.active.keyId}.key`), "utf8");
}

describe("pae", () => {
  test("is DSSE v1: lengths are byte counts in ASCII decimal", () => {
    const body = new TextEncoder().encode('{"é":1}');
    const out = Buffer.from(pae("a/b", body)).toString("utf8");
    assert.equal(out, 'DSSEv1 3 a/b 8 {"é":1}');
  });
});

describe("taskKeyId", () => {
  test("is tsk_ + 16 hex of SHA-256 over the SPKI DER", () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const spki = publicKey.export({ type: "spki", format: "der" });
    const expected = `tsk_${createHash("sha256").update(spki).digest("hex").slice(0, 16)}`;
    assert.equal(taskKeyId(publicKey), expected);
    assert.equal(taskKeyId(publicKey.export({ type: "spki", format: "pem" }).toString()), expected);
    assert.match(expected, /^tsk_[0-9a-f]{16}$/);
  });
});

describe("TaskSigningKeyring", () => {
  test("creates a first key with private files 0600 in a 0700 directory, and loads it back", async () => {
    const dir = freshDir();
    const ring = await TaskSigningKeyring.loadOrCreate(dir, { now: T0 });
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    const keyFile = path.join(dir, `${ring.active.keyId}.key`);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(path.join(dir, `${ring.active.keyId}.pub.pem`), "utf8"), /BEGIN PUBLIC KEY/);
    const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8")) as { keys: { keyId: string; createdAt: number; activatedAt: number; retiresAt: null }[] };
    assert.deepEqual(
      index.keys.map((k) => [k.keyId, k.createdAt, k.activatedAt, k.retiresAt]),
      [[ring.active.keyId, T0, T0, null]],
    );
    assert.doesNotMatch(fs.readFileSync(path.join(dir, "index.json"), "utf8"), /PRIVATE/);

    const again = await TaskSigningKeyring.loadOrCreate(dir);
    assert.equal(again.active.keyId, ring.active.keyId);
    assert.deepEqual(again.publicKeys(T0), [
      { keyId: ring.active.keyId, algorithm: "ed25519", publicKeyPem: ring.active.publicKeyPem, notAfterMs: 0 },
    ]);
  });

  test("processes starting together on an empty directory end with one key", async () => {
    const dir = freshDir();
    const rings = await Promise.all(Array.from({ length: 6 }, () => TaskSigningKeyring.loadOrCreate(dir, { now: T0 })));
    const ids = new Set(rings.map((r) => r.active.keyId));
    assert.equal(ids.size, 1);
    const files = fs.readdirSync(dir).sort();
    const [id] = [...ids];
    assert.deepEqual(files, [`${id}.key`, `${id}.pub.pem`, "index.json"].sort());
  });

  test("refuses a private key readable by others", async () => {
    const dir = freshDir();
    const ring = await TaskSigningKeyring.loadOrCreate(dir);
    fs.chmodSync(path.join(dir, `${ring.active.keyId}.key`), 0o644);
    await assert.rejects(TaskSigningKeyring.loadOrCreate(dir), (err: unknown) => {
      assert.ok(err instanceof TaskKeyringError);
      assert.equal(err.code, "TASK_KEYRING_INVALID");
      assert.match(err.message, /chmod 600/);
      return true;
    });
  });

  test("bounds a rotation's overlap and refuses at load an index whose times cannot be sent to agents", async () => {
    const dir = freshDir();
    const ring = await TaskSigningKeyring.loadOrCreate(dir, { now: T0 });
    await assert.rejects(ring.rotate({ overlapMs: 99999999999999 * 3600_000, now: T0 }), RangeError);
    await assert.rejects(ring.rotate({ overlapMs: 31 * 86_400_000, now: T0 }), RangeError);
    await assert.rejects(ring.rotate({ overlapMs: 1.5, now: T0 }), RangeError);
    assert.equal((JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8")) as { keys: unknown[] }).keys.length, 1, "nothing was rotated");
    await ring.rotate({ overlapMs: 30 * 86_400_000, now: T0 });
    // An index edited by hand (or written by an older version) with a retirement past the wire's int64.
    const file = path.join(dir, "index.json");
    const index = JSON.parse(fs.readFileSync(file, "utf8")) as { keys: { retiresAt: number | null }[] };
    index.keys[0]!.retiresAt = 3.6e20;
    fs.writeFileSync(file, JSON.stringify(index));
    await assert.rejects(TaskSigningKeyring.loadOrCreate(dir), (err: unknown) => {
      assert.ok(err instanceof TaskKeyringError);
      assert.equal(err.code, "TASK_KEYRING_INVALID");
      assert.match(err.message, /keys\[0\]\.retiresAt is 360000000000000000000, not a time in ms between 1970 and 2200/);
      return true;
    });
  });

  test("refuses an index whose key id does not match its public key", async () => {
    const dir = freshDir();
    await TaskSigningKeyring.loadOrCreate(dir);
    const file = path.join(dir, "index.json");
    const index = JSON.parse(fs.readFileSync(file, "utf8")) as { keys: { keyId: string }[] };
    index.keys[0]!.keyId = "tsk_0000000000000000";
    fs.writeFileSync(file, JSON.stringify(index));
    await assert.rejects(TaskSigningKeyring.loadOrCreate(dir), /named tsk_0000000000000000/);
  });

  test("rotation: the old key verifies until its retirement, not after; its private key is gone", async () => {
    const dir = freshDir();
    const ring = await TaskSigningKeyring.loadOrCreate(dir, { now: T0 });
    const oldId = ring.active.keyId;
    const oldTask = ring.sign(payload({ notAfter: T0 + 100 * HOUR }));

    const rotatedAt = T0 + HOUR;
    const next = await ring.rotate({ overlapMs: 2 * HOUR, now: rotatedAt });
    assert.notEqual(next.keyId, oldId);
    assert.equal(ring.active.keyId, next.keyId);
    assert.equal(fs.existsSync(path.join(dir, `${oldId}.key`)), false);
    assert.equal(fs.existsSync(path.join(dir, `${oldId}.pub.pem`)), true);

    const duringOverlap = ring.publicKeys(rotatedAt + HOUR);
    assert.deepEqual(duringOverlap.map((k) => [k.keyId, k.notAfterMs]), [
      [next.keyId, 0],
      [oldId, rotatedAt + 2 * HOUR],
    ]);
    const newTask = ring.sign(payload({ taskId: "task-2", notAfter: T0 + 100 * HOUR }));
    assert.equal(newTask.keyId, next.keyId);

    const verify = (env: SignedTaskEnvelope, now: number) =>
      verifySignedTask(env, { trustedKeys: duringOverlap, agentId: "agent-1", now });
    assert.equal(verify(oldTask, rotatedAt + 2 * HOUR).taskId, "task-1");
    assert.equal(verify(newTask, rotatedAt + 2 * HOUR).taskId, "task-2");
    // The clock-skew leeway applies to retirement as to expiry; past it the old key is no longer trusted.
    assert.throws(() => verify(oldTask, rotatedAt + 2 * HOUR + CLOCK_SKEW_LEEWAY_MS + 1), refused("TASK_UNKNOWN_KEY"));
    assert.equal(verify(newTask, rotatedAt + 2 * HOUR + CLOCK_SKEW_LEEWAY_MS + 1).taskId, "task-2");

    // After the overlap the control plane no longer announces the old key at all.
    assert.deepEqual(ring.publicKeys(rotatedAt + 2 * HOUR).map((k) => k.keyId), [next.keyId]);

    // Another process loading the directory sees the rotation.
    const reloaded = await TaskSigningKeyring.loadOrCreate(dir);
    assert.equal(reloaded.active.keyId, next.keyId);
    assert.equal(reloaded.keys.length, 2);
  });

  test("concurrent rotations are serialised; neither is lost", async () => {
    const dir = freshDir();
    const a = await TaskSigningKeyring.loadOrCreate(dir, { now: T0 });
    const b = await TaskSigningKeyring.loadOrCreate(dir, { now: T0 });
    await Promise.all([a.rotate({ now: T0 + 1 }), b.rotate({ now: T0 + 2 })]);
    const c = await TaskSigningKeyring.loadOrCreate(dir);
    assert.equal(c.keys.length, 3);
    assert.equal(c.keys.filter((k) => k.retiresAt === null).length, 1);
    assert.equal(fs.existsSync(path.join(dir, "rotate.lock")), false);
    await a.reload();
    assert.equal(a.active.keyId, c.active.keyId);
  });
});

describe("verifySignedTask", async () => {
  const ring = await TaskSigningKeyring.loadOrCreate(freshDir(), { now: T0 });
  const trustedKeys = ring.publicKeys(T0);
  const opts = { trustedKeys, agentId: "agent-1", now: T0 + 60_000 };

  test("round trip: sign, then verify returns the same payload", () => {
    const p = payload({ release: null, action: "inspect" });
    const env = ring.sign(p);
    assert.equal(env.payloadType, TASK_PAYLOAD_TYPE);
    assert.equal(env.keyId, ring.active.keyId);
    assert.equal(Buffer.from(env.payload).toString("utf8"), canonicalJson(p));
    assert.deepEqual(verifySignedTask(env, opts), p);
    // Works with the wire's bigint notAfterMs as well.
    const wireKeys = trustedKeys.map((k) => ({ ...k, notAfterMs: BigInt(k.notAfterMs) }));
    assert.deepEqual(verifySignedTask(env, { ...opts, trustedKeys: wireKeys }), p);
  });

  test("TASK_BAD_SIGNATURE: one flipped payload byte or signature byte", () => {
    const env = ring.sign(payload());
    const body = Buffer.from(env.payload);
    // Flip a byte inside the agent id value: still valid JSON, so only the signature can catch it.
    const at = body.indexOf("agent-1") + 6;
    body[at] = "2".charCodeAt(0);
    assert.throws(() => verifySignedTask({ ...env, payload: new Uint8Array(body) }, opts), refused("TASK_BAD_SIGNATURE"));
    const sig = Buffer.from(env.signature);
    sig[0] = sig[0]! ^ 1;
    assert.throws(() => verifySignedTask({ ...env, signature: new Uint8Array(sig) }, opts), refused("TASK_BAD_SIGNATURE"));
    assert.throws(() => verifySignedTask({ ...env, signature: new Uint8Array(0) }, opts), refused("TASK_BAD_SIGNATURE"));
  });

  test("TASK_BAD_SIGNATURE: a signature over the body alone (no PAE) does not verify", () => {
    const env = ring.sign(payload());
    const bare = new Uint8Array(cryptoSign(null, env.payload, activeKeyPem(ring)));
    assert.throws(() => verifySignedTask({ ...env, signature: bare }, opts), refused("TASK_BAD_SIGNATURE"));
  });

  test("TASK_UNKNOWN_KEY: key id not trusted, or a trusted entry that does not match its key", () => {
    const env = ring.sign(payload());
    assert.throws(() => verifySignedTask({ ...env, keyId: "tsk_ffffffffffffffff" }, opts), refused("TASK_UNKNOWN_KEY"));
    assert.throws(() => verifySignedTask(env, { ...opts, trustedKeys: [] }), refused("TASK_UNKNOWN_KEY"));
    const other = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    const lying = [{ ...trustedKeys[0]!, publicKeyPem: other }];
    assert.throws(() => verifySignedTask(env, { ...opts, trustedKeys: lying }), refused("TASK_UNKNOWN_KEY"));
    const wrongAlg = [{ ...trustedKeys[0]!, algorithm: "ecdsa-p256" }];
    assert.throws(() => verifySignedTask(env, { ...opts, trustedKeys: wrongAlg }), refused("TASK_UNKNOWN_KEY"));
  });

  test("TASK_WRONG_AUDIENCE", () => {
    const env = ring.sign(payload({ agentId: "agent-2" }));
    assert.throws(() => verifySignedTask(env, opts), refused("TASK_WRONG_AUDIENCE"));
  });

  test("TASK_EXPIRED after notAfter plus the leeway, not within it", () => {
    const env = ring.sign(payload({ notAfter: T0 + 120_000 }));
    assert.equal(verifySignedTask(env, { ...opts, now: T0 + 120_000 + CLOCK_SKEW_LEEWAY_MS }).taskId, "task-1");
    assert.throws(
      () => verifySignedTask(env, { ...opts, now: new Date(T0 + 120_000 + CLOCK_SKEW_LEEWAY_MS + 1) }),
      refused("TASK_EXPIRED"),
    );
  });

  test("TASK_MALFORMED: wrong payload type, even when correctly signed for it", () => {
    const env = ring.sign(payload());
    const otherType: string = "application/vnd.ferry.evidence.v1+json";
    const sig = signRaw(activeKeyPem(ring), env.payload, otherType);
    assert.throws(() => verifySignedTask({ ...env, payloadType: otherType, signature: sig }, opts), refused("TASK_MALFORMED"));
  });

  const malformed: [string, (p: Record<string, unknown>) => unknown][] = [
    ["a tag instead of a digest", (p) => ({ ...p, images: [{ component: "web", repository: "r/web", digest: "latest", ref: "r/web:latest" }] })],
    ["a sha512 digest", (p) => ({ ...p, images: [{ component: "web", repository: "r/web", digest: `sha512:${"a".repeat(128)}`, ref: `r/web@sha512:${"a".repeat(128)}` }] })],
    ["an uppercase digest", (p) => ({ ...p, images: [{ component: "web", repository: "r/web", digest: `sha256:${"AB".repeat(32)}`, ref: `r/web@sha256:${"AB".repeat(32)}` }] })],
    ["ref not repository@digest", (p) => ({ ...p, images: [{ component: "web", repository: "r/web", digest: DIGEST, ref: `r/other@${DIGEST}` }] })],
    ["a repository carrying a digest", (p) => ({ ...p, images: [{ component: "web", repository: `r/web@${DIGEST}`, digest: DIGEST, ref: `r/web@${DIGEST}@${DIGEST}` }] })],
    ["an unknown action", (p) => ({ ...p, action: "run-anything" })],
    ["an unknown field", (p) => ({ ...p, sudo: true })],
    ["a missing nonce", (p) => ({ ...p, nonce: undefined })],
    ["a short nonce", (p) => ({ ...p, nonce: "abc" })],
    ["version 2", (p) => ({ ...p, v: 2 })],
    ["a string time", (p) => ({ ...p, notAfter: String(p.notAfter) })],
    ["target.config not an object", (p) => ({ ...p, target: { ...(p.target as object), config: [] } })],
    ["an array", () => []],
  ];
  for (const [name, mutate] of malformed) {
    test(`TASK_MALFORMED: ${name} (validly signed)`, () => {
      const body = new Uint8Array(Buffer.from(canonicalJson(mutate(payload() as unknown as Record<string, unknown>)), "utf8"));
      const env = { payload: body, payloadType: TASK_PAYLOAD_TYPE, keyId: ring.active.keyId, signature: signRaw(activeKeyPem(ring), body) };
      assert.throws(() => verifySignedTask(env, opts), refused("TASK_MALFORMED"));
    });
  }

  test("TASK_MALFORMED: not JSON, not UTF-8, or not canonical (duplicate keys, whitespace)", () => {
    const canonical = canonicalJson(payload());
    const bodies = [
      Buffer.from("not json"),
      Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
      Buffer.from(canonical.replace('{"action"', '{"agentId":"agent-9","action"')),
      Buffer.from(` ${canonical}`),
    ];
    for (const b of bodies) {
      const body = new Uint8Array(b);
      const env = { payload: body, payloadType: TASK_PAYLOAD_TYPE, keyId: ring.active.keyId, signature: signRaw(activeKeyPem(ring), body) };
      assert.throws(() => verifySignedTask(env, opts), refused("TASK_MALFORMED"));
    }
  });

  test("sign() refuses a payload agents would refuse", () => {
    assert.throws(() => ring.sign(payload({ images: [{ component: "web", repository: "r/web", digest: "latest", ref: "r/web:latest" }] })), refused("TASK_MALFORMED"));
  });

  const openssl = spawnSync("openssl", ["version"], { encoding: "utf8" });
  test("an outside party verifies the signature with openssl alone", { skip: openssl.status !== 0 ? "openssl not installed" : false }, () => {
    const env = ring.sign(payload());
    const dir = fs.mkdtempSync(path.join(tmpRoot, "openssl-"));
    const pub = path.join(dir, "pub.pem");
    const paeFile = path.join(dir, "pae.bin");
    const sigFile = path.join(dir, "sig.bin");
    fs.writeFileSync(pub, trustedKeys[0]!.publicKeyPem);
    // Rebuild the PAE by hand from the documented format, not with pae().
    fs.writeFileSync(paeFile, Buffer.concat([
      Buffer.from(`DSSEv1 ${Buffer.byteLength(TASK_PAYLOAD_TYPE)} ${TASK_PAYLOAD_TYPE} ${env.payload.length} `),
      env.payload,
    ]));
    fs.writeFileSync(sigFile, env.signature);
    const run = () => spawnSync("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", paeFile, "-sigfile", sigFile], { encoding: "utf8" });
    const ok = run();
    assert.equal(ok.status, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /Signature Verified Successfully/);

    const tampered = fs.readFileSync(paeFile);
    tampered[tampered.length - 2] = tampered[tampered.length - 2]! ^ 1;
    fs.writeFileSync(paeFile, tampered);
    assert.notEqual(run().status, 0);

    // The key id is reproducible from the public key with openssl too.
    const der = spawnSync("openssl", ["pkey", "-pubin", "-in", pub, "-outform", "DER"]);
    assert.equal(`tsk_${createHash("sha256").update(der.stdout).digest("hex").slice(0, 16)}`, env.keyId);
  });
});
