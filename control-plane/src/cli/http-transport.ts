// How the CLI reaches the API: node:http or node:https, with the trust the operator configured.
//
// Trust for an https:// URL, first that applies:
//   --ca-fingerprint / FERRY_CA_FINGERPRINT / cli.json "caFingerprint": the fleet CA's fingerprint (printed by
//     `ferry server`, the same one join strings carry). The CLI reads the chain the server presents, accepts it only
//     if it contains a CA with that fingerprint which signed the server's certificate for the control-plane role
//     (pki's fetchPinnedCa, as an agent does at enrolment), then trusts that CA for the requests. No trust on first use.
//   --ca / FERRY_CA / cli.json "ca": a PEM file of CA certificates to trust (the fleet CA's ca.crt for --api-tls auto,
//     or the CA of the operator's own certificate), with ordinary host-name checking.
//   the local fleet CA, <data-dir>/ca/ca.crt, when it exists (an operator on the control-plane host), added to
//     Node's own trust store;
//   otherwise Node's trust store (an operator certificate from a public CA, or NODE_EXTRA_CA_CERTS).
import { existsSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { rootCertificates } from "node:tls";
import { controlPlaneIdentityCheck, fetchPinnedCa } from "@ferry/pki";

export interface TrustOptions {
  /** PEM file of CAs to trust. */
  caFile?: string | null;
  /** "sha256:…" of the fleet CA. */
  caFingerprint?: string | null;
  /** The local fleet CA file, used when neither of the above is given and it exists. */
  localCaFile?: string | null;
}

export interface TransportResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

export class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const TLS_TRUST_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CA_PIN_MISMATCH",
  "CERT_INVALID",
]);

export class HttpTransport {
  #tls: Promise<https.RequestOptions> | null = null;

  constructor(
    private readonly baseUrl: string,
    private readonly trust: TrustOptions,
  ) {}

  /** The TLS options for requests to an https:// URL, resolved once. */
  #tlsOptions(url: URL): Promise<https.RequestOptions> {
    this.#tls ??= (async (): Promise<https.RequestOptions> => {
      if (this.trust.caFingerprint) {
        const port = url.port || "443";
        const ca = await fetchPinnedCa(`${url.hostname}:${port}`, this.trust.caFingerprint, { alpnProtocols: ["http/1.1"] }).catch((err: unknown) => {
          throw new TransportError(`cannot verify ${url.host} against the pinned CA fingerprint: ${(err as Error).message}`, (err as { code?: string }).code);
        });
        // The pin proved which CA this is; a certificate it issued for the control-plane role is the control plane,
        // whatever name was used to reach it.
        return { ca, checkServerIdentity: controlPlaneIdentityCheck(), minVersion: "TLSv1.2" };
      }
      if (this.trust.caFile) {
        try {
          return { ca: readFileSync(this.trust.caFile, "utf8"), minVersion: "TLSv1.2" };
        } catch (err) {
          throw new TransportError(`cannot read the CA file ${this.trust.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, "CA_FILE");
        }
      }
      if (this.trust.localCaFile && existsSync(this.trust.localCaFile)) {
        return { ca: [...rootCertificates, readFileSync(this.trust.localCaFile, "utf8")], minVersion: "TLSv1.2" };
      }
      return { minVersion: "TLSv1.2" };
    })();
    return this.#tls;
  }

  async request(method: string, path: string, headers: Record<string, string>, body: string | null, timeoutMs = 30_000): Promise<TransportResponse> {
    const url = new URL(`${this.baseUrl}${path}`);
    const secure = url.protocol === "https:";
    const tlsOptions = secure ? await this.#tlsOptions(url) : {};
    const signal = AbortSignal.timeout(timeoutMs);
    return new Promise<TransportResponse>((resolve, reject) => {
      const options: https.RequestOptions = { method, headers: body === null ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) }, signal, ...tlsOptions };
      const req = (secure ? https : http).request(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(this.#failure(err, url)));
        res.on("end", () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : v);
          resolve({ status: res.statusCode ?? 0, headers: h, body: Buffer.concat(chunks) });
        });
      });
      req.on("error", (err) => reject(this.#failure(err, url)));
      req.end(body ?? undefined);
    });
  }

  #failure(err: unknown, url: URL): TransportError {
    if (err instanceof TransportError) return err;
    const code = (err as { code?: string }).code;
    const message = (err as Error).message;
    if (code && TLS_TRUST_CODES.has(code)) {
      return new TransportError(
        `the control plane at ${url.origin} presented a certificate this CLI does not trust (${code}: ${message}). ` +
          "For a certificate from Ferry's CA (--api-tls auto) pass --ca <ca-dir>/ca.crt or --ca-fingerprint sha256:… (printed by 'ferry server'); " +
          "for your own certificate, --ca with its CA or NODE_EXTRA_CA_CERTS.",
        code,
      );
    }
    if (url.protocol === "https:" && (code === "EPROTO" || /wrong version number|packet length too long/i.test(message))) {
      return new TransportError(`${url.origin} does not speak TLS; the control plane serves plain HTTP there, use http://`, code);
    }
    if (url.protocol === "http:" && (code === "ECONNRESET" || /socket hang up/i.test(message))) {
      return new TransportError(`${url.origin} closed the connection; if the control plane serves HTTPS (--api-tls), use https://`, code);
    }
    return new TransportError(`cannot reach the control plane at ${url.origin} (${code ?? message}); is 'ferry server' running? Set --url or FERRY_URL.`, code);
  }
}
