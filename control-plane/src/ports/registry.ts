// Terms (images):
//   reference   — what an operator types: "registry/repository:tag", "registry/repository@sha256:…" or both
//   repository  — "registry/path" without tag or digest, canonical (registry host lowercased, Docker Hub names expanded)
//   digest      — "sha256:<64 lowercase hex>" of a manifest's (or index's) exact bytes: the only identity a release
//                 stores and an agent deploys (DESIGN.md, principle 1)
//   index       — an OCI image index or Docker manifest list: one digest for several per-platform manifests
//
// The control plane resolves tags to digests once, when a release is created, through this port. Nothing after that
// point ever sees a tag. Adapters throw FerryError with INVALID_REFERENCE, INVALID_DIGEST, TAG_NOT_FOUND,
// DIGEST_NOT_FOUND, REPOSITORY_NOT_FOUND, REGISTRY_UNREACHABLE, REGISTRY_AUTH_FAILED, REGISTRY_DIGEST_MISMATCH or
// REGISTRY_ERROR; none of them carries credentials or tokens.

/** A parsed image reference. At least one of tag and digest is set for a reference that can be resolved. */
export interface ImageReference {
  /** host[:port], lowercased, e.g. "127.0.0.1:5000", "ghcr.io", "registry-1.docker.io". */
  registry: string;
  /** The path inside the registry, e.g. "team/web" or "library/nginx". */
  repository: string;
  tag: string | null;
  digest: string | null;
}

/** Basic credentials: sent to registries that ask for Basic auth, and to a token realm for the bearer exchange. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface ResolvedImage {
  /** registry/repository, canonical (e.g. "127.0.0.1:5000/team/web"). */
  repository: string;
  /** "sha256:<64 hex>" of the manifest (or index) bytes. */
  digest: string;
  /** The manifest's media type. */
  mediaType: string;
  /** The tag it was resolved from, null when a digest was given. */
  sourceTag: string | null;
  /** For an index / manifest list, one entry per platform manifest; [] otherwise. */
  platforms: Array<{ os: string; architecture: string; variant?: string; digest: string }>;
}

export interface ImageRegistry {
  /** Resolves "registry/repo:tag", "registry/repo@sha256:…" or "registry/repo:tag@sha256:…" (digest wins, and must exist). */
  resolve(reference: string, opts?: { credentials?: RegistryCredentials | null; signal?: AbortSignal }): Promise<ResolvedImage>;
}

/**
 * Registry credentials held outside the database, looked up by the name a component refers to them by.
 * Returns null when there are none under that name; callers turn that into REGISTRY_CREDENTIALS_NOT_FOUND.
 */
export interface CredentialStore {
  get(ref: string): Promise<RegistryCredentials | null>;
}
