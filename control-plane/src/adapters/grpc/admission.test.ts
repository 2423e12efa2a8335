import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdmissionGate } from "./admission.js";

function clock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe("AdmissionGate", () => {
  it("admits a burst, then refuses with a retry-after", () => {
    const c = clock();
    const gate = new AdmissionGate(10, 3, c);
    for (let i = 0; i < 3; i++) assert.deepEqual(gate.tryAdmit(), { admitted: true });
    const refused = gate.tryAdmit();
    assert.equal(refused.admitted, false);
    assert.ok(!refused.admitted && refused.retryAfterMs > 0 && refused.retryAfterMs <= 250);
  });

  it("refills at the configured rate", () => {
    const c = clock();
    const gate = new AdmissionGate(10, 1, c);
    assert.equal(gate.tryAdmit().admitted, true);
    assert.equal(gate.tryAdmit().admitted, false);
    c.t += 100;
    assert.equal(gate.tryAdmit().admitted, true);
  });

  it("spreads refused callers over distinct future slots instead of sending them back together", () => {
    const c = clock();
    const gate = new AdmissionGate(100, 1, c);
    gate.tryAdmit();
    const waits: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = gate.tryAdmit();
      assert.equal(r.admitted, false);
      if (!r.admitted) waits.push(r.retryAfterMs);
    }
    for (let i = 1; i < waits.length; i++) assert.ok((waits[i] as number) > (waits[i - 1] as number));
    // 50 refused callers at 100/s are spread over about half a second.
    assert.ok((waits.at(-1) as number) >= 490 && (waits.at(-1) as number) <= 530, String(waits.at(-1)));
  });

  it("caps the retry-after", () => {
    const c = clock();
    const gate = new AdmissionGate(1, 1, c, 5_000);
    gate.tryAdmit();
    let last = 0;
    for (let i = 0; i < 20; i++) {
      const r = gate.tryAdmit();
      if (!r.admitted) last = r.retryAfterMs;
    }
    assert.ok(last <= 5_000);
  });
});
