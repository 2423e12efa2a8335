// Registry adapter: resolves image references to digests over the OCI distribution API, and looks up registry
// credentials kept outside the database. See docs/registry.md.
export { OciRegistry, DEFAULT_TIMEOUT_MS } from "./oci-registry.js";
export type { OciRegistryOptions } from "./oci-registry.js";
export { canonicalRepository, DEFAULT_REGISTRY, formatReference, parseDigest, parseReference, parseRepository } from "./reference.js";
export { MANIFEST_ACCEPT, MEDIA_TYPE } from "./manifest.js";
export { isLoopback, usesPlainHttp } from "./transport.js";
export {
  CREDENTIALS_ENV_PREFIX,
  CredentialStoreError,
  credentialsEnvName,
  EnvAndFileCredentialStore,
} from "./credential-store.js";
export type { CredentialStoreErrorCode, EnvAndFileCredentialStoreOptions } from "./credential-store.js";
