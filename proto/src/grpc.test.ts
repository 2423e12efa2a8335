import assert from "node:assert/strict";
import { create, fromBinary } from "@bufbuild/protobuf";
import { describe, it } from "node:test";
import { ConnectResponseSchema, PingSchema, SigningKeysSchema, TaskSigningKeySchema } from "./gen/ferry/agent/v1/agent_pb.js";
import { encoder, isMalformed, serverDefinition } from "./grpc.js";
import { AgentService } from "./gen/ferry/agent/v1/agent_pb.js";

describe("grpc glue", () => {
  it("encodes a message written to many streams once, and distinct messages each time", () => {
    const enc = encoder(ConnectResponseSchema);
    const ping = create(ConnectResponseSchema, { body: { case: "ping", value: create(PingSchema, { nonce: 7n }) } });
    const a = enc(ping);
    assert.equal(enc(ping), a, "same object, same bytes");
    const other = create(ConnectResponseSchema, { body: { case: "ping", value: create(PingSchema, { nonce: 8n }) } });
    const b = enc(other);
    assert.notEqual(b, a);
    const decoded = fromBinary(ConnectResponseSchema, b);
    assert.equal(decoded.body.case === "ping" && decoded.body.value.nonce, 8n);
  });

  it("turns undecodable and oversize requests into markers instead of throwing into grpc-js", () => {
    const def = serverDefinition(AgentService, { maxMessageBytes: 16 });
    const connect = def["connect"];
    assert.ok(connect);
    const bad: unknown = connect.requestDeserialize(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    assert.ok(isMalformed(bad) && bad.code === "MALFORMED_MESSAGE");
    const big: unknown = connect.requestDeserialize(Buffer.alloc(17));
    assert.ok(isMalformed(big) && big.code === "MESSAGE_TOO_LARGE");
  });

  it("reports a response it cannot encode (an int64 out of range) instead of failing in silence", () => {
    const failures: string[] = [];
    const def = serverDefinition(AgentService, { maxMessageBytes: 1024, onEncodeError: (method) => failures.push(method) });
    const connect = def["connect"];
    assert.ok(connect);
    const keys = create(TaskSigningKeySchema, { keyId: "tsk_1", notAfterMs: 360_000_000_000_000_000_000n });
    const msg = create(ConnectResponseSchema, { body: { case: "signingKeys", value: create(SigningKeysSchema, { keys: [keys] }) } });
    assert.throws(() => connect.responseSerialize(msg));
    assert.deepEqual(failures, ["/ferry.agent.v1.AgentService/Connect"]);
  });
});
