// Every error code the control plane's JSON API can answer with. Codes are stable: clients and scripts match on
// them. docs/errors.md is generated from this table by a test that fails when the two differ.

export interface ErrorSpec {
  http: number;
  description: string;
}

export const ERROR_CATALOGUE = {
  UNAUTHENTICATED: { http: 401, description: "No bearer token, or the token is unknown, expired or revoked." },
  FORBIDDEN: { http: 403, description: "The token's roles do not include the role this endpoint requires." },
  NOT_FOUND: { http: 404, description: "No such resource, or no such route." },
  VALIDATION_FAILED: { http: 400, description: "The request body, query or path is not valid; details name the field." },
  BODY_TOO_LARGE: { http: 413, description: "The request body exceeds the configured limit." },
  UNSUPPORTED_MEDIA_TYPE: { http: 415, description: "The request body is not application/json." },
  MALFORMED_JSON: { http: 400, description: "The request body is not valid JSON." },
  AGENT_NOT_FOUND: { http: 404, description: "No agent with this id." },
  AGENT_ALREADY_REVOKED: { http: 409, description: "The agent was revoked before; revocation is final." },
  AGENT_REVOKED: { http: 403, description: "The agent was revoked; it must be enrolled again with a new join token." },
  JOIN_TOKEN_MALFORMED: { http: 400, description: "The join token is not of the right form." },
  JOIN_TOKEN_INVALID: { http: 401, description: "The join token is unknown or was revoked." },
  JOIN_TOKEN_EXPIRED: { http: 401, description: "The join token's time to live has passed." },
  JOIN_TOKEN_USED: { http: 401, description: "The join token has no uses left." },
  JOIN_TOKEN_NOT_FOUND: { http: 404, description: "No join token with this id." },
  CSR_INVALID: { http: 400, description: "The certificate signing request does not parse or its signature does not verify." },
  CSR_KEY_NOT_ALLOWED: { http: 400, description: "The certificate signing request's key is not ECDSA P-256." },
  UNKNOWN_TARGET_KIND: { http: 400, description: "A target's kind is not one of docker, compose, ecs, nomad, ssh, winrm." },
  ENVIRONMENT_NOT_FOUND: { http: 404, description: "No environment with this name." },
  ENVIRONMENT_EXISTS: { http: 409, description: "An environment with this name (or at this position) already exists." },
  ENVIRONMENT_IN_USE: { http: 409, description: "The environment still has targets or agents; remove them first." },
  TARGET_NOT_FOUND: { http: 404, description: "No target with this name in the environment." },
  TARGET_EXISTS: { http: 409, description: "The environment already has a target with this name." },
  TARGET_AGENT_MISMATCH: { http: 422, description: "The agent serving a target must belong to the target's environment and not be revoked." },
  COMPONENT_NOT_FOUND: { http: 404, description: "No component with this name." },
  COMPONENT_EXISTS: { http: 409, description: "A component with this name already exists." },
  COMPONENT_IN_USE: { http: 409, description: "Releases pin this component; it cannot be deleted." },
  UNKNOWN_COMPONENT: { http: 422, description: "A release names a component that is not registered." },
  COMPONENT_REPOSITORY_MISMATCH: { http: 422, description: "A release pins an image from a repository other than the component's." },
  RELEASE_EXISTS: { http: 409, description: "A release with this name and version already exists; releases are immutable, cut a new version." },
  RELEASE_NOT_FOUND: { http: 404, description: "No release with this id or name@version." },
  IDEMPOTENCY_KEY_REUSED: { http: 422, description: "The Idempotency-Key was used before with a different request." },
  IDEMPOTENCY_KEY_IN_PROGRESS: { http: 409, description: "A request with this Idempotency-Key is still being processed; retry shortly." },
  API_TOKEN_NOT_FOUND: { http: 404, description: "No API token with this id." },
  INVALID_REFERENCE: { http: 400, description: "An image reference is not of the form registry/repository[:tag][@sha256:digest]." },
  INVALID_DIGEST: { http: 400, description: "A digest is not of the form sha256:<64 lowercase hex>." },
  TAG_NOT_FOUND: { http: 422, description: "The registry has no such tag in the repository." },
  DIGEST_NOT_FOUND: { http: 422, description: "The registry has no manifest with this digest in the repository." },
  REPOSITORY_NOT_FOUND: { http: 422, description: "The registry does not know the repository." },
  REGISTRY_UNREACHABLE: { http: 502, description: "The registry could not be reached or did not answer in time; nothing was created." },
  REGISTRY_AUTH_FAILED: { http: 502, description: "The registry refused Ferry's credentials (or the bearer-token exchange failed)." },
  REGISTRY_DIGEST_MISMATCH: { http: 502, description: "The registry's Docker-Content-Digest does not match the hash of the manifest it served." },
  REGISTRY_ERROR: { http: 502, description: "The registry answered with an unexpected status or an unreadable manifest." },
  REGISTRY_CREDENTIALS_INVALID: { http: 500, description: "The registry credentials store is misconfigured (unreadable, insecure mode, or not valid JSON); the server log says which." },
  REGISTRY_CREDENTIALS_NOT_FOUND: { http: 422, description: "A component names registry credentials that the secret store does not hold." },
  RATE_LIMITED: { http: 429, description: "Too many requests; retry after the time in Retry-After." },
  STORE_UNAVAILABLE: { http: 503, description: "The database cannot be reached." },
  INTERNAL: { http: 500, description: "An unexpected fault; the log has the details under the request id." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
