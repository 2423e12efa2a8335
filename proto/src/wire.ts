// @ferry/proto/wire: what a client of the agent protocol needs — the generated messages and service descriptors,
// the gRPC status codes and the wire error catalogue — without loading grpc-js. The agent imports only this
// (docs/performance.md, "Footprint"); the control plane imports "." (index.ts), which adds the grpc-js glue.
export * from "./gen/ferry/agent/v1/agent_pb.js";
export * from "./status.js";
export * from "./wire-errors.js";
