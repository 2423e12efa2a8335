// What the task runner keeps after tasks: every per-task structure is back to empty (or to one entry per target) once
// a task's result and log are acknowledged, however many tasks ran, and the journal's summaries go once their
// retention is over while the agent keeps running. Counted by the structures' own sizes (TaskRunner.held()).
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import type { TaskPayload } from "@ferry/contract";
import { newTaskNonce, TaskSigningKeyring } from "@ferry/pki";
import { LogAckSchema, ResultAckSchema, SignedTaskSchema, TaskOfferSchema, TaskSigningKeySchema, type ConnectRequest } from "@ferry/proto/wire";
import { pino } from "pino";

import { FakeDriver } from "../drivers/fake/index.js";
import { DriverRegistry } from "../drivers/registry.js";
import { waitUntil } from "../test-support/wait.js";
import type { SessionEvents } from "./session.js";
import { JOURNAL_RETENTION_MS } from "./task-journal.js";
import { TaskRunner, type TaskSession } from "./task-runner.js";

const AGENT = "agt_retention";
const digest = (c: string) => `sha256:${c.repeat(64)}`;

/**
 * A session that acknowledges like the control plane: every log chunk with the offset it now has, every result. The
 * acknowledgements arrive asynchronously, as they do over the stream.
 */
class AckingSession extends EventEmitter<SessionEvents> implements TaskSession {
  readonly agentId = AGENT;
  streamReady = true;
  readonly results = new Map<string, string>();
  send(body: ConnectRequest["body"]): boolean {
    if (body?.case === "logChunk") {
      const { taskId, offset, data } = body.value;
      setImmediate(() => this.emit("logAck", create(LogAckSchema, { taskId, offset: offset + BigInt(data.length) })));
    } else if (body?.case === "taskResult") {
      const { taskId, outcome } = body.value;
      this.results.set(taskId, outcome);
      setImmediate(() => this.emit("resultAck", create(ResultAckSchema, { taskId })));
    }
    return true;
  }
  async pullTasks(): Promise<never[]> {
    return [];
  }
}

let dir: string;
let keyring: TaskSigningKeyring;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ferry-runner-retention-"));
  keyring = await TaskSigningKeyring.loadOrCreate(join(dir, "keys"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function payload(target: number): TaskPayload {
  n += 1;
  const now = Date.now();
  return {
    v: 1,
    taskId: `tsk_${n}`,
    deploymentId: `dep_${n}`,
    agentId: AGENT,
    issuedAt: now,
    notAfter: now + 600_000,
    nonce: newTaskNonce(),
    action: "deploy",
    target: { id: `tgt_${target}`, name: `web-${target}`, kind: "fake", config: { slot: `web-${target}` } },
    release: { id: "rel_1", name: "shop", version: String(n) },
    images: [{ component: "web", repository: "127.0.0.1:5000/shop/web", digest: digest(n % 2 ? "a" : "b"), ref: `127.0.0.1:5000/shop/web@${digest(n % 2 ? "a" : "b")}` }],
  };
}

describe("TaskRunner retention", () => {
  it("holds nothing per finished task but the journal's summary, and drops that once its retention is over", async () => {
    const stateDir = join(dir, "flat");
    let clockOffset = 0;
    const session = new AckingSession();
    const driver = new FakeDriver();
    const runner = await new TaskRunner({
      stateDir,
      session,
      drivers: new DriverRegistry().register(driver, "fake"),
      logger: pino({ level: "silent" }),
      observeEveryMs: 3_600_000,
      pruneEveryMs: 20,
      now: () => Date.now() + clockOffset,
    }).start();
    session.emit("welcome", {
      agentId: AGENT,
      heartbeatIntervalMs: 1000,
      serverTimeMs: Date.now(),
      taskSigningKeys: keyring.publicKeys().map((k) => create(TaskSigningKeySchema, { keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: BigInt(k.notAfterMs) })),
    });
    const targets = 3;
    const runBatch = async (count: number) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const p = payload(i % targets);
        ids.push(p.taskId);
        const env = keyring.sign(p);
        session.emit("taskOffer", create(TaskOfferSchema, { task: create(SignedTaskSchema, { payload: env.payload, payloadType: env.payloadType, keyId: env.keyId, signature: env.signature }), attempt: 1 }));
      }
      await waitUntil(() => ids.every((id) => session.results.has(id)), "every task reported", 30_000);
      assert.ok(ids.every((id) => session.results.get(id) === "succeeded"));
      // Every result and every log byte acknowledged: the spool and the log cursors let go of the task.
      await waitUntil(() => runner.held().spool === 0 && runner.held().cursors === 0, "the spool emptied", 10_000);
    };

    await runBatch(30);
    const afterFirst = runner.held();
    assert.deepEqual(afterFirst, { running: 0, targetChains: 0, cursors: 0, pumping: 0, observed: targets, journal: 30, spool: 0 });
    await runBatch(90);
    // Three times the tasks: nothing but the journal's summaries (one per task in its retention window) grew.
    assert.deepEqual(runner.held(), { ...afterFirst, journal: 120 });
    assert.deepEqual(readdirSync(join(stateDir, "spool")), [], "no spool files left behind");

    // Past every task's notAfter and the journal's retention: the running agent's periodic prune drops them all.
    clockOffset = 600_000 + JOURNAL_RETENTION_MS + 1000;
    await waitUntil(() => runner.held().journal === 0, "the journal pruned while the agent runs", 10_000);
    assert.deepEqual(runner.held(), { ...afterFirst, journal: 0 });
    assert.deepEqual(readdirSync(join(stateDir, "tasks")), [], "the records' files are gone too");
    await runner.stop();
  });
});
