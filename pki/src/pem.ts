// PEM armour (RFC 7468): parsing with strict base64, and canonical re-encoding.
import { PkiError } from "./pki-error.js";
import type { PkiErrorCode } from "./pki-error.js";

export interface PemBlock {
  label: string;
  der: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Every PEM block in `text`, in order. Text outside blocks is ignored (openssl writes "subject=..." lines into
 * bundles). A block without its END line, or with a body that is not base64, is an error rather than being
 * skipped: a truncated bundle must not quietly lose a CA.
 */
export function parsePemBlocks(text: string, code: PkiErrorCode): PemBlock[] {
  const blocks: PemBlock[] = [];
  const begin = /-----BEGIN ([A-Z0-9 ]+)-----/g;
  for (let m = begin.exec(text); m !== null; m = begin.exec(text)) {
    const label = m[1] ?? "";
    const end = `-----END ${label}-----`;
    const bodyStart = m.index + m[0].length;
    const endAt = text.indexOf(end, bodyStart);
    if (endAt < 0) throw new PkiError(code, `PEM block "${label}" has no END line`);
    const body = text.slice(bodyStart, endAt).replace(/\s+/g, "");
    if (!BASE64.test(body) || body.length % 4 !== 0) {
      throw new PkiError(code, `PEM block "${label}" is not valid base64`);
    }
    blocks.push({ label, der: Buffer.from(body, "base64") });
    begin.lastIndex = endAt + end.length;
  }
  return blocks;
}

/** The DER of the only block in `text` whose label is one of `labels`; anything else is an error. */
export function decodeSinglePem(text: string, labels: readonly string[], what: string, code: PkiErrorCode): Buffer {
  const blocks = parsePemBlocks(text, code).filter((b) => labels.includes(b.label));
  if (blocks.length !== 1) {
    throw new PkiError(code, `expected exactly one PEM ${what} (${labels.join(" or ")}), found ${blocks.length}`);
  }
  const der = (blocks[0] as PemBlock).der;
  if (der.length === 0) throw new PkiError(code, `the PEM ${what} is empty`);
  return der;
}

export function derToPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/**
 * Splits a PEM bundle into one canonical PEM string per certificate (64-column base64, LF line ends, trailing
 * newline). Blocks of other types (keys, CSRs) are left out. Throws CERT_INVALID on a broken block.
 */
export function splitPemBundle(pem: string): string[] {
  return parsePemBlocks(pem, "CERT_INVALID")
    .filter((b) => b.label === "CERTIFICATE")
    .map((b) => derToPem("CERTIFICATE", b.der));
}
