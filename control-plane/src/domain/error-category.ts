// What kind of refusal or fault an error is, said without any transport. Each wire maps a category to its own status
// once (the HTTP adapter in adapters/http/error-status.ts); the domain never names an HTTP or gRPC status.
//
// The set follows connect-es's codes where one fits, plus the few distinctions Ferry's API has always made: a
// conflict with current state vs a rule the request does not meet (HTTP 409 vs 422), and a failing upstream system
// (the registry) vs Ferry's own database being unreachable (502 vs 503).

export const ERROR_CATEGORIES = {
  invalid_argument: "The request itself is malformed or out of bounds; change it before sending it again.",
  unauthenticated: "The caller could not be identified.",
  permission_denied: "The caller is known but may not do this.",
  not_found: "What the request names does not exist.",
  already_exists: "What the request would create exists already.",
  conflict: "The current state does not allow this now (in use, in progress, already decided); it may once the state changes.",
  failed_precondition: "The request is well formed but what it refers to does not meet the rules (unknown component, target without agent).",
  too_large: "The request is larger than the server accepts.",
  unsupported_format: "The request is not in a format the server reads.",
  resource_exhausted: "A rate or quota is used up; retry later.",
  upstream_failed: "A system Ferry depends on (an image registry) failed or refused; nothing was changed.",
  unavailable: "Ferry cannot serve the request now (its database is unreachable, or this replica is stopping); retry later, or on another replica.",
  internal: "A fault in the server or its configuration; the server log has the details.",
} as const;

export type ErrorCategory = keyof typeof ERROR_CATEGORIES;
