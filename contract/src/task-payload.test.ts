import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ALL_AT_ONCE_PHASES, isAllAtOnce, phasesProblem } from "./phases.js";
import { MAX_STATE_BYTES, negotiatePayloadVersion, parseTaskPayload, TASK_PAYLOAD_TYPES, TaskPayloadError, taskPhases, versionOfPayloadType } from "./task-payload.js";

const DIGEST = `sha256:${"a".repeat(64)}`;
const v1 = () => ({
  v: 1,
  taskId: "tsk_1",
  deploymentId: "dep_1",
  agentId: "agt_1",
  issuedAt: 1000,
  notAfter: 2000,
  nonce: "AAAAAAAAAAAAAAAAAAAAAA",
  action: "deploy",
  target: { id: "tgt_1", name: "web", kind: "docker", config: { container: "web" } },
  release: { id: "rel_1", name: "shop", version: "1" },
  images: [{ component: "web", repository: "r/web", digest: DIGEST, ref: `r/web@${DIGEST}` }],
});
const v2 = (phases: unknown = [...ALL_AT_ONCE_PHASES]) => ({ ...v1(), v: 2, phases });

const malformed = (fn: () => unknown, pattern: RegExp) => assert.throws(fn, (e: unknown) => e instanceof TaskPayloadError && pattern.test(e.message));

describe("task payload versions", () => {
  it("reads v1 as the all-at-once run and v2 with its phases", () => {
    const one = parseTaskPayload(v1(), TASK_PAYLOAD_TYPES[1]);
    assert.equal(one.v, 1);
    assert.equal(one.phases, undefined);
    assert.deepEqual(taskPhases(one), ALL_AT_ONCE_PHASES);
    const two = parseTaskPayload(v2(["prepare"]), TASK_PAYLOAD_TYPES[2]);
    assert.deepEqual(two.phases, ["prepare"]);
    assert.deepEqual(taskPhases(two), ["prepare"]);
  });

  it("refuses a version that does not match its payload type, unknown types, and fields of another version", () => {
    malformed(() => parseTaskPayload(v2(), TASK_PAYLOAD_TYPES[1]), /version 2 does not match the payload type \(v1\)/);
    malformed(() => parseTaskPayload(v1(), TASK_PAYLOAD_TYPES[2]), /version 1 does not match/);
    malformed(() => parseTaskPayload(v1(), "application/vnd.ferry.task.v3+json"), /unsupported payload type/);
    malformed(() => parseTaskPayload({ ...v1(), phases: ["prepare"] }, TASK_PAYLOAD_TYPES[1]), /unknown field phases/);
    malformed(() => parseTaskPayload({ ...v1(), v: 2 }, TASK_PAYLOAD_TYPES[2]), /phases must be a list/);
  });

  it("refuses runs of phases that are empty, unknown, repeated or out of order", () => {
    for (const [phases, pattern] of [
      [[], /at least one phase/],
      [["deploy"], /"deploy" is not a phase/],
      [["start", "prepare"], /in the order/],
      [["health", "health"], /distinct/],
      ["prepare", /must be a list/],
    ] as const) {
      malformed(() => parseTaskPayload(v2(phases), TASK_PAYLOAD_TYPES[2]), pattern);
    }
  });

  it("refuses unpinned images, oversized fields and NUL bytes", () => {
    malformed(() => parseTaskPayload({ ...v1(), images: [{ component: "web", repository: "r/web", digest: "latest", ref: "r/web:latest" }] }), /not sha256/);
    malformed(() => parseTaskPayload({ ...v1(), images: [{ component: "web", repository: "r/web:1@x", digest: DIGEST, ref: `r/web:1@x@${DIGEST}` }] }), /not a repository name/);
    malformed(() => parseTaskPayload({ ...v1(), taskId: "t".repeat(129) }), /at most 128/);
    malformed(() => parseTaskPayload({ ...v1(), agentId: "agt\0" }), /without NUL/);
    malformed(() => parseTaskPayload({ ...v1(), images: Array.from({ length: 65 }, () => v1().images[0]) }), /at most 64 images/);
  });

  it("negotiates the highest version both sides read; an agent that says nothing reads v1", () => {
    assert.equal(negotiatePayloadVersion([]), 1);
    assert.equal(negotiatePayloadVersion([1]), 1);
    assert.equal(negotiatePayloadVersion([1, 2]), 2);
    assert.equal(negotiatePayloadVersion([2, 3]), 2);
    assert.equal(negotiatePayloadVersion([3]), undefined);
    assert.equal(versionOfPayloadType(TASK_PAYLOAD_TYPES[2]), 2);
  });

  it("judges runs of phases", () => {
    assert.equal(phasesProblem(["prepare", "start", "health", "switch", "retire"]), undefined);
    assert.equal(phasesProblem(["switch", "retire"]), undefined);
    assert.ok(isAllAtOnce(ALL_AT_ONCE_PHASES));
    assert.ok(!isAllAtOnce(["prepare"]));
  });

  it("carries an earlier step's driver state, bounded", () => {
    const p = parseTaskPayload({ ...v2(["switch", "retire"]), state: { slot: { idle: "green" } } }, TASK_PAYLOAD_TYPES[2]);
    assert.deepEqual(p.state, { slot: { idle: "green" } });
    malformed(() => parseTaskPayload({ ...v2(), state: [] }, TASK_PAYLOAD_TYPES[2]), /state must be an object/);
    malformed(() => parseTaskPayload({ ...v2(), state: { big: "x".repeat(MAX_STATE_BYTES) } }, TASK_PAYLOAD_TYPES[2]), /at most 65536 bytes/);
    malformed(() => parseTaskPayload({ ...v1(), state: {} }, TASK_PAYLOAD_TYPES[1]), /unknown field state/);
  });

  it("reads route tasks: weights, measure, maintenance; exactly", () => {
    const route = (r: unknown, extra: Record<string, unknown> = {}) => parseTaskPayload({ ...v1(), v: 2, action: "route", images: [], route: r, ...extra }, TASK_PAYLOAD_TYPES[2]);
    assert.deepEqual(route({ op: "weights", newWeight: 25 }).route, { op: "weights", newWeight: 25 });
    assert.deepEqual(route({ op: "measure" }, { state: { slot: {} } }).route, { op: "measure" });
    assert.deepEqual(route({ op: "maintenance", message: "back at 10:00" }).route, { op: "maintenance", message: "back at 10:00" });
    assert.deepEqual(route({ op: "maintenance", message: null }).route, { op: "maintenance", message: null });
    malformed(() => route({ op: "weights", newWeight: 101 }), /from 0 to 100/);
    malformed(() => route({ op: "weights", newWeight: 5, slot: "blue" }), /unknown field route.slot/);
    malformed(() => route({ op: "reload" }), /route.op must be/);
    malformed(() => route({ op: "maintenance", message: "a\nb" }), /printable ASCII/);
    malformed(() => route({ op: "measure" }, { phases: ["switch"] }), /runs no phase/);
    malformed(() => parseTaskPayload({ ...v2(), route: { op: "measure" } }, TASK_PAYLOAD_TYPES[2]), /only a route task/);
    malformed(() => parseTaskPayload({ ...v1(), action: "route" }, TASK_PAYLOAD_TYPES[1]), /needs payload v2/);
  });

  it("reads an A/B split on a weights operation, exactly and bounded", () => {
    const route = (r: unknown) => parseTaskPayload({ ...v1(), v: 2, action: "route", images: [], route: r }, TASK_PAYLOAD_TYPES[2]);
    const split = { by: "cookie", name: "ab_uid", allowlist: ["tester-1", 'q"#;\\x'] };
    assert.deepEqual(route({ op: "weights", newWeight: 10, split }).route, { op: "weights", newWeight: 10, split });
    assert.deepEqual(route({ op: "weights", newWeight: 0, split: { by: "header", name: "X-User-Id", allowlist: [] } }).route, { op: "weights", newWeight: 0, split: { by: "header", name: "X-User-Id", allowlist: [] } });
    const full = Array.from({ length: 100 }, (_, i) => `${i}`.padEnd(256, "v"));
    assert.equal((route({ op: "weights", newWeight: 50, split: { ...split, allowlist: full } }).route as { split: { allowlist: string[] } }).split.allowlist.length, 100);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, allowlist: [...full, "x"] } }), /at most 100 values/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, allowlist: ["a".repeat(257)] } }), /allowlist\[0\] must be 1 to 256/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, allowlist: ["two words"] } }), /allowlist\[0\]/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, allowlist: [""] } }), /allowlist\[0\]/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, allowlist: [7] } }), /allowlist\[0\]/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, allowlist: "tester" } }), /must be a list/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, by: "query" } }), /cookie or header/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, name: "ab uid" } }), /HTTP token/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, name: "a".repeat(129) } }), /HTTP token/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { ...split, percent: 10 } }), /unknown field route.split.percent/);
    malformed(() => route({ op: "weights", newWeight: 10, split: { by: "cookie", name: "ab_uid" } }), /allowlist must be a list/);
    malformed(() => route({ op: "weights", newWeight: 10, split: null }), /route.split must be an object/);
    malformed(() => route({ op: "measure", split }), /unknown field route.split/);
  });
});
