import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChallengeParseError, parseWwwAuthenticate } from "./www-authenticate.js";

describe("parseWwwAuthenticate", () => {
  it("reads a registry's Bearer challenge", () => {
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/web:pull"'), [
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:team/web:pull" } },
    ]);
  });

  it("keeps commas, equals signs and escaped quotes inside quoted values", () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://a.example/t?x=1,y=2", scope="repository:a/b:pull,push", error="say \\"no\\""');
    assert.deepEqual(c?.params, { realm: "https://a.example/t?x=1,y=2", scope: "repository:a/b:pull,push", error: 'say "no"' });
  });

  it("reads token values, any case and whitespace, and several challenges in one header", () => {
    assert.deepEqual(parseWwwAuthenticate('BASIC Realm = ferry ,  Bearer realm="r", service=svc'), [
      { scheme: "basic", params: { realm: "ferry" } },
      { scheme: "bearer", params: { realm: "r", service: "svc" } },
    ]);
    assert.deepEqual(parseWwwAuthenticate("Basic"), [{ scheme: "basic", params: {} }]);
    assert.deepEqual(parseWwwAuthenticate("Negotiate abc==, Basic realm=x"), [
      { scheme: "negotiate", params: {} },
      { scheme: "basic", params: { realm: "x" } },
    ]);
  });

  it("refuses malformed headers", () => {
    assert.throws(() => parseWwwAuthenticate('Bearer realm="never closed'), ChallengeParseError);
    assert.throws(() => parseWwwAuthenticate('Bearer realm="a" junk="b"'), ChallengeParseError);
    assert.throws(() => parseWwwAuthenticate("=realm"), ChallengeParseError);
  });
});
