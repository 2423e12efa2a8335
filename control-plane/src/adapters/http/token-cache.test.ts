import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Principal } from "../../domain/auth/roles.js";
import { TokenCache } from "./token-cache.js";

describe("TokenCache", () => {
  it("looks a token up once per TTL, never caches failures, and forgets on clear", async () => {
    let t = 0;
    let calls = 0;
    const p: Principal = { tokenId: "tok_1", subject: "ci", roles: ["viewer"] };
    const cache = new TokenCache(
      async (s) => {
        calls++;
        if (s === "bad") throw new Error("unknown");
        return p;
      },
      5000,
      10,
      () => t,
    );
    assert.equal(await cache.authenticate("good"), p);
    assert.equal(await cache.authenticate("good"), p);
    assert.equal(calls, 1);
    t = 5001;
    await cache.authenticate("good");
    assert.equal(calls, 2);
    await assert.rejects(cache.authenticate("bad"));
    await assert.rejects(cache.authenticate("bad"));
    assert.equal(calls, 4);
    cache.clear();
    await cache.authenticate("good");
    assert.equal(calls, 5);
  });
});
