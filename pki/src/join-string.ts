// Join strings: what an operator copies to a new host. One opaque token carrying the enrolment endpoint, the
// fleet CA fingerprint to pin on first contact, and the join-token secret.
//
// Format: "ferry-join-v1." + base64url(JSON {"e": endpoint, "f": fingerprint, "t": token}), no padding.
// The version prefix lets a later format be told apart from a corrupted string. Fields other than e, f and t are
// ignored, so v1 can gain optional hints without breaking older agents.
//
// Error messages name the part that is wrong but never echo the token: join strings end up in shell history
// and tickets, and so do error messages.
import { parseEndpoint } from "./endpoint.js";
import { FINGERPRINT_PATTERN } from "./fingerprint.js";
import { PkiError } from "./pki-error.js";

export interface JoinString {
  /** Enrolment endpoint, "host:port" ("[::1]:port" for IPv6). */
  enrolEndpoint: string;
  /** "sha256:" + 64 lowercase hex digits: the fleet CA certificate to pin. */
  caFingerprint: string;
  /** The join token secret: 43 base64url characters (256 bits). */
  token: string;
}

const PREFIX = "ferry-join-v1.";
// Comfortably above a v1 string (~200 characters) and small enough that decoding cannot be used to make the
// agent parse megabytes of JSON.
const MAX_LENGTH = 2048;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

function malformed(message: string, cause?: unknown): PkiError {
  return new PkiError("JOIN_STRING_MALFORMED", `join string: ${message}`, cause === undefined ? undefined : { cause });
}

/** Returns a reason when a field is wrong; shared by encode and decode so encode never emits what decode refuses. */
function checkFields(e: unknown, f: unknown, t: unknown): string | undefined {
  if (typeof e !== "string") return "the enrolment endpoint (e) is missing";
  const endpoint = parseEndpoint(e);
  if (!endpoint.ok) return `the enrolment endpoint (e) is not host:port: ${endpoint.reason}`;
  if (typeof f !== "string") return "the CA fingerprint (f) is missing";
  if (!FINGERPRINT_PATTERN.test(f.toLowerCase())) {
    return "the CA fingerprint (f) must be \"sha256:\" followed by 64 hex digits";
  }
  if (typeof t !== "string") return "the token (t) is missing";
  // 43 characters carry 258 bits; the last character's two spare bits must be zero for exactly 32 bytes.
  if (!TOKEN_PATTERN.test(t) || Buffer.from(t, "base64url").toString("base64url") !== t) {
    return "the token (t) must be 43 base64url characters (256 bits)";
  }
  return undefined;
}

export function encodeJoinString(j: JoinString): string {
  const problem = checkFields(j.enrolEndpoint, j.caFingerprint, j.token);
  if (problem !== undefined) throw malformed(problem);
  const payload = { e: j.enrolEndpoint, f: j.caFingerprint.toLowerCase(), t: j.token };
  return PREFIX + Buffer.from(JSON.stringify(payload), "utf8").toString("base64url");
}

export function decodeJoinString(s: string): JoinString {
  if (typeof s !== "string") throw malformed("expected a string");
  // People paste with newlines, and terminals and mail clients wrap long lines; the format has no whitespace.
  const compact = s.replace(/\s+/g, "");
  if (compact.length === 0) throw malformed("it is empty");
  if (compact.length > MAX_LENGTH) throw malformed(`it is longer than ${MAX_LENGTH} characters`);
  if (!compact.startsWith(PREFIX)) {
    const version = /^ferry-join-(v[^.]*)\./.exec(compact)?.[1];
    if (version !== undefined) throw malformed(`version ${version} is not supported (this agent reads v1)`);
    throw malformed(`it does not start with "${PREFIX}"`);
  }
  const payload = compact.slice(PREFIX.length);
  if (payload.length === 0) throw malformed("the payload after the prefix is empty");
  // Buffer's base64url decoder skips characters it does not know; check first so a damaged paste is reported.
  if (!/^[A-Za-z0-9_-]+$/.test(payload)) throw malformed("the payload is not base64url (was it cut or altered?)");
  let fields: unknown;
  try {
    fields = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch (err) {
    throw malformed("the payload is not valid JSON (was it cut short?)", err);
  }
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    throw malformed("the payload is not a JSON object");
  }
  const { e, f, t } = fields as Record<string, unknown>;
  const problem = checkFields(e, f, t);
  if (problem !== undefined) throw malformed(problem);
  return { enrolEndpoint: e as string, caFingerprint: (f as string).toLowerCase(), token: t as string };
}
