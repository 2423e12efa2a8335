// Hand-driven gRPC clients for refusal tests: they present whatever certificate (or bytes) a test wants, which the
// real agent never would.
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { controlPlaneIdentityCheck, createCsr, generateKeyPair } from "@ferry/pki";
import {
  AgentService,
  ConnectRequestSchema,
  EnrolRequestSchema,
  EnrolmentService,
  HelloSchema,
  HeartbeatSchema,
  clientConstructor,
  parseWireError,
  type ConnectRequest,
  type ConnectResponse,
  type EnrolResponse,
  type WireError,
} from "@ferry/proto";

export interface Identity {
  keyPem: string;
  certPem: string;
}

export function channelCredentials(caPem: string, id?: Identity): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    Buffer.from(caPem),
    id ? Buffer.from(id.keyPem) : null,
    id ? Buffer.from(id.certPem) : null,
    { checkServerIdentity: controlPlaneIdentityCheck() },
  );
}

// SNI may not be an IP address (RFC 6066); the name is only SNI, identity is checked by URI (see pki).
const CHANNEL_OPTIONS = { "grpc.ssl_target_name_override": "ferry-control-plane" };

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export function enrolClient(endpoint: string, caPem: string): Client {
  const Ctor = clientConstructor(EnrolmentService);
  return new Ctor(endpoint, channelCredentials(caPem), CHANNEL_OPTIONS) as unknown as Client;
}

export function agentClient(endpoint: string, caPem: string, id?: Identity): Client {
  const Ctor = clientConstructor(AgentService);
  return new Ctor(endpoint, channelCredentials(caPem, id), CHANNEL_OPTIONS) as unknown as Client;
}

export async function newCsr(name = "raw"): Promise<{ keyPem: string; csrPem: string }> {
  const kp = await generateKeyPair();
  return { keyPem: kp.privateKeyPem, csrPem: await createCsr(kp.privateKeyPem, { commonName: name }) };
}

export function callEnrol(
  client: Client,
  req: { joinToken: string; csrPem: string; name?: string },
): Promise<{ ok: true; res: EnrolResponse } | { ok: false; err: WireError }> {
  return new Promise((resolve) => {
    const msg = create(EnrolRequestSchema, { joinToken: req.joinToken, csrPem: req.csrPem, name: req.name ?? "raw" });
    (client["enrol"] as (r: unknown, cb: (e: grpc.ServiceError | null, r?: EnrolResponse) => void) => void).call(client, msg, (err, res) => {
      if (err) resolve({ ok: false, err: parseWireError(err) });
      else resolve({ ok: true, res: res as EnrolResponse });
    });
  });
}

/** Sends raw bytes as a request to a unary method and returns the wire error. */
export function rawUnary(endpoint: string, caPem: string, path: string, bytes: Buffer, id?: Identity): Promise<WireError | null> {
  const client = new grpc.Client(endpoint, channelCredentials(caPem, id), CHANNEL_OPTIONS);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      (err) => {
        client.close();
        resolve(err ? parseWireError(err) : null);
      },
    );
  });
}

export interface OpenStream {
  received: ConnectResponse[];
  send(msg: ConnectRequest): void;
  /** Resolves with the error that ended the stream (or null on a clean end). */
  ended: Promise<WireError | null>;
  close(): void;
}

export function openStream(client: Client): OpenStream {
  const call = (client["connect"] as () => grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>).call(client);
  const received: ConnectResponse[] = [];
  call.on("data", (m: ConnectResponse) => received.push(m));
  const ended = new Promise<WireError | null>((resolve) => {
    call.on("error", (err) => resolve(parseWireError(err)));
    call.on("end", () => resolve(null));
  });
  return { received, send: (m) => call.write(m), ended, close: () => call.cancel() };
}

export const hello = (agentId: string) =>
  create(ConnectRequestSchema, { body: { case: "hello", value: create(HelloSchema, { agentId, agentTimeMs: BigInt(Date.now()) }) } });

export const heartbeat = (agentId: string, seq: number) =>
  create(ConnectRequestSchema, {
    body: { case: "heartbeat", value: create(HeartbeatSchema, { agentId, seq: BigInt(seq), agentTimeMs: BigInt(Date.now()) }) },
  });
