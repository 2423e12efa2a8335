// The baseline: the least a gRPC server must do to hold the fleet's streams. A bare grpc-js server with grpc-js's
// own TLS (real mTLS: client certificates required and checked against the fleet CA), serving the same
// ferry.agent.v1.AgentService/Connect method with the same protobuf codec as Ferry (serverDefinition from
// @ferry/proto). It answers each Heartbeat with a HeartbeatAck and does nothing else: no authentication beyond TLS,
// no session registry, no liveness, no database, no logging. Whatever Ferry costs above this is Ferry's own.
// Forked by main.ts and driven over IPC.
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AgentService,
  ConnectResponseSchema,
  HeartbeatAckSchema,
  PingSchema,
  isMalformed,
  serverDefinition,
  type ConnectRequestSchema,
  type ConnectResponse,
  type Incoming,
} from "@ferry/proto";
import { serve, type BaselineCommands } from "./ipc.js";

type Call = grpc.ServerDuplexStream<Incoming<typeof ConnectRequestSchema>, ConnectResponse>;

const streams = new Set<Call>();
let heartbeats = 0;
let intervalMs = 15_000;
let server: grpc.Server | null = null;

function connect(call: Call): void {
  streams.add(call);
  const gone = () => streams.delete(call);
  call.on("data", (msg: Incoming<typeof ConnectRequestSchema>) => {
    if (isMalformed(msg) || msg.body.case !== "heartbeat") return;
    heartbeats += 1;
    call.write(
      create(ConnectResponseSchema, {
        body: {
          case: "heartbeatAck",
          value: create(HeartbeatAckSchema, { seq: msg.body.value.seq, serverTimeMs: BigInt(Date.now()), heartbeatIntervalMs: intervalMs }),
        },
      }),
    );
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
    server = new grpc.Server();
    server.addService(serverDefinition(AgentService, { maxMessageBytes: 1024 * 1024 }), {
      connect,
      renewCertificate: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: "baseline" }),
    });
    const creds = grpc.ServerCredentials.createSsl(
      Buffer.from(args.caPem),
      [{ private_key: Buffer.from(args.keyPem), cert_chain: Buffer.from(args.certChainPem) }],
      true,
    );
    const port = await new Promise<number>((resolve, reject) => {
      (server as grpc.Server).bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p)));
    });
    return { port };
  },
  stats: () => ({ heartbeats, streams: streams.size }),
  memory: () => {
    const m = process.memoryUsage();
    return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
  },
  pingAll: (args) => {
    const msg = create(ConnectResponseSchema, { body: { case: "ping", value: create(PingSchema, { nonce: BigInt(args.nonce) }) } });
    let sent = 0;
    for (const call of streams) {
      call.write(msg);
      sent++;
    }
    return { sent };
  },
  stop: () => {
    server?.forceShutdown();
    server = null;
    return null;
  },
});
