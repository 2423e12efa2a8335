// A server interceptor that makes every status a handler ends a call with carry a Ferry code.
//
// Handlers answer with wireError(), which sets the ferry-error-code metadata. Two paths escaped that and reached
// agents as a bare gRPC status: an error that was not a wire error (a thrown plain Error becomes UNKNOWN), and a
// response that grpc-js could not serialize (INTERNAL "Error serializing response", with nothing logged). This
// interceptor:
//   - encodes each response before grpc-js does (the method's encoder remembers the last message, so grpc-js's own
//     serialization then costs nothing); a failure is reported to onSerializeError and the call ends with INTERNAL
//     and its Ferry code instead of grpc-js's generic answer;
//   - adds a Ferry code to any non-OK status without one, derived from the gRPC status, and prefixes the details
//     with it as wireError does.
// Two answers are made by grpc-js before any interceptor runs and so cannot carry a code: UNIMPLEMENTED for a method
// the server does not have, and RESOURCE_EXHAUSTED for a frame past grpc.max_receive_message_length (set to 4 × the
// limit Ferry's own decoder enforces with MESSAGE_TOO_LARGE). docs/errors.md says so.
import * as grpc from "@grpc/grpc-js";
import { ERROR_CODE_KEY, wireError, type WireErrorCode } from "./errors.js";

/** The Ferry code for a status that arrived without one. */
export function fallbackWireCode(status: grpc.status): WireErrorCode {
  switch (status) {
    case grpc.status.RESOURCE_EXHAUSTED:
      return "MESSAGE_TOO_LARGE";
    case grpc.status.INVALID_ARGUMENT:
      return "MALFORMED_MESSAGE";
    case grpc.status.UNIMPLEMENTED:
    case grpc.status.FAILED_PRECONDITION:
      return "PROTOCOL_VIOLATION";
    case grpc.status.UNAVAILABLE:
      return "SERVER_SHUTTING_DOWN";
    default:
      return "INTERNAL";
  }
}

export interface ErrorCodeInterceptorOptions {
  /** A response could not be encoded: a bug on the server; log it with the method. */
  onSerializeError?: (err: unknown, method: string) => void;
}

export function errorCodeInterceptor(o: ErrorCodeInterceptorOptions = {}): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      sendMessage: (message: unknown, next: (message: unknown) => void) => {
        try {
          method.responseSerialize(message);
        } catch (err) {
          o.onSerializeError?.(err, method.path);
          const e = wireError("INTERNAL", "the control plane could not encode its answer; its log has the details");
          call.sendStatus({ code: e.code, details: e.details, metadata: e.metadata });
          return;
        }
        next(message);
      },
      sendStatus: (status, next) => {
        if (status.code === grpc.status.OK || (status.metadata?.get(ERROR_CODE_KEY).length ?? 0) > 0) {
          next(status);
          return;
        }
        const code = fallbackWireCode(status.code);
        const metadata = status.metadata?.clone() ?? new grpc.Metadata();
        metadata.set(ERROR_CODE_KEY, code);
        next({ ...status, details: `${code}: ${status.details}`, metadata });
      },
    });
}
