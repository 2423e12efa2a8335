import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { policyGate, qualifiedRepository, type PolicyInput } from "./policy.js";

const now = new Date("2024-06-10T12:00:00Z");
const input = (over: Partial<PolicyInput["release"]> = {}): PolicyInput => ({
  release: {
    id: "rel_1", name: "shop", version: "1.4.0", createdAt: new Date("2024-06-08T09:30:00Z"), provenance: {},
    labels: { team: "payments", tier: "gold" },
    pins: [
      { component: "api", repository: "registry.example.com/shop/api", digest: `sha256:${"a".repeat(64)}` },
      { component: "proxy", repository: "nginx", digest: `sha256:${"b".repeat(64)}` },
    ],
    ...over,
  },
});
const config = policyGate.parseConfig({
  rules: [
    { type: "required-labels", labels: ["team", "tier=gold"] },
    { type: "allowed-registries", registries: ["registry.example.com", "docker.io/library"] },
    { type: "max-age", age: "7d" },
  ],
});

describe("policy gate", () => {
  it("refuses malformed rules naming the field", () => {
    const cases: [unknown, string, RegExp][] = [
      [{}, "config.rules", /non-empty list/],
      [{ rules: [{ type: "max-size" }] }, "config.rules[0].type", /"max-size" is not a rule type \(required-labels, allowed-registries, max-age\)/],
      [{ rules: [{ type: "required-labels", labels: [] }] }, "config.rules[0].labels", /non-empty list/],
      [{ rules: [{ type: "required-labels", labels: ["ok", "bad key"] }] }, "config.rules[0].labels[1]", /not a label key/],
      [{ rules: [{ type: "allowed-registries", registries: ["https://registry.example.com"] }] }, "config.rules[0].registries[0]", /not a registry host/],
      [{ rules: [{ type: "max-age", age: "a week" }] }, "config.rules[0].age", /not a duration/],
      [{ rules: [{ type: "max-age", age: "7d", labels: ["x"] }] }, "config.rules[0].labels", /unknown field for a max-age rule/],
    ];
    for (const [raw, field, re] of cases) {
      assert.throws(() => policyGate.parseConfig(raw), (e: unknown) =>
        e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.details.field === field && re.test(e.message), field);
    }
  });

  it("passes when every rule holds", () => {
    const r = policyGate.evaluate(config, input(), now);
    assert.equal(r.state, "passed");
    assert.equal(r.reason, "release has the required labels (team, tier=gold); every image comes from an allowed registry (registry.example.com, registry-1.docker.io/library); release is 2d 2h old (at most 7d)");
  });

  it("fails with one message per failing rule", () => {
    const r = policyGate.evaluate(config, input({
      labels: { tier: "silver" },
      createdAt: new Date("2024-05-30T06:00:00Z"),
      pins: [{ component: "api", repository: "ghcr.io/acme/api", digest: `sha256:${"a".repeat(64)}` }],
    }), now);
    assert.equal(r.state, "failed");
    assert.equal(r.reason, [
      'required labels: label team is missing, label tier is "silver", policy requires "gold"',
      "images from registries not allowed: api from ghcr.io/acme/api (allowed: registry.example.com, registry-1.docker.io/library)",
      "release is 11d 6h old (created 2024-05-30T06:00:00Z); policy allows at most 7d",
    ].join("; "));
    assert.match(r.remedy ?? "", /^cut a new release with labels team, tier=gold; cut a new release whose images come from registry\.example\.com, registry-1\.docker\.io\/library; cut a new release \(rebuilt, rescanned\) and promote that, or change the environment's policy$/);
    assert.deepEqual((r.details.rules as { passed: boolean }[]).map((x) => x.passed), [false, false, false]);
  });

  it("treats a release without labels as missing them all", () => {
    const only = policyGate.parseConfig({ rules: [{ type: "required-labels", labels: ["team"] }] });
    const r = policyGate.evaluate(only, input({ labels: undefined }), now);
    assert.equal(r.reason, "required labels: label team is missing");
  });

  it("qualifies repositories the way Docker does", () => {
    assert.equal(qualifiedRepository("nginx"), "registry-1.docker.io/library/nginx");
    assert.equal(qualifiedRepository("acme/api"), "registry-1.docker.io/acme/api");
    assert.equal(qualifiedRepository("localhost:5000/api"), "localhost:5000/api");
    assert.equal(qualifiedRepository("localhost/api"), "localhost/api");
    assert.equal(qualifiedRepository("index.docker.io/acme/api"), "registry-1.docker.io/acme/api");
    assert.equal(qualifiedRepository("Registry.Example.com/shop/api"), "registry.example.com/shop/api");
    // Releases store Docker Hub images as registry-1.docker.io/…; "docker.io" in a policy matches them.
    const hub = policyGate.parseConfig({ rules: [{ type: "allowed-registries", registries: ["docker.io"] }] });
    assert.equal(policyGate.evaluate(hub, input({ pins: [{ component: "p", repository: "registry-1.docker.io/library/nginx", digest: "sha256:1" }] }), now).state, "passed");
    // A registry entry matches whole path segments only.
    const c = policyGate.parseConfig({ rules: [{ type: "allowed-registries", registries: ["registry.example.com/shop"] }] });
    const r = policyGate.evaluate(c, input({ pins: [{ component: "x", repository: "registry.example.com/shopping/x", digest: "sha256:1" }] }), now);
    assert.equal(r.state, "failed");
  });
});
