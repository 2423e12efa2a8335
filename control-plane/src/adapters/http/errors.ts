// Maps every failure to the API's one error shape, once:
//   { "error": { "code": "STABLE_CODE", "message": "what happened and what to do", "details": {...} }, "requestId": "…" }
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ERROR_CATALOGUE, type ErrorCode } from "../../domain/error-catalogue.js";
import { FerryError, isFerryError } from "../../domain/errors.js";

export interface ApiErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
  requestId: string;
}

function fromFastify(err: FastifyError): FerryError | null {
  if (err.validation) {
    const first = err.validation[0];
    const where = err.validationContext ?? "body";
    const path = first?.instancePath ? first.instancePath.replace(/^\//, "").replace(/\//g, ".") : "";
    let message = first?.message ?? "is invalid";
    if (first?.keyword === "additionalProperties") {
      const extra = String((first.params as { additionalProperty?: string }).additionalProperty);
      return new FerryError("VALIDATION_FAILED", `${where}${path ? `.${path}` : ""}: unknown field "${extra}"`, { field: path ? `${path}.${extra}` : extra });
    }
    if (first?.keyword === "required") {
      const missing = String((first.params as { missingProperty?: string }).missingProperty);
      return new FerryError("VALIDATION_FAILED", `${where}: "${missing}" is required`, { field: missing });
    }
    message = `${where}${path ? `.${path}` : ""} ${message}`;
    return new FerryError("VALIDATION_FAILED", message, { field: path || where });
  }
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new FerryError("BODY_TOO_LARGE", "the request body is larger than the server accepts");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new FerryError("UNSUPPORTED_MEDIA_TYPE", "send the request body as application/json");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new FerryError("MALFORMED_JSON", "the request body is empty; send a JSON object");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new FerryError("VALIDATION_FAILED", "the Content-Length header does not match the body");
  }
  if (err instanceof SyntaxError || err.statusCode === 400) {
    return new FerryError("MALFORMED_JSON", `the request body is not valid JSON: ${err.message}`);
  }
  return null;
}

export function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const fe = isFerryError(err) ? err : fromFastify(err as FastifyError);
  if (!fe) {
    req.log.error({ err }, "unexpected error");
    const body: ApiErrorBody = {
      error: { code: "INTERNAL", message: "an unexpected error occurred; the server log has the details under this request id" },
      requestId: req.id,
    };
    return reply.status(500).send(body);
  }
  const spec = ERROR_CATALOGUE[fe.code];
  const body: ApiErrorBody = { error: { code: fe.code, message: fe.message }, requestId: req.id };
  if (Object.keys(fe.details).length > 0) body.error.details = fe.details;
  if (spec.http >= 500) req.log.error({ err: fe.cause ?? fe, code: fe.code }, fe.message);
  else req.log.info({ code: fe.code }, fe.message);
  if (fe.code === "RATE_LIMITED" && typeof fe.details["retryAfterSeconds"] === "number") {
    void reply.header("retry-after", String(fe.details["retryAfterSeconds"]));
  }
  return reply.status(spec.http).send(body);
}
