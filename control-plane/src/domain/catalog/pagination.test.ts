// Cursors are tamper-evident: only cursors this installation made are accepted; hand-made and edited ones are
// refused as VALIDATION_FAILED, before anything reaches SQL. The key lives in the store, one per installation.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { testBackends } from "../../adapters/store/test-backends.js";
import { FerryError } from "../errors.js";
import { decodeCursor, encodeCursor, loadCursorKey, useCursorKey } from "./pagination.js";

const refused = (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED" && /cursor/.test(e.message);

describe("cursors", () => {
  it("round-trips the cursors it made", () => {
    const c = encodeCursor({ t: "2030-01-01T00:00:00.000000Z", id: "dep_1" });
    assert.deepEqual(decodeCursor(c, ["t", "id"]), { t: "2030-01-01T00:00:00.000000Z", id: "dep_1" });
  });

  it("refuses a hand-made cursor with well-formed fields, an edited one, and one signed with another key", () => {
    const handMade = Buffer.from(JSON.stringify({ t: "2030-01-01T00:00:00.000000Z", id: "dep_1" })).toString("base64url");
    assert.throws(() => decodeCursor(handMade, ["t", "id"]), refused);
    const real = encodeCursor({ t: "2030-01-01T00:00:00.000000Z", id: "dep_1" });
    const [, sig] = real.split(".");
    const edited = `${Buffer.from(JSON.stringify({ t: "2030-01-01T00:00:00.000000Z", id: "dep_9" })).toString("base64url")}.${sig}`;
    assert.throws(() => decodeCursor(edited, ["t", "id"]), refused);
    assert.throws(() => decodeCursor(`${real}x`, ["t", "id"]), refused);
    assert.throws(() => decodeCursor("garbage", ["t", "id"]), refused);
    const other = encodeCursor({ t: "x", id: "y" });
    useCursorKey(randomBytes(32));
    assert.throws(() => decodeCursor(other, ["t", "id"]), refused);
  });
});

for (const b of testBackends()) {
  describe(`cursor key on ${b.name}`, () => {
    it("is created once per installation and read back the same by every replica", async (t) => {
      const store = await b.open(t);
      const [k1, k2] = await Promise.all([loadCursorKey(store), loadCursorKey(store)]);
      assert.equal(k1.length, 32);
      assert.deepEqual(await loadCursorKey(store), k1);
      assert.deepEqual(k2, k1);
    });
  });
}
