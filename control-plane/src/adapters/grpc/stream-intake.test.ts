// Back-pressure on the Connect stream, measured: a real grpc-js server running agentServiceImpl on loopback, an agent
// stream sending many 1 MiB log chunks as fast as HTTP/2 lets it, and a task queue that takes each chunk slowly.
// The server's pending bytes must stay near the bound, the stream must have been paused, and every chunk must still
// arrive, in order.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AgentService, ConnectRequestSchema, HelloSchema, LogChunkSchema, clientConstructor, serverDefinition, type ConnectRequest, type ConnectResponse } from "@ferry/proto";
import pino from "pino";
import type { TaskQueue } from "../../domain/deploy/task-queue.js";
import type { FleetService } from "../../domain/fleet/fleet-service.js";
import type { LivenessRecorder } from "../../domain/fleet/liveness-recorder.js";
import type { AdmissionGate } from "./admission.js";
import { agentServiceImpl } from "./agent-service.js";
import type { MtlsListener } from "./mtls-listener.js";
import type { RefusalRecorder } from "./refusals.js";
import { SessionRegistry } from "./session-registry.js";
import { DEFAULT_STREAM_INTAKE, StreamIntake } from "./stream-intake.js";
import type { TaskDispatcher } from "./task-dispatcher.js";

const MiB = 1024 * 1024;

describe("StreamIntake", () => {
  it("pauses above the high mark and resumes at the low mark", () => {
    const calls: string[] = [];
    const intake = new StreamIntake({ pause: () => calls.push("pause"), resume: () => calls.push("resume") }, { highBytes: 10, lowBytes: 4 });
    intake.add(6);
    intake.add(6);
    assert.deepEqual([calls, intake.paused], [["pause"], true]);
    intake.add(6);
    intake.done(6);
    intake.done(6);
    assert.deepEqual([calls, intake.pendingBytes], [["pause"], 6]);
    intake.done(6);
    assert.deepEqual([calls, intake.paused, intake.pendingBytes], [["pause", "resume"], false, 0]);
  });
});

describe("Connect stream back-pressure", () => {
  it("keeps the bytes a stream makes the server hold bounded while a slow store drains 120 chunks of 1 MiB", { timeout: 120_000 }, async (t) => {
    const log = pino({ level: "silent" });
    const stored: number[] = [];
    let maxPending = 0;
    let pausedSeen = false;
    const queue = {
      appendLog: async (_agent: string, _task: string, offset: number, data: Uint8Array) => {
        await new Promise((r) => setTimeout(r, 8));
        stored.push(offset);
        return { ackOffset: offset + data.length, stored: offset + data.length };
      },
      recordStickers: async () => undefined,
      renew: async () => undefined,
    } as unknown as TaskQueue;
    const sessions = new SessionRegistry({ heartbeatIntervalMs: () => 60_000, silentAfterMs: () => 600_000, now: () => Date.now() });
    const server = new grpc.Server({ "grpc.max_receive_message_length": 4 * MiB });
    server.addService(
      serverDefinition(AgentService, { maxMessageBytes: 2 * MiB }),
      agentServiceImpl({
        fleet: {} as FleetService,
        listener: () => ({ verdictFor: () => ({ ok: true, agentId: "agt_bp", serial: "01", notAfter: Date.now() + 3_600_000, notBefore: 0 }) }) as unknown as MtlsListener,
        sessions,
        recorder: { connected: () => undefined, heartbeat: () => undefined, disconnected: () => undefined } as unknown as LivenessRecorder,
        revocations: { serials: new Set(), agents: new Set() },
        admission: { tryAdmit: () => ({ admitted: true }) } as unknown as AdmissionGate,
        refusals: { refuse: () => undefined } as unknown as RefusalRecorder,
        clock: { now: () => Date.now() },
        heartbeatIntervalMs: 60_000,
        caBundle: () => [],
        log,
        tasks: { queue, dispatcher: { wake: () => undefined } as unknown as TaskDispatcher, signingKeys: () => [] },
        streamIntake: {
          observe: (bytes, paused) => {
            maxPending = Math.max(maxPending, bytes);
            pausedSeen ||= paused;
          },
        },
      }),
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    t.after(() => server.forceShutdown());
    const Client = clientConstructor(AgentService);
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": 4 * MiB }) as unknown as grpc.Client & {
      connect(): grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;
    };
    t.after(() => client.close());
    const call = client.connect();
    call.on("data", () => undefined);
    call.on("error", () => undefined);
    const write = (m: ConnectRequest) => new Promise<void>((resolve) => (call.write(m) ? resolve() : call.once("drain", () => resolve())));
    await write(create(ConnectRequestSchema, { body: { case: "hello", value: create(HelloSchema, { agentId: "agt_bp" }) } }));
    const chunks = 120;
    const data = new Uint8Array(MiB).fill(0x61);
    for (let i = 0; i < chunks; i++) {
      await write(create(ConnectRequestSchema, { body: { case: "logChunk", value: create(LogChunkSchema, { taskId: "tsk_bp", seq: BigInt(i), offset: BigInt(i * MiB), data }) } }));
    }
    const deadline = Date.now() + 60_000;
    while (stored.length < chunks && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    call.cancel();

    assert.deepEqual(stored, Array.from({ length: chunks }, (_, i) => i * MiB), "every chunk applied, in order");
    assert.ok(pausedSeen, "the stream was paused");
    // The bound: the high mark plus the one message that crossed it (each message counts its bytes plus a little).
    assert.ok(maxPending <= DEFAULT_STREAM_INTAKE.highBytes + MiB + 1024, `pending bytes reached ${maxPending}`);
  });
});
