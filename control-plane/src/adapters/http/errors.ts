// Maps every failure to the API's one error shape, once:
//   { "error": { "code": "STABLE_CODE", "message": "what happened and what to do", "details": {...} }, "requestId": "…" }
//
// Domain errors arrive as FerryError. Errors from below the domain are folded into the same vocabulary here: the
// store's (unreachable database, data a column cannot hold), pki's (keyring busy or broken), and fastify's own
// (schema validation, body parsing, bad URLs). Only what none of them recognises is INTERNAL.
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import type { ErrorCode } from "../../domain/error-catalogue.js";
import { FerryError, isFerryError } from "../../domain/errors.js";
import { foldDatabaseError } from "../store/database-errors.js";
import { httpStatusOf } from "./error-status.js";
import { foldPkiError } from "./pki-errors.js";
import { schemaError } from "./schema-errors.js";

export interface ApiErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
  requestId: string;
}

function fromFastify(err: FastifyError): FerryError | null {
  if (err.validation) return schemaError(err.validation, err.validationContext);
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new FerryError("BODY_TOO_LARGE", "the request body is larger than the server accepts");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new FerryError("UNSUPPORTED_MEDIA_TYPE", "send the request body as JSON with the header 'Content-Type: application/json'");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new FerryError("MALFORMED_JSON", "the request body is empty; send a JSON object");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new FerryError("MALFORMED_REQUEST", "the Content-Length header does not match the body");
    case "FST_ERR_BAD_URL":
      return new FerryError("MALFORMED_REQUEST", "the URL path is not valid percent-encoding (a '%' must be followed by two hex digits of UTF-8)");
    case "FST_ERR_MAX_PARAM_LENGTH":
      return new FerryError("VALIDATION_FAILED", "path: a path parameter is longer than the server accepts", { field: "path", in: "path" });
    case "FST_ERR_CTP_INVALID_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_TYPE":
      return new FerryError("UNSUPPORTED_MEDIA_TYPE", "the Content-Type header is not valid; send 'Content-Type: application/json'");
  }
  // Any other refusal fastify makes of a request is about the request's form, not a fault of the server.
  if (typeof err.code === "string" && err.code.startsWith("FST_") && typeof err.statusCode === "number" && err.statusCode < 500) {
    return new FerryError("MALFORMED_REQUEST", err.message, { reason: err.code });
  }
  return null;
}

/** The FerryError an error stands for, or null for a fault nobody recognises (answered as INTERNAL). */
export function toFerryError(err: unknown): FerryError | null {
  if (isFerryError(err)) return err;
  return foldDatabaseError(err) ?? foldPkiError(err) ?? (typeof err === "object" && err !== null ? fromFastify(err as FastifyError) : null);
}

export function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const fe = toFerryError(err);
  if (!fe) {
    req.log.error({ err }, "unexpected error");
    const body: ApiErrorBody = {
      error: { code: "INTERNAL", message: "an unexpected error occurred; the server log has the details under this request id" },
      requestId: req.id,
    };
    return reply.status(httpStatusOf("INTERNAL")).send(body);
  }
  const status = httpStatusOf(fe.code);
  const body: ApiErrorBody = { error: { code: fe.code, message: fe.message }, requestId: req.id };
  if (Object.keys(fe.details).length > 0) body.error.details = fe.details;
  if (status >= 500) req.log.error({ err: fe.cause ?? fe, code: fe.code }, fe.message);
  else req.log.info({ code: fe.code }, fe.message);
  if (fe.code === "RATE_LIMITED" && typeof fe.details["retryAfterSeconds"] === "number") {
    void reply.header("retry-after", String(fe.details["retryAfterSeconds"]));
  }
  return reply.status(status).send(body);
}
