// EnrolmentService (TLS, server-authenticated): join token + CSR -> certificate.
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
import type { AdmissionGate } from "./admission.js";
import { factsRecord } from "./agent-service.js";
import type { RefusalRecorder } from "./refusals.js";
import { toWireError } from "./wire-errors.js";

export interface EnrolmentServiceDeps {
  fleet: FleetService;
  admission: AdmissionGate;
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
      // FleetService audits its own refusals (token and CSR problems); only log here.
      const { agent, certificate } = await d.fleet.enrol({
        tokenSecret: req.joinToken,
        csrPem: req.csrPem,
        name: req.name,
        facts: factsRecord(req.facts),
        peer,
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
      if (isFerryError(err)) d.log.warn({ code: err.code, peer }, `enrolment refused: ${err.message}`);
      callback(toWireError(err, d.log));
    }
  }
  return {
    enrol: (call: ServerUnaryCall<Incoming<typeof EnrolRequestSchema>, EnrolResponse>, cb: sendUnaryData<EnrolResponse>) => {
      void enrol(call, cb);
    },
  };
}
