// Certificate serial numbers: 128 random bits, as hex.
import { randomBytes } from "node:crypto";

/**
 * 16 random bytes with the top bit cleared, so the DER INTEGER is positive without a 0x00 pad (RFC 5280 4.1.2.2
 * requires positive serials of at most 20 octets). A first byte of 0x00 is redrawn: DER would drop it, and the
 * serial we report must be byte-for-byte the one in the certificate. Unpredictable serials also defeat
 * chosen-prefix collision attacks on the signature.
 */
export function randomSerialNumber(): string {
  for (;;) {
    const bytes = randomBytes(16);
    bytes[0] = (bytes[0] ?? 0) & 0x7f;
    if (bytes[0] !== 0) return bytes.toString("hex");
  }
}
