// What the control plane needs from its task-signing key: sign a task payload, and publish the public keys agents
// must trust (two during a rotation). Implemented by TaskSigningKeyring in @ferry/pki. The payload is the contract's
// (@ferry/contract), the envelope pki's; the agent verifies against the same definitions.
import type { TaskImage, TaskPayload } from "@ferry/contract";
import type { SignedTaskEnvelope } from "@ferry/pki";

export type { TaskImage, TaskPayload, SignedTaskEnvelope as SignedEnvelope };

export interface PublishedKey {
  keyId: string;
  algorithm: string;
  publicKeyPem: string;
  notAfterMs: number;
}

export interface TaskSigner {
  sign(payload: TaskPayload): SignedTaskEnvelope;
  publicKeys(now?: number): PublishedKey[];
}
