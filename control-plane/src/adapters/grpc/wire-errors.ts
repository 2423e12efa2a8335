// Maps control-plane errors to wire errors, once, for every gRPC handler.
import type { ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { WireErrorCodes, wireError, type WireErrorCode } from "@ferry/proto";
import { isFerryError } from "../../domain/errors.js";

export function toWireError(err: unknown, log: Logger): ServiceError {
  if (typeof err === "object" && err !== null && "metadata" in err && "code" in err) return err as ServiceError;
  if (isFerryError(err)) {
    if (Object.hasOwn(WireErrorCodes, err.code)) {
      const retryAfterMs = err.details["retryAfterMs"];
      return wireError(err.code as WireErrorCode, err.message, typeof retryAfterMs === "number" ? retryAfterMs : undefined);
    }
    if (err.code === "AGENT_NOT_FOUND") return wireError("AGENT_UNKNOWN", err.message);
  }
  log.error({ err }, "unexpected error in an agent call");
  return wireError("INTERNAL", "an unexpected error occurred; the control plane log has the details");
}
