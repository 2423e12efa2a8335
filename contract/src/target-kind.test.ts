import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { checkObject, ConfigError } from "./config-schema.js";
import { composeKind, dockerKind, TARGET_CONFIG_CASES } from "./kinds/index.js";
import { ImageSelectionError, parseTargetConfig, type TargetKindDescriptor } from "./target-kind.js";
import { credentialRegistry, pinProblem } from "./images.js";
import { isRetryable, RESULT_CODES } from "./result-codes.js";

const pin = (component: string) => ({ component, repository: `r/${component}`, digest: `sha256:${component[0]!.repeat(64)}` });

describe("target kinds", () => {
  it("every case of the shared table is judged as the table says by the kind's schema", () => {
    const kinds: Record<string, TargetKindDescriptor<unknown>> = { docker: dockerKind, compose: composeKind };
    for (const c of TARGET_CONFIG_CASES.filter((x) => x.kind in kinds)) {
      const d = kinds[c.kind]!;
      if (c.field === undefined) assert.doesNotThrow(() => parseTargetConfig(d, c.config), c.name);
      else assert.throws(() => parseTargetConfig(d, c.config), (e: unknown) => e instanceof ConfigError && e.path === c.field, c.name);
    }
  });

  it("returns a copy, so a later change to the input does not change the checked config", () => {
    const raw = { container: "web", env: { A: "1" } };
    const checked = parseTargetConfig(dockerKind, raw);
    raw.env.A = "2";
    assert.equal(checked.env?.["A"], "1");
  });

  it("chooses a docker target's one image: its component, or the release's only one", () => {
    assert.deepEqual(dockerKind.imagesFor({ container: "w" }, [pin("web")]).map((p) => p.ref), [`r/web@sha256:${"w".repeat(64)}`]);
    assert.deepEqual(dockerKind.imagesFor({ container: "w", component: "db" }, [pin("web"), pin("db")]).map((p) => p.component), ["db"]);
    assert.throws(() => dockerKind.imagesFor({ container: "w" }, [pin("web"), pin("db")]), (e: unknown) => e instanceof ImageSelectionError && e.code === "RELEASE_COMPONENT_AMBIGUOUS");
    assert.throws(() => dockerKind.imagesFor({ container: "w", component: "api" }, [pin("web")]), (e: unknown) => e instanceof ImageSelectionError && e.code === "RELEASE_COMPONENT_MISSING");
  });

  it("chooses a compose target's mapped images, and names components the release lacks", () => {
    const cfg = { project: "p", directory: "/p", services: { web: "web", worker: "worker" } };
    assert.deepEqual(composeKind.imagesFor(cfg, [pin("web"), pin("worker"), pin("db")]).map((p) => p.component), ["web", "worker"]);
    assert.throws(() => composeKind.imagesFor(cfg, [pin("web")]), (e: unknown) => e instanceof ImageSelectionError && /worker/.test(e.message));
  });

  it("cross-field rules name the field at fault", () => {
    assert.throws(() => checkObject({ a: "x" }, { fields: { a: { type: "string" }, b: { type: "integer" } }, rules: [(o) => (o["b"] === undefined ? ["b", "is required with a"] : undefined)] }, "cfg"), /cfg\.b: is required with a/);
  });
});

describe("images and result codes", () => {
  it("files credentials under the registry host as the Docker Engine reads it", () => {
    assert.equal(credentialRegistry("127.0.0.1:5000/shop/web"), "127.0.0.1:5000");
    assert.equal(credentialRegistry("registry.example.com/web"), "registry.example.com");
    assert.equal(credentialRegistry("[::1]:5000/web"), "[::1]:5000");
    assert.equal(credentialRegistry("docker.io/library/busybox"), "docker.io");
    assert.equal(credentialRegistry("library/busybox"), "docker.io");
    assert.equal(credentialRegistry("busybox"), "docker.io");
    assert.equal(credentialRegistry("localhost/x"), "localhost");
  });

  it("refuses pins that are not repository@digest", () => {
    const d = `sha256:${"a".repeat(64)}`;
    assert.equal(pinProblem({ component: "w", repository: "r/w", digest: d, ref: `r/w@${d}` }), undefined);
    assert.match(pinProblem({ component: "w", repository: "r/w", digest: d, ref: "r/w:latest" })!, /not repository@digest/);
  });

  it("marks every code retryable or terminal, and unknown codes terminal", () => {
    for (const [code, info] of Object.entries(RESULT_CODES)) assert.equal(isRetryable(code), info.retryable, code);
    assert.equal(isRetryable("SOMETHING_NEW"), false);
    assert.equal(isRetryable("DOCKER_UNAVAILABLE"), true);
    assert.equal(isRetryable("INSTANCE_CRASHED"), false);
  });
});
