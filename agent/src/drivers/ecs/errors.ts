// How ECS API failures become driver failures with stable codes. The SDK raises each error as an exception named by
// the `__type` of the JSON 1.1 body (ClusterNotFoundException, AccessDeniedException, ...); transport failures have no
// HTTP status at all.
import { DriverError } from "../driver.js";

const NOT_FOUND = new Set(["ClusterNotFoundException", "ServiceNotFoundException", "ServiceNotActiveException", "ServiceDeploymentNotFoundException"]);
const DENIED = new Set(["AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "MissingAuthenticationTokenException", "CredentialsProviderError"]);
const UNAVAILABLE = new Set(["ThrottlingException", "ServerException", "ServiceUnavailableException", "TimeoutError", "RequestTimeout"]);

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/** An error of an ECS call as a DriverError naming the call; never carries credentials (SDK messages do not). */
export function ecsError(action: string, err: unknown): DriverError {
  if (err instanceof DriverError) return err;
  const e = (err ?? {}) as SdkError;
  const name = e.name ?? "Error";
  const status = e.$metadata?.httpStatusCode;
  const details: Record<string, unknown> = { action, awsError: name, ...(e.$metadata?.requestId ? { requestId: e.$metadata.requestId } : {}) };
  const text = `${name}: ${e.message ?? String(err)}`;
  if (NOT_FOUND.has(name)) return new DriverError("TARGET_NOT_FOUND", `ECS ${action}: ${text}`, details);
  if (DENIED.has(name)) return new DriverError("PLATFORM_ACCESS_DENIED", `ECS ${action} was refused for the gateway agent's credentials: ${text}`, details);
  if (UNAVAILABLE.has(name) || status === undefined || status >= 500 || status === 429) {
    return new DriverError("PLATFORM_UNAVAILABLE", `ECS ${action} failed: ${text}${e.code ? ` (${e.code})` : ""}`, details);
  }
  return new DriverError("PLATFORM_REJECTED", `ECS ${action} was refused: ${text}`, details);
}
