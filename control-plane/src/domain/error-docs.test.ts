import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ERROR_CATALOGUE } from "./error-catalogue.js";
import { renderErrorDocs } from "./error-docs.js";

describe("error catalogue", () => {
  it("docs/errors.md matches the code (run `npm run docs:errors` after changing a catalogue)", () => {
    const doc = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");
    assert.equal(doc, renderErrorDocs());
  });

  it("gives every API code a client or server HTTP status and a description", () => {
    for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
      assert.match(code, /^[A-Z][A-Z_]+$/);
      assert.ok(spec.http >= 400 && spec.http < 600, code);
      assert.ok(spec.description.length > 10, code);
    }
  });
});
