export * from "./gen/ferry/agent/v1/agent_pb.js";
export * from "./status.js";
export * from "./grpc.js";
export * from "./errors.js";
export * from "./error-code-interceptor.js";
