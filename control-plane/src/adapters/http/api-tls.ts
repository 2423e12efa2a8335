// TLS for the JSON API and dashboard (config: apiTls).
//
// - auto: the same server certificate the agent listeners present — issued by the fleet CA for the advertised names
//   (tlsHosts) plus the control-plane URI — followed by the CA. The CLI trusts it with --ca <ca.crt> or with the CA's
//   fingerprint (--ca-fingerprint, checked like an agent's join-string pin).
// - files: the operator's certificate chain and key (PEM, e.g. from an ACME client or the company CA). They are
//   checked at start (unreadable, not PEM, or a key that does not match the certificate is a start-up error naming
//   the file) and re-read when their modification time changes, so a renewed certificate needs no restart.
import { readFileSync, statSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import type { Logger } from "pino";
import type { ApiTls } from "../../config/config.js";
import { FerryError } from "../../domain/errors.js";

export interface ApiTlsMaterial {
  key: string;
  cert: string;
  /** For the banner and logs. */
  source: "ferry-ca" | "operator";
}

/** Options every HTTPS listener of Ferry uses: TLS 1.2 at least. */
export const API_TLS_DEFAULTS: SecureContextOptions = { minVersion: "TLSv1.2" };

function readPem(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new FerryError("VALIDATION_FAILED", `api-tls-${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: `api-tls-${what}` });
  }
  if (!text.includes("-----BEGIN ")) throw new FerryError("VALIDATION_FAILED", `api-tls-${what}: ${file} is not PEM`, { field: `api-tls-${what}` });
  return text;
}

/** Reads and checks the operator's files: both readable PEM, and the key belongs to the certificate. */
export function readOperatorTls(certFile: string, keyFile: string): ApiTlsMaterial {
  const cert = readPem(certFile, "cert");
  const key = readPem(keyFile, "key");
  try {
    createSecureContext({ ...API_TLS_DEFAULTS, cert, key });
  } catch (err) {
    throw new FerryError("VALIDATION_FAILED", `api-tls-cert/api-tls-key: ${certFile} and ${keyFile} cannot be used together (${(err as Error).message})`, { field: "api-tls-cert" });
  }
  return { cert, key, source: "operator" };
}

/** The material for the API listener, or null for plain HTTP. */
export function apiTlsMaterial(tls: ApiTls, ferry: { keyPem: string; certChainPem: string }): ApiTlsMaterial | null {
  switch (tls.mode) {
    case "off":
      return null;
    case "auto":
      return { key: ferry.keyPem, cert: ferry.certChainPem, source: "ferry-ca" };
    case "files":
      return readOperatorTls(tls.certFile, tls.keyFile);
  }
}

/**
 * Re-reads the operator's files when either changes and swaps the listener's certificate; a bad new pair is logged
 * and the current certificate kept. Returns a function that stops watching.
 */
export function watchOperatorTls(
  server: { setSecureContext(options: SecureContextOptions): void },
  tls: ApiTls,
  log: Logger,
  intervalMs = 60_000,
): () => void {
  if (tls.mode !== "files") return () => undefined;
  const stamp = () => {
    try {
      return `${statSync(tls.certFile).mtimeMs}/${statSync(tls.keyFile).mtimeMs}`;
    } catch {
      return "unreadable";
    }
  };
  let last = stamp();
  const timer = setInterval(() => {
    const now = stamp();
    if (now === last) return;
    last = now;
    try {
      const m = readOperatorTls(tls.certFile, tls.keyFile);
      server.setSecureContext({ ...API_TLS_DEFAULTS, cert: m.cert, key: m.key });
      log.info({ certFile: tls.certFile }, "API certificate reloaded");
    } catch (err) {
      log.error({ err: (err as Error).message, certFile: tls.certFile }, "API certificate files changed but cannot be used; keeping the current certificate");
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
