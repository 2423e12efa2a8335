import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { engineAuth, registryHost } from "./pull.js";

describe("registryHost", () => {
  it("reads the registry the way Docker does", () => {
    assert.equal(registryHost("127.0.0.1:5000/shop/web"), "127.0.0.1:5000");
    assert.equal(registryHost("registry.example.com/web"), "registry.example.com");
    assert.equal(registryHost("localhost/web"), "localhost");
    assert.equal(registryHost("library/busybox"), "docker.io");
    assert.equal(registryHost("busybox"), "docker.io");
  });
});

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
