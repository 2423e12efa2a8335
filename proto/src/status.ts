// The gRPC status codes (https://github.com/grpc/grpc/blob/master/doc/statuscodes.md), without grpc-js.
//
// The agent speaks gRPC through its own small client on node:http2 and must not load grpc-js (docs/performance.md,
// "Footprint"), yet it reads and reports the same numbers. The values are fixed by the gRPC specification and equal
// grpc-js's `status` enum member for member (status.test.ts checks it), so a GrpcStatus compares equal to a
// grpc.status wherever the two meet (the control plane's handlers, its tests, the bench).
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusName = keyof typeof GrpcStatus;
export type GrpcStatusCode = (typeof GrpcStatus)[GrpcStatusName];

const NAMES: readonly string[] = Object.keys(GrpcStatus);

/** "UNAVAILABLE" for 14; the number itself for a code outside the specification (a server may send any). */
export function grpcStatusName(code: number): string {
  return Number.isInteger(code) && code >= 0 && code < NAMES.length ? (NAMES[code] as string) : String(code);
}
