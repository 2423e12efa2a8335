// What the control plane needs from its task-signing key: sign a task payload, and publish the public keys agents
// must trust (two during a rotation). Implemented by TaskSigningKeyring in @ferry/pki, whose types define the
// payload and the envelope (the agent verifies against the same definitions).
import type { SignedTaskEnvelope, TaskImage, TaskPayload } from "@ferry/pki";

export type { TaskImage, TaskPayload as TaskPayloadV1, SignedTaskEnvelope as SignedEnvelope };

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
