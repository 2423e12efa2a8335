// Requests Node's HTTP parser refuses before fastify sees them (headers over the size limit, a malformed request
// line or header). There is no request or reply object yet, so the answer is written to the socket by hand, in the
// API's error shape like every other refusal. A request that timed out, or a connection the client already reset,
// gets no answer: nobody is waiting for one.
import { randomBytes } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FerryError } from "../../domain/errors.js";
import type { ApiErrorBody } from "./errors.js";
import { httpStatusOf } from "./error-status.js";

export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || err.code === "ERR_HTTP_REQUEST_TIMEOUT" || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const [code, message]: [FerryError["code"], string] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? ["HEADERS_TOO_LARGE", "the request's headers are larger than the server accepts; send fewer or shorter headers"]
      : ["MALFORMED_REQUEST", "the HTTP request could not be read (malformed request line or header)"];
  const status = httpStatusOf(code);
  const body: ApiErrorBody = { error: { code, message }, requestId: `req_${randomBytes(5).toString("hex")}` };
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}
