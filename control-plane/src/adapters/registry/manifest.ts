// The manifest media types Ferry resolves, and reading the platform list out of an index.
//
// Accepted: OCI image index, OCI image manifest, Docker manifest list v2, Docker image manifest v2 (schema 2).
// Refused: Docker schema 1 (signed JWS manifests whose digest depends on the signature and which engines no longer
// pull), and anything else — a release pins images an engine can run.
//
// The media type is taken from Content-Type and must agree with the manifest's own "mediaType" field when that is
// present: a body that claims to be one thing while served as another is how manifest/index confusion attacks work
// (OCI image-spec 1.0.2, CVE-2021-41190). Only when the registry sends no specific Content-Type is the type read from
// the body (or, for OCI documents that omit "mediaType", from their shape).
import type { ResolvedImage } from "../../ports/registry.js";

export const MEDIA_TYPE = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPE.ociIndex, MEDIA_TYPE.dockerManifestList]);
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPE.ociManifest, MEDIA_TYPE.dockerManifest]);
const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  "application/vnd.docker.distribution.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
]);
// Content types that say nothing about which manifest this is.
const GENERIC_TYPES: ReadonlySet<string> = new Set(["", "application/json", "application/octet-stream", "text/plain"]);

/**
 * The Accept header for manifest requests. Listing the index types is what makes a multi-arch tag resolve to its
 * index digest: a registry whose client does not accept indexes answers a platform manifest, or 404 (distribution
 * does so for an OCI index).
 */
export const MANIFEST_ACCEPT = [MEDIA_TYPE.ociIndex, MEDIA_TYPE.ociManifest, MEDIA_TYPE.dockerManifestList, MEDIA_TYPE.dockerManifest].join(", ");

// OCI image-spec digest grammar: algorithm ":" encoded.
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export class ManifestError extends Error {
  override readonly name = "ManifestError";
}

export interface ManifestInfo {
  mediaType: string;
  platforms: ResolvedImage["platforms"];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function bareType(contentType: string | null): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

function schema1(): ManifestError {
  return new ManifestError(
    "it is a Docker schema 1 manifest, which Ferry does not resolve (deprecated, and its digest covers a signature rather than the image); push the image again with a current client",
  );
}

/** Reads the media type and, for an index, its platforms. Throws ManifestError saying what is wrong. */
export function readManifest(body: Uint8Array, contentType: string | null): ManifestInfo {
  const served = bareType(contentType);
  if (SCHEMA1_TYPES.has(served)) throw schema1();
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new ManifestError(`it is not valid JSON (Content-Type ${JSON.stringify(served || "none")})`);
  }
  if (!isRecord(doc)) throw new ManifestError("it is not a JSON object");
  if (doc["schemaVersion"] === 1) throw schema1();
  if (doc["schemaVersion"] !== 2) throw new ManifestError(`schemaVersion is ${JSON.stringify(doc["schemaVersion"])}, expected 2`);
  const declared = typeof doc["mediaType"] === "string" ? doc["mediaType"] : null;

  let mediaType: string;
  if (INDEX_TYPES.has(served) || MANIFEST_TYPES.has(served)) {
    if (declared !== null && declared !== served) {
      throw new ManifestError(`it was served as ${served} but its mediaType field says ${declared}`);
    }
    mediaType = served;
  } else if (GENERIC_TYPES.has(served)) {
    if (declared !== null) mediaType = declared;
    else if (Array.isArray(doc["manifests"])) mediaType = MEDIA_TYPE.ociIndex;
    else if (isRecord(doc["config"])) mediaType = MEDIA_TYPE.ociManifest;
    else throw new ManifestError("the registry sent no manifest Content-Type and the body does not say what it is");
    if (SCHEMA1_TYPES.has(mediaType)) throw schema1();
    if (!INDEX_TYPES.has(mediaType) && !MANIFEST_TYPES.has(mediaType)) throw new ManifestError(`media type ${mediaType} is not supported`);
  } else {
    throw new ManifestError(
      `media type ${served} is not supported; Ferry resolves OCI image indexes and manifests and Docker manifest lists and schema 2 manifests`,
    );
  }

  if (MANIFEST_TYPES.has(mediaType)) {
    if (!isRecord(doc["config"]) || !Array.isArray(doc["layers"])) throw new ManifestError(`it is not a valid image manifest (no config or layers)`);
    return { mediaType, platforms: [] };
  }
  return { mediaType, platforms: readPlatforms(doc["manifests"]) };
}

function readPlatforms(manifests: unknown): ResolvedImage["platforms"] {
  if (!Array.isArray(manifests)) throw new ManifestError("it is an index without a manifests list");
  const platforms: ResolvedImage["platforms"] = [];
  for (const [i, entry] of manifests.entries()) {
    if (!isRecord(entry) || typeof entry["digest"] !== "string" || !DIGEST_GRAMMAR.test(entry["digest"])) {
      throw new ManifestError(`index entry ${i} has no valid digest`);
    }
    // BuildKit stores provenance/SBOM attestations as index entries with platform "unknown/unknown"; they are not
    // something an engine runs, so they are not platforms.
    const annotations = isRecord(entry["annotations"]) ? entry["annotations"] : {};
    if (annotations["vnd.docker.reference.type"] === "attestation-manifest") continue;
    const platform = entry["platform"];
    if (!isRecord(platform) || typeof platform["os"] !== "string" || typeof platform["architecture"] !== "string") continue;
    const p: ResolvedImage["platforms"][number] = { os: platform["os"], architecture: platform["architecture"], digest: entry["digest"] };
    if (typeof platform["variant"] === "string" && platform["variant"] !== "") p.variant = platform["variant"];
    platforms.push(p);
  }
  return platforms;
}

export function isDigestSyntax(s: string): boolean {
  return DIGEST_GRAMMAR.test(s);
}
