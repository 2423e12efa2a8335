// The errors each backend really raises, folded into Ferry's vocabulary: data the columns cannot hold is the
// client's (VALIDATION_FAILED), a store that cannot be used is STORE_UNAVAILABLE, and anything else stays a fault.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { foldDatabaseError } from "./database-errors.js";
import { StoreError } from "./store-error.js";
import { testBackends } from "./test-backends.js";

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail("expected the statement to fail");
}

for (const b of testBackends()) {
  describe(`database errors (${b.name})`, () => {
    it("folds data exceptions (SQLSTATE class 22) into VALIDATION_FAILED", async (t) => {
      const store = await b.open(t, { migrate: false });
      const cases: Array<[string, unknown[]]> = [
        ["SELECT $1::integer AS v", ["99999999999"]], // 22003 numeric value out of range
        ["SELECT $1::text AS v", ["a\u0000b"]], // 22021 invalid byte sequence (NUL)
        ["SELECT $1::jsonb AS v", ['{"a":"\\u0000"}']], // 22P05 untranslatable character
        ["SELECT $1::uuid AS v", ["not-a-uuid"]], // 22P02 invalid text representation
      ];
      for (const [sql, params] of cases) {
        const err = await failure(store.query(sql, params));
        const folded = foldDatabaseError(err);
        assert.ok(folded, `${sql}: ${String(err)}`);
        assert.equal(folded.code, "VALIDATION_FAILED", sql);
        assert.match(String(folded.details["sqlstate"]), /^22/, sql);
        assert.equal(folded.cause, err);
      }
    });

    it("leaves faults that are not about a value unmapped", async (t) => {
      const store = await b.open(t, { migrate: false });
      assert.equal(foldDatabaseError(await failure(store.query("SELEC 1"))), null);
      await store.query("CREATE TABLE t (id integer PRIMARY KEY)");
      await store.query("INSERT INTO t VALUES (1)");
      assert.equal(foldDatabaseError(await failure(store.query("INSERT INTO t VALUES (1)"))), null);
    });
  });
}

describe("store errors", () => {
  it("folds every StoreError into STORE_UNAVAILABLE with the store's code as the reason", () => {
    for (const code of ["STORE_UNAVAILABLE", "STORE_LOCKED", "MIGRATION_CHANGED", "DATABASE_NEWER"] as const) {
      const folded = foldDatabaseError(new StoreError(code, "x"));
      assert.equal(folded?.code, "STORE_UNAVAILABLE");
      assert.equal(folded.details["reason"], code);
    }
  });

  it("folds a connection that broke or was refused into STORE_UNAVAILABLE", () => {
    assert.equal(foldDatabaseError(new Error("Connection terminated unexpectedly"))?.code, "STORE_UNAVAILABLE");
    assert.equal(foldDatabaseError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }))?.code, "STORE_UNAVAILABLE");
    assert.equal(foldDatabaseError(Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" }))?.code, "STORE_UNAVAILABLE");
    assert.equal(foldDatabaseError(new Error("something else")), null);
  });
});
