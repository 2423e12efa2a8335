import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { engineAuth } from "./pull.js";

describe("engineAuth", () => {
  it("sends nothing without credentials", () => {
    assert.equal(engineAuth(undefined, "r:5000"), undefined);
    assert.equal(engineAuth({ registry: "r:5000" }, "r:5000"), undefined);
  });

  it("prefers an identity token over a password", () => {
    assert.deepEqual(engineAuth({ registry: "r", identityToken: "tok", username: "u", password: "p" }, "r"), { identitytoken: "tok", serveraddress: "r" });
    assert.deepEqual(engineAuth({ registry: "r", username: "u", password: "p" }, "r"), { username: "u", password: "p", serveraddress: "r" });
  });
});
