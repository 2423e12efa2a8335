import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DriverFactsSchema, HostFactsSchema, StickerSchema } from "@ferry/proto";
import { factsRecord, stickerRecord } from "./agent-service.js";
import { MAX_RECORDED_SKEW_MS, storableSkew, storableText } from "../../domain/fleet/agent-input.js";

describe("agent input made storable", () => {
  it("drops NUL, replaces lone surrogates, keeps pairs whole at the cut", () => {
    assert.equal(storableText("a\u0000b", 10), "ab");
    assert.equal(storableText("x\ud800y\udc00", 10), "x\ufffdy\ufffd");
    assert.equal(storableText("ab\ud83d\ude00", 3), "ab", "half an emoji is not left at the end");
    assert.equal(storableText(undefined, 3), "");
  });

  it("clamps a clock skew to the integer column", () => {
    assert.equal(storableSkew(-1.7e12), -MAX_RECORDED_SKEW_MS);
    assert.equal(storableSkew(1e300), MAX_RECORDED_SKEW_MS);
    assert.equal(storableSkew(12.4), 12);
    assert.equal(storableSkew(Number.NaN), null);
    assert.equal(storableSkew(null), null);
  });

  it("bounds Hello facts and stickers as they come off the wire", () => {
    const facts = factsRecord(
      create(HostFactsSchema, {
        hostname: "h\u0000",
        drivers: ["docker", "\u0000"],
        cpus: 4,
        memoryBytes: 2n ** 63n - 1n,
        driverFacts: [create(DriverFactsSchema, { kind: "docker\u0000", capabilities: ["side-by-side", "teleport"], detail: "x".repeat(1000) })],
        taskPayloadVersions: [1, 2, 0, 99_999],
      }),
    );
    assert.deepEqual(facts, {
      hostname: "h",
      os: "",
      osRelease: "",
      arch: "",
      agentVersion: "",
      drivers: ["docker"],
      cpus: 4,
      memoryBytes: Number.MAX_SAFE_INTEGER,
      // Unknown capabilities are dropped, the status line is bounded, versions outside 1..1000 are dropped.
      driverFacts: [{ kind: "docker", capabilities: ["side-by-side"], detail: "x".repeat(256) }],
      taskPayloadVersions: [1, 2],
    });
    const sticker = stickerRecord(create(StickerSchema, { targetId: "tgt\u0000_1", writtenAtMs: 2n ** 63n - 1n, observedState: "running\ud800" }));
    assert.equal(sticker.targetId, "tgt_1");
    assert.equal(sticker.writtenAtMs, 8_640_000_000_000_000);
    assert.equal(sticker.observedState, "running\ufffd");
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(sticker)));
  });
});
