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

  it("never serves a token past its expiry, even inside the TTL", async () => {
    let t = 1000;
    let calls = 0;
    const cache = new TokenCache(
      async () => {
        calls++;
        if (t >= 3000) throw new Error("the bearer token has expired");
        return { tokenId: "tok_2", subject: "ci", roles: ["viewer"], expiresAtMs: 3000 };
      },
      5000,
      10,
      () => t,
    );
    assert.deepEqual(await cache.authenticate("s"), { tokenId: "tok_2", subject: "ci", roles: ["viewer"] });
    t = 2999;
    await cache.authenticate("s");
    assert.equal(calls, 1, "cached while the token is valid");
    t = 3000;
    await assert.rejects(cache.authenticate("s"), /expired/);
    assert.equal(calls, 2, "looked up again at its expiry, inside the 5 s TTL");
  });
});
