// ECDSA P-256 keys: the only key type Ferry issues certificates for.
//
// P-256 rather than RSA: keys are generated on every agent (at enrolment and at each renewal), and P-256
// generation takes microseconds where RSA-2048 takes tens to hundreds of milliseconds on small hosts;
// signatures and certificates are several times smaller; and every TLS stack Ferry meets (Node/OpenSSL,
// grpc-js, load balancers) supports it. One key type also means one code path to review.
import { createPrivateKey, createPublicKey, generateKeyPair as generateNodeKeyPair, webcrypto } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { PkiError } from "./pki-error.js";

export const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
/** ECDSA with SHA-256, the hash that matches P-256's strength. */
export const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;

const generateNodeKeyPairAsync = promisify(generateNodeKeyPair);

/** Agent side: a fresh ECDSA P-256 key pair as PEM (PKCS#8 private, SPKI public). */
export async function generateKeyPair(): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const { privateKey, publicKey } = await generateNodeKeyPairAsync("ec", {
    namedCurve: "P-256",
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

const CURVE_NAMES: Record<string, string> = {
  prime256v1: "P-256",
  secp384r1: "P-384",
  secp521r1: "P-521",
  secp256k1: "secp256k1",
};

/** A short human name for a key's type, for messages: "RSA-2048", "ECDSA P-384", "Ed25519". */
export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "ec": {
      const curve = details.namedCurve ?? "unknown curve";
      return `ECDSA ${CURVE_NAMES[curve] ?? curve}`;
    }
    case "rsa":
      return `RSA-${details.modulusLength ?? "?"}`;
    case "rsa-pss":
      return `RSA-PSS-${details.modulusLength ?? "?"}`;
    case "ed25519":
      return "Ed25519";
    case "ed448":
      return "Ed448";
    default:
      return key.asymmetricKeyType ?? "an unknown key type";
  }
}

export function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1";
}

export interface ImportedKeyPair {
  /** Non-extractable: once imported, the private key cannot be read back out of WebCrypto. */
  privateKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
  /** DER SubjectPublicKeyInfo of the public half. */
  spki: Buffer;
}

/** Imports a PEM private key (PKCS#8 or SEC1) that must be ECDSA P-256. Throws PkiError KEY_INVALID. */
export async function importP256PrivateKey(privateKeyPem: string): Promise<ImportedKeyPair> {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKeyPem, format: "pem" });
  } catch (err) {
    // The underlying message is an OpenSSL decoder error: it names no key bytes, so it is safe to keep as cause.
    throw new PkiError("KEY_INVALID", "not a readable, unencrypted PEM private key", { cause: err });
  }
  if (!isP256(key)) {
    throw new PkiError("KEY_INVALID", `the private key is ${describeKey(key)}; Ferry uses ECDSA P-256 keys only`);
  }
  const pkcs8 = key.export({ type: "pkcs8", format: "der" });
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  try {
    const privateKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, P256, false, ["sign"]);
    const publicKey = await webcrypto.subtle.importKey("spki", spki, P256, true, ["verify"]);
    return { privateKey, publicKey, spki };
  } finally {
    // Best effort: do not leave a plaintext copy of the key in a buffer waiting for the garbage collector.
    pkcs8.fill(0);
  }
}
