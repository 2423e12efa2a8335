// Image references, parsed by Docker's rules (github.com/distribution/reference, grammar in reference.go):
//
//   reference  := name [ ":" tag ] [ "@" digest ]
//   name       := [ registry "/" ] path-component ( "/" path-component )*
//   registry   := host [ ":" port ]          — the first component is a registry when it contains "." or ":" or is
//                                             "localhost"; otherwise the name is on Docker Hub
//   component  := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*   (Docker writes "-"*; see COMPONENT)
//   tag        := [\w][\w.-]{0,127}
//   digest     := "sha256:" [a-f0-9]{64}    — Ferry pins sha256 only: it is what registries and engines compute
//
// Docker Hub names are expanded the way the engine expands them ("nginx" → "library/nginx"), and "docker.io" /
// "index.docker.io" are spelled "registry-1.docker.io", the host that serves the distribution API, so one image
// has one canonical repository string. Registry hosts are lowercased (DNS names are case-insensitive).
//
// Unlike `docker pull`, a reference without a tag or digest is refused rather than read as ":latest": a release pins
// what the operator named, never an implied tag.
import { FerryError } from "../../domain/errors.js";
import type { ImageReference } from "../../ports/registry.js";

export const DEFAULT_REGISTRY = "registry-1.docker.io";
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", DEFAULT_REGISTRY]);

// Docker's grammar writes the separator as `[._]|__|[-]*`; the `[-]*` can match nothing, so `(sep alnum+)*` can split
// a run of letters in exponentially many ways and a name like "aaaa…a!" backtracks for hours. A separator that is
// empty is no separator: written as `-+`, every repetition starts with a character outside [a-z0-9], so there is one
// way to split any input and the match is linear. The language is the same (reference.test.ts compares them).
export const COMPONENT_SEPARATOR = "[._]|__|-+";
const COMPONENT = new RegExp(`^[a-z0-9]+(?:(?:${COMPONENT_SEPARATOR})[a-z0-9]+)*$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
// A DNS name (labels of letters, digits and inner hyphens) or a bracketed IPv6 literal, then an optional port.
const HOST = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::([0-9]+))?$/;
// Docker's limit on the whole name (registry included).
const NAME_MAX = 255;
// Generous for any real reference; keeps a pasted blob out of error messages.
const INPUT_MAX = 1024;

function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);
}

function invalid(input: string, why: string, part: string): FerryError {
  return new FerryError("INVALID_REFERENCE", `invalid image reference ${quote(input)}: ${why}`, { reference: input.slice(0, 200), part });
}

/** Checks a digest; throws INVALID_DIGEST naming what is wrong with it. */
export function parseDigest(digest: string): string {
  if (DIGEST.test(digest)) return digest;
  const colon = digest.indexOf(":");
  const algorithm = colon < 0 ? "" : digest.slice(0, colon);
  const hex = colon < 0 ? digest : digest.slice(colon + 1);
  let why: string;
  if (colon < 0) why = `it has no algorithm; expected "sha256:" followed by 64 lowercase hex characters`;
  else if (algorithm !== "sha256") why = `algorithm ${quote(algorithm)} is not supported; Ferry pins sha256 digests only`;
  else if (/[A-F]/.test(hex) && /^[a-fA-F0-9]{64}$/.test(hex)) why = "the hex must be lowercase";
  else if (!/^[a-fA-F0-9]*$/.test(hex)) why = "the hash contains characters that are not hex";
  else why = `the hash has ${hex.length} hex characters; sha256 has 64`;
  return failDigest(digest, why);
}

function failDigest(digest: string, why: string): never {
  throw new FerryError("INVALID_DIGEST", `invalid digest ${quote(digest)}: ${why}`, { digest: digest.slice(0, 200) });
}

function splitRegistry(input: string, name: string): { registry: string; path: string } {
  const slash = name.indexOf("/");
  const first = slash < 0 ? name : name.slice(0, slash);
  const isRegistry = slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost");
  if (!isRegistry) {
    // Docker Hub: single-component names are official images under library/.
    return { registry: DEFAULT_REGISTRY, path: slash < 0 ? `library/${name}` : name };
  }
  const m = HOST.exec(first);
  if (!m) throw invalid(input, `registry host ${quote(first)} is not a valid host[:port]`, "registry");
  const port = m[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw invalid(input, `registry port ${port} is out of range`, "registry");
  let registry = first.toLowerCase();
  let path = name.slice(slash + 1);
  if (DOCKER_HUB_ALIASES.has(registry)) {
    registry = DEFAULT_REGISTRY;
    if (!path.includes("/")) path = `library/${path}`;
  }
  return { registry, path };
}

function checkPath(input: string, path: string): void {
  if (path === "") throw invalid(input, "the repository path is empty", "repository");
  for (const component of path.split("/")) {
    if (component === "") throw invalid(input, "the repository path has an empty component (a leading, trailing or double \"/\")", "repository");
    if (!COMPONENT.test(component)) {
      const why = /[A-Z]/.test(component)
        ? `repository component ${quote(component)} must be lowercase`
        : `repository component ${quote(component)} must be lowercase letters and digits, separated by ".", "_", "__" or "-"`;
      throw invalid(input, why, "repository");
    }
  }
}

function parseName(input: string, name: string): { registry: string; repository: string } {
  if (name === "") throw invalid(input, "the name is empty", "repository");
  if (name.length > NAME_MAX) throw invalid(input, `the name is longer than ${NAME_MAX} characters`, "repository");
  const { registry, path } = splitRegistry(input, name);
  checkPath(input, path);
  return { registry, repository: path };
}

function checkInput(input: string): void {
  if (typeof input !== "string" || input === "") throw invalid(String(input), "it is empty", "reference");
  if (input.length > INPUT_MAX) throw invalid(input, `it is longer than ${INPUT_MAX} characters`, "reference");
  if (/\s/.test(input)) throw invalid(input, "it contains whitespace", "reference");
  if (input.includes("://")) throw invalid(input, "it has a URL scheme; write host[:port]/repository, without http:// or https://", "registry");
}

/**
 * Parses "registry/repo:tag", "registry/repo@sha256:…" or "registry/repo:tag@sha256:…". Throws INVALID_DIGEST for a
 * malformed digest and INVALID_REFERENCE (message and details.part naming the part) for anything else.
 */
export function parseReference(input: string): ImageReference {
  checkInput(input);
  let rest = input;
  let digest: string | null = null;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (d.includes("@")) throw invalid(input, "it has more than one \"@\"", "digest");
    digest = parseDigest(d);
    rest = rest.slice(0, at);
  }
  let tag: string | null = null;
  // A ":" after the last "/" starts the tag; one before it belongs to the registry's port.
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      const why = tag === "" ? "the tag after \":\" is empty" : `tag ${quote(tag)} must be 1–128 characters of letters, digits, "_", "." and "-", not starting with "." or "-"`;
      throw invalid(input, why, "tag");
    }
  }
  const { registry, repository } = parseName(input, rest);
  if (tag === null && digest === null) {
    throw invalid(input, "it names neither a tag nor a digest; write :tag or @sha256:… (Ferry does not assume :latest)", "tag");
  }
  return { registry, repository, tag, digest };
}

/** Parses a repository without tag or digest ("registry/repo"), e.g. a component's image repository. */
export function parseRepository(input: string): { registry: string; repository: string } {
  checkInput(input);
  if (input.includes("@")) throw invalid(input, "a repository has no digest", "digest");
  const colon = input.lastIndexOf(":");
  if (colon > input.lastIndexOf("/")) throw invalid(input, "a repository has no tag", "tag");
  return parseName(input, input);
}

/** "registry/repository", the canonical repository string. */
export function canonicalRepository(ref: { registry: string; repository: string }): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The reference in canonical form: "registry/repository[:tag][@digest]". */
export function formatReference(ref: ImageReference): string {
  return `${canonicalRepository(ref)}${ref.tag !== null ? `:${ref.tag}` : ""}${ref.digest !== null ? `@${ref.digest}` : ""}`;
}
