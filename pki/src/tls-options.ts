// TLS settings every Ferry listener shares (agent mTLS, enrolment).
//
// TLS 1.2 is the floor, and with it only AEAD suites with forward secrecy (ECDHE with AES-GCM or ChaCha20-Poly1305):
// OpenSSL's default list still offers the CBC suites with HMAC-SHA1 under TLS 1.2, which are open to padding-oracle
// and Lucky-13 style attacks and which no client Ferry supports needs. TLS 1.3 suites are all AEAD; they are listed
// so the string is the complete set a listener offers. The fleet CA issues ECDSA keys, so the ECDSA suites are what
// is negotiated; the RSA ones cover a server certificate an operator supplies.
import type { SecureContextOptions, TlsOptions } from "node:tls";

export const LISTENER_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** Spread into tls.createServer / setSecureContext options of every listener. */
export const LISTENER_TLS_OPTIONS: Pick<TlsOptions, "minVersion"> & Pick<SecureContextOptions, "ciphers" | "honorCipherOrder"> = {
  minVersion: "TLSv1.2",
  ciphers: LISTENER_CIPHERS,
  honorCipherOrder: true,
};
