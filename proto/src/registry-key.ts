// The key a RegistryCredential is filed under (its `registry` field): the registry host[:port] of a repository, as
// the Docker Engine reads it — the first path segment when it looks like a host (has a '.' or a ':', or is
// "localhost"), else Docker Hub. The control plane files a task's credentials under it and the agent looks them up
// by it, so both sides take it from here.
export function credentialRegistry(repository: string): string {
  const slash = repository.indexOf("/");
  if (slash < 0) return "docker.io";
  const first = repository.slice(0, slash);
  return first.includes(".") || first.includes(":") || first === "localhost" ? first : "docker.io";
}
