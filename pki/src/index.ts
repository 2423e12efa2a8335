// @ferry/pki: the fleet CA, agent key pairs and CSRs, certificate inspection, join strings and CA pinning.
// See docs/pki.md for the scheme.
export { PkiError } from "./pki-error.js";
export type { PkiErrorCode } from "./pki-error.js";
export { FleetCa } from "./ca.js";
export type { IssuedCertificate } from "./ca.js";
export { generateKeyPair } from "./key-pair.js";
export { createCsr } from "./csr.js";
export { AGENT_URI_PREFIX, CONTROL_PLANE_URI } from "./identity.js";
export { certificateInfo, peerIdentity } from "./certificate-info.js";
export type { CertificateInfo, PeerCertificateFields, PeerIdentity } from "./certificate-info.js";
export { fingerprintOf } from "./fingerprint.js";
export { splitPemBundle } from "./pem.js";
export { decodeJoinString, encodeJoinString } from "./join-string.js";
export type { JoinString } from "./join-string.js";
export { generateSecret, hashSecret } from "./secret.js";
export { fetchPinnedCa } from "./fetch-pinned-ca.js";
export { controlPlaneIdentityCheck } from "./control-plane-identity-check.js";
export { canonicalJson } from "./canonical-json.js";
export {
  CLOCK_SKEW_LEEWAY_MS,
  DEFAULT_ROTATION_OVERLAP_MS,
  MAX_ROTATION_OVERLAP_MS,
  KEYRING_INDEX_FILE,
  TASK_PAYLOAD_TYPE,
  TASK_SIGNING_ALGORITHM,
  TaskKeyringError,
  TaskRefusal,
  TaskSigningKeyring,
  newTaskNonce,
  pae,
  parseTaskPayload,
  taskKeyId,
  verifySignedTask,
} from "./task-signing.js";
export type {
  ActiveTaskKey,
  SignedTaskEnvelope,
  TaskAction,
  TaskImage,
  TaskPayload,
  TaskRefusalCode,
  TaskSigningKeyRecord,
  TrustedTaskKey,
} from "./task-signing.js";
export {
  EVIDENCE_GENESIS_HASH,
  EVIDENCE_PAYLOAD_TYPE,
  EVIDENCE_PRIVATE_KEY_FILE,
  EVIDENCE_PUBLIC_KEY_FILE,
  EvidenceKey,
  EvidenceKeyError,
  evidenceHash,
  evidenceKeyId,
  isEvidenceHash,
  signEvidence,
  verifyEvidence,
} from "./evidence.js";
export type {
  EvidenceActor,
  EvidenceDocument,
  EvidenceEnvelope,
  EvidenceFailureCode,
  EvidenceGate,
  EvidenceKind,
  EvidencePublicKey,
  EvidenceSignature,
  EvidenceTarget,
  EvidenceVerification,
} from "./evidence.js";
export { fsyncDir, writeFileAtomic } from "./atomic-file.js";
export { LISTENER_CIPHERS, LISTENER_TLS_OPTIONS } from "./tls-options.js";
