// Host names of registries: which are loopback and which get plain http (see transport.ts for the rule).

/** The host name of "host[:port]", without IPv6 brackets' port and lowercased. */
export function hostnameOf(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

export function isLoopback(host: string): boolean {
  const name = hostnameOf(host);
  if (name === "localhost" || name === "[::1]") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

export function usesPlainHttp(host: string, insecureRegistries: readonly string[]): boolean {
  if (isLoopback(host)) return true;
  const h = host.toLowerCase();
  const name = hostnameOf(h);
  return insecureRegistries.some((entry) => {
    const e = entry.trim().toLowerCase();
    return e === h || e === name;
  });
}
