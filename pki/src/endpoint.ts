// Host names and host:port endpoints as operators write them (join strings, server certificate hosts).
import { isIPv4, isIPv6 } from "node:net";

export type HostKind = "dns" | "ipv4" | "ipv6";

export type ParsedHost = { ok: true; kind: HostKind; host: string } | { ok: false; reason: string };
export type ParsedEndpoint =
  | { ok: true; kind: HostKind; host: string; port: number }
  | { ok: false; reason: string };

// Underscores are outside RFC 1123 but common in Docker/Compose service names, and Node resolves them; accepting
// them costs nothing since the name is only used to connect, never to authenticate.
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A DNS name, an IPv4 address, or an IPv6 address (bare or in brackets). `host` comes back without brackets. */
export function parseHost(input: string): ParsedHost {
  if (input.length === 0) return { ok: false, reason: "host is empty" };
  const unbracketed = input.startsWith("[") && input.endsWith("]") ? input.slice(1, -1) : input;
  if (isIPv6(unbracketed)) return { ok: true, kind: "ipv6", host: unbracketed };
  if (unbracketed !== input) return { ok: false, reason: `"${input}" is not a valid IPv6 address` };
  if (isIPv4(input)) return { ok: true, kind: "ipv4", host: input };
  // "300.1.1.1" or "10.1" would otherwise pass as DNS names and fail much later with a confusing resolver error.
  if (/^[0-9.]+$/.test(input)) return { ok: false, reason: `"${input}" is not a valid IPv4 address` };
  if (input.length > 253 || !input.split(".").every((label) => LABEL.test(label))) {
    return { ok: false, reason: `"${input}" is not a valid host name` };
  }
  return { ok: true, kind: "dns", host: input };
}

/** "host:port", with IPv6 as "[::1]:port"; port 1-65535. */
export function parseEndpoint(input: string): ParsedEndpoint {
  let hostPart: string;
  let portPart: string;
  if (input.startsWith("[")) {
    const close = input.indexOf("]");
    if (close < 0) return { ok: false, reason: `"${input}" has "[" without "]"` };
    hostPart = input.slice(0, close + 1);
    const rest = input.slice(close + 1);
    if (!rest.startsWith(":")) return { ok: false, reason: `"${input}" has no :port after the IPv6 address` };
    portPart = rest.slice(1);
  } else {
    const colon = input.lastIndexOf(":");
    if (colon < 0) return { ok: false, reason: `"${input}" has no :port` };
    hostPart = input.slice(0, colon);
    portPart = input.slice(colon + 1);
    if (hostPart.includes(":")) {
      return { ok: false, reason: `"${input}": an IPv6 address must be written in brackets, e.g. [::1]:7443` };
    }
  }
  if (!/^[0-9]{1,5}$/.test(portPart)) return { ok: false, reason: `port "${portPart}" is not a number` };
  const port = Number(portPart);
  if (port < 1 || port > 65535) return { ok: false, reason: `port ${port} is outside 1-65535` };
  const host = parseHost(hostPart);
  if (!host.ok) return host;
  return { ok: true, kind: host.kind, host: host.host, port };
}
