// Agent side: how an agent recognises the control plane on its mTLS connection.
import type { PeerCertificate } from "node:tls";
import { certificateInfo } from "./certificate-info.js";
import { CONTROL_PLANE_URI } from "./identity.js";
import { PkiError } from "./pki-error.js";

/**
 * A checkServerIdentity for node:tls and grpc-js that accepts the server only if its certificate carries the SAN
 * URI "urn:ferry:control-plane". This replaces DNS-name checking: the fleet CA is private and pinned, so what
 * matters is the role the CA gave the certificate, and the same control plane may be reached by any name or
 * address (load balancer, NAT, container network). It also stops an agent's own certificate (same CA, role
 * agent) from being used to impersonate the control plane. Chain validation is still done by TLS against the
 * CA bundle: this check runs only after it.
 */
export function controlPlaneIdentityCheck(): (hostname: string, cert: PeerCertificate) => Error | undefined {
  return (hostname, cert) => {
    if (cert?.raw === undefined) return new PkiError("CERT_INVALID", `${hostname} presented no certificate`);
    try {
      const info = certificateInfo(cert.raw);
      if (info.isControlPlane) return undefined;
      return new PkiError(
        "CERT_INVALID",
        `the server at ${hostname} (certificate CN "${info.subjectCommonName}") does not carry ` +
          `${CONTROL_PLANE_URI}; it is not the Ferry control plane`,
      );
    } catch (err) {
      return err instanceof Error ? err : new PkiError("CERT_INVALID", String(err));
    }
  };
}
