// Host-key checks for SSH targets. A target pins its host's key in its (signed) config, either as the key itself
// ("ssh-ed25519 AAAA…", as in known_hosts) or as its SHA-256 fingerprint ("SHA256:…", as ssh-keygen -lf prints it).
// ssh2 hands `hostVerifier` the raw key blob the server presented; both forms are compared against that blob, so a
// key of another type with the same name cannot pass.
//
// Trust on first use is never implied: a target asks for it with hostKeyTrust "first-use", and the agent then records
// the first key it sees in drivers.ssh.knownHostsFile (one line per host: "[host]:port <type> <base64>", the
// known_hosts format) and pins it from then on. Without that file there is nowhere to record it, and the task is
// refused (HOST_KEY_UNKNOWN).
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";

/** The SHA-256 fingerprint of a key blob, as OpenSSH prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** "<type> <base64>" of a key blob (the type is the blob's own first string). */
export function keyLine(blob: Buffer): string {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const type = blob.subarray(4, 4 + len).toString("latin1");
  return `${type} ${blob.toString("base64")}`;
}

/** Whether `blob` is the key `pin` names (either form). */
export function matchesPin(pin: string, blob: Buffer): boolean {
  if (pin.startsWith("SHA256:")) return pin.replace(/=+$/, "") === fingerprint(blob);
  const [, b64] = pin.split(" ");
  if (!b64) return false;
  // rsa-sha2-* name the signature algorithm; the blob of an RSA key says ssh-rsa. Compare the key material.
  return Buffer.from(b64, "base64").equals(blob);
}

export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The key recorded for a host in a known_hosts-style file, if any. */
export async function recordedKey(file: string, host: string, port: number): Promise<string | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const name = knownHostsName(host, port);
  for (const line of text.split("\n")) {
    const [h, type, b64] = line.trim().split(/\s+/);
    if (h === name && type && b64) return `${type} ${b64}`;
  }
  return undefined;
}

/** Records a host's key (first use). Appends; never rewrites a recorded key (a changed key is a mismatch). */
export async function recordKey(file: string, host: string, port: number, blob: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const handle = await fs.open(file, "a", 0o600);
  try {
    await handle.write(`${knownHostsName(host, port)} ${keyLine(blob)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
