// Enrolment: join string → pinned CA → key + CSR → Enrol → state directory (docs/protocol.md, "Enrolment").
//
// Order matters for safety:
//   1. the state directory is checked first, so refusing to overwrite an identity never consumes a join token;
//   2. the CA is fetched and pinned *before* anything secret is sent: if the presented chain does not hold the CA
//      whose fingerprint the join string carries, the token never leaves the host;
//   3. the key pair is generated locally and only the CSR travels.
//
// The join string and the token are secrets: they are never logged and never put in an error message.
import { writeTrustedKeys } from "./trusted-keys.js";
import { setTimeout as sleep } from "node:timers/promises";

import { create } from "@bufbuild/protobuf";
import { certificateInfo, createCsr, decodeJoinString, fetchPinnedCa, generateKeyPair, PkiError } from "@ferry/pki";
import { EnrolRequestSchema, GrpcStatus, grpcStatusName, parseWireError, type HostFacts, type WireError } from "@ferry/proto/wire";
import type { Logger } from "pino";

import { AgentError } from "./agent-error.js";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { createEnrolmentClient, grpcTarget } from "./channel.js";
import { keyMatchesCertificate, type Identity, type StateDir } from "./state-dir.js";

export interface EnrolOptions {
  /** `ferry-join-v1.…` as copied by the operator. Secret. */
  joinString: string;
  stateDir: StateDir;
  facts: HostFacts;
  logger: Logger;
  /** Display name requested for the agent; defaults to the host name. */
  name?: string;
  /** Replace an identity already in the state directory. */
  force?: boolean;
  /** Deadline of each network step. Default 30 s. */
  callTimeoutMs?: number;
  /** Enrol attempts while the control plane answers RATE_LIMITED. Default 5. */
  maxAttempts?: number;
  backoff?: Partial<BackoffOptions>;
  signal?: AbortSignal;
}

export interface EnrolResult {
  identity: Identity;
  certificate: { serial: string; notBefore: Date; notAfter: Date };
}

/** The port of the agent listener, for a control plane that does not announce its agent endpoint. */
const DEFAULT_AGENT_PORT = 7071;

/** What each refusal means for the operator, and what to do about it. */
const REFUSALS: Partial<Record<WireError["code"], string>> = {
  JOIN_TOKEN_MALFORMED: "the join token is malformed; copy the whole join string again",
  JOIN_TOKEN_INVALID: "the join token is unknown or has been revoked; create a new one with `ferry token create`",
  JOIN_TOKEN_EXPIRED: "the join token has expired; create a new one with `ferry token create`",
  JOIN_TOKEN_USED:
    "the join token has already been used (tokens are single-use by default); create a new one with `ferry token create`",
  CSR_INVALID: "the control plane refused the certificate request",
  CSR_KEY_NOT_ALLOWED: "the control plane does not accept this agent's key type",
  RATE_LIMITED: "the control plane is rate limiting enrolments; try again in a moment",
};

function refusal(w: WireError, endpoint: string): AgentError {
  if (w.status === GrpcStatus.UNAVAILABLE || w.status === GrpcStatus.DEADLINE_EXCEEDED) {
    if (w.code === "UNKNOWN") {
      return new AgentError(
        "ENROL_UNAVAILABLE",
        "unavailable",
        `cannot reach the enrolment endpoint ${endpoint}: ${w.message}`,
        { cause: w },
      );
    }
  }
  const meaning = REFUSALS[w.code];
  const message =
    meaning === undefined
      ? `enrolment failed: ${w.code === "UNKNOWN" ? grpcStatusName(w.status) : w.code}: ${w.message}`
      : `enrolment refused (${w.code}): ${meaning}${w.message ? ` — control plane said: ${w.message}` : ""}`;
  const kind = w.code === "INTERNAL" || w.code === "UNKNOWN" ? "internal" : "refused";
  return new AgentError(w.code, kind, message, w.retryAfterMs === undefined ? { cause: w } : { cause: w, retryAfterMs: w.retryAfterMs });
}

function decodeJoin(joinString: string): ReturnType<typeof decodeJoinString> {
  try {
    return decodeJoinString(joinString.trim());
  } catch (err) {
    // @ferry/pki names the wrong part without echoing the token. The error is not chained as `cause`: whatever
    // else it carries stays out of logs.
    const detail = err instanceof PkiError ? err.message.replace(/^join string: /, "") : "it cannot be decoded";
    throw new AgentError(
      "JOIN_STRING_MALFORMED",
      "usage",
      `the join string is malformed (${detail}); copy it again from \`ferry token create\` (it starts with ferry-join-v1.)`,
    );
  }
}

async function pinCa(endpoint: string, fingerprint: string, timeoutMs: number): Promise<string> {
  try {
    return await fetchPinnedCa(endpoint, fingerprint, { timeoutMs });
  } catch (err) {
    if (err instanceof PkiError) {
      if (err.code === "CA_PIN_MISMATCH") {
        throw new AgentError(
          "CA_PIN_MISMATCH",
          "refused",
          `the enrolment endpoint ${endpoint} did not present the CA pinned by the join string (${fingerprint}); ` +
            `the join string belongs to another control plane, or the connection is being intercepted. ` +
            `Nothing secret was sent.`,
          { cause: err },
        );
      }
      if (err.code === "CA_UNREACHABLE") {
        throw new AgentError(
          "ENROL_UNAVAILABLE",
          "unavailable",
          `cannot reach the enrolment endpoint ${endpoint}: ${err.message}`,
          { cause: err },
        );
      }
      // CERT_INVALID: the pinned CA is there but does not vouch for the server certificate (or it is not the
      // control plane's). A trust failure, not a network one.
      throw new AgentError(
        "CA_PIN_MISMATCH",
        "refused",
        `cannot establish trust in the enrolment endpoint ${endpoint} (${err.code}): ${err.message}. Nothing secret was sent.`,
        { cause: err },
      );
    }
    throw new AgentError(
      "ENROL_UNAVAILABLE",
      "unavailable",
      `cannot reach the enrolment endpoint ${endpoint}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** The host of an endpoint with the default agent port, for a control plane that announced no agent endpoint. */
function defaultAgentEndpoint(enrolEndpoint: string): string {
  const target = grpcTarget(enrolEndpoint);
  const host = target.startsWith("[") ? target.slice(0, target.indexOf("]") + 1) : target.split(":")[0];
  return `${host}:${DEFAULT_AGENT_PORT}`;
}

/**
 * Enrols this host and writes the state directory. Throws AgentError: kind `usage` (join string, state directory),
 * `refused` (pin mismatch or a refusal from the control plane), `unavailable` (cannot reach it).
 */
export async function enrol(opts: EnrolOptions): Promise<EnrolResult> {
  const timeoutMs = opts.callTimeoutMs ?? 30_000;
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
  const join = decodeJoin(opts.joinString);
  const name = opts.name?.trim() || opts.facts.hostname;
  const log = opts.logger.child({ enrolEndpoint: join.enrolEndpoint });

  await opts.stateDir.prepareForEnrolment({ force: opts.force ?? false });

  log.info({ caFingerprint: join.caFingerprint }, "fetching the control plane's CA and checking it against the pin");
  const caPem = await pinCa(join.enrolEndpoint, join.caFingerprint, timeoutMs);

  const keys = await generateKeyPair();
  const csrPem = await createCsr(keys.privateKeyPem, { commonName: name });
  const request = create(EnrolRequestSchema, { joinToken: join.token, csrPem, name, facts: opts.facts });

  const client = createEnrolmentClient(join.enrolEndpoint, caPem);
  const backoff = new Backoff(opts.backoff);
  try {
    for (let attempt = 1; ; attempt++) {
      opts.signal?.throwIfAborted();
      let response;
      try {
        // "agentName", not "name": pino already uses "name" for the logger itself.
        log.info({ agentName: name, attempt }, "sending enrolment request");
        response = await client.enrol(request, { deadline: Date.now() + timeoutMs });
      } catch (err) {
        const w = parseWireError(err);
        const rateLimited = w.code === "RATE_LIMITED" || (w.code === "UNKNOWN" && w.status === GrpcStatus.RESOURCE_EXHAUSTED);
        if (rateLimited && attempt < maxAttempts) {
          const delayMs = backoff.next(w.retryAfterMs);
          log.warn({ attempt, retryAfterMs: w.retryAfterMs, delayMs }, "enrolment rate limited; retrying");
          await sleep(delayMs, undefined, opts.signal ? { signal: opts.signal } : undefined);
          continue;
        }
        throw refusal(w, join.enrolEndpoint);
      }

      if (response.agentId === "" || response.certificatePem === "") {
        throw new AgentError("ENROL_RESPONSE_INVALID", "internal", "the control plane answered without an agent id or certificate");
      }
      let info;
      try {
        if (!keyMatchesCertificate(keys.privateKeyPem, response.certificatePem)) {
          throw new Error("the certificate is not for this agent's key");
        }
        info = certificateInfo(response.certificatePem);
      } catch (err) {
        throw new AgentError("ENROL_RESPONSE_INVALID", "internal", `the control plane answered with an unusable certificate: ${(err as Error).message}`, { cause: err });
      }
      if (info.agentId !== null && info.agentId !== response.agentId) {
        throw new AgentError(
          "ENROL_RESPONSE_INVALID",
          "internal",
          `the certificate names agent ${info.agentId} but the control plane said ${response.agentId}`,
        );
      }

      let agentEndpoint = response.agentEndpoint;
      if (agentEndpoint === "") {
        agentEndpoint = defaultAgentEndpoint(join.enrolEndpoint);
        log.warn({ agentEndpoint }, "the control plane announced no agent endpoint; assuming the default port");
      }
      const identity: Identity = {
        agentId: response.agentId,
        name,
        environment: response.environment,
        labels: { ...response.labels },
        agentEndpoint,
        enrolEndpoint: join.enrolEndpoint,
        caFingerprint: join.caFingerprint,
        enrolledAt: new Date().toISOString(),
      };
      if (response.heartbeatIntervalMs > 0) identity.heartbeatIntervalMs = response.heartbeatIntervalMs;
      const bundle = response.caBundlePem.length > 0 ? response.caBundlePem : [caPem];
      await opts.stateDir.writeEnrolment({
        identity,
        credentials: {
          keyPem: keys.privateKeyPem,
          certPem: response.certificatePem,
          caBundlePem: bundle.map((pem) => pem.trim()).join("\n") + "\n",
        },
      });
      await writeTrustedKeys(opts.stateDir.path, response.taskSigningKeys);
      log.info(
        {
          agentId: identity.agentId,
          environment: identity.environment,
          serial: info.serial,
          notAfter: info.notAfter.toISOString(),
          stateDir: opts.stateDir.path,
        },
        "enrolled",
      );
      return { identity, certificate: { serial: info.serial, notBefore: info.notBefore, notAfter: info.notAfter } };
    }
  } finally {
    client.close();
  }
}
