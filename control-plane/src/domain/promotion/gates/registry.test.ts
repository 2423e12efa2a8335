import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { approverGroups, breakGlassRole, evaluateAll, parseGates, GATE_KINDS } from "./registry.js";
import { digestSetHash, type GateContext } from "./types.js";

const API = `sha256:${"a".repeat(64)}`;
const now = new Date("2024-06-04T12:00:00Z"); // a Tuesday
const pins = [{ component: "api", repository: "registry.example.com/shop/api", digest: API }];
const hash = digestSetHash(pins);

const ctx = (over: Partial<GateContext> = {}): GateContext => ({
  promotion: { id: "prm_1", requestedBy: "alice", requestedAt: new Date("2024-06-04T10:00:00Z"), environment: "prod", previousEnvironment: "staging", breakGlass: null },
  release: { id: "rel_1", name: "shop", version: "1.4.0", createdAt: new Date("2024-06-03T09:00:00Z"), labels: { team: "payments" }, provenance: {}, pins },
  digestSetHash: hash,
  approvals: [
    { subject: "bob", groups: ["prod-approvers"], roles: ["approver"], decision: "approve", digestSetHash: hash, at: new Date("2024-06-04T11:00:00Z"), comment: null },
  ],
  priorSuccess: { environment: "staging", finishedAt: new Date("2024-06-04T09:00:00Z") },
  scans: { [API]: [{ scanner: "trivy 0.52.0", format: "trivy", uploadedAt: new Date("2024-06-04T08:00:00Z"), counts: { critical: 0, high: 0, medium: 2, low: 4, unknown: 0 } }] },
  exceptions: [],
  ...over,
});

// As an environment's settings would hold them (the JSON in docs/gates.md).
const settings = {
  gates: [
    { kind: "approvals", name: "prod approvers", config: { group: "prod-approvers", count: 1 } },
    { kind: "prior-environment", name: "staging first", config: { soak: "2h" } },
    { kind: "security", name: "no highs", config: { blockAt: "high", requireReport: true, maxReportAge: "7d" } },
    { kind: "freeze", name: "weekend freeze", config: { windows: [{ name: "weekend", timeZone: "Europe/Berlin", cron: "0 22 * * 5", durationMinutes: 3600 }], breakGlassRole: "release-manager" } },
    { kind: "policy", config: { rules: [{ type: "required-labels", labels: ["team"] }, { type: "max-age", age: "7d" }] } },
  ],
};

describe("gate registry", () => {
  it("knows every kind", () => {
    assert.deepEqual(GATE_KINDS, ["approvals", "prior-environment", "security", "freeze", "policy"]);
  });

  it("parses an environment's gates in order, defaulting the name to the kind", () => {
    const gates = parseGates(settings.gates);
    assert.deepEqual(gates.map((g) => [g.kind, g.name]), [
      ["approvals", "prod approvers"], ["prior-environment", "staging first"], ["security", "no highs"], ["freeze", "weekend freeze"], ["policy", "policy"],
    ]);
    assert.deepEqual(parseGates(undefined), []);
    assert.deepEqual(approverGroups(gates), ["prod-approvers"]);
    assert.equal(breakGlassRole(gates), "release-manager");
    assert.equal(breakGlassRole([]), "admin");
  });

  it("refuses bad declarations naming the field from gates", () => {
    const cases: [unknown, string, RegExp][] = [
      [{}, "gates", /must be a list/],
      [[{ kind: "sbom" }], "gates[0].kind", /"sbom" is not a gate kind \(approvals, prior-environment, security, freeze, policy\)/],
      [[{ kind: "policy", config: { rules: [] }, when: "always" }], "gates[0].when", /unknown field/],
      [[{ kind: "approvals", config: { group: "g", count: 1 } }, { kind: "approvals", config: { group: "h", count: 1 } }], "gates[1].name", /names an earlier gate/],
      [[{ kind: "approvals", config: { group: "g", count: 1 } }, { kind: "freeze", config: { windows: [{ name: "w", timeZone: "Nowhere/Land", weekly: { days: ["sat"], start: "00:00", end: "24:00" } }] } }],
        "gates[1].config.windows[0].timeZone", /^gates\[1\]\.config\.windows\[0\]\.timeZone: "Nowhere\/Land" is not an IANA time zone/],
      [[{ kind: "approvals", config: { group: "g" } }], "gates[0].config.count", /^gates\[0\]\.config\.count: is required/],
    ];
    for (const [raw, field, re] of cases) {
      assert.throws(() => parseGates(raw), (e: unknown) =>
        e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.details.field === field && re.test(e.message), field);
    }
  });

  it("evaluates every gate in declared order with the declared names", () => {
    const gates = parseGates(settings.gates);
    const { results, verdict } = evaluateAll(gates, ctx(), now);
    assert.deepEqual(results.map((r) => [r.name, r.gate, r.state]), [
      ["prod approvers", "approvals", "passed"],
      ["staging first", "prior-environment", "passed"],
      ["no highs", "security", "passed"],
      ["weekend freeze", "freeze", "passed"],
      ["policy", "policy", "passed"],
    ]);
    assert.deepEqual(verdict, { state: "passed", blocking: [], final: false });
  });

  it("is pending while a gate waits, and lists why", () => {
    const gates = parseGates(settings.gates);
    const { verdict } = evaluateAll(gates, ctx({ approvals: [], priorSuccess: { environment: "staging", finishedAt: new Date("2024-06-04T11:00:00Z") } }), now);
    assert.equal(verdict.state, "pending");
    assert.deepEqual(verdict.blocking.map((r) => [r.name, r.remedy]), [
      ["prod approvers", "needs 1 more approval from group prod-approvers; alice cannot approve their own request"],
      ["staging first", "soak ends at 2024-06-04T13:00:00Z"],
    ]);
  });

  it("fails when any gate fails, even with others pending, and marks a rejection final", () => {
    const gates = parseGates(settings.gates);
    const friday = new Date("2024-06-07T21:00:00Z"); // 23:00 in Berlin, inside the weekend freeze
    const frozen = evaluateAll(gates, ctx({ approvals: [] }), friday);
    assert.equal(frozen.verdict.state, "failed");
    assert.equal(frozen.verdict.final, false);
    assert.deepEqual(frozen.verdict.blocking.map((r) => r.state), ["pending", "failed"]);

    const rejected = evaluateAll(gates, ctx({ approvals: [{ subject: "erin", groups: ["prod-approvers"], roles: ["approver"], decision: "reject", digestSetHash: hash, at: now, comment: "no" }] }), now);
    assert.equal(rejected.verdict.state, "failed");
    assert.equal(rejected.verdict.final, true);
  });

  it("passes with no gates", () => {
    assert.deepEqual(evaluateAll([], ctx(), now).verdict, { state: "passed", blocking: [], final: false });
  });

  it("is cheap enough to run on every request (reported, not asserted)", (t) => {
    const gates = parseGates(settings.gates);
    const c = ctx();
    evaluateAll(gates, c, now); // warm the time-zone formatter cache
    const rounds = 2000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) evaluateAll(gates, c, new Date(now.getTime() + i * 60_000));
    const perRound = Number(process.hrtime.bigint() - started) / rounds / 1e6;
    t.diagnostic(`evaluateAll with five gates: ${perRound.toFixed(4)} ms per promotion`);
  });
});
