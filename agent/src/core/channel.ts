// grpc-js clients for the two control-plane listeners.
//
// Trust is the pinned fleet CA only (never the system store), and the server's identity is the control-plane URI SAN
// checked by @ferry/pki, not the host name the agent dialled: agents keep working behind NAT, load balancers or
// renamed hosts (docs/protocol.md, "Listeners").
import { isIP } from "node:net";

import {
  AgentService,
  clientConstructor,
  EnrolmentService,
  type BidiClientMethod,
  type ConnectRequestSchema,
  type ConnectResponseSchema,
  type EnrolRequestSchema,
  type EnrolResponseSchema,
  type RenewCertificateRequestSchema,
  type RenewCertificateResponseSchema,
  type UnaryClientMethod,
  type PullTasksRequestSchema,
  type PullTasksResponseSchema,
  type ReportResultRequestSchema,
  type ReportResultResponseSchema,
} from "@ferry/proto";
import { controlPlaneIdentityCheck } from "@ferry/pki";
import * as grpc from "@grpc/grpc-js";

export type EnrolmentClient = grpc.Client & {
  enrol: UnaryClientMethod<typeof EnrolRequestSchema, typeof EnrolResponseSchema>;
};

export type AgentClient = grpc.Client & {
  connect: BidiClientMethod<typeof ConnectRequestSchema, typeof ConnectResponseSchema>;
  renewCertificate: UnaryClientMethod<typeof RenewCertificateRequestSchema, typeof RenewCertificateResponseSchema>;
  pullTasks: UnaryClientMethod<typeof PullTasksRequestSchema, typeof PullTasksResponseSchema>;
  reportResult: UnaryClientMethod<typeof ReportResultRequestSchema, typeof ReportResultResponseSchema>;
};

const EnrolmentClientCtor = clientConstructor(EnrolmentService);
const AgentClientCtor = clientConstructor(AgentService);

// One checker for the process: grpc-js compares credentials by the identity of this function.
let identityCheck: ReturnType<typeof controlPlaneIdentityCheck> | undefined;
function checkServerIdentity(): ReturnType<typeof controlPlaneIdentityCheck> {
  identityCheck ??= controlPlaneIdentityCheck();
  return identityCheck;
}

/** An endpoint as written in a join string or identity.json ("host:port", maybe with a scheme) as a grpc-js target. */
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

export interface KeepaliveOptions {
  /** HTTP/2 PING after this long without activity. Not relied on (load balancers drop them), but cheap. */
  timeMs: number;
  /** Connection considered dead when a PING is not answered within this. */
  timeoutMs: number;
}

export const DEFAULT_KEEPALIVE: KeepaliveOptions = { timeMs: 30_000, timeoutMs: 10_000 };

function baseOptions(target: string): grpc.ChannelOptions {
  const options: grpc.ChannelOptions = {
    // Each client owns its connections: closing it really closes them, and a client built with renewed credentials
    // really performs a new TLS handshake instead of borrowing a pooled connection made with the old certificate.
    "grpc.use_local_subchannel_pool": 1,
  };
  // grpc-js would send an IP literal as TLS SNI, which RFC 6066 forbids (Node warns, DEP0123). The name is only SNI:
  // the server's identity is checked by URI SAN, not host name.
  if (isIP(targetHost(target)) !== 0) options["grpc.ssl_target_name_override"] = "ferry-control-plane";
  return options;
}

/** Client for the enrolment listener: server-authenticated TLS against the pinned CA. */
export function createEnrolmentClient(endpoint: string, caPem: string): EnrolmentClient {
  const target = grpcTarget(endpoint);
  const creds = grpc.credentials.createSsl(Buffer.from(caPem), null, null, {
    checkServerIdentity: checkServerIdentity(),
  });
  return new EnrolmentClientCtor(target, creds, baseOptions(target)) as unknown as EnrolmentClient;
}

/** Client for the agent listener: mutual TLS with the agent's key and certificate. */
export function createAgentClient(
  endpoint: string,
  credentials: { keyPem: string; certPem: string; caBundlePem: string },
  keepalive: KeepaliveOptions = DEFAULT_KEEPALIVE,
): AgentClient {
  const target = grpcTarget(endpoint);
  const creds = grpc.credentials.createSsl(
    Buffer.from(credentials.caBundlePem),
    Buffer.from(credentials.keyPem),
    Buffer.from(credentials.certPem),
    { checkServerIdentity: checkServerIdentity() },
  );
  return new AgentClientCtor(target, creds, {
    ...baseOptions(target),
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
    "grpc.keepalive_permit_without_calls": 0,
  }) as unknown as AgentClient;
}
