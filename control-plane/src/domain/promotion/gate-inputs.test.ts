import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { testBackends } from "../../adapters/store/test-backends.js";
import { PROMOTION_COLUMNS } from "./gate-inputs.js";

for (const b of testBackends()) {
  describe(`gate inputs on ${b.name}`, () => {
    it("name every column of promotions (the prepared statement returns them by name)", { timeout: 120_000 }, async (t) => {
      const store = await b.open(t);
      const r = await store.query<{ column_name: string }>(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'promotions' AND table_schema = current_schema() ORDER BY column_name",
      );
      assert.deepEqual([...PROMOTION_COLUMNS].sort(), r.rows.map((x) => x.column_name));
    });
  });
}
