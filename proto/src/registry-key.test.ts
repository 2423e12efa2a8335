import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { credentialRegistry } from "./registry-key.js";

describe("credentialRegistry", () => {
  it("reads the registry of a repository the way the Docker Engine does", () => {
    assert.equal(credentialRegistry("127.0.0.1:5000/shop/web"), "127.0.0.1:5000");
    assert.equal(credentialRegistry("registry.example.com/web"), "registry.example.com");
    assert.equal(credentialRegistry("[::1]:5000/web"), "[::1]:5000");
    assert.equal(credentialRegistry("localhost/web"), "localhost");
    assert.equal(credentialRegistry("docker.io/library/busybox"), "docker.io");
    assert.equal(credentialRegistry("library/busybox"), "docker.io");
    assert.equal(credentialRegistry("busybox"), "docker.io");
  });
});
