// The gRPC-over-HTTP/2 wire pieces the agent's client needs (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
// length-prefixed messages, the grpc-timeout header, the grpc-message percent-encoding, and the HTTP status → gRPC
// status mapping for answers that are not gRPC at all (a proxy's 503, a web server on the wrong port).
//
// Everything read here comes from the network: the decoder never holds more than one message of at most
// maxMessageBytes, refuses a frame it did not ask for (compressed) and says why with a gRPC status.
import { GrpcStatus } from "@ferry/proto/wire";

/** grpc-js's default for the largest message a client accepts. */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;

const PREFIX_BYTES = 5;

/** A message as gRPC sends it: flag 0 (not compressed), 4-byte big-endian length, the bytes. */
export function encodeFrame(body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, PREFIX_BYTES);
  return frame;
}

/** A framing fault: the call ends with this status. */
export class FrameError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "FrameError";
  }
}

/**
 * Splits the DATA of one response into messages, whatever the chunking: a message split across chunks, several in
 * one chunk. The buffer for a message is allocated once its prefix is read and checked against the limit, so memory
 * is bounded by the limit, not by what the peer sends.
 */
export class FrameDecoder {
  readonly #max: number;
  readonly #prefix = Buffer.alloc(PREFIX_BYTES);
  #prefixLength = 0;
  #body: Buffer | undefined;
  #bodyLength = 0;

  constructor(maxMessageBytes = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES) {
    this.#max = maxMessageBytes;
  }

  /** Whether a message has begun and not ended (a response that ends here was cut short). */
  get partial(): boolean {
    return this.#prefixLength > 0 || this.#body !== undefined;
  }

  /** The complete messages in this chunk (and those before it). Throws FrameError; the decoder is then unusable. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.#body === undefined) {
        const n = Math.min(PREFIX_BYTES - this.#prefixLength, chunk.length - at);
        chunk.copy(this.#prefix, this.#prefixLength, at, at + n);
        this.#prefixLength += n;
        at += n;
        if (this.#prefixLength < PREFIX_BYTES) break;
        const flag = this.#prefix.readUInt8(0);
        const length = this.#prefix.readUInt32BE(1);
        if (flag === 1) {
          throw new FrameError(GrpcStatus.INTERNAL, "received a compressed message, but only identity encoding was accepted");
        }
        if (flag !== 0) throw new FrameError(GrpcStatus.INTERNAL, `received a message with an invalid compression flag (${flag})`);
        if (length > this.#max) {
          // grpc-js's wording, so logs read the same as before.
          throw new FrameError(GrpcStatus.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${this.#max})`);
        }
        this.#prefixLength = 0;
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyLength = 0;
      }
      const body = this.#body;
      const n = Math.min(body.length - this.#bodyLength, chunk.length - at);
      chunk.copy(body, this.#bodyLength, at, at + n);
      this.#bodyLength += n;
      at += n;
      if (this.#bodyLength === body.length) {
        out.push(body);
        this.#body = undefined;
        this.#bodyLength = 0;
      }
    }
    return out;
  }
}

/** A time left as grpc-timeout: at most 8 digits and a unit, rounded up to the next whole unit. */
export function encodeTimeout(ms: number): string {
  const left = Math.max(0, Math.ceil(ms));
  const MAX = 99_999_999;
  if (left <= MAX) return `${left}m`;
  const units: Array<[string, number]> = [
    ["S", 1_000],
    ["M", 60_000],
    ["H", 3_600_000],
  ];
  for (const [unit, size] of units) {
    const n = Math.ceil(left / size);
    if (n <= MAX) return `${n}${unit}`;
  }
  return `${MAX}H`;
}

/** grpc-message is percent-encoded UTF-8 (the spec); a malformed escape is kept as it is rather than failing. */
export function decodeGrpcMessage(raw: string): string {
  if (!raw.includes("%")) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(raw.slice(i + 1, i + 3))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      // node hands header values over as latin1: one character, one byte.
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** The gRPC status for an HTTP answer without a gRPC status (doc/http-grpc-status-mapping.md). */
export function statusFromHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}
