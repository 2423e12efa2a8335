import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { renderErrorDocs } from "./error-docs.js";

describe("docs/errors.md", () => {
  it("matches the code (run `npm run docs:errors` after changing a catalogue)", () => {
    const doc = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
    assert.equal(doc, renderErrorDocs());
  });
});
