// API roles. admin implies every other role; the others are independent, so separation of duties can be expressed
// (a release manager who cannot approve, an approver who cannot deploy). gate-override lets a direct deploy,
// rollback or retry into an environment with gates through without a promotion (docs/gates.md); deployer does not
// carry it, so it is granted to the few who need it, on purpose.
export const ROLES = ["admin", "release-manager", "approver", "deployer", "gate-override", "viewer"] as const;
export type Role = (typeof ROLES)[number];

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

/** Whether a principal holding `held` may call an endpoint that requires `required`. Every role can read. */
export function satisfies(held: readonly Role[], required: Role): boolean {
  if (held.includes("admin")) return true;
  if (required === "viewer") return held.length > 0;
  return held.includes(required);
}

export interface Principal {
  tokenId: string;
  subject: string;
  roles: Role[];
}
