// The task-signing public keys this agent trusts: first from its enrolment, then as the control plane announces them
// (Welcome, SigningKeys). Public material, written atomically; a task signed by any other key is refused.
import { promises as fs } from "node:fs";
import path from "node:path";
import type { TrustedTaskKey } from "@ferry/pki";
import type { TaskSigningKey } from "@ferry/proto/wire";
import { writeFileAtomic } from "@ferry/pki";

export const TRUSTED_KEYS_FILE = "task-signing-keys.json";

export async function readTrustedKeys(stateDir: string): Promise<TrustedTaskKey[]> {
  try {
    const v = JSON.parse(await fs.readFile(path.join(stateDir, TRUSTED_KEYS_FILE), "utf8")) as { keys?: TrustedTaskKey[] };
    return Array.isArray(v.keys) ? v.keys : [];
  } catch {
    return [];
  }
}

export async function writeTrustedKeys(stateDir: string, keys: readonly TaskSigningKey[]): Promise<void> {
  const plain = keys.map((k) => ({ keyId: k.keyId, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem, notAfterMs: Number(k.notAfterMs) }));
  await writeFileAtomic(path.join(stateDir, TRUSTED_KEYS_FILE), `${JSON.stringify({ keys: plain }, null, 2)}\n`, 0o644);
}
