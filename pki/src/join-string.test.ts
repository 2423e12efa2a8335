import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { decodeJoinString, encodeJoinString } from "./join-string.js";
import type { JoinString } from "./join-string.js";
import { PkiError } from "./pki-error.js";
import { generateSecret, hashSecret } from "./secret.js";

const FP = `sha256:${"ab".repeat(32)}`;
const TOKEN = generateSecret();
const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
const raw = (payload: unknown) => `ferry-join-v1.${b64(payload)}`;

function malformed(part: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected PkiError, got ${String(err)}`);
    assert.equal(err.code, "JOIN_STRING_MALFORMED");
    assert.match(err.message, part);
    assert.ok(!err.message.includes(TOKEN), "the secret never appears in an error message");
    return true;
  };
}

describe("join strings", () => {
  test("round-trip for DNS, IPv4 and IPv6 endpoints", () => {
    for (const enrolEndpoint of ["cp.example.com:7443", "10.0.0.5:443", "[::1]:7443", "[fd00::17]:1", "ferry_cp:65535"]) {
      const j: JoinString = { enrolEndpoint, caFingerprint: FP, token: TOKEN };
      const s = encodeJoinString(j);
      assert.match(s, /^ferry-join-v1\.[A-Za-z0-9_-]+$/);
      assert.deepEqual(decodeJoinString(s), j);
    }
  });

  test("the payload is base64url JSON with fields e, f, t", () => {
    const s = encodeJoinString({ enrolEndpoint: "cp:7443", caFingerprint: FP, token: TOKEN });
    const payload: unknown = JSON.parse(Buffer.from(s.slice("ferry-join-v1.".length), "base64url").toString("utf8"));
    assert.deepEqual(payload, { e: "cp:7443", f: FP, t: TOKEN });
  });

  test("tolerates whitespace and line wraps from pasting, upper-case fingerprints and unknown fields", () => {
    const s = encodeJoinString({ enrolEndpoint: "cp:7443", caFingerprint: FP, token: TOKEN });
    const wrapped = `\n  ${s.slice(0, 30)}\r\n${s.slice(30)}  \n`;
    assert.deepEqual(decodeJoinString(wrapped), { enrolEndpoint: "cp:7443", caFingerprint: FP, token: TOKEN });
    const upper = raw({ e: "cp:7443", f: `sha256:${"AB".repeat(32)}`, t: TOKEN, hint: "later versions" });
    assert.equal(decodeJoinString(upper).caFingerprint, FP);
  });

  test("says which part of a malformed string is wrong", () => {
    const good = { e: "cp:7443", f: FP, t: TOKEN };
    const cases: [string, string, RegExp][] = [
      ["empty", "   \n", /empty/],
      ["wrong prefix", `ferry-xyz.${b64(good)}`, /does not start with/],
      ["future version", `ferry-join-v2.${b64(good)}`, /version v2 is not supported/],
      ["no payload", "ferry-join-v1.", /payload.*empty/],
      ["not base64url", "ferry-join-v1.abc$%^", /not base64url/],
      ["standard base64 padding", `ferry-join-v1.${b64(good)}==`, /not base64url/],
      ["not JSON", `ferry-join-v1.${b64("{not json")}`, /not valid JSON/],
      ["cut short", encodeJoinString({ enrolEndpoint: "cp:7443", caFingerprint: FP, token: TOKEN }).slice(0, 60), /JSON/],
      ["JSON array", raw([1, 2]), /not a JSON object/],
      ["JSON null", raw(null), /not a JSON object/],
      ["missing endpoint", raw({ f: FP, t: TOKEN }), /endpoint \(e\) is missing/],
      ["endpoint not a string", raw({ ...good, e: 7443 }), /endpoint \(e\) is missing/],
      ["no port", raw({ ...good, e: "cp.example.com" }), /endpoint.*no :port/],
      ["port 0", raw({ ...good, e: "cp:0" }), /endpoint.*outside 1-65535/],
      ["port 65536", raw({ ...good, e: "cp:65536" }), /endpoint.*outside 1-65535/],
      ["port not numeric", raw({ ...good, e: "cp:https" }), /endpoint.*not a number/],
      ["empty host", raw({ ...good, e: ":7443" }), /endpoint.*host is empty/],
      ["bare IPv6", raw({ ...good, e: "::1:7443" }), /endpoint.*brackets/],
      ["bad IPv6 in brackets", raw({ ...good, e: "[::g]:7443" }), /endpoint.*IPv6/],
      ["unclosed bracket", raw({ ...good, e: "[::1:7443" }), /endpoint/],
      ["bad IPv4", raw({ ...good, e: "300.1.2.3:7443" }), /endpoint.*IPv4/],
      ["bad host", raw({ ...good, e: "bad host:7443" }), /endpoint.*host name/],
      ["URL instead of endpoint", raw({ ...good, e: "https://cp:7443" }), /endpoint/],
      ["missing fingerprint", raw({ e: "cp:7443", t: TOKEN }), /fingerprint \(f\) is missing/],
      ["sha1 fingerprint", raw({ ...good, f: `sha1:${"ab".repeat(20)}` }), /fingerprint \(f\) must be/],
      ["short fingerprint", raw({ ...good, f: `sha256:${"ab".repeat(31)}` }), /fingerprint \(f\) must be/],
      ["colon fingerprint", raw({ ...good, f: `sha256:${Array(32).fill("AB").join(":")}` }), /fingerprint \(f\)/],
      ["missing token", raw({ e: "cp:7443", f: FP }), /token \(t\) is missing/],
      ["short token", raw({ ...good, t: TOKEN.slice(1) }), /token \(t\) must be 43/],
      ["long token", raw({ ...good, t: `${TOKEN}A` }), /token \(t\) must be 43/],
      ["token with bad character", raw({ ...good, t: `${TOKEN.slice(0, 42)}+` }), /token \(t\)/],
      // 43 characters carry 258 bits: "B" as the last character sets a spare bit no 32-byte secret has.
      ["non-canonical token", raw({ ...good, t: `${"A".repeat(42)}B` }), /token \(t\)/],
      ["far too long", `ferry-join-v1.${"A".repeat(5000)}`, /longer than/],
    ];
    for (const [name, input, part] of cases) {
      assert.throws(() => decodeJoinString(input), malformed(part), name);
    }
  });

  test("errors about other fields do not echo the token", () => {
    assert.throws(() => decodeJoinString(raw({ e: "nope", f: FP, t: TOKEN })), malformed(/endpoint/));
  });

  test("encode refuses what decode would refuse", () => {
    assert.throws(() => encodeJoinString({ enrolEndpoint: "cp", caFingerprint: FP, token: TOKEN }), malformed(/endpoint/));
    assert.throws(() => encodeJoinString({ enrolEndpoint: "cp:1", caFingerprint: "sha256:00", token: TOKEN }), malformed(/fingerprint/));
    assert.throws(() => encodeJoinString({ enrolEndpoint: "cp:1", caFingerprint: FP, token: "short" }), malformed(/token/));
  });
});

describe("join-token secrets", () => {
  test("generateSecret gives 256 random bits as 43 base64url characters", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const s = generateSecret();
      assert.match(s, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(s, "base64url").length, 32);
      seen.add(s);
    }
    assert.equal(seen.size, 50);
  });

  test("hashSecret is SHA-256 of the UTF-8 secret", () => {
    const s = generateSecret();
    const h = hashSecret(s);
    assert.equal(h.length, 32);
    assert.deepEqual(h, createHash("sha256").update(Buffer.from(s, "utf8")).digest());
    assert.deepEqual(hashSecret(s), h);
    assert.notDeepEqual(hashSecret(generateSecret()), h);
    assert.equal(hashSecret("abc").toString("hex"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("a generated secret is a valid join-string token", () => {
    const token = generateSecret();
    const s = encodeJoinString({ enrolEndpoint: "cp:7443", caFingerprint: FP, token });
    assert.equal(decodeJoinString(s).token, token);
  });
});
