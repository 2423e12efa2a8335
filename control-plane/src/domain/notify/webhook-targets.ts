// Where webhooks may go (docs/webhooks.md, "Destinations").
//
// A webhook makes the control plane send requests to a URL someone typed in: without a rule it would reach what
// only the control plane can reach — its own loopback ports, the cloud metadata service on 169.254.169.254, a
// database on the private network. So destinations on loopback, private, link-local, carrier-grade NAT, multicast
// and reserved ranges are refused unless an operator allowed them (--webhook-allow: CIDRs, or host names matched
// exactly). The rule is applied when a subscription is created (the URL's host, and what its name resolves to then)
// and again at every delivery, on the addresses the connection is actually made to (a lookup hook on the request),
// because a name can resolve elsewhere later. A name with any refused address is refused as a whole, so a resolver
// answering with one public and one private address cannot slip the private one in.
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from "node:dns";
import { BlockList, isIP } from "node:net";

/** Thrown (and reported as a delivery error) when a destination is refused. */
export class WebhookTargetError extends Error {
  readonly code = "WEBHOOK_TARGET_FORBIDDEN" as const;
}

const DENIED_V4: [string, number, string][] = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "carrier-grade NAT"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];
const DENIED_V6: [string, number, string][] = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["fc00::", 7, "unique local (private)"],
  ["fe80::", 10, "link-local"],
  ["ff00::", 8, "multicast"],
];

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address, if any. */
function embeddedV4(v6: string): string | null {
  const m = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(v6);
  if (!m) return null;
  if (m[1]) return m[1];
  const hi = parseInt(m[2]!, 16);
  const lo = parseInt(m[3]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

export class WebhookTargetPolicy {
  readonly #allowNets = new BlockList();
  readonly #allowHosts = new Set<string>();

  readonly #lookup: typeof dnsLookup;

  /**
   * `allow`: CIDRs (10.1.2.0/24, ::1/128), single addresses, or host names (exact, case-insensitive). `resolver`
   * replaces the system resolver (tests: a name that resolves somewhere it should not).
   */
  constructor(readonly allow: readonly string[] = [], opts: { resolver?: typeof dnsLookup } = {}) {
    this.#lookup = opts.resolver ?? dnsLookup;
    for (const raw of allow) {
      const entry = raw.trim();
      if (!entry) continue;
      const [addr, bits] = entry.split("/");
      const family = isIP(addr ?? "");
      if (family !== 0) {
        const type = family === 4 ? "ipv4" : "ipv6";
        const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new RangeError(`webhook-allow: "${entry}" has a bad prefix length`);
        this.#allowNets.addSubnet(addr!, prefix, type);
      } else if (bits === undefined && /^[a-z0-9.-]+$/i.test(entry)) {
        this.#allowHosts.add(entry.toLowerCase().replace(/\.$/, ""));
      } else {
        throw new RangeError(`webhook-allow: "${entry}" is neither a CIDR, an address nor a host name`);
      }
    }
  }

  /** Why an address may not be reached, or null when it may. */
  refusal(address: string): string | null {
    const family = isIP(address);
    if (family === 0) return `${address} is not an IP address`;
    const type = family === 4 ? "ipv4" : "ipv6";
    if (this.#allowNets.check(address, type)) return null;
    if (family === 6) {
      const v4 = embeddedV4(address.toLowerCase());
      if (v4) return this.refusal(v4);
    }
    for (const [net, bits, what] of family === 4 ? DENIED_V4 : DENIED_V6) {
      const list = new BlockList();
      list.addSubnet(net, bits, type);
      if (list.check(address, type)) return `${address} is a ${what} address, and not in the webhook allow-list (--webhook-allow)`;
    }
    return null;
  }

  /** Checks a URL's form and its host when the host is an IP literal; names are checked by resolve() and lookup(). */
  checkUrl(url: URL): void {
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new WebhookTargetError(`${url.protocol} URLs are not supported (http or https)`);
    if (url.username || url.password) {
      throw new WebhookTargetError("the URL carries user:password@; Ferry does not send credentials from URLs (deliveries are authenticated by their HMAC signature)");
    }
    const host = hostOf(url);
    if (this.#allowHosts.has(host)) return;
    if (isIP(host)) {
      const why = this.refusal(host);
      if (why) throw new WebhookTargetError(why);
    } else if (host === "localhost" || host.endsWith(".localhost")) {
      throw new WebhookTargetError(`${host} is loopback, and not in the webhook allow-list (--webhook-allow)`);
    }
  }

  /** Resolves a URL's host name now and refuses it when any address is refused (at subscription time). */
  async resolve(url: URL): Promise<void> {
    this.checkUrl(url);
    const host = hostOf(url);
    if (isIP(host) || this.#allowHosts.has(host)) return;
    let addresses: LookupAddress[];
    try {
      addresses = await new Promise<LookupAddress[]>((res, rej) => this.#lookup(host, { all: true }, (err, a) => (err ? rej(err) : res(a))));
    } catch {
      // Not resolvable now: it may be later. Delivery applies the rule to whatever it resolves to then.
      return;
    }
    for (const a of addresses) {
      const why = this.refusal(a.address);
      if (why) throw new WebhookTargetError(`${host} resolves to ${why}`);
    }
  }

  /** A `lookup` for http.request: resolves, and fails the connection when any address is refused. */
  lookupFor(hostname: string): typeof dnsLookup {
    const allowedByName = this.#allowHosts.has(hostname.toLowerCase().replace(/\.$/, ""));
    const hook = (host: string, options: LookupOneOptions | LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
      this.#lookup(host, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, "");
        if (!allowedByName) {
          for (const a of addresses) {
            const why = this.refusal(a.address);
            if (why) return callback(Object.assign(new WebhookTargetError(`${host} resolves to ${why}`), { errno: 0, syscall: "lookup" }), "");
          }
        }
        if (options.all) return callback(null, addresses);
        const first = addresses[0];
        if (!first) return callback(Object.assign(new Error(`${host} has no address`), { code: "ENOTFOUND" }), "");
        callback(null, first.address, first.family);
      });
    };
    return hook as unknown as typeof dnsLookup;
  }
}

/** The URL's host without IPv6 brackets or a trailing dot, lower-case. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, "").replace(/\.$/, "").toLowerCase();
}
