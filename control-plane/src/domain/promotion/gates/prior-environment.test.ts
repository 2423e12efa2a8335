import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FerryError } from "../../errors.js";
import { priorEnvironmentGate, type PriorEnvironmentInput } from "./prior-environment.js";
import type { PriorSuccess } from "./types.js";

const input = (previousEnvironment: string | null, priorSuccess: PriorSuccess | null): PriorEnvironmentInput => ({
  promotion: { id: "prm_1", requestedBy: "alice", requestedAt: new Date("2024-06-01T10:00:00Z"), environment: "prod", previousEnvironment, breakGlass: null },
  release: { id: "rel_1", name: "shop", version: "1.4.0", createdAt: new Date("2024-06-01T08:00:00Z"), provenance: {}, pins: [] },
  priorSuccess,
});
const now = new Date("2024-06-01T12:00:00Z");
const noSoak = priorEnvironmentGate.parseConfig({});
const soak = priorEnvironmentGate.parseConfig({ soak: "2h" });

describe("prior-environment gate", () => {
  it("validates the soak duration", () => {
    assert.equal(priorEnvironmentGate.parseConfig(undefined).soakMs, 0);
    assert.equal(soak.soakMs, 7_200_000);
    assert.throws(() => priorEnvironmentGate.parseConfig({ soak: "2 hours" }), (e: unknown) =>
      e instanceof FerryError && e.details.field === "config.soak" && /not a duration/.test(e.message));
    assert.throws(() => priorEnvironmentGate.parseConfig({ soakTime: "2h" }), (e: unknown) =>
      e instanceof FerryError && e.details.field === "config.soakTime");
  });

  it("passes in the first environment", () => {
    const r = priorEnvironmentGate.evaluate(soak, input(null, null), now);
    assert.equal(r.state, "passed");
    assert.equal(r.reason, "prod is the first environment");
  });

  it("is pending until the release succeeded in the previous environment", () => {
    const r = priorEnvironmentGate.evaluate(noSoak, input("staging", null), now);
    assert.equal(r.state, "pending");
    assert.equal(r.reason, "release shop@1.4.0 has not succeeded in staging");
    assert.equal(r.remedy, "deploy it to staging first");
    const elsewhere = priorEnvironmentGate.evaluate(noSoak, input("staging", { environment: "dev", finishedAt: new Date("2024-06-01T09:00:00Z") }), now);
    assert.equal(elsewhere.state, "pending");
  });

  it("passes after a success without soak", () => {
    const r = priorEnvironmentGate.evaluate(noSoak, input("staging", { environment: "staging", finishedAt: new Date("2024-06-01T11:59:00Z") }), now);
    assert.equal(r.state, "passed");
    assert.equal(r.reason, "release shop@1.4.0 succeeded in staging at 2024-06-01T11:59:00Z");
  });

  it("is pending while soaking and says when the soak ends", () => {
    const r = priorEnvironmentGate.evaluate(soak, input("staging", { environment: "staging", finishedAt: new Date("2024-06-01T11:00:00Z") }), now);
    assert.equal(r.state, "pending");
    assert.equal(r.remedy, "soak ends at 2024-06-01T13:00:00Z");
    assert.equal(r.details.soakEndsAt, "2024-06-01T13:00:00.000Z");
    const done = priorEnvironmentGate.evaluate(soak, input("staging", { environment: "staging", finishedAt: new Date("2024-06-01T10:00:00Z") }), now);
    assert.equal(done.state, "passed");
    assert.equal(done.reason, "release shop@1.4.0 succeeded in staging at 2024-06-01T10:00:00Z and soaked for 2h");
  });
});
