// EnrolmentService (TLS, server-authenticated): join token + CSR -> certificate.
//
// Unauthenticated, so everything a caller can make it do is bounded: each peer address has its own admission bucket
// in front of the shared one (a flood from one address spends only its own), and every refusal is recorded through
// the refusal recorder, which audits at most a fixed number per code per minute (and logs and counts the rest).
import { create } from "@bufbuild/protobuf";
import type { ServerUnaryCall, sendUnaryData, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { PublishedKey } from "../../ports/signer.js";
import { signingKeysMessage } from "./agent-service.js";
import {
  EnrolResponseSchema,
  isMalformed,
  wireError,
  type EnrolRequestSchema,
  type EnrolResponse,
  type Incoming,
} from "@ferry/proto";
import { isFerryError } from "../../domain/errors.js";
import type { FleetService } from "../../domain/fleet/fleet-service.js";
import type { AdmissionGate, PeerAdmission } from "./admission.js";
import { factsRecord } from "./agent-service.js";
import type { RefusalRecorder } from "./refusals.js";
import { toWireError } from "./wire-errors.js";

export interface EnrolmentServiceDeps {
  fleet: FleetService;
  admission: AdmissionGate;
  /** Per peer address, checked before `admission`. */
  peerAdmission?: PeerAdmission;
  refusals: RefusalRecorder;
  caBundle: () => string[];
  agentEndpoint: () => string;
  heartbeatIntervalMs: number;
  signingKeys: () => PublishedKey[];
  log: Logger;
  onEnrol?: (outcome: "ok" | "refused") => void;
}

export function enrolmentServiceImpl(d: EnrolmentServiceDeps): UntypedServiceImplementation {
  async function enrol(
    call: ServerUnaryCall<Incoming<typeof EnrolRequestSchema>, EnrolResponse>,
    callback: sendUnaryData<EnrolResponse>,
  ): Promise<void> {
    const peer = call.getPeer();
    const own = d.peerAdmission?.tryAdmit(peer) ?? { admitted: true as const };
    if (!own.admitted) {
      d.onEnrol?.("refused");
      callback(wireError("RATE_LIMITED", "too many enrolments from this address; retry later", own.retryAfterMs));
      return;
    }
    const admission = d.admission.tryAdmit();
    if (!admission.admitted) {
      d.onEnrol?.("refused");
      callback(wireError("RATE_LIMITED", "too many enrolments at once; retry later", admission.retryAfterMs));
      return;
    }
    const req = call.request;
    if (isMalformed(req)) {
      d.refusals.refuse("enrolment", req.code, req.detail, { peer });
      d.onEnrol?.("refused");
      callback(wireError(req.code, req.detail));
      return;
    }
    try {
      // Token and CSR refusals go through the capped recorder (FleetService would audit each one otherwise).
      const { agent, certificate } = await d.fleet.enrol({
        tokenSecret: req.joinToken,
        csrPem: req.csrPem,
        name: req.name,
        facts: factsRecord(req.facts),
        peer,
        onRefused: (action, code, details) => d.refusals.refuse("enrolment", code, typeof details["reason"] === "string" ? details["reason"] : code, details, action),
      });
      d.log.info({ agentId: agent.id, name: agent.name, environment: agent.environment, peer }, "agent enrolled");
      d.onEnrol?.("ok");
      callback(
        null,
        create(EnrolResponseSchema, {
          agentId: agent.id,
          certificatePem: certificate.certPem,
          caBundlePem: d.caBundle(),
          environment: agent.environment,
          labels: agent.labels,
          heartbeatIntervalMs: d.heartbeatIntervalMs,
          agentEndpoint: d.agentEndpoint(),
          taskSigningKeys: signingKeysMessage(d.signingKeys()),
        }),
      );
    } catch (err) {
      d.onEnrol?.("refused");
      // The refusal itself was logged by the recorder; only what it did not see (a fault) is logged here.
      if (!isFerryError(err)) d.log.warn({ err, peer }, "enrolment failed");
      callback(toWireError(err, d.log));
    }
  }
  return {
    enrol: (call: ServerUnaryCall<Incoming<typeof EnrolRequestSchema>, EnrolResponse>, cb: sendUnaryData<EnrolResponse>) => {
      void enrol(call, cb);
    },
  };
}
