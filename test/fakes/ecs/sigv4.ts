// The SigV4 check the ECS fake applies to every request: the credential scope must name a known access key, today's
// date (from X-Amz-Date), the fake's region and the service "ecs", and the signature must verify over the request as
// received. Follows the published algorithm ("Create a signed AWS API request", AWS General Reference): canonical
// request → string to sign → HMAC chain AWS4+secret, date, region, service, aws4_request.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

export interface SigV4Failure {
  type: "UnrecognizedClientException" | "InvalidSignatureException" | "MissingAuthenticationTokenException";
  message: string;
}

const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string): Buffer => createHmac("sha256", key).update(data).digest();

export function checkSigV4(
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
  body: Buffer,
  region: string,
  secrets: ReadonlyMap<string, string>,
): SigV4Failure | undefined {
  const auth = headers["authorization"];
  if (typeof auth !== "string") return { type: "MissingAuthenticationTokenException", message: "Missing Authentication Token" };
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { type: "InvalidSignatureException", message: "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters." };
  const [, keyId, date, scopeRegion, service, signedHeaders, signature] = m as unknown as string[];
  const secret = secrets.get(keyId!);
  if (secret === undefined) return { type: "UnrecognizedClientException", message: "The security token included in the request is invalid." };
  const amzDate = headers["x-amz-date"];
  if (typeof amzDate !== "string" || !amzDate.startsWith(date!)) return { type: "InvalidSignatureException", message: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP." };
  if (service !== "ecs") return { type: "InvalidSignatureException", message: `Credential should be scoped to correct service: 'ecs'.` };
  if (scopeRegion !== region) return { type: "InvalidSignatureException", message: `Credential should be scoped to a valid region, not '${scopeRegion}'. ` };
  const names = signedHeaders!.split(";");
  if (!names.includes("host")) return { type: "InvalidSignatureException", message: "'Host' must be a 'SignedHeader' in the AWS Authorization." };
  const canonicalHeaders = names.map((n) => `${n}:${String(headers[n] ?? "").trim().replace(/\s+/g, " ")}\n`).join("");
  const [path, query = ""] = url.split("?");
  const canonicalQuery = query
    .split("&")
    .filter(Boolean)
    .sort()
    .join("&");
  const canonical = [method, path, canonicalQuery, canonicalHeaders, signedHeaders, sha256(body)].join("\n");
  const scope = `${date}/${scopeRegion}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date!), scopeRegion), service), "aws4_request");
  const expected = createHmac("sha256", key).update(toSign).digest();
  const given = Buffer.from(signature!, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { type: "InvalidSignatureException", message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details." };
  }
  return undefined;
}
