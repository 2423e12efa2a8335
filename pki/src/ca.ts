// The fleet CA: a self-signed ECDSA P-256 root that issues short-lived agent client certificates and the control
// plane's server certificate.
//
// Certificates are built with @peculiar/x509 on Node's WebCrypto because node-forge, the usual pure-JS choice,
// cannot do ECDSA, and node:crypto can parse and verify certificates but not create them.
import { X509Certificate as NodeX509Certificate, randomBytes } from "node:crypto";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { CA_CERT_FILE, CA_KEY_FILE, ensureCaDir, readCaFiles, writeNewCaFiles } from "./ca-files.js";
import { readCsr } from "./csr.js";
import { parseHost } from "./endpoint.js";
import { fingerprintOfDer } from "./fingerprint.js";
import { CONTROL_PLANE_URI, agentUri, assertValidAgentId } from "./identity.js";
import { ECDSA_SHA256, P256, describeKey, importP256PrivateKey, isP256 } from "./key-pair.js";
import type { ImportedKeyPair } from "./key-pair.js";
import { decodeSinglePem, derToPem } from "./pem.js";
import { PkiError } from "./pki-error.js";
import { randomSerialNumber } from "./serial-number.js";
import type * as X509 from "@peculiar/x509";
import { loadX509, webcrypto } from "./x509.js";

export interface IssuedCertificate {
  certPem: string;
  /** Lowercase hex, no colons; exactly the serial in the certificate. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

const CA_VALIDITY_YEARS = 10;
/** Agents' and servers' clocks drift; a certificate valid from "now" is "not yet valid" on a host a minute behind. */
const DEFAULT_BACKDATE_MS = 5 * 60 * 1000;
/** How long to wait for another process that is midway through creating the same CA (it writes ca.key, then ca.crt). */
const CONCURRENT_CREATE_WAIT_MS = 5000;

interface IssueParams {
  commonName: string;
  publicKey: X509.PublicKey | webcrypto.CryptoKey;
  sans: { type: "url" | "dns" | "ip"; value: string }[];
  extendedKeyUsage: X509.ExtendedKeyUsage;
  notBefore: Date;
  notAfter: Date;
}

function validityWindow(now: Date, lifetimeMs: number, backdateMs: number): { notBefore: Date; notAfter: Date } {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new RangeError("now must be a valid Date");
  if (!Number.isFinite(lifetimeMs) || lifetimeMs <= 0) throw new RangeError("lifetimeMs must be a positive number");
  if (!Number.isFinite(backdateMs) || backdateMs < 0) throw new RangeError("backdateMs must be zero or positive");
  // X.509 times have one-second resolution. Rounding down makes the reported times exact and never extends
  // the lifetime beyond what was asked for.
  const floorToSecond = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
  return { notBefore: floorToSecond(now.getTime() - backdateMs), notAfter: floorToSecond(now.getTime() + lifetimeMs) };
}

async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  try {
    return derToPem("PRIVATE KEY", pkcs8);
  } finally {
    pkcs8.fill(0);
  }
}

async function generateCaFiles(now: Date): Promise<{ certPem: string; keyPem: string }> {
  const x509 = await loadX509();
  // Extractable only so it can be written to ca.key once; the FleetCa instance re-imports it non-extractable.
  const keys = await webcrypto.subtle.generateKey(P256, true, ["sign", "verify"]);
  const tenYearsOn = new Date(now.getTime());
  tenYearsOn.setUTCFullYear(tenYearsOn.getUTCFullYear() + CA_VALIDITY_YEARS);
  // Back-dated like the certificates it issues: a CA that is "not yet valid" on a slow clock breaks every chain.
  const { notBefore, notAfter } = validityWindow(now, tenYearsOn.getTime() - now.getTime(), DEFAULT_BACKDATE_MS);
  // A random suffix tells CAs apart in logs and trust bundles, e.g. the two CAs present during a rotation.
  const name = `Ferry fleet CA ${randomBytes(4).toString("hex")}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: [{ CN: [name] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        // pathLen 0: this CA signs leaf certificates only, never a subordinate CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return {
    certPem: derToPem("CERTIFICATE", new Uint8Array(cert.rawData)),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

export class FleetCa {
  readonly certPem: string;
  /** "sha256:" + lowercase hex SHA-256 of the CA certificate's DER: what join strings pin. */
  readonly fingerprint: string;
  readonly #cert: X509.X509Certificate;
  // A private field holding a non-extractable key: the key cannot be logged, serialised or exported.
  readonly #signingKey: webcrypto.CryptoKey;
  readonly #keyId: string;

  private constructor(cert: X509.X509Certificate, signingKey: webcrypto.CryptoKey, keyId: string) {
    this.#cert = cert;
    this.#signingKey = signingKey;
    this.#keyId = keyId;
    const der = new Uint8Array(cert.rawData);
    this.certPem = derToPem("CERTIFICATE", der);
    this.fingerprint = fingerprintOfDer(der);
  }

  /**
   * Loads ca.crt + ca.key from dir, or creates them. Refuses (CA_FILES_INVALID) a key file accessible to
   * group/others, a key that does not match the certificate, and a directory holding only one of the two files
   * (overwriting either could orphan every enrolled agent).
   */
  static async loadOrCreate(dir: string, opts: { now?: Date } = {}): Promise<FleetCa> {
    await ensureCaDir(dir);
    let state = await readCaFiles(dir);
    if (state.kind === "absent") {
      const fresh = await generateCaFiles(opts.now ?? new Date());
      const outcome = await writeNewCaFiles(dir, fresh.certPem, fresh.keyPem);
      // Always load what is on disk: it checks the write, and a process that lost a creation race adopts the
      // winner's CA instead of keeping one that no other process knows.
      state = await readCaFiles(dir);
      let waited = 0;
      while (outcome === "exists" && state.kind === "partial" && waited < CONCURRENT_CREATE_WAIT_MS) {
        await delay(100);
        waited += 100;
        state = await readCaFiles(dir);
      }
    }
    switch (state.kind) {
      case "present":
        return FleetCa.#fromPem(dir, state.certPem, state.keyPem);
      case "partial":
        throw new PkiError(
          "CA_FILES_INVALID",
          `${state.present} exists but ${state.missing} does not. Restore ${state.missing} from a backup; only if no ` +
            `agent was ever enrolled with this CA, remove ${state.present} to have a new CA created.`,
        );
      case "absent":
        throw new PkiError("CA_FILES_INVALID", `the CA files in ${dir} disappeared while being created`);
    }
  }

  static async #fromPem(dir: string, certPem: string, keyPem: string): Promise<FleetCa> {
    const certFile = path.join(dir, CA_CERT_FILE);
    let certDer: Buffer;
    let nodeCert: NodeX509Certificate;
    try {
      certDer = decodeSinglePem(certPem, ["CERTIFICATE"], "certificate", "CA_FILES_INVALID");
      nodeCert = new NodeX509Certificate(certDer);
    } catch (err) {
      throw new PkiError("CA_FILES_INVALID", `${certFile} is not a readable PEM certificate`, { cause: err });
    }
    if (!nodeCert.ca) throw new PkiError("CA_FILES_INVALID", `${certFile} is not a CA certificate (CA:false)`);
    if (!isP256(nodeCert.publicKey)) {
      throw new PkiError(
        "CA_FILES_INVALID",
        `${certFile} has a ${describeKey(nodeCert.publicKey)} key; the fleet CA must be ECDSA P-256`,
      );
    }
    if (!nodeCert.checkIssued(nodeCert) || !nodeCert.verify(nodeCert.publicKey)) {
      throw new PkiError("CA_FILES_INVALID", `${certFile} is not a self-signed root certificate`);
    }
    const keyFile = path.join(dir, CA_KEY_FILE);
    let imported: ImportedKeyPair;
    try {
      imported = await importP256PrivateKey(keyPem);
    } catch (err) {
      const reason = err instanceof PkiError ? err.message : "unreadable";
      throw new PkiError("CA_FILES_INVALID", `${keyFile}: ${reason}`, { cause: err });
    }
    const certSpki = nodeCert.publicKey.export({ type: "spki", format: "der" });
    if (!certSpki.equals(imported.spki)) {
      throw new PkiError("CA_FILES_INVALID", `${keyFile} does not match the public key in ${certFile}`);
    }
    const x509 = await loadX509();
    const cert = new x509.X509Certificate(certDer);
    // Issued certificates name the CA's key in their AuthorityKeyIdentifier; it must equal the CA's own
    // SubjectKeyIdentifier byte for byte, so take it from the certificate when present.
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
    const keyId = ski?.keyId ?? Buffer.from(await cert.publicKey.getKeyIdentifier(webcrypto)).toString("hex");
    return new FleetCa(cert, imported.privateKey, keyId);
  }

  /**
   * Issues an agent client certificate from a CSR (ECDSA P-256 only; its signature must verify). The identity
   * comes only from agentId: subject CN = agentId, SAN URI "urn:ferry:agent:<agentId>"; the CSR's subject and
   * SANs are ignored. EKU clientAuth, KU digitalSignature, CA:false. notBefore = now - backdateMs (default 5 min),
   * notAfter = now + lifetimeMs.
   */
  async issueAgentCertificate(
    csrPem: string,
    opts: { agentId: string; lifetimeMs: number; backdateMs?: number; now?: Date },
  ): Promise<IssuedCertificate> {
    assertValidAgentId(opts.agentId);
    const { notBefore, notAfter } = validityWindow(
      opts.now ?? new Date(),
      opts.lifetimeMs,
      opts.backdateMs ?? DEFAULT_BACKDATE_MS,
    );
    const publicKey = await readCsr(csrPem);
    const x509 = await loadX509();
    return this.#issue({
      commonName: opts.agentId,
      publicKey,
      sans: [{ type: "url", value: agentUri(opts.agentId) }],
      extendedKeyUsage: x509.ExtendedKeyUsage.clientAuth,
      notBefore,
      notAfter,
    });
  }

  /**
   * Generates a fresh P-256 key and issues the control plane's TLS server certificate: SAN URI
   * "urn:ferry:control-plane" (what agents check) plus a DNS or IP SAN per entry of hosts, for other TLS clients.
   */
  async issueServerCertificate(opts: {
    hosts: string[];
    lifetimeMs: number;
    now?: Date;
  }): Promise<IssuedCertificate & { keyPem: string }> {
    const { notBefore, notAfter } = validityWindow(opts.now ?? new Date(), opts.lifetimeMs, DEFAULT_BACKDATE_MS);
    const sans: IssueParams["sans"] = [{ type: "url", value: CONTROL_PLANE_URI }];
    const seen = new Set<string>();
    for (const entry of opts.hosts) {
      const host = parseHost(entry);
      if (!host.ok) throw new RangeError(`server certificate host: ${host.reason}`);
      const san =
        host.kind === "dns"
          ? { type: "dns" as const, value: host.host.toLowerCase() }
          : { type: "ip" as const, value: host.host };
      const key = `${san.type}:${san.value}`;
      if (!seen.has(key)) sans.push(san);
      seen.add(key);
    }
    const keys = await webcrypto.subtle.generateKey(P256, true, ["sign", "verify"]);
    const x509 = await loadX509();
    const issued = await this.#issue({
      commonName: "Ferry control plane",
      publicKey: keys.publicKey,
      sans,
      extendedKeyUsage: x509.ExtendedKeyUsage.serverAuth,
      notBefore,
      notAfter,
    });
    return { ...issued, keyPem: await exportPrivateKeyPem(keys.privateKey) };
  }

  async #issue(p: IssueParams): Promise<IssuedCertificate> {
    const serial = randomSerialNumber();
    const x509 = await loadX509();
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serial,
        subject: [{ CN: [p.commonName] }],
        // The CA's subject exactly as encoded in its certificate: chain building compares names.
        issuer: this.#cert.subjectName,
        notBefore: p.notBefore,
        notAfter: p.notAfter,
        publicKey: p.publicKey,
        signingKey: this.#signingKey,
        signingAlgorithm: ECDSA_SHA256,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([p.extendedKeyUsage], false),
          new x509.SubjectAlternativeNameExtension(p.sans, false),
          await x509.SubjectKeyIdentifierExtension.create(p.publicKey, false, webcrypto),
          new x509.AuthorityKeyIdentifierExtension(this.#keyId, false),
        ],
      },
      webcrypto,
    );
    return {
      certPem: derToPem("CERTIFICATE", new Uint8Array(cert.rawData)),
      serial,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
    };
  }
}
