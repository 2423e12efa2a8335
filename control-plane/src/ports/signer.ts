// What the control plane needs from its task-signing key: sign a task payload, and publish the public keys agents
// must trust (two during a rotation). Implemented by TaskSigningKeyring in @ferry/pki.

export interface TaskImage {
  component: string;
  repository: string;
  digest: string;
  /** repository@digest */
  ref: string;
}

export interface TaskPayloadV1 {
  v: 1;
  taskId: string;
  deploymentId: string;
  /** The audience: the only agent that may run the task. */
  agentId: string;
  issuedAt: number;
  notAfter: number;
  nonce: string;
  action: "deploy" | "rollback" | "inspect";
  target: { id: string; name: string; kind: string; config: Record<string, unknown> };
  release: { id: string; name: string; version: string } | null;
  images: TaskImage[];
}

export interface SignedEnvelope {
  payload: Uint8Array;
  payloadType: string;
  keyId: string;
  signature: Uint8Array;
}

export interface PublishedKey {
  keyId: string;
  algorithm: string;
  publicKeyPem: string;
  notAfterMs: number;
}

export interface TaskSigner {
  sign(payload: TaskPayloadV1): SignedEnvelope;
  publicKeys(now?: number): PublishedKey[];
}
