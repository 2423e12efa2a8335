// Building wire errors for grpc-js handlers (the control plane). The catalogue and parseWireError live in
// wire-errors.ts, which does not load grpc-js, so the agent can import them through @ferry/proto/wire.
import * as grpc from "@grpc/grpc-js";
import { ERROR_CODE_KEY, RETRY_AFTER_KEY, WireErrorCodes, type WireErrorCode } from "./wire-errors.js";

export * from "./wire-errors.js";

/** Builds the error a handler passes to grpc-js (callback(err) or call.destroy(err) / emit). */
export function wireError(code: WireErrorCode, message: string, retryAfterMs?: number): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_KEY, code);
  if (retryAfterMs !== undefined) metadata.set(RETRY_AFTER_KEY, String(Math.max(0, Math.round(retryAfterMs))));
  const err = new Error(`${code}: ${message}`) as grpc.ServiceError;
  err.code = WireErrorCodes[code];
  err.details = `${code}: ${message}`;
  err.metadata = metadata;
  return err;
}
