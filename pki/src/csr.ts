// PKCS#10 certificate signing requests: created on the agent (the private key never leaves it) and checked by
// the CA before anything is issued.
import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { ECDSA_SHA256, describeKey, importP256PrivateKey, isP256 } from "./key-pair.js";
import { decodeSinglePem, derToPem } from "./pem.js";
import { PkiError } from "./pki-error.js";
import type * as X509 from "@peculiar/x509";
import { loadX509, webcrypto } from "./x509.js";

// A P-256 CSR is well under 1 KiB. The cap bounds the parsing work an unauthenticated caller can cause.
const MAX_CSR_PEM_CHARS = 16 * 1024;

/** Agent side: a PKCS#10 CSR (PEM) signed with the given P-256 private key, subject CN = commonName. */
export async function createCsr(privateKeyPem: string, opts: { commonName: string }): Promise<string> {
  // Agents pass their host name, and a fully qualified one may exceed X.520's 64-character bound for a CN. The
  // CA ignores the CSR's subject and no parser on Ferry's path enforces that bound, so the cap is host-name sized.
  if (opts.commonName.length < 1 || opts.commonName.length > 255) {
    throw new RangeError("commonName must be 1-255 characters");
  }
  const { privateKey, publicKey } = await importP256PrivateKey(privateKeyPem);
  const x509 = await loadX509();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ CN: [opts.commonName] }], keys: { privateKey, publicKey }, signingAlgorithm: ECDSA_SHA256 },
    webcrypto,
  );
  return derToPem("CERTIFICATE REQUEST", new Uint8Array(csr.rawData));
}

/**
 * CA side: parses a CSR, refuses any key other than ECDSA P-256, and checks the CSR's self-signature (proof that
 * the requester holds the private key). Returns the public key to certify. Nothing else in the CSR is used:
 * subject, SANs and requested extensions are the requester's claims, and identity comes from the CA's caller.
 */
export async function readCsr(csrPem: string): Promise<X509.PublicKey> {
  if (typeof csrPem !== "string" || csrPem.length > MAX_CSR_PEM_CHARS) {
    throw new PkiError("CSR_INVALID", `a CSR must be a PEM string of at most ${MAX_CSR_PEM_CHARS} characters`);
  }
  // "NEW CERTIFICATE REQUEST" is what older openssl and Windows certreq write.
  const der = decodeSinglePem(
    csrPem,
    ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
    "certificate request",
    "CSR_INVALID",
  );
  const x509 = await loadX509();
  let csr: X509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch (err) {
    throw new PkiError("CSR_INVALID", "not a parseable PKCS#10 certificate request", { cause: err });
  }

  // The key type is checked before the signature so that a well-formed RSA or P-384 request gets the precise
  // answer ("key not allowed") rather than a generic one.
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: "der", type: "spki" });
  } catch (err) {
    throw new PkiError("CSR_KEY_NOT_ALLOWED", "the CSR's public key is of a type Ferry cannot use; use ECDSA P-256", {
      cause: err,
    });
  }
  if (!isP256(key)) {
    throw new PkiError("CSR_KEY_NOT_ALLOWED", `the CSR's key is ${describeKey(key)}; Ferry accepts ECDSA P-256 only`);
  }

  let signatureOk: boolean;
  try {
    signatureOk = await csr.verify(webcrypto);
  } catch (err) {
    throw new PkiError("CSR_INVALID", "the CSR's signature could not be checked (unsupported or malformed)", {
      cause: err,
    });
  }
  if (!signatureOk) {
    throw new PkiError("CSR_INVALID", "the CSR's signature does not verify with its own public key");
  }
  return csr.publicKey;
}
