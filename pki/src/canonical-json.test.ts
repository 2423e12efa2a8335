import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalJson } from "./canonical-json.js";

describe("canonicalJson (RFC 8785)", () => {
  it("sorts keys by UTF-16 code units and drops whitespace", () => {
    assert.equal(canonicalJson({ b: 1, a: [true, null, "x"], A: {} }), '{"A":{},"a":[true,null,"x"],"b":1}');
    // "é" (U+00E9) sorts after "z"; "😀" (surrogates D83D…) sorts after "ﬀ" (U+FB00)? No: D83D < FB00.
    assert.equal(canonicalJson({ z: 1, "é": 2 }), '{"z":1,"é":2}');
    assert.equal(canonicalJson({ "\ufb00": 1, "\u{1f600}": 2 }), '{"\u{1f600}":2,"\ufb00":1}');
  });

  it("formats numbers in ECMAScript shortest form", () => {
    assert.equal(canonicalJson([1e21, 0.1, -0, 100, 1.5e-7]), "[1e+21,0.1,0,100,1.5e-7]");
  });

  it("refuses values JSON cannot carry faithfully", () => {
    assert.throws(() => canonicalJson(Number.NaN), TypeError);
    assert.throws(() => canonicalJson(Infinity), TypeError);
    assert.throws(() => canonicalJson(10n), TypeError);
  });

  it("omits undefined members like JSON does", () => {
    assert.equal(canonicalJson({ a: undefined, b: 2 }), '{"b":2}');
  });
});
