// The one place an error category becomes an HTTP status. Domain errors carry only a category (see
// domain/error-category.ts); this table is the JSON API's half of the mapping, as connect-es keeps its
// code-to-HTTP-status table in its protocol adapter rather than beside the codes.
import { ERROR_CATALOGUE, type ErrorCode } from "../../domain/error-catalogue.js";
import type { ErrorCategory } from "../../domain/error-category.js";

export const HTTP_STATUS_BY_CATEGORY = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  failed_precondition: 422,
  too_large: 413,
  unsupported_format: 415,
  resource_exhausted: 429,
  internal: 500,
  upstream_failed: 502,
  unavailable: 503,
} as const satisfies Record<ErrorCategory, number>;

// HTTP has statuses finer than any transport-neutral category; a code listed here answers with its own.
const HTTP_STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  HEADERS_TOO_LARGE: 431,
};

export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS_BY_CODE[code] ?? HTTP_STATUS_BY_CATEGORY[ERROR_CATALOGUE[code].category];
}
