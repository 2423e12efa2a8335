import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clockSkewMs, isSilent, offlineAfterMs, offlineFrozen } from "./liveness.js";

const policy = { heartbeatIntervalMs: 15_000, graceMs: 15_000 };

describe("liveness", () => {
  it("puts the offline window at 3 × interval + grace", () => {
    assert.equal(offlineAfterMs(policy), 60_000);
  });

  it("keeps an agent online inside the window and offline past it", () => {
    const started = 0;
    const now = 1_000_000;
    assert.equal(isSilent(policy, started, now, now - 59_999), false);
    assert.equal(isSilent(policy, started, now, now - 60_001), true);
    assert.equal(isSilent(policy, started, now, null), true);
  });

  it("freezes offline decisions for one grace period after a start", () => {
    const started = 1_000_000;
    assert.equal(offlineFrozen(policy, started, started + 14_999), true);
    assert.equal(offlineFrozen(policy, started, started + 15_000), false);
    // An agent last seen long before the restart is not declared offline while frozen...
    assert.equal(isSilent(policy, started, started + 10_000, started - 3_600_000), false);
    // ...and after the freeze its silence counts from the start, giving it the whole window to reconnect.
    assert.equal(isSilent(policy, started, started + 59_000, started - 3_600_000), false);
    assert.equal(isSilent(policy, started, started + 60_001, started - 3_600_000), true);
  });

  it("corrects clock skew for half the round trip", () => {
    // The agent stamped 10_000 when the server's clock said 9_950 (100 ms RTT, received at 10_000 server time):
    assert.equal(clockSkewMs(10_000, 10_000, 100), 50);
    assert.equal(clockSkewMs(5_000, 10_000, 0), -5_000);
  });
});
