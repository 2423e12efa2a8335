// grpc-js glue for protobuf-es service descriptors.
//
// protobuf-es generates message schemas and service descriptors but no grpc-js stubs; this file turns a
// GenService descriptor into a grpc-js ServiceDefinition (server side) and a typed client constructor.
//
// Decoding on the server never throws into grpc-js: grpc-js would answer a parse failure with INTERNAL and a
// generic text. Instead the deserializer returns a MalformedMessage marker, and the handler answers with a
// Ferry error code (MALFORMED_MESSAGE or MESSAGE_TOO_LARGE) and logs the refusal.
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";

export const MALFORMED = Symbol.for("ferry.malformed-message");

/** Stands in for a request message that could not be decoded. */
export interface MalformedMessage {
  readonly [MALFORMED]: true;
  readonly code: "MALFORMED_MESSAGE" | "MESSAGE_TOO_LARGE";
  readonly detail: string;
}

export function isMalformed(value: unknown): value is MalformedMessage {
  return typeof value === "object" && value !== null && MALFORMED in value;
}

export interface DecodeOptions {
  /** Messages larger than this are refused with MESSAGE_TOO_LARGE before decoding. */
  maxMessageBytes: number;
  /**
   * Called when a response cannot be encoded (a field out of its wire range). grpc-js answers the call with
   * INTERNAL "Error serializing response" and logs nothing, so without this the server would fail every such call
   * in silence. The error is rethrown after the call.
   */
  onEncodeError?: (method: string, err: unknown) => void;
}

function decoder<D extends DescMessage>(schema: D, opts: DecodeOptions) {
  return (buf: Buffer): MessageShape<D> | MalformedMessage => {
    if (buf.length > opts.maxMessageBytes) {
      return {
        [MALFORMED]: true,
        code: "MESSAGE_TOO_LARGE",
        detail: `message of ${buf.length} bytes exceeds the limit of ${opts.maxMessageBytes} bytes`,
      };
    }
    try {
      return fromBinary(schema, buf);
    } catch (err) {
      return {
        [MALFORMED]: true,
        code: "MALFORMED_MESSAGE",
        detail: `cannot decode ${schema.typeName}: ${(err as Error).message}`,
      };
    }
  };
}

/**
 * Encodes messages, remembering the last one: a broadcast writes the same message object to thousands of streams,
 * and grpc-js serializes per write. Messages are never mutated after they are first written (they are built fresh
 * for each send), so reusing the bytes of an identical object is safe.
 */
export function encoder<D extends DescMessage>(schema: D) {
  let lastMsg: MessageShape<D> | null = null;
  let lastBuf: Buffer | null = null;
  return (msg: MessageShape<D>): Buffer => {
    if (msg === lastMsg && lastBuf) return lastBuf;
    const buf = Buffer.from(toBinary(schema, msg));
    lastMsg = msg;
    lastBuf = buf;
    return buf;
  };
}

/** grpc-js definition for a server: requests decode to the message or a MalformedMessage marker. */
export function serverDefinition<T extends GenServiceMethods>(
  service: GenService<T>,
  opts: DecodeOptions,
): grpc.ServiceDefinition {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each method has its own message types
  const def: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const method of service.methods) {
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: encoder(method.input),
      requestDeserialize: decoder(method.input, opts),
      responseSerialize: reportingEncoder(`/${service.typeName}/${method.name}`, encoder(method.output), opts.onEncodeError),
      responseDeserialize: (buf: Buffer) => fromBinary(method.output, buf),
      originalName: method.localName,
    };
  }
  return def as grpc.ServiceDefinition;
}

function reportingEncoder<M>(path: string, encode: (msg: M) => Buffer, onError: DecodeOptions["onEncodeError"]): (msg: M) => Buffer {
  if (!onError) return encode;
  return (msg) => {
    try {
      return encode(msg);
    } catch (err) {
      onError(path, err);
      throw err;
    }
  };
}

/** grpc-js definition for a client: responses that fail to decode surface as call errors. */
export function clientDefinition<T extends GenServiceMethods>(service: GenService<T>): grpc.ServiceDefinition {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each method has its own message types
  const def: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const method of service.methods) {
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: encoder(method.input),
      requestDeserialize: (buf: Buffer) => fromBinary(method.input, buf),
      responseSerialize: encoder(method.output),
      responseDeserialize: (buf: Buffer) => fromBinary(method.output, buf),
      originalName: method.localName,
    };
  }
  return def as grpc.ServiceDefinition;
}

/** A request as the server sees it: decoded, or the marker for a message that could not be. */
export type Incoming<D extends DescMessage> = MessageShape<D> | MalformedMessage;

export type UnaryHandler<I extends DescMessage, O extends DescMessage> = grpc.handleUnaryCall<
  Incoming<I>,
  MessageShape<O>
>;
export type BidiHandler<I extends DescMessage, O extends DescMessage> = grpc.handleBidiStreamingCall<
  Incoming<I>,
  MessageShape<O>
>;

export type UnaryClientMethod<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response?: MessageShape<O>) => void,
) => grpc.ClientUnaryCall;

export type BidiClientMethod<I extends DescMessage, O extends DescMessage> = (
  metadata?: grpc.Metadata,
  options?: Partial<grpc.CallOptions>,
) => grpc.ClientDuplexStream<MessageShape<I>, MessageShape<O>>;

/** Client constructor for a service. The caller narrows the instance type to its methods. */
export function clientConstructor<T extends GenServiceMethods>(service: GenService<T>): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(clientDefinition(service), service.typeName);
}

/** Promise form of a unary call. */
export function unary<I extends DescMessage, O extends DescMessage>(
  method: UnaryClientMethod<I, O>,
  self: grpc.Client,
  request: MessageShape<I>,
  options: Partial<grpc.CallOptions> = {},
  metadata: grpc.Metadata = new grpc.Metadata(),
): Promise<MessageShape<O>> {
  return new Promise((resolve, reject) => {
    method.call(self, request, metadata, options, (err, res) => {
      if (err) reject(err);
      else if (res === undefined) reject(new Error("empty response"));
      else resolve(res);
    });
  });
}
