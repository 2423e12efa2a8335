// The client side of NTLM (MS-NLMP) with the NTLMv2 response, as WinRM's HTTP "Negotiate"/"NTLM" authentication
// uses it: NEGOTIATE_MESSAGE → the server's CHALLENGE_MESSAGE in a 401 → AUTHENTICATE_MESSAGE, all three on one
// kept-alive connection (NTLM authenticates the connection, not a request). Only the authentication: no signing or
// sealing of messages, which is why Ferry uses NTLM over HTTPS (over plain HTTP, WinRM accepts it only with
// AllowUnencrypted, and the docs say so).
import { createHmac, randomBytes } from "node:crypto";

import { md4 } from "./md4.js";

const SIGNATURE = Buffer.from("NTLMSSP\0", "latin1");
/** UNICODE | REQUEST_TARGET | NTLM | ALWAYS_SIGN | EXTENDED_SESSIONSECURITY | TARGET_INFO | 128 | 56. */
export const NEGOTIATE_FLAGS = 0x00000001 | 0x00000004 | 0x00000200 | 0x00008000 | 0x00080000 | 0x00800000 | 0x20000000 | 0x80000000;

export interface NtlmChallenge {
  flags: number;
  serverChallenge: Buffer;
  targetInfo: Buffer;
  targetName: string;
}

export function negotiateMessage(): Buffer {
  const b = Buffer.alloc(32);
  SIGNATURE.copy(b, 0);
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(NEGOTIATE_FLAGS >>> 0, 12);
  // Empty domain and workstation security buffers (length 0, offset 32).
  b.writeUInt32LE(32, 20);
  b.writeUInt32LE(32, 28);
  return b;
}

function secBuf(msg: Buffer, at: number): Buffer {
  const len = msg.readUInt16LE(at);
  const off = msg.readUInt32LE(at + 4);
  if (off + len > msg.length) throw new Error("NTLM: a field of the challenge points outside the message");
  return msg.subarray(off, off + len);
}

export function parseChallenge(msg: Buffer): NtlmChallenge {
  if (msg.length < 48 || !msg.subarray(0, 8).equals(SIGNATURE) || msg.readUInt32LE(8) !== 2) throw new Error("NTLM: the server's answer is not a CHALLENGE_MESSAGE");
  const flags = msg.readUInt32LE(20);
  return {
    flags,
    serverChallenge: Buffer.from(msg.subarray(24, 32)),
    targetName: secBuf(msg, 12).toString(flags & 1 ? "utf16le" : "latin1"),
    targetInfo: Buffer.from(secBuf(msg, 40)),
  };
}

export function ntHash(password: string): Buffer {
  return md4(Buffer.from(password, "utf16le"));
}

const hmacMd5 = (key: Buffer, ...data: Buffer[]) => {
  const h = createHmac("md5", key);
  for (const d of data) h.update(d);
  return h.digest();
};

/** NTOWFv2: HMAC-MD5 of the NT hash over UPPER(user) + domain, both UTF-16LE. */
export function ntowfv2(password: string, user: string, domain: string): Buffer {
  return hmacMd5(ntHash(password), Buffer.from(user.toUpperCase() + domain, "utf16le"));
}

/** Windows FILETIME: 100 ns ticks since 1601-01-01, little-endian. */
export function fileTime(ms: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE((BigInt(ms) + 11_644_473_600_000n) * 10_000n);
  return b;
}

export interface Credentials {
  username: string;
  password: string;
  /** Empty for a local account. "DOMAIN\\user" and "user@domain" in username are split by splitUser. */
  domain: string;
}

/** "DOMAIN\user" → {domain, user}; "user@domain" is passed whole as the user (UPN), as Windows accepts it. */
export function splitUser(username: string): { user: string; domain: string } {
  const i = username.indexOf("\\");
  return i >= 0 ? { domain: username.slice(0, i), user: username.slice(i + 1) } : { domain: "", user: username };
}

export function authenticateMessage(creds: Credentials, challenge: NtlmChallenge, opts: { clientChallenge?: Buffer; nowMs?: number; workstation?: string } = {}): Buffer {
  const clientChallenge = opts.clientChallenge ?? randomBytes(8);
  const key = ntowfv2(creds.password, creds.username, creds.domain);
  const blob = Buffer.concat([
    Buffer.from([1, 1, 0, 0]),
    Buffer.alloc(4),
    fileTime(opts.nowMs ?? Date.now()),
    clientChallenge,
    Buffer.alloc(4),
    challenge.targetInfo,
    Buffer.alloc(4),
  ]);
  const ntProof = hmacMd5(key, challenge.serverChallenge, blob);
  const ntResponse = Buffer.concat([ntProof, blob]);
  const lmResponse = Buffer.concat([hmacMd5(key, challenge.serverChallenge, clientChallenge), clientChallenge]);
  const fields = [
    lmResponse,
    ntResponse,
    Buffer.from(creds.domain, "utf16le"),
    Buffer.from(creds.username, "utf16le"),
    Buffer.from(opts.workstation ?? "FERRY", "utf16le"),
    Buffer.alloc(0), // no session key: no signing or sealing
  ];
  const header = Buffer.alloc(64);
  SIGNATURE.copy(header, 0);
  header.writeUInt32LE(3, 8);
  let offset = 64;
  fields.forEach((f, i) => {
    const at = 12 + i * 8;
    header.writeUInt16LE(f.length, at);
    header.writeUInt16LE(f.length, at + 2);
    header.writeUInt32LE(offset, at + 4);
    offset += f.length;
  });
  header.writeUInt32LE((NEGOTIATE_FLAGS & challenge.flags) >>> 0, 60);
  return Buffer.concat([header, ...fields]);
}
