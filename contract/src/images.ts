// Images as both sides name them. A pinned image is repository@sha256:<64 hex>; nothing downstream of a release ever
// names a tag.

/** A release's pin of one component. */
export interface ReleasePin {
  component: string;
  /** registry/repository, no tag or digest, e.g. "127.0.0.1:5000/shop/web". */
  repository: string;
  /** "sha256:<64 lowercase hex>". */
  digest: string;
}

/** One image of a task: a release pin plus its ref, the only form a driver may pull or run. */
export interface ImagePin extends ReleasePin {
  /** `${repository}@${digest}`, exactly. */
  ref: string;
}

export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

export function isDigest(s: string): boolean {
  return DIGEST_PATTERN.test(s);
}

export function pinOf(p: ReleasePin): ImagePin {
  return { component: p.component, repository: p.repository, digest: p.digest, ref: `${p.repository}@${p.digest}` };
}

/** Why an image pin is not a usable repository@digest, or undefined when it is. */
export function pinProblem(pin: ImagePin): string | undefined {
  // A tag or a second digest smuggled into the repository would make "repository@digest" mean something else.
  if (pin.repository === "" || pin.repository.includes("@") || /\s/.test(pin.repository)) return `repository ${JSON.stringify(pin.repository)} is not a repository name`;
  if (!isDigest(pin.digest)) return `digest ${JSON.stringify(pin.digest)} is not sha256:<64 hex>`;
  if (pin.ref !== `${pin.repository}@${pin.digest}`) return `ref ${JSON.stringify(pin.ref)} is not repository@digest`;
  return undefined;
}

/**
 * The key registry credentials are filed under: the registry host[:port] of a repository, as the Docker Engine reads
 * it — the first path segment when it looks like a host (has a '.' or a ':', or is "localhost"), else Docker Hub. The
 * control plane files a task's credentials under it and the agent looks them up by it.
 */
export function credentialRegistry(repository: string): string {
  const slash = repository.indexOf("/");
  if (slash < 0) return "docker.io";
  const first = repository.slice(0, slash);
  return first.includes(".") || first.includes(":") || first === "localhost" ? first : "docker.io";
}
