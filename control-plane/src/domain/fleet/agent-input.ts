// Values an agent supplies (Hello facts, heartbeat times, stickers) made storable before they are batched.
//
// A liveness batch carries many agents' rows in one statement, so one value PostgreSQL refuses would fail the whole
// batch and stop liveness writes for every agent of the replica. The refusals this guards against:
//   - a U+0000 (NUL) anywhere in a string: text and jsonb cannot hold it ("unsupported Unicode escape sequence");
//   - a lone UTF-16 surrogate: JSON.stringify writes it as "\udXXX", which jsonb refuses;
//   - a number outside its column: clock_skew_ms is an integer (±2^31 ms, about 24.8 days), and an agent clock set to
//     1970 is 56 years off; numbers in jsonb must be finite.
// Clamping keeps the information an operator needs ("this agent's clock is weeks off") without refusing the agent:
// its certificate is valid, only what it reports is odd.
import { isCapability } from "@ferry/contract";
import type { HostFactsRecord } from "./fleet-service.js";

/** The largest clock skew recorded, either way: the int4 column's range. A skew this large reads "at least". */
export const MAX_RECORDED_SKEW_MS = 2_147_483_647;

// eslint-disable-next-line no-control-regex -- NUL is exactly what must be removed
const NUL_OR_LONE_SURROGATE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `s` without NUL characters and lone surrogates (replaced by U+FFFD), cut to `max` UTF-16 units. */
export function storableText(s: unknown, max: number): string {
  if (typeof s !== "string") return "";
  let out = s.replace(NUL_OR_LONE_SURROGATE, (m) => (m === "\u0000" ? "" : "\ufffd"));
  if (out.length > max) {
    out = out.slice(0, max);
    // Do not leave half a surrogate pair at the cut.
    if (/[\ud800-\udbff]$/.test(out)) out = out.slice(0, -1);
  }
  return out;
}

/** A whole number within [0, max], or 0 for anything else (NaN, negative, fractional, too large). */
export function storableCount(n: unknown, max: number): number {
  const v = typeof n === "bigint" ? Number(n) : n;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return 0;
  return Math.min(Math.floor(v), max);
}

/** A clock skew as the integer column holds it; null stays null (no measurement). */
export function storableSkew(skewMs: number | null): number | null {
  if (skewMs === null) return null;
  if (Number.isNaN(skewMs)) return null;
  return Math.max(-MAX_RECORDED_SKEW_MS, Math.min(MAX_RECORDED_SKEW_MS, Math.round(skewMs)));
}

/** Host facts as stored: every field bounded and storable, unknown fields dropped. */
export function storableFacts(f: Partial<HostFactsRecord>): Partial<HostFactsRecord> {
  const out: Partial<HostFactsRecord> = {};
  if (f.hostname !== undefined) out.hostname = storableText(f.hostname, 255);
  if (f.os !== undefined) out.os = storableText(f.os, 64);
  if (f.osRelease !== undefined) out.osRelease = storableText(f.osRelease, 128);
  if (f.arch !== undefined) out.arch = storableText(f.arch, 32);
  if (f.agentVersion !== undefined) out.agentVersion = storableText(f.agentVersion, 64);
  if (f.drivers !== undefined) {
    out.drivers = (Array.isArray(f.drivers) ? f.drivers : []).slice(0, 32).map((d) => storableText(d, 32)).filter((d) => d !== "");
  }
  if (f.cpus !== undefined) out.cpus = storableCount(f.cpus, 65_536);
  // 2^53 bytes is 8 PiB: more than any host, and every value below it is exact in JSON.
  if (f.memoryBytes !== undefined) out.memoryBytes = storableCount(f.memoryBytes, Number.MAX_SAFE_INTEGER);
  // What the agent says its drivers offer is taken only as far as Ferry knows the words: unknown capabilities are
  // dropped, not stored, so a capability check can never pass on a name the contract does not define.
  if (f.driverFacts !== undefined) {
    out.driverFacts = (Array.isArray(f.driverFacts) ? f.driverFacts : []).slice(0, 32).map((d) => ({
      kind: storableText(d.kind, 32),
      capabilities: (Array.isArray(d.capabilities) ? d.capabilities : []).filter(isCapability),
      detail: storableText(d.detail, 256),
    }));
  }
  if (f.taskPayloadVersions !== undefined) {
    out.taskPayloadVersions = (Array.isArray(f.taskPayloadVersions) ? f.taskPayloadVersions : []).filter((v) => Number.isInteger(v) && v >= 1 && v <= 1000).slice(0, 16);
  }
  return out;
}
