// How a certificate says who it belongs to. Identity is carried by a SAN URI, not by the subject CN or a DNS
// name: agents and the control plane are identified by role and id, and the fleet CA is private and pinned, so
// DNS names prove nothing here. The CN mirrors the id only for humans reading the certificate.

export const AGENT_URI_PREFIX = "urn:ferry:agent:";
export const CONTROL_PLANE_URI = "urn:ferry:control-plane";

// Agent ids go verbatim into a URN and a CN (at most 64 characters by X.520), so they are restricted to
// characters that need no escaping in either: UUIDs and ULIDs fit.
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidAgentId(agentId: string): boolean {
  return AGENT_ID.test(agentId);
}

/** Throws RangeError: an invalid id is a bug in the caller (ids are minted by the control plane), not bad input. */
export function assertValidAgentId(agentId: string): void {
  if (!isValidAgentId(agentId)) {
    throw new RangeError(
      `agent id ${JSON.stringify(agentId)} is not valid: 1-64 letters, digits, ".", "_" or "-", ` +
        `starting with a letter or digit`,
    );
  }
}

export function agentUri(agentId: string): string {
  return AGENT_URI_PREFIX + agentId;
}
