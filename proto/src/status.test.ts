import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { GrpcStatus, grpcStatusName } from "./status.js";
import { parseWireError, WireErrorCodes } from "./wire-errors.js";
import { wireError } from "./errors.js";

describe("GrpcStatus", () => {
  it("equals grpc-js's status enum, member for member", () => {
    const theirs = Object.fromEntries(Object.entries(grpc.status).filter(([, v]) => typeof v === "number"));
    assert.deepEqual({ ...GrpcStatus }, theirs);
    for (const [name, value] of Object.entries(GrpcStatus)) assert.equal(grpcStatusName(value), name);
    assert.equal(grpcStatusName(99), "99");
  });

  it("the wire codes map onto the same statuses as before the split", () => {
    assert.equal(WireErrorCodes.RATE_LIMITED, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(WireErrorCodes.SUPERSEDED, grpc.status.ABORTED);
    assert.equal(WireErrorCodes.CERT_REVOKED, grpc.status.PERMISSION_DENIED);
  });
});

describe("parseWireError", () => {
  it("reads a grpc-js ServiceError built by wireError()", () => {
    const w = parseWireError(wireError("RATE_LIMITED", "slow down", 1500.4));
    assert.deepEqual(w, { code: "RATE_LIMITED", status: grpc.status.RESOURCE_EXHAUSTED, message: "slow down", retryAfterMs: 1500 });
  });

  it("reads an error whose metadata is a plain get(key) → values reader (the agent's client)", () => {
    const values: Record<string, string[]> = { "ferry-error-code": ["SUPERSEDED"], "ferry-retry-after-ms": ["250"] };
    const err = Object.assign(new Error("10 ABORTED: SUPERSEDED: newer stream"), {
      code: GrpcStatus.ABORTED,
      details: "SUPERSEDED: newer stream",
      metadata: { get: (k: string) => values[k] ?? [] },
    });
    assert.deepEqual(parseWireError(err), { code: "SUPERSEDED", status: GrpcStatus.ABORTED, message: "newer stream", retryAfterMs: 250 });
  });

  it("falls back to the details prefix, then to UNKNOWN with the whole text", () => {
    assert.deepEqual(parseWireError({ code: 14, details: "SERVER_SHUTTING_DOWN: bye" }), { code: "SERVER_SHUTTING_DOWN", status: 14, message: "bye" });
    assert.deepEqual(parseWireError({ code: 14, details: "No connection established" }), { code: "UNKNOWN", status: 14, message: "No connection established" });
    assert.deepEqual(parseWireError(new Error("boom")), { code: "UNKNOWN", status: GrpcStatus.UNKNOWN, message: "boom" });
    assert.equal(parseWireError(null).status, GrpcStatus.UNKNOWN);
  });
});
