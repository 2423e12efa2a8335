import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ERROR_CATALOGUE } from "./error-catalogue.js";
import { ERROR_CATEGORIES } from "./error-category.js";
import { FerryError } from "./errors.js";

describe("error catalogue", () => {
  it("gives every API code a known category and a description", () => {
    for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
      assert.match(code, /^[A-Z][A-Z_]+$/);
      assert.ok(Object.hasOwn(ERROR_CATEGORIES, spec.category), `${code}: ${spec.category}`);
      assert.ok(spec.description.length > 10, code);
    }
  });

  it("puts the category on every FerryError", () => {
    assert.equal(new FerryError("STORE_UNAVAILABLE", "down").category, "unavailable");
    assert.equal(new FerryError("RELEASE_EXISTS", "exists").category, "already_exists");
  });
});
