// The dispatch baseline: the least a server must do to push a signed task to an agent that already holds a stream.
// A bare grpc-js server with real mTLS (client certificates required, checked against the fleet CA) serving the same
// ferry.agent.v1.AgentService/Connect method with the same protobuf codec as Ferry. On Hello it answers Welcome with
// the task-signing public keys; on the orchestrator's `offer` command it builds the same task payload Ferry builds,
// signs it with an Ed25519 key (TaskSigningKeyring, as Ferry does) and writes the TaskOffer on that agent's stream.
// No database, no queue, no lease, no NOTIFY, no logging: what Ferry spends above this is its durable queue.
// Forked by main.ts and driven over IPC.
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { TaskSigningKeyring, newTaskNonce, type TaskPayload } from "@ferry/pki";
import {
  AgentService,
  ConnectResponseSchema,
  HeartbeatAckSchema,
  SignedTaskSchema,
  TaskOfferSchema,
  TaskSigningKeySchema,
  WelcomeSchema,
  isMalformed,
  serverDefinition,
  type ConnectRequestSchema,
  type ConnectResponse,
  type Incoming,
} from "@ferry/proto";
import { now, serve } from "../fleet/ipc.js";
import type { BaselineCommands } from "./ipc.js";

type Call = grpc.ServerDuplexStream<Incoming<typeof ConnectRequestSchema>, ConnectResponse>;

const streams = new Map<string, Call>();
let server: grpc.Server | null = null;
let keyring: TaskSigningKeyring | null = null;
let intervalMs = 15_000;
let acks = 0;
let results = 0;

function connect(call: Call): void {
  let agentId: string | null = null;
  const gone = () => {
    if (agentId && streams.get(agentId) === call) streams.delete(agentId);
  };
  call.on("data", (msg: Incoming<typeof ConnectRequestSchema>) => {
    if (isMalformed(msg)) return;
    switch (msg.body.case) {
      case "hello": {
        agentId = msg.body.value.agentId;
        streams.set(agentId, call);
        const keys = (keyring as TaskSigningKeyring).publicKeys().map((k) => create(TaskSigningKeySchema, { keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: BigInt(k.notAfterMs) }));
        call.write(create(ConnectResponseSchema, { body: { case: "welcome", value: create(WelcomeSchema, { agentId, heartbeatIntervalMs: intervalMs, serverTimeMs: BigInt(Date.now()), taskSigningKeys: keys }) } }));
        return;
      }
      case "heartbeat":
        call.write(create(ConnectResponseSchema, { body: { case: "heartbeatAck", value: create(HeartbeatAckSchema, { seq: msg.body.value.seq, serverTimeMs: BigInt(Date.now()), heartbeatIntervalMs: intervalMs }) } }));
        return;
      case "taskAck":
        acks += 1;
        return;
      case "taskResult":
        results += 1;
        return;
      default:
        return;
    }
  });
  call.on("end", () => {
    gone();
    call.end();
  });
  call.on("cancelled", gone);
  call.on("error", gone);
  call.on("close", gone);
}

serve<BaselineCommands>({
  start: async (args) => {
    intervalMs = args.heartbeatIntervalMs;
    keyring = await TaskSigningKeyring.loadOrCreate(args.keyringDir);
    server = new grpc.Server();
    server.addService(serverDefinition(AgentService, { maxMessageBytes: 1024 * 1024 }), {
      connect,
      renewCertificate: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: "baseline" }),
    });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(args.caPem), [{ private_key: Buffer.from(args.keyPem), cert_chain: Buffer.from(args.certChainPem) }], true);
    const port = await new Promise<number>((resolve, reject) => {
      (server as grpc.Server).bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p)));
    });
    return { port };
  },
  offer: (args) => {
    const queuedAt = now();
    const call = streams.get(args.agentId);
    if (!call || !keyring) return { queuedAt, sent: false };
    const issuedAt = Date.now();
    // The same shape and size as a Ferry docker task.
    const payload: TaskPayload = {
      v: 1,
      taskId: args.taskId,
      deploymentId: `dep_${randomBytes(8).toString("hex")}`,
      agentId: args.agentId,
      issuedAt,
      notAfter: issuedAt + 3_600_000,
      nonce: newTaskNonce(),
      action: "deploy",
      target: { id: args.target.id, name: args.target.name, kind: "docker", config: { container: args.target.name, component: "web" } },
      release: { id: "rel_baseline", name: "bench", version: "1" },
      images: [{ component: "web", repository: "127.0.0.1:5000/bench/web", digest: `sha256:${"0".repeat(64)}`, ref: `127.0.0.1:5000/bench/web@sha256:${"0".repeat(64)}` }],
    };
    const env = keyring.sign(payload);
    call.write(
      create(ConnectResponseSchema, {
        body: {
          case: "taskOffer",
          value: create(TaskOfferSchema, { task: create(SignedTaskSchema, { payload: env.payload, payloadType: env.payloadType, keyId: env.keyId, signature: env.signature }), attempt: 1 }),
        },
      }),
    );
    return { queuedAt, sent: true };
  },
  stats: () => ({ streams: streams.size, acks, results }),
  stop: () => {
    server?.forceShutdown();
    server = null;
    return null;
  },
});
