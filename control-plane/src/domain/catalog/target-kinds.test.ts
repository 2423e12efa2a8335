import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TARGET_CONFIG_CASES } from "@ferry/contract";

import { FerryError } from "../errors.js";
import { checkTargetConfig, TARGET_KINDS } from "./target-kinds.js";

describe("target configs at the control plane's door", () => {
  it("judges every case of the shared table as the agent's driver does (the same cases run in the agent's tests)", () => {
    for (const c of TARGET_CONFIG_CASES) {
      if (c.field === undefined) {
        assert.doesNotThrow(() => checkTargetConfig(c.kind, c.config), `${c.kind}: ${c.name}`);
      } else {
        assert.throws(
          () => checkTargetConfig(c.kind, c.config),
          (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED" && e.details["field"] === c.field && e.message.startsWith(`${c.field}: `),
          `${c.kind}: ${c.name}`,
        );
      }
    }
  });

  it("accepts every kind the contract describes, and refuses others naming the known ones", () => {
    assert.deepEqual([...TARGET_KINDS], ["docker", "compose", "ecs", "nomad", "ssh", "winrm"]);
    assert.throws(() => checkTargetConfig("kubernetes", {}), (e: unknown) => e instanceof FerryError && e.code === "UNKNOWN_TARGET_KIND" && /one of docker, compose/.test(e.message));
  });
});
