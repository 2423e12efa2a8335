// Every status a handler ends a call with carries a Ferry code: over a real grpc-js server and client on loopback,
// a handler that fails with a plain Error, and one whose response cannot be encoded (what a keyring with an
// out-of-range time did to every Connect: INTERNAL "Error serializing response", no code, nothing logged).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { errorCodeInterceptor } from "./error-code-interceptor.js";
import { parseWireError, wireError } from "./errors.js";
import { AckTaskRequestSchema, AgentService, ConnectResponseSchema, PullTasksRequestSchema, WelcomeSchema, type ConnectResponse } from "./gen/ferry/agent/v1/agent_pb.js";
import { clientConstructor, serverDefinition } from "./grpc.js";

async function serve(t: { after(fn: () => void): void }, withInterceptor: boolean, logged: string[]) {
  const server = new grpc.Server(withInterceptor ? { interceptors: [errorCodeInterceptor({ onSerializeError: (err, method) => logged.push(`${method}: ${(err as Error).message}`) })] } : {});
  server.addService(serverDefinition(AgentService, { maxMessageBytes: 1024 * 1024 }), {
    pullTasks: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(new Error("boom: a plain error")),
    ackTask: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(wireError("PROTOCOL_VIOLATION", "already coded")),
    reportResult: () => undefined,
    renewCertificate: () => undefined,
    connect: (call: grpc.ServerDuplexStream<unknown, ConnectResponse>) => {
      call.on("data", () => undefined);
      call.write(create(ConnectResponseSchema, { body: { case: "welcome", value: create(WelcomeSchema, { heartbeatIntervalMs: 2 ** 40 }) } }));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.after(() => server.forceShutdown());
  const Client = clientConstructor(AgentService);
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  t.after(() => client.close());
  const unaryError = (name: string) =>
    new Promise<unknown>((resolve) => (client[name] as (r: unknown, cb: (e: unknown) => void) => void).call(client, name === "ackTask" ? create(AckTaskRequestSchema, {}) : create(PullTasksRequestSchema, {}), resolve));
  const streamError = () =>
    new Promise<unknown>((resolve) => {
      const call = (client["connect"] as () => grpc.ClientDuplexStream<unknown, unknown>).call(client);
      call.on("data", () => undefined);
      call.on("error", resolve);
    });
  return { unaryError, streamError };
}

describe("error code interceptor", () => {
  it("gives a plain handler error and an unencodable response Ferry's INTERNAL code, and reports the encoding failure", { timeout: 30_000 }, async (t) => {
    const logged: string[] = [];
    const s = await serve(t, true, logged);
    const plain = parseWireError(await s.unaryError("pullTasks"));
    assert.equal(plain.code, "INTERNAL");
    const coded = parseWireError(await s.unaryError("ackTask"));
    assert.deepEqual([coded.code, coded.message], ["PROTOCOL_VIOLATION", "already coded"]);
    const raw = (await s.streamError()) as grpc.ServiceError;
    assert.equal(raw.code, grpc.status.INTERNAL);
    assert.equal(raw.metadata.get("ferry-error-code")[0], "INTERNAL");
    assert.match(raw.details, /could not encode its answer/);
    assert.equal(logged.length, 1);
    assert.match(logged[0] ?? "", /Connect: .*invalid uint32/);
  });

  it("(without it, grpc-js answers both with no Ferry code — what agents used to get)", { timeout: 30_000 }, async (t) => {
    const s = await serve(t, false, []);
    const plain = (await s.unaryError("pullTasks")) as grpc.ServiceError;
    assert.equal(plain.metadata.get("ferry-error-code").length, 0);
    const raw = (await s.streamError()) as grpc.ServiceError;
    assert.equal(raw.metadata.get("ferry-error-code").length, 0);
    assert.match(raw.details, /serializ/i);
  });
});
