// Where a registry may send Ferry: the check made on every redirect hop and on every token realm a registry names.
//
// The registry host itself is the operator's choice (a component's repository) and is not judged here. Everything a
// registry *answers* with — a Location header, a Bearer realm — is untrusted input that would otherwise make the
// control plane a proxy into its own network: an internet registry redirecting to http://169.254.169.254/ (a cloud
// metadata service) or to 127.0.0.1:7070 (Ferry's own API), or a realm that collects the password. So each such URL
// must:
//   - use https, or plain http only where the registry rules allow it (loopback, insecureRegistries), so a redirect
//     can never downgrade https to http;
//   - not lead to a loopback, link-local or unspecified address — by literal address or by what the name resolves to —
//     unless the registry itself is on loopback (a local test or development registry whose token server is also
//     local), or the host is listed in internalHosts (the operator's explicit "this internal host is fine").
// Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) stay allowed: registries on a company network are the
// ordinary case. DNS is checked before each request; a name that changes its answer between the check and the
// connection (DNS rebinding) is not caught, which is why the redirect count is small and bodies are never reflected.
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { FerryError } from "../../domain/errors.js";
import { hostnameOf, isLoopback, usesPlainHttp } from "./transport-hosts.js";

export type AddressClass = "loopback" | "link-local" | "unspecified" | "public-or-private";

export interface OutboundPolicy {
  /** The registry host ("host[:port]") whose answers are being followed. */
  registry: string;
  insecureRegistries: readonly string[];
  /** Hosts ("host" or "host:port") a redirect or realm may name although they are loopback or link-local. */
  internalHosts: readonly string[];
  /** Resolves a host name to its addresses; injectable for tests. */
  lookup?: (host: string) => Promise<string[]>;
}

function ipv4Class(a: number, b: number): AddressClass {
  if (a === 127) return "loopback";
  if (a === 169 && b === 254) return "link-local";
  if (a === 0) return "unspecified";
  return "public-or-private";
}

/** The class of a literal IP address (v4, v6, v4-mapped v6); null for a name. */
export function addressClass(address: string): AddressClass | null {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  const kind = isIP(bare);
  if (kind === 4) {
    const [a, b] = bare.split(".").map(Number);
    return ipv4Class(a ?? 0, b ?? 0);
  }
  if (kind !== 6) return null;
  const v6 = bare.toLowerCase();
  // ::ffff:127.0.0.1 and ::ffff:7f00:1 are IPv4 addresses in IPv6 clothing.
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v6);
  if (mapped?.[1]) return addressClass(mapped[1]);
  const mappedHex = /^(?:0{0,4}:){0,5}:?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mappedHex?.[1] && mappedHex[2]) {
    const hi = parseInt(mappedHex[1], 16);
    return ipv4Class(hi >> 8, hi & 0xff);
  }
  if (/^(?:0{0,4}:){1,7}:?0{0,3}1$/.test(v6) || v6 === "::1") return "loopback";
  if (v6 === "::" || /^(?:0{1,4}:){7}0{1,4}$/.test(v6)) return "unspecified";
  if (/^fe[89ab][0-9a-f]:/.test(v6)) return "link-local";
  return "public-or-private";
}

async function defaultLookup(host: string): Promise<string[]> {
  const all = await dnsLookup(host, { all: true, verbatim: true });
  return all.map((a) => a.address);
}

function listed(entries: readonly string[], host: string): boolean {
  const h = host.toLowerCase();
  const name = hostnameOf(h);
  return entries.some((entry) => {
    const e = entry.trim().toLowerCase();
    return e === h || e === name;
  });
}

function refused(policy: OutboundPolicy, what: string, url: URL, why: string): FerryError {
  return new FerryError("REGISTRY_TARGET_REFUSED", `registry ${policy.registry} ${what} ${url.protocol}//${url.host}${url.pathname.slice(0, 100)}, which Ferry refuses: ${why}`, {
    registry: policy.registry,
    target: `${url.protocol}//${url.host}`,
    reason: why,
  });
}

/**
 * Throws REGISTRY_TARGET_REFUSED unless `url` (a redirect's Location or a Bearer realm; `what` says which, e.g.
 * "redirected to") is a place Ferry may send a request for this registry.
 */
export async function checkOutbound(policy: OutboundPolicy, url: URL, what: string): Promise<void> {
  if (url.protocol !== "https:" && url.protocol !== "http:") throw refused(policy, what, url, `scheme ${url.protocol} is not https`);
  if (url.username !== "" || url.password !== "") throw refused(policy, what, url, "the URL carries user information");
  if (url.protocol === "http:" && !usesPlainHttp(url.host, policy.insecureRegistries)) {
    throw refused(policy, what, url, `plain http to a host that is neither loopback nor listed in insecureRegistries (an https request is never downgraded)`);
  }
  if (listed(policy.internalHosts, url.host)) return;
  // A loopback registry is a local one; its token server and storage are local too.
  const registryLocal = isLoopback(policy.registry) || addressClass(hostnameOf(policy.registry)) === "loopback";
  const name = url.hostname;
  const literal = addressClass(name);
  let classes: AddressClass[];
  if (literal !== null) classes = [literal];
  else if (name.toLowerCase() === "localhost" || name.toLowerCase().endsWith(".localhost")) classes = ["loopback"];
  else {
    let addresses: string[];
    try {
      addresses = await (policy.lookup ?? defaultLookup)(name);
    } catch {
      // Unresolvable: the request itself will fail with REGISTRY_UNREACHABLE naming the DNS failure.
      return;
    }
    classes = addresses.map((a) => addressClass(a) ?? "public-or-private");
  }
  for (const c of classes) {
    if (c === "public-or-private") continue;
    if (c === "loopback" && registryLocal) continue;
    throw refused(policy, what, url, `it is a ${c} address (list the host in registryInternalHosts if this is intended)`);
  }
}
