import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { md4 } from "./md4.js";

describe("md4", () => {
  it("gives the test suite of RFC 1320 (appendix A.5)", () => {
    const vectors: Array<[string, string]> = [
      ["", "31d6cfe0d16ae931b73c59d7e0c089c0"],
      ["a", "bde52cb31de33e46245e05fbdbd6fb24"],
      ["abc", "a448017aaf21d8525fc10ae87aa6729d"],
      ["message digest", "d9130a8164549fe818874806e1c7014b"],
      ["abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"],
      ["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"],
      ["12345678901234567890123456789012345678901234567890123456789012345678901234567890", "e33b4ddc9c38f2199c3e7b164fcc0536"],
    ];
    for (const [input, hex] of vectors) assert.equal(md4(Buffer.from(input, "latin1")).toString("hex"), hex, JSON.stringify(input));
  });

  it("handles every length around the padding boundary", () => {
    // 55, 56 and 64 bytes cross the one-block/two-block boundary; the NT hash of "password" is a known value.
    assert.equal(md4(Buffer.from("password", "utf16le")).toString("hex"), "8846f7eaee8fb117ad06bdd830b7586c");
    for (const n of [55, 56, 63, 64, 65, 119, 120]) assert.equal(md4(Buffer.alloc(n, 0x61)).length, 16);
  });
});
