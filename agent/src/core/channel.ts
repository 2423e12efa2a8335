// gRPC clients for the two control-plane listeners, on the agent's own client (grpc/client.ts, node:http2).
//
// Trust is the pinned fleet CA only (never the system store), and the server's identity is the control-plane URI SAN
// checked by @ferry/pki, not the host name the agent dialled: agents keep working behind NAT, load balancers or
// renamed hosts (docs/protocol.md, "Listeners").
import { isIP } from "node:net";

import { controlPlaneIdentityCheck } from "@ferry/pki";
import {
  AgentService,
  EnrolmentService,
  type ConnectRequestSchema,
  type ConnectResponseSchema,
  type EnrolRequest,
  type EnrolResponse,
  type PullTasksRequest,
  type PullTasksResponse,
  type RenewCertificateRequest,
  type RenewCertificateResponse,
  type ReportResultRequest,
  type ReportResultResponse,
} from "@ferry/proto/wire";

import { agentVersion } from "./facts.js";
import { GrpcClient, type CallOptions, type ClientCall, type KeepaliveOptions } from "./grpc/client.js";

export type { CallOptions, KeepaliveOptions } from "./grpc/client.js";

/** The Connect stream: ConnectRequest out, ConnectResponse in. */
export type ConnectCall = ClientCall<typeof ConnectRequestSchema, typeof ConnectResponseSchema>;

export interface EnrolmentClient {
  enrol(request: EnrolRequest, options?: CallOptions): Promise<EnrolResponse>;
  close(): void;
}

export interface AgentClient {
  connect(options?: CallOptions): ConnectCall;
  renewCertificate(request: RenewCertificateRequest, options?: CallOptions): Promise<RenewCertificateResponse>;
  pullTasks(request: PullTasksRequest, options?: CallOptions): Promise<PullTasksResponse>;
  reportResult(request: ReportResultRequest, options?: CallOptions): Promise<ReportResultResponse>;
  close(): void;
}

// One checker for the process: it parses certificates, and every connection would otherwise build its own.
let identityCheck: ReturnType<typeof controlPlaneIdentityCheck> | undefined;
function checkServerIdentity(): ReturnType<typeof controlPlaneIdentityCheck> {
  identityCheck ??= controlPlaneIdentityCheck();
  return identityCheck;
}

/** An endpoint as written in a join string or identity.json ("host:port", maybe with a scheme) as a "host:port" target. */
export function grpcTarget(endpoint: string): string {
  return endpoint.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/+$/, "");
}

/** The host part of a target ("[::1]:7071" → "::1"). */
function targetHost(target: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(target);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const i = target.lastIndexOf(":");
  return i > 0 && !target.slice(0, i).includes(":") ? target.slice(0, i) : target;
}

export const DEFAULT_KEEPALIVE: KeepaliveOptions = { timeMs: 30_000, timeoutMs: 10_000 };

/**
 * The TLS server name: the host name, or "ferry-control-plane" for an IP literal, which RFC 6066 forbids as SNI (Node
 * warns, DEP0123). The name is only SNI: the server's identity is checked by URI SAN, not host name.
 */
export function serverName(target: string): string {
  const host = targetHost(target);
  return isIP(host) !== 0 ? "ferry-control-plane" : host;
}

function client(endpoint: string, tls: { ca: string; key?: string; cert?: string }, keepalive?: KeepaliveOptions): GrpcClient {
  const target = grpcTarget(endpoint);
  // Each client owns its connection: closing it really closes it, and a client built with renewed credentials
  // performs a new TLS handshake rather than reusing a connection made with the old certificate.
  return new GrpcClient({
    target,
    ...tls,
    servername: serverName(target),
    checkServerIdentity: checkServerIdentity(),
    userAgent: `ferry-agent/${agentVersion()}`,
    ...(keepalive !== undefined ? { keepalive } : {}),
  });
}

/** Client for the enrolment listener: server-authenticated TLS against the pinned CA. */
export function createEnrolmentClient(endpoint: string, caPem: string): EnrolmentClient {
  const c = client(endpoint, { ca: caPem });
  return {
    enrol: (request, options) => c.unary(EnrolmentService.method.enrol, request, options),
    close: () => c.close(),
  };
}

/** Client for the agent listener: mutual TLS with the agent's key and certificate. */
export function createAgentClient(
  endpoint: string,
  credentials: { keyPem: string; certPem: string; caBundlePem: string },
  keepalive: KeepaliveOptions = DEFAULT_KEEPALIVE,
): AgentClient {
  const c = client(endpoint, { ca: credentials.caBundlePem, key: credentials.keyPem, cert: credentials.certPem }, keepalive);
  return {
    connect: (options) => c.call(AgentService.method.connect, options),
    renewCertificate: (request, options) => c.unary(AgentService.method.renewCertificate, request, options),
    pullTasks: (request, options) => c.unary(AgentService.method.pullTasks, request, options),
    reportResult: (request, options) => c.unary(AgentService.method.reportResult, request, options),
    close: () => c.close(),
  };
}

